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
