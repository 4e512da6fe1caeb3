"""PubTator files (NCBI-disease, BC5CDR): reading with every known quirk handled, and writing.

Format: for each document a title line ``PMID|t|title``, an abstract line ``PMID|a|abstract``,
annotation lines ``PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>ids[<TAB>parts]``, relation lines
``PMID<TAB>CID<TAB>chemical<TAB>disease``, and a blank line between documents. Files are UTF-8
(:func:`mernlib.files.read_text`): a byte-order mark at the very start of a file is accepted and dropped,
one anywhere else (two files joined with ``cat``) is an error that names it.

The reader is strict where a mistake would corrupt the data and forgiving where the real files are
merely quirky (see ``/work/shared/corpora/README.md``):

* a malformed line raises :class:`~mernlib.errors.DataFormatError` naming the file and the 1-based
  line -- nothing is dropped silently;
* a PMID may occur twice: every title line starts a new :class:`Document` (``index`` = position);
* a line whose second column is a word is a relation only if the word is a relation type the kit
  knows (:data:`RELATION_TYPES`: BC5CDR's ``CID``); any other word there is an error (it is a damaged
  mention line, e.g. ``PMID<TAB>O<TAB>...``), never a relation of type ``O``;
* IDs go through :func:`~mernlib.corpus.normalize_concept` (prefixes, stray spaces, ``|``/``+``);
* NCBI's four mention classes become type ``Disease`` (original kept in ``attrs["ncbi_class"]``);
* when the text column disagrees with the document text at the offsets, the offsets win: the mention
  text is the document's slice, the column is kept in ``attrs["source_text"]``, and a *note* is
  recorded. :func:`read_pubtator` emits one :class:`PubTatorWarning` summarising the notes;
  :func:`read_pubtator_with_notes` returns them instead.

:func:`read_pubtator_texts` reads the titles and abstracts alone, passing over annotation lines (what a
model annotating the file afresh needs: ``python -m mernlib annotate``), with the same structural checks.

A *stand-off* prediction file holds the annotation and relation lines alone, without the ``|t|`` and
``|a|`` lines: its text is the gold file's it is scored against. The kit stores its test predictions so
(``write_pubtator(..., texts=False)``): a stored file is a third of the size of the same file with the
abstracts repeated. :func:`read_predictions` reads either kind against the gold documents; in a stand-off
file a mention whose text column disagrees with the gold text is an error (the predictions were made on
another text), not a repair.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from .corpus import Document, Mention, Relation, normalize_concept
from .errors import DataFormatError
from .files import BOM, atomic_write_text, read_text

NCBI_CLASSES = ("SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention")
"""NCBI-disease's mention classes; the papers (and this kit, by default) collapse them to Disease."""

RELATION_TYPES = ("CID",)
"""The relation types a PubTator line may carry (BC5CDR's chemical-induced-disease); see the module docstring."""

_OFFSET = re.compile(r"[0-9]+")
_MAX_OFFSET_DIGITS = 12  # far beyond any abstract; keeps int() away from absurdly long digit strings
_RELATION_TYPE = re.compile(r"[A-Za-z_]+")


class PubTatorWarning(UserWarning):
    """Something in a PubTator file was repaired (not rejected); the message lists every case."""


def read_pubtator(path: str | Path, *, collapse_ncbi_classes: bool = True) -> list[Document]:
    """The documents of a PubTator file, warning once (:class:`PubTatorWarning`) if anything was repaired."""
    documents, notes = read_pubtator_with_notes(path, collapse_ncbi_classes=collapse_ncbi_classes)
    _warn(notes, str(path))
    return documents


def read_pubtator_with_notes(
    path: str | Path, *, collapse_ncbi_classes: bool = True
) -> tuple[list[Document], list[str]]:
    """Like :func:`read_pubtator`, but return the repair notes (``"path:line: ..."``) instead of warning."""
    text = read_text(path)
    return parse_pubtator_with_notes(text, str(path), collapse_ncbi_classes=collapse_ncbi_classes)


def parse_pubtator(
    text: str, source: str = "<string>", *, collapse_ncbi_classes: bool = True
) -> list[Document]:
    """The documents in PubTator ``text``; ``source`` names it in errors, notes and ``Document.source``."""
    documents, notes = parse_pubtator_with_notes(text, source, collapse_ncbi_classes=collapse_ncbi_classes)
    _warn(notes, source)
    return documents


def parse_pubtator_with_notes(
    text: str, source: str = "<string>", *, collapse_ncbi_classes: bool = True, annotations: bool = True
) -> tuple[list[Document], list[str]]:
    """Parse PubTator ``text`` into ``(documents, notes)``; see the module docstring for the rules.
    ``annotations=False``: the file's structure is checked, but annotation and relation lines are passed
    over unread (:func:`parse_pubtator_texts`)."""
    text = text.removeprefix(BOM)
    documents: list[Document] = []
    notes: list[str] = []
    current: Document | None = None  # the document whose lines we are reading
    has_abstract = False
    title_line = 0

    def fail(line_no: int, message: str):
        return DataFormatError(source, line_no, message)

    def finish() -> None:
        if current is not None and not has_abstract:
            raise fail(title_line, f"document {current.pmid} has a title line but no |a| (abstract) line")

    # split("\n") rather than splitlines(): the latter would also split on rare Unicode separators.
    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            finish()
            current, has_abstract = None, False
            continue

        header = _header(line)
        if header is not None:
            pmid, kind, body = header
            if not pmid:
                raise fail(line_no, "empty PMID")
            _check_pmid(pmid, line_no, fail)
            if kind == "t":
                finish()
                current = Document(pmid=pmid, title=body, abstract="", source=source, index=len(documents))
                documents.append(current)
                has_abstract, title_line = False, line_no
            else:
                if current is None:
                    raise fail(line_no, f"abstract line for PMID {pmid} before its title line")
                if pmid != current.pmid:
                    raise fail(line_no, f"abstract line for PMID {pmid} inside document {current.pmid}")
                if has_abstract:
                    raise fail(line_no, f"second abstract line for document {pmid}")
                current.abstract, has_abstract = body, True
            continue

        cols = line.split("\t")
        pmid = cols[0].strip()
        if annotations:
            _check_pmid(pmid, line_no, fail)
        shown = pmid if annotations else repr(pmid)  # an unchecked first column is quoted, blanks and all
        if current is None:
            raise fail(
                line_no, f"annotation line for PMID {shown} outside any document (no title line before it)"
            )
        if not has_abstract:
            raise fail(line_no, f"annotation line before the |a| (abstract) line of document {current.pmid}")
        if pmid != current.pmid:
            raise fail(line_no, f"annotation line for PMID {shown} inside document {current.pmid}")
        if not annotations:  # the text alone is wanted: the line's content is not read
            continue
        if _is_relation(cols):
            current.relations.append(_parse_relation(cols, line_no, fail))
            continue
        current.mentions.append(_parse_mention(cols, current, line_no, fail, notes, collapse_ncbi_classes))

    finish()
    return documents, notes


def read_pubtator_texts(path: str | Path) -> list[Document]:
    """The documents of a PubTator file *without* their annotations: what a model annotates afresh
    (``python -m mernlib annotate``). See :func:`parse_pubtator_texts`."""
    return parse_pubtator_texts(read_text(path), str(path))


def parse_pubtator_texts(text: str, source: str = "<string>") -> list[Document]:
    """The title and abstract of every document in PubTator ``text``; annotation and relation lines are
    passed over unread (a damaged annotation line is no reason to refuse a text that is to be annotated
    anew), but the file's structure is checked as :func:`parse_pubtator_with_notes` checks it: a title line
    starts a document, its abstract line follows, any other line belongs to the document above it (its
    first column is that document's PMID), a blank line ends it. A break of that structure raises
    :class:`~mernlib.errors.DataFormatError` naming the line."""
    return parse_pubtator_with_notes(text, source, annotations=False)[0]


def _is_relation(cols) -> bool:
    """A word in the second column marks a relation line; with 6+ columns it is a mention with a bad offset."""
    return len(cols) in (2, 3, 4, 5) and bool(_RELATION_TYPE.fullmatch(cols[1]))


def _parse_relation(cols, line_no: int, fail) -> Relation:
    """One relation line (already split on tabs, :func:`_is_relation`) as a :class:`Relation`."""
    if cols[1] not in RELATION_TYPES:
        raise fail(
            line_no,
            f"column 2 is {cols[1]!r}: not a start offset (mention lines are PMID, start, end, text, type, "
            f"IDs) and not a relation type ({', '.join(RELATION_TYPES)}): not a mention line, not a relation line",
        )
    if len(cols) != 4:
        raise fail(line_no, f"relation line has {len(cols)} tab-separated columns, expected 4")
    arg1, arg2 = cols[2].strip(), cols[3].strip()
    if not arg1 or not arg2:
        raise fail(line_no, f"{cols[1]} relation line with an empty argument")
    return Relation(type=cols[1], arg1=arg1, arg2=arg2)


def _parse_mention(cols, doc: Document, line_no: int, fail, notes: list[str], collapse: bool) -> Mention:
    """One annotation line (already split on tabs) of ``doc`` as a :class:`Mention`."""
    if len(cols) < 6:
        raise fail(line_no, f"truncated annotation line: {len(cols)} tab-separated columns, expected 6 or 7")
    if len(cols) > 7:
        raise fail(line_no, f"annotation line has {len(cols)} tab-separated columns, expected 6 or 7")
    _, start_s, end_s, source_text, mention_type, ids = cols[:6]
    for value in (start_s, end_s):
        if not _OFFSET.fullmatch(value.strip()):
            raise fail(line_no, f"offset {value!r} is not a non-negative integer")
        if len(value.strip()) > _MAX_OFFSET_DIGITS:
            raise fail(line_no, f"offset {value.strip()[:20]}... lies outside document {doc.pmid}")
    start, end = int(start_s), int(end_s)
    if start >= end:
        raise fail(line_no, f"empty or reversed span: start {start} >= end {end}")
    text = doc.text
    if end > len(text):
        raise fail(line_no, f"span {start}-{end} lies outside document {doc.pmid} (text length {len(text)})")
    mention_type = mention_type.strip()
    if not mention_type:
        raise fail(line_no, "empty mention type")

    attrs: dict = {}
    if collapse and mention_type in NCBI_CLASSES:
        attrs["ncbi_class"] = mention_type
        mention_type = "Disease"
    if len(cols) == 7:
        attrs["parts"] = tuple(cols[6].split("|"))
    actual = text[start:end]
    if actual != source_text:
        attrs["source_text"] = source_text
        notes.append(
            f"{doc.source}:{line_no}: PMID {doc.pmid} {start}-{end}: text column {source_text!r} differs "
            f"from the document text {actual!r}; trusting the offsets"
        )
    return Mention(start, end, actual, mention_type, normalize_concept(ids), attrs)


def _header(line: str) -> tuple[str, str, str] | None:
    """``(pmid, "t" or "a", body)`` when ``line`` is a title or abstract line, else ``None``."""
    head = line.split("\t", 1)[0]
    fields = head.split("|", 2)
    if len(fields) == 3 and fields[1] in ("t", "a"):
        return fields[0].strip(), fields[1], line.split("|", 2)[2]  # body from the full line: tabs, bars
    return None


def _check_pmid(pmid: str, line_no: int, fail) -> None:
    if BOM in pmid:
        raise fail(
            line_no,
            "a byte-order mark (U+FEFF, invisible) before the PMID: only the very start of a file may hold "
            "one (were two files joined?)",
        )
    if not pmid.isprintable():
        raise fail(line_no, f"PMID {pmid!r} holds a control character")


def title_lines(text: str) -> list[int]:
    """The 1-based line of every title line of PubTator ``text``, in order: for text that parses, entry
    ``k`` is where document ``k`` (``Document.index == k``) starts. Used to name the line of a document
    that a later check (e.g. pairing gold and predictions) rejects."""
    text = text.removeprefix(BOM)
    return [
        number
        for number, raw in enumerate(text.split("\n"), start=1)
        if raw.strip() and (header := _header(raw.rstrip("\r"))) is not None and header[1] == "t"
    ]


def _warn(notes: list[str], source: str) -> None:
    if notes:
        summary = f"{len(notes)} repair(s) while reading {source}:\n" + "\n".join(notes)
        warnings.warn(summary, PubTatorWarning, stacklevel=3)


def format_pubtator(documents: list[Document], *, texts: bool = True) -> str:
    """The PubTator text of ``documents`` (normalized IDs; NCBI classes written back as the type);
    ``texts=False``: the stand-off form, annotation and relation lines only (see the module docstring).

    Mention text is written as the document's slice, so a repaired text column stays repaired and the
    file reads back without notes. Fields that would break the line format raise ``ValueError``.
    """
    lines: list[str] = []
    for doc in documents:
        pmid = doc.pmid
        if not pmid or pmid != pmid.strip() or "|" in pmid or BOM in pmid or not pmid.isprintable():
            raise ValueError(f"PMID {pmid!r}: empty, or holds a bar, a tab, surrounding spaces or a BOM")
        for name, value in (("title", doc.title), ("abstract", doc.abstract)):
            if "\n" in value or "\r" in value:
                raise ValueError(f"document {doc.pmid}: {name} contains a line break")
        if texts:
            lines.append(f"{doc.pmid}|t|{doc.title}")
            lines.append(f"{doc.pmid}|a|{doc.abstract}")
        elif not (doc.mentions or doc.relations):
            continue  # a document without annotations has no line in a stand-off file
        text = doc.text
        for m in doc.mentions:
            if not 0 <= m.start < m.end <= len(text):
                raise ValueError(f"document {doc.pmid}: span {m.start}-{m.end} does not fit its text")
            mention_type = m.attrs.get("ncbi_class", m.type)
            if not mention_type.strip():
                raise ValueError(f"document {doc.pmid}: mention {m.start}-{m.end} has an empty type")
            row = [doc.pmid, str(m.start), str(m.end), text[m.start : m.end], mention_type, m.concept]
            if "parts" in m.attrs:
                row.append("|".join(m.attrs["parts"]))
            _check_fields(doc.pmid, row)
            lines.append("\t".join(row))
        for r in doc.relations:
            if r.type not in RELATION_TYPES:
                raise ValueError(
                    f"document {doc.pmid}: relation type {r.type!r} is not one of {RELATION_TYPES}"
                )
            row = [doc.pmid, r.type, r.arg1, r.arg2]
            _check_fields(doc.pmid, row)
            lines.append("\t".join(row))
        lines.append("")
    return "\n".join(lines) + "\n"


def _check_fields(pmid: str, row: list[str]) -> None:
    for value in row:
        if any(c in value for c in "\t\n\r"):
            raise ValueError(f"document {pmid}: field {value!r} contains a tab or line break")


def write_pubtator(documents: list[Document], path: str | Path, *, texts: bool = True) -> Path:
    """Write ``documents`` to ``path`` in PubTator format, atomically; returns the path. ``texts=False``
    writes the stand-off form (annotation lines only; see the module docstring)."""
    return atomic_write_text(path, format_pubtator(documents, texts=texts))


def read_predictions(path: str | Path, gold: list[Document]) -> tuple[list[Document], list[str]]:
    """``(documents, notes)`` of the prediction file ``path``, scored against the ``gold`` documents.

    A file with title lines is read as any PubTator file (:func:`read_pubtator_with_notes`). A stand-off
    file (annotation lines alone) gets its text from ``gold``: one predicted document per gold document,
    in gold's order, holding the file's lines for that PMID. An annotation line whose PMID is not in gold,
    whose span does not fit, or whose text column differs from the gold text at its offsets raises
    :class:`~mernlib.errors.DataFormatError` naming the file and line; so does a stand-off file scored
    against a gold file in which a PMID occurs twice (its lines could belong to either copy)."""
    text = read_text(path).removeprefix(BOM)
    source = str(path)
    if any(_header(raw.rstrip("\r")) for raw in text.split("\n") if raw.strip()):
        return parse_pubtator_with_notes(text, source)
    documents = [
        Document(pmid=d.pmid, title=d.title, abstract=d.abstract, source=source, index=i)
        for i, d in enumerate(gold)
    ]
    by_pmid = {d.pmid: d for d in documents}
    twice = len(by_pmid) < len(documents)
    notes: list[str] = []

    def fail(line_no: int, message: str):
        return DataFormatError(source, line_no, message)

    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        cols = line.split("\t")
        pmid = cols[0].strip()
        _check_pmid(pmid, line_no, fail)
        if pmid not in by_pmid:
            raise fail(
                line_no,
                f"PMID {pmid} is not a document of the gold file this stand-off file is scored against",
            )
        if twice:
            raise fail(
                line_no, "a stand-off file cannot be scored against a gold file that holds a PMID twice"
            )
        doc = by_pmid[pmid]
        if _is_relation(cols):
            doc.relations.append(_parse_relation(cols, line_no, fail))
            continue
        mention = _parse_mention(cols, doc, line_no, fail, notes, True)
        if "source_text" in mention.attrs:
            raise fail(
                line_no,
                f"text column {mention.attrs['source_text']!r} differs from the gold text {mention.text!r} "
                f"at {mention.start}-{mention.end} of PMID {pmid}: predicted on another text",
            )
        doc.mentions.append(mention)
    return documents, notes
