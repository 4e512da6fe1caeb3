"""Property-based tests (hypothesis): the error promise and exact round trips, on inputs nobody wrote by hand.

* Random bytes, and valid PubTator / IOB files damaged by random edits (bytes deleted, inserted, replaced;
  lines swapped or repeated), thrown at the readers and at ``python -m mernlib stats|evaluate`` (through
  :func:`mernlib.cli.main`): every outcome is a result, or a :class:`~mernlib.errors.DataFormatError` /
  exit status 2 with ONE line naming ``file:line`` -- never a traceback.
* Any valid document written and read back is exactly what was written.

Kept to a few seconds: 30 examples per property (``MERNLIB_HYPOTHESIS_EXAMPLES=1500`` for a long hunt;
1,500 each passed when this file was written), no deadline.
"""

import contextlib
import io
import json
import os
import re
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mernlib.cli import main
from mernlib.conll import DOCSTART, TaggedSentence, format_iob, read_iob, write_iob
from mernlib.corpus import Document, Mention, Relation
from mernlib.errors import DataFormatError
from mernlib.pubtator import NCBI_CLASSES, format_pubtator, read_pubtator, write_pubtator
from mernlib.tags import spans_to_tags

SETTINGS = settings(
    max_examples=int(os.environ.get("MERNLIB_HYPOTHESIS_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# --- valid documents ------------------------------------------------------------------------------

# Anything but the line and field separators; no surrogates (not encodable), no BOM (a leading one is
# dropped on reading by design, so a title starting with one would not come back).
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r\ufeff")
WORD = st.from_regex(r"[A-Za-z][A-Za-z_]{0,8}", fullmatch=True).filter(lambda w: w not in NCBI_CLASSES)
CONCEPT = st.sampled_from(
    ["", "-1", "D003924", "C535468", "OMIM:217000", "D014786|D006311", "D001943+D040181"]
)


@st.composite
def documents(draw, source="", max_docs=3):
    docs = []
    for index in range(draw(st.integers(0, max_docs))):
        pmid = draw(st.from_regex(r"[0-9]{1,8}", fullmatch=True))
        title = draw(st.text(TEXT_CHARS, max_size=30))
        abstract = draw(st.text(TEXT_CHARS, max_size=60))
        doc = Document(pmid, title, abstract, source=source, index=index)
        text = doc.text
        for _ in range(draw(st.integers(0, 4)) if text else 0):
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            attrs = {}
            if draw(st.booleans()):
                attrs["parts"] = tuple(
                    draw(st.lists(st.text(TEXT_CHARS.filter(lambda c: c != "|")), min_size=1, max_size=3))
                )
            doc.mentions.append(Mention(start, end, text[start:end], draw(WORD), draw(CONCEPT), attrs))
        for _ in range(draw(st.integers(0, 2))):
            doc.relations.append(Relation("CID", draw(st.sampled_from(["D1", "C2"])), "D3"))
        docs.append(doc)
    return docs


TOKEN = st.text(TEXT_CHARS, min_size=1, max_size=8).filter(lambda t: t.strip() and t != DOCSTART)
LOOSE_TAG = st.sampled_from(["O", "B-X", "I-X", "I-Y", "B-Y"])  # predicted tags need not be IOB2


@st.composite
def sentences(draw):
    predicted = draw(st.booleans())
    with_documents = draw(st.booleans())
    out, document = [], -1
    for k in range(draw(st.integers(0, 4))):
        tokens = draw(st.lists(TOKEN, min_size=1, max_size=6))
        n = len(tokens)
        spans, i = [], 0
        while i < n:  # non-overlapping spans, left to right
            if draw(st.booleans()):
                j = draw(st.integers(i + 1, n))
                spans.append((i, j, draw(WORD)))
                i = j
            else:
                i += 1
        if with_documents and (k == 0 or draw(st.booleans())):
            document += 1
        out.append(
            TaggedSentence(
                tokens,
                spans_to_tags(n, spans),
                document=document if with_documents else None,
                predicted=[draw(LOOSE_TAG) for _ in tokens] if predicted else None,
            )
        )
    return out


# --- damage ---------------------------------------------------------------------------------------

NASTY = [b"\t", b"\n", b"\n\n", b"|", b"|t|", b"|a|", b"\xff", b"\xe1", b"\xef\xbb\xbf", b"0", b"9" * 30]
NASTY += [b"-", b"\r", b"CID", b"O", b"I-X", b"B-", b"E-X", b"S-", b"-DOCSTART-\tO\n", b"\x00", b" "]


@st.composite
def damaged(draw, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "swap", "repeat"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "delete":
            data = data[:pos] + data[pos + draw(st.integers(1, 8)) :]
        elif kind == "insert":
            data = data[:pos] + draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=4)) + data[pos:]
        elif kind == "replace" and pos < len(data):
            data = data[:pos] + bytes([draw(st.integers(0, 255))]) + data[pos + 1 :]
        elif kind in ("swap", "repeat"):
            lines = data.split(b"\n")
            i, j = (draw(st.integers(0, len(lines) - 1)) for _ in range(2))
            if kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, lines[i])
            data = b"\n".join(lines)
    return data


@st.composite
def pubtator_inputs(draw):
    """``(valid gold text, damaged or random bytes)``."""
    gold = format_pubtator(draw(documents(max_docs=2)))
    if draw(st.integers(0, 9)) == 0:
        return gold, draw(st.binary(max_size=200))
    return gold, draw(damaged(gold.encode("utf-8")))


@st.composite
def iob_inputs(draw):
    valid = format_iob(draw(sentences())).encode("utf-8")
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    return draw(damaged(valid))


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def _lines(data: bytes) -> int:
    return data.count(b"\n") + 1


def _assert_names_file_and_line(err: DataFormatError, path, data: bytes) -> None:
    assert err.path == str(path), err
    assert isinstance(err.line, int) and 1 <= err.line <= _lines(data), err
    assert "\n" not in str(err)


def _cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning on stderr would break the one-line promise too
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def _assert_result_or_one_line(status: int, out: str, err: str, command: str, files: dict) -> None:
    """``files``: path -> its bytes; an error must name one of them and a line inside it."""
    if status == 0:
        json.loads(out)
        assert err == ""
        return
    assert status == 2 and out == "" and err.count("\n") == 1, err
    match = re.match(rf"mernlib {command}: (.+):(\d+): ", err)
    assert match and match.group(1) in files, err
    assert 1 <= int(match.group(2)) <= _lines(files[match.group(1)]), err


# --- the properties -------------------------------------------------------------------------------


@SETTINGS
@given(docs=documents(max_docs=3))
def test_pubtator_round_trip_is_exact(folder, docs):
    path = folder / "round.pubtator"
    for d in docs:
        d.source = str(path)
    write_pubtator(docs, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid document needs no repair
        assert read_pubtator(path) == docs
    assert path.read_text(encoding="utf-8") == format_pubtator(docs)


@SETTINGS
@given(sents=sentences())
def test_iob_round_trip_is_exact(folder, sents):
    path = folder / "round.tsv"
    write_iob(sents, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = read_iob(path)
    assert [(s.tokens, s.tags, s.document, s.predicted) for s in again] == [
        (s.tokens, s.tags, s.document, s.predicted) for s in sents
    ]
    assert format_iob(again) == path.read_text(encoding="utf-8")


@SETTINGS
@given(inputs=pubtator_inputs())
def test_damaged_pubtator_never_escapes_the_promise(folder, inputs):
    gold_text, data = inputs
    gold, bad = folder / "gold.pubtator", folder / "bad.pubtator"
    gold.write_text(gold_text, encoding="utf-8")
    bad.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_pubtator(bad)
    except DataFormatError as err:
        _assert_names_file_and_line(err, bad, data)
    files = {str(gold): gold_text.encode("utf-8"), str(bad): data}
    _assert_result_or_one_line(*_cli(["stats", str(bad)]), "stats", files)
    _assert_result_or_one_line(
        *_cli(["evaluate", "--gold", str(gold), "--pred", str(bad)]), "evaluate", files
    )
    _assert_result_or_one_line(
        *_cli(["evaluate", "--gold", str(bad), "--pred", str(gold)]), "evaluate", files
    )


@SETTINGS
@given(data=iob_inputs(), scheme=st.sampled_from(["iob", "iobes"]))
def test_damaged_iob_never_escapes_the_promise(folder, data, scheme):
    path = folder / "bad.tsv"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_iob(path, scheme=scheme)
    except DataFormatError as err:
        _assert_names_file_and_line(err, path, data)
