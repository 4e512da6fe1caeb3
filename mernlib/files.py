"""Reading and writing the kit's text files: one way to read (UTF-8, errors naming file and line) and one
way to write (atomically).

* :func:`read_text` decodes a file as UTF-8. A byte-order mark at the very start of the file is
  dropped silently (editors on Windows add one; it carries no data). Bytes that are not UTF-8 raise
  :class:`~mernlib.errors.DataFormatError` naming the file, the 1-based line and the column, and a
  directory raises one naming the path; a missing file stays :class:`FileNotFoundError`.
* :func:`atomic_write_text` writes a temporary file in the destination's folder and renames it over the
  destination (:func:`os.replace`), so a reader -- another process, or a run that was interrupted --
  never sees half a file. The text is written exactly as given (no newline translation), UTF-8.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import DataFormatError

BOM = "\ufeff"


def read_text(path: str | Path) -> str:
    """The text of ``path`` decoded as UTF-8, without a leading byte-order mark (see the module docstring)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DataFormatError(path, None, "is a directory, not a file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        bad = data[err.start : err.end].hex(" ")
        raise DataFormatError(
            path,
            line,
            f"not UTF-8: byte(s) {bad} at column {column} ({err.reason}); save the file as UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8)",
        ) from None
    return text.removeprefix(BOM)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically, creating its folder; returns the
    path. The temporary file (``.<name>.<random>.tmp`` beside ``path``) is removed if writing fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open with 0o666 lets the umask decide the mode, as for any file the kit writes directly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


__all__ = ["BOM", "atomic_write_text", "read_text"]
