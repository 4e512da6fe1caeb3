"""mernlib.files: the one UTF-8 reader (errors name file and line) and the one atomic writer."""

import csv
import json
import os

import pytest

from mernlib.errors import DataFormatError
from mernlib.files import atomic_write_text, read_text
from mernlib.report import write_csv, write_json


def test_read_text_drops_a_leading_bom_only(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfabc\n\xef\xbb\xbfdef\n")
    assert read_text(path) == "abc\n\ufeffdef\n"  # a BOM inside the file is data; the readers judge it


def test_read_text_names_line_and_column_of_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("first line\nsecond caf\u00e9 line\n".encode("latin-1"))
    with pytest.raises(DataFormatError) as caught:
        read_text(path)
    err = caught.value
    assert (err.path, err.line) == (str(path), 2)
    assert "not UTF-8: byte(s) e9 at column 11" in err.message and "\n" not in str(err)


def test_read_text_of_a_directory_or_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="is a directory"):
        read_text(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "absent.txt")


def test_atomic_write_replaces_whole_files_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "new" / "folder" / "out.txt"
    assert atomic_write_text(path, "a\r\nb\n") == path
    assert path.read_bytes() == b"a\r\nb\n"  # written as given: no newline translation
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # as a plain open() would create it
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "half written \ud800")  # fails while writing the temporary file
    assert path.read_bytes() == b"a\r\nb\n"  # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_write_json_and_write_csv_write_what_they_wrote_before(tmp_path):
    rows = [{"row": "a", "f1": 0.5, "seeds": [13, 14]}, {"row": "b, quoted", "extra": None}]
    write_csv(rows, tmp_path / "new.csv")
    with open(tmp_path / "old.csv", "w", newline="", encoding="utf-8") as f:  # the writer before files.py
        writer = csv.DictWriter(f, fieldnames=["row", "f1", "seeds", "extra"])
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.items()}
            )
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
    assert b"\r\n" in (tmp_path / "new.csv").read_bytes()
    data = {"b": [1, 2], "a": "é"}
    write_json(data, tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == json.dumps(data, indent=2) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "old.csv", "r.json"]
