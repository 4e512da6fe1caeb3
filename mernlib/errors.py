"""Errors the kit raises on bad input: each names the file and the line so the user can fix it."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A malformed input file. ``str(err)`` reads ``path:line: what is wrong``."""

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class DataNotFoundError(FileNotFoundError):
    """A corpus file that is neither under MERNLIB_DATA, nor cached, nor downloadable right now."""


class DocumentMismatchError(DataFormatError):
    """A predicted document that cannot be paired with a gold one (its PMID is not in gold, or its text
    is not the gold document's). ``str(err)`` reads ``path: message``; ``index`` is the document's
    position in its file, so a caller that read the file can name its line
    (:func:`mernlib.pubtator.title_lines`)."""

    def __init__(self, path, index: int, message: str):
        super().__init__(path, None, message)
        self.index = index
