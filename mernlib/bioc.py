"""BioC JSON (the BioC data model of Comeau et al. 2013, as PubTator Central and PubTator3 export it):
reading title and abstract with or without their annotations, and writing annotated documents.

A collection is one JSON object::

    {"source": "...", "date": "...", "key": "...", "infons": {},
     "documents": [{"id": "PMID", "infons": {}, "relations": [],
                    "passages": [{"offset": 0, "infons": {"type": "title"}, "text": "...",
                                  "sentences": [], "annotations": [...], "relations": []}, ...]}]}

and an annotation ``{"id": "1", "infons": {"type": "Disease", "identifier": "MESH:D003924"}, "text": "...",
"locations": [{"offset": 10, "length": 5}]}``, its offset counted in the *document* (a passage's
``offset`` says where the passage starts).

**What is read.** Only what the kit's :class:`~mernlib.corpus.Document` holds: the title and the
abstract. A passage is the title when its ``infons`` ``type`` (or ``section_type``) is ``title`` or
``front`` (PMC's name for it); abstract passages are those whose type starts with ``abstract``, joined by one
space in file order. A document whose passages carry no type at all is read as PubTator's are written:
first passage the title, the others the abstract. Other passages (PMC's ``paragraph``, ``table``,
``ref``) are left out: the models are trained on abstracts. The document's text is then, as everywhere
in the kit, ``title + " " + abstract``; annotations are moved to that text's offsets and their text is
checked against it. A document holding neither a title nor an abstract is an error, as is every other
departure from the format (a missing ``documents`` list, a passage without ``text``, an annotation
outside its passage or with several locations, which one flat mention cannot hold). Errors are
:class:`~mernlib.errors.DataFormatError`: the JSON parser's line and column for a syntax error, else
the element's place in the file (``documents[3] (id 123): passages[1]``), with the line where the
document's ``"id"`` is written when it can be found.

**What is written** (:func:`format_bioc`): one document per :class:`Document`, a ``title`` passage at offset
0 and an ``abstract`` passage at ``len(title) + 1`` (so the kit's offsets *are* BioC's), every mention an
annotation of the passage it lies in, with ``infons`` ``type`` and ``identifier`` (the kit's normalized
concept string: ``D003924``, ``OMIM:217000``, ``D014786|D006311`` for a composite mention, ``-1`` for
NIL; empty when the model gave none).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from .corpus import Document, Mention, normalize_concept
from .errors import DataFormatError
from .files import BOM, atomic_write_text, read_text

TITLE_TYPES = ("title", "front")
"""Passage types read as the title (lowercase)."""


def read_bioc(path: str | Path, *, annotations: bool = True) -> list[Document]:
    """The documents of a BioC JSON file (see the module docstring); ``annotations=False`` reads only the
    texts (what ``python -m mernlib annotate`` does: it annotates afresh)."""
    return parse_bioc(read_text(path), str(path), annotations=annotations)


def parse_bioc(text: str, source: str = "<string>", *, annotations: bool = True) -> list[Document]:
    """The documents of BioC JSON ``text``; ``source`` names it in errors and in ``Document.source``."""
    text = text.removeprefix(BOM)
    try:
        collection = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(source, err.lineno, f"not JSON: {err.msg} (column {err.colno})") from None
    if isinstance(collection, list):  # some tools write a list of collections; one is what a file holds
        if len(collection) != 1:
            raise DataFormatError(source, 1, f"a list of {len(collection)} BioC collections; expected one")
        collection = collection[0]
    if not isinstance(collection, dict) or not isinstance(collection.get("documents"), list):
        raise DataFormatError(source, 1, 'not a BioC JSON collection: no "documents" list at the top level')
    line_of = _locator(text)
    return [_document(raw, k, source, line_of, annotations) for k, raw in enumerate(collection["documents"])]


def _locator(text: str):
    """A function ``doc_id -> line``: the line where ``"id": <doc_id>`` is written, when the file writes
    it exactly once (else None: an annotation may carry the same id)."""

    def line_of(doc_id) -> int | None:
        pattern = re.compile(r'"id"\s*:\s*' + re.escape(json.dumps(doc_id)) + r"(?![\w.])")
        lines = [text.count("\n", 0, m.start()) + 1 for m in pattern.finditer(text)]
        return lines[0] if len(lines) == 1 else None

    return line_of


def _document(raw, k: int, source: str, line_of, annotations: bool) -> Document:
    where = f"documents[{k}]"
    if not isinstance(raw, dict):
        raise DataFormatError(source, None, f"{where}: a document is a JSON object, not {type(raw).__name__}")
    doc_id = raw.get("id")
    if not isinstance(doc_id, (str, int)) or not str(doc_id).strip():
        raise DataFormatError(source, None, f'{where}: no "id" (the PMID)')
    pmid = str(doc_id).strip()
    line = line_of(raw["id"])
    where = f"{where} (id {pmid})"

    def fail(message: str) -> DataFormatError:
        return DataFormatError(source, line, f"{where}: {message}")

    if any(c in pmid for c in "|\t\n\r") or BOM in pmid:
        raise fail("the id holds a bar, a tab or a line break, which the kit's files cannot carry")
    passages = raw.get("passages")
    if not isinstance(passages, list):
        raise fail('no "passages" list')
    read = []
    for p, passage in enumerate(passages):
        if not isinstance(passage, dict):
            raise fail(f"passages[{p}] is not a JSON object")
        body = passage.get("text")
        if not isinstance(body, str):
            raise fail(f'passages[{p}] has no "text" (BioC JSON written without texts cannot be annotated)')
        # the kit's files hold a text on one line: a line break becomes a space (one for one: offsets stay)
        body = body.replace("\r", " ").replace("\n", " ")
        offset = passage.get("offset", 0)
        if not isinstance(offset, int) or offset < 0:
            raise fail(f"passages[{p}]: offset {offset!r} is not a non-negative integer")
        infons = passage.get("infons") or {}
        if not isinstance(infons, dict):
            raise fail(f"passages[{p}]: infons is not a JSON object")
        kind = str(infons.get("type") or infons.get("section_type") or "").strip().lower()
        read.append((p, kind, offset, body, passage))
    typed = any(kind for _, kind, *_ in read)
    if typed:
        titles = [r for r in read if r[1] in TITLE_TYPES][:1]
        abstracts = [r for r in read if r[1].startswith("abstract")]
    else:
        titles, abstracts = read[:1], read[1:]
    if not titles and not abstracts:
        kinds = sorted({kind for _, kind, *_ in read}) or ["none"]
        raise fail(f"no title or abstract passage (passage types: {', '.join(kinds)})")
    title = titles[0][3] if titles else ""
    abstract = " ".join(r[3] for r in abstracts)
    doc = Document(pmid=pmid, title=title, abstract=abstract, source=source, index=k)
    if not annotations:
        return doc
    # where each passage's text starts in the document text (title + " " + abstract, see Document.text)
    starts = [(titles[0], 0)] if titles else []
    position = len(title) + 1
    for r in abstracts:
        starts.append((r, position))
        position += len(r[3]) + 1
    for (p, _, offset, body, passage), start in starts:
        for a, ann in enumerate(passage.get("annotations") or []):
            doc.mentions.append(_mention(ann, f"passages[{p}].annotations[{a}]", offset, body, start, fail))
    doc.mentions.sort(key=lambda m: (m.start, m.end))
    return doc


def _mention(ann, where: str, offset: int, body: str, start: int, fail) -> Mention:
    if not isinstance(ann, dict):
        raise fail(f"{where} is not a JSON object")
    locations = ann.get("locations")
    if not isinstance(locations, list) or not locations:
        raise fail(f'{where} has no "locations"')
    if len(locations) > 1:
        raise fail(f"{where} has {len(locations)} locations (a discontinuous mention); one flat span is read")
    loc = locations[0]
    first, length = (loc.get("offset"), loc.get("length")) if isinstance(loc, dict) else (None, None)
    if not isinstance(first, int) or not isinstance(length, int) or length <= 0:
        raise fail(f"{where}: location {loc!r} needs an integer offset and a positive length")
    local = first - offset
    if local < 0 or local + length > len(body):
        raise fail(
            f"{where}: offset {first}, length {length} lies outside its passage ({offset}-{offset + len(body)})"
        )
    infons = ann.get("infons") or {}
    mention_type = str(infons.get("type") or "").strip()
    if not mention_type:
        raise fail(f'{where} has no infons "type"')
    concept = infons.get("identifier") or infons.get("MESH") or ""  # older PubTator exports: "MESH"
    text = body[local : local + length]
    attrs = {}
    written = ann.get("text")
    if isinstance(written, str) and written != text:
        attrs["source_text"] = written  # the offsets win, as in the PubTator reader
    return Mention(
        start + local, start + local + length, text, mention_type, normalize_concept(str(concept)), attrs
    )


def format_bioc(documents: list[Document], source: str = "mernlib", key: str = "mernlib.key") -> str:
    """The BioC JSON text of ``documents`` (see the module docstring), one collection."""
    out = []
    for doc in documents:
        title_end = len(doc.title)
        passages = [{"offset": 0, "infons": {"type": "title"}, "text": doc.title, "annotations": []}]
        if doc.abstract:
            passages.append(
                {
                    "offset": title_end + 1,
                    "infons": {"type": "abstract"},
                    "text": doc.abstract,
                    "annotations": [],
                }
            )
        text = doc.text
        for n, m in enumerate(sorted(doc.mentions, key=lambda m: (m.start, m.end)), start=1):
            if not 0 <= m.start < m.end <= len(text):
                raise ValueError(f"document {doc.pmid}: span {m.start}-{m.end} does not fit its text")
            passage = passages[0] if m.end <= title_end or not doc.abstract else passages[1]
            if m.start < passage["offset"]:
                raise ValueError(f"document {doc.pmid}: mention {m.start}-{m.end} spans title and abstract")
            passage["annotations"].append(
                {
                    "id": str(n),
                    "infons": {"type": m.type, "identifier": m.concept},
                    "text": text[m.start : m.end],
                    "locations": [{"offset": m.start, "length": m.end - m.start}],
                }
            )
        for p in passages:
            p["sentences"], p["relations"] = [], []
        out.append({"id": doc.pmid, "infons": {}, "passages": passages, "relations": []})
    collection = {
        "source": source,
        "date": time.strftime("%Y%m%d"),
        "key": key,
        "infons": {},
        "documents": out,
    }
    return json.dumps(collection, ensure_ascii=False, indent=1) + "\n"


def write_bioc(documents: list[Document], path: str | Path, source: str = "mernlib") -> Path:
    """Write ``documents`` to ``path`` as BioC JSON, atomically; returns the path."""
    return atomic_write_text(path, format_bioc(documents, source))


__all__ = ["TITLE_TYPES", "format_bioc", "parse_bioc", "read_bioc", "write_bioc"]
