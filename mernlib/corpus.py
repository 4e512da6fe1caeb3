"""The kit's data model: documents, mentions and concept IDs.

Every reader in mernlib (PubTator, the bundled sample) produces :class:`Document` objects and every
writer and metric consumes them, so the three models share one data layer.

A document's text is its title and abstract joined by a single space, exactly as PubTator offsets
count it; a mention is a half-open character span ``[start, end)`` of that text.

Concept IDs are normalized one way everywhere (:func:`normalize_concept_id`):

* surrounding whitespace is removed (one NCBI ID carries a trailing space);
* MeSH IDs are bare (``MESH:D003924`` -> ``D003924``), since MeSH is the default vocabulary of both
  corpora and of the BioCreative V CDR evaluation;
* OMIM numbers always carry the ``OMIM:`` prefix (a bare ``217000`` from ``omim.tsv`` becomes
  ``OMIM:217000``), because a bare number would be ambiguous;
* ``-1`` (BC5CDR: "no concept") stays ``-1`` and counts as *no* ID in :attr:`Mention.ids`.

A composite mention ("ocular and auditory toxicity") keeps all its IDs in one *concept string*,
``D014786|D006311``, with its original separator (``|`` for composite mentions, ``+`` for the rare
NCBI mention that one concept cannot cover); :attr:`Mention.ids` splits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NIL = "-1"
"""BC5CDR's ID for a mention with no concept in MeSH."""

_ID_SEPARATORS = re.compile(r"[|+]")
_MESH = re.compile(r"^(?:MESH:|MeSH:|mesh:)?([CD]\d+)$")
_OMIM = re.compile(r"^(?:OMIM:|omim:)?(\d+)$")


def normalize_concept_id(raw: str) -> str:
    """One concept ID in the kit's canonical form (see the module docstring).

    >>> normalize_concept_id(" MESH:D003924 "), normalize_concept_id("217000"), normalize_concept_id("-1")
    ('D003924', 'OMIM:217000', '-1')
    """
    text = raw.strip()
    if text == NIL:
        return NIL
    mesh = _MESH.match(text)
    if mesh:
        return mesh.group(1)
    omim = _OMIM.match(text)
    if omim:
        return "OMIM:" + omim.group(1)
    # Other vocabularies (e.g. a user's own) are kept as written, minus whitespace.
    return text


def normalize_concept(raw: str) -> str:
    """A concept string (one ID or several joined by ``|`` or ``+``) with every ID normalized.

    The separators are kept, so ``"D007153+D040181 "`` stays a ``+`` combination:
    ``normalize_concept("OMIM:312080+ 312920")`` -> ``"OMIM:312080+OMIM:312920"``.
    """
    raw = raw.strip()
    if not raw:
        return ""
    parts = _ID_SEPARATORS.split(raw)
    separators = _ID_SEPARATORS.findall(raw)
    out = normalize_concept_id(parts[0])
    for sep, part in zip(separators, parts[1:], strict=True):
        out += sep + normalize_concept_id(part)
    return out


def split_concept(concept: str) -> tuple[str, ...]:
    """The individual IDs of a concept string, without NIL (``-1``) and empty parts."""
    return tuple(p for p in _ID_SEPARATORS.split(concept) if p and p != NIL)


@dataclass
class Mention:
    """A typed, optionally normalized span of a document's text.

    ``concept`` is the normalized concept string ('' when the corpus gives none); ``attrs`` holds
    what the source said beyond that, e.g. ``{"ncbi_class": "Modifier"}`` or the seventh column of a
    BC5CDR composite line ``{"parts": ("Ocular toxicity", "auditory toxicity")}``.
    """

    start: int
    end: int
    text: str
    type: str
    concept: str = ""
    attrs: dict = field(default_factory=dict)

    @property
    def ids(self) -> tuple[str, ...]:
        """The concept IDs of this mention (composite mentions have several; NIL has none)."""
        return split_concept(self.concept)

    def key(self) -> tuple[int, int, str, str]:
        """What the kit compares when it asks whether two mentions are the same annotation."""
        return (self.start, self.end, self.type, self.concept)


@dataclass
class Relation:
    """A BC5CDR chemical-induced-disease (``CID``) relation line, kept so that writing round-trips."""

    type: str
    arg1: str
    arg2: str


@dataclass
class Document:
    """One PubMed abstract. ``index`` is its position in the file it came from.

    PMIDs are not unique (NCBI's training file has PMID 8528200 twice, as two different documents),
    so the kit identifies a document by ``(source, index)``; :attr:`uid` is that pair as a string.
    """

    pmid: str
    title: str
    abstract: str
    mentions: list[Mention] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    source: str = ""
    index: int = 0

    @property
    def text(self) -> str:
        """Title and abstract joined by one space: the string PubTator offsets count in."""
        return self.title + " " + self.abstract if self.abstract else self.title

    @property
    def uid(self) -> str:
        """A unique, stable name for this document within its corpus: ``pmid#index``."""
        return f"{self.pmid}#{self.index}"


def corpus_stats(documents: list[Document]) -> dict:
    """Counts laid out like the papers' Table 1: documents, mentions (and per type), unique concepts."""
    per_type: dict[str, int] = {}
    concepts: set[str] = set()
    for doc in documents:
        for m in doc.mentions:
            per_type[m.type] = per_type.get(m.type, 0) + 1
            concepts.update(m.ids)
    return {
        "documents": len(documents),
        "mentions": sum(per_type.values()),
        "mentions_per_type": dict(sorted(per_type.items())),
        "concepts": len(concepts),
    }


def text_document(text: str, pmid: str = "1", source: str = "", index: int = 0) -> Document:
    """One document from a block of plain text: the first non-blank line is the title, the other lines
    the abstract, stripped and joined by single spaces."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return Document(pmid, lines[0] if lines else "", " ".join(lines[1:]), source=source, index=index)
