"""IOB TSV files (the Crichton et al. 2017 NER collection) and the kit's prediction files.

Format: one token per line, ``token<TAB>tag``; a blank line ends a sentence. A prediction file written
by :func:`write_iob` has a third column, ``token<TAB>gold<TAB>predicted``; :func:`read_iob` reads both
(the third column becomes :attr:`TaggedSentence.predicted`). Every line of one file must have the
same number of columns.

Tags are ``O``, ``B-<type>`` and ``I-<type>``. What the crichton-2017-ner files actually hold (all 65
files checked): every tag is typed (no bare ``B``/``I``), every ``I-`` follows a ``B-`` or ``I-`` of the
same type (IOB2), no CRLF, no whitespace-only line, no empty token, and each file ends with a blank
line. Type names are the source corpus's own (``Disease``, ``Chemical``, ``GENE``, ``Protein``,
``Gene_or_gene_product``, ``Simple_chemical``, ``CHEBI``, ``GGP``, ``NCBITaxon``, ``Organism``,
``Species``; JNLPBA has five: ``DNA``, ``RNA``, ``cell_line``, ``cell_type``, ``protein``). Bare
``B``/``I`` tags (an untyped IOB release) are accepted and keep an empty type; with
``scheme="iobes"`` the ``E-``/``S-`` tags of the collection's -IOBES variants are accepted too; any
other tag raises :class:`~mernlib.errors.DataFormatError` (``path:line``). Files are UTF-8
(:func:`mernlib.files.read_text`): a byte-order mark at the very start is accepted and dropped; bytes that
are not UTF-8 raise a ``DataFormatError`` naming the line.

An ``I-X`` that does not continue an open ``X`` mention (after ``O``, after another type, first in its
sentence) is well-formed tag by tag but not IOB2. The kit reads it as conlleval does -- it starts a new
mention (see :mod:`mernlib.tags`) -- and says so: :func:`read_iob` rewrites such a *gold* tag as
``B-X`` (:func:`mernlib.tags.repair_tags`) and emits one :class:`IOBWarning` listing every
``path:line``; :func:`iob_stats` counts mentions with the kit's decoder, so it finds the mentions the
metrics find whatever the tags. The *predicted* column of a prediction file is kept as written: it is a
model's output, and seqeval's strict mode must be able to penalise it (the default, conlleval, scoring
decodes it by the same rule anyway).

JNLPBA's files mark each abstract with a ``-DOCSTART-<TAB>O`` line followed by a blank line (200 in
devel, 404 in test). Those are document boundaries, not sentences: the reader drops them and numbers
the documents in :attr:`TaggedSentence.document`; :func:`write_iob` writes them back
(``-DOCSTART-<TAB>O<TAB>O`` in a prediction file: every line of a file has the same width), so reading
and writing a file reproduces it byte for byte.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataFormatError
from .files import atomic_write_text, read_text
from .tags import repair_tags, tags_to_spans

DOCSTART = "-DOCSTART-"
_PREFIXES = {"iob": ("B", "I"), "iobes": ("B", "I", "E", "S")}
_TAGS_SCHEME = {"iob": "BIO", "iobes": "IOBES"}


class IOBWarning(UserWarning):
    """Tags of an IOB file were repaired (``I-X`` starting a mention read as ``B-X``); lists each line."""


@dataclass
class TaggedSentence:
    """One sentence: its tokens and gold tags (same length), where it came from (``source`` path and
    the 1-based ``line`` of its first token), the JNLPBA-style ``document`` number (``None`` when the
    file has no ``-DOCSTART-`` lines) and, for a prediction file, the ``predicted`` tags."""

    tokens: list[str]
    tags: list[str]
    source: str = ""
    line: int = 0
    document: int | None = None
    predicted: list[str] | None = field(default=None)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def location(self) -> str:
        """``path:line`` of the sentence's first token."""
        return f"{self.source}:{self.line}"


def check_tag(tag: str, scheme: str = "iob") -> str | None:
    """What is wrong with ``tag`` under ``scheme`` (``"iob"`` or ``"iobes"``), or ``None`` if nothing."""
    if tag == "O":
        return None
    prefixes = _PREFIXES[scheme]
    head, dash, kind = tag.partition("-")
    if head not in prefixes:
        allowed = ", ".join(f"{p}-<type>" for p in prefixes)
        return f"unknown tag {tag!r} (expected O, {allowed})"
    if dash and not kind:
        return f"tag {tag!r} has an empty type"
    return None


def read_iob(path: str | Path, scheme: str = "iob") -> list[TaggedSentence]:
    """The sentences of an IOB TSV file (see the module docstring for the format and its checks); warns
    (:class:`IOBWarning`) once, listing each ``path:line``, when gold tags were repaired."""
    if scheme not in _PREFIXES:
        raise ValueError(f"scheme must be one of {', '.join(_PREFIXES)}, not {scheme!r}")
    path = Path(path)
    source = str(path)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    predicted: list[str] = []
    first_line = 0
    columns: int | None = None
    document: int | None = None
    pending_docstart = 0  # line of a -DOCSTART- still waiting for its blank line
    repairs: list[str] = []

    def flush() -> None:
        nonlocal tokens, tags, predicted
        if tokens:
            repaired, changed = repair_tags(tags, _TAGS_SCHEME[scheme])
            for k in changed:
                repairs.append(
                    f"{source}:{first_line + k}: {tags[k]} does not continue a mention; read as {repaired[k]}"
                )
            sentences.append(
                TaggedSentence(
                    tokens, repaired, source, first_line, document, predicted if columns == 3 else None
                )
            )
        tokens, tags, predicted = [], [], []

    for number, raw in enumerate(read_text(path).split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            flush()
            pending_docstart = 0
            continue
        if pending_docstart:
            raise DataFormatError(
                path, number, f"the -DOCSTART- line {pending_docstart} must be followed by a blank line"
            )
        fields = line.split("\t")
        if len(fields) == 1:
            raise DataFormatError(path, number, f"no tab: expected 'token<TAB>tag', got {line!r}")
        if len(fields) > 3:
            raise DataFormatError(path, number, f"{len(fields)} columns; expected token, tag[, predicted]")
        if columns is None:
            columns = len(fields)
        elif len(fields) != columns:
            raise DataFormatError(
                path, number, f"{len(fields)} columns where the file's first token line has {columns}"
            )
        token = fields[0]
        if not token.strip():
            raise DataFormatError(path, number, "empty token")
        for tag in fields[1:]:
            problem = check_tag(tag, scheme)
            if problem:
                raise DataFormatError(path, number, problem)
        if token == DOCSTART:
            if tokens:
                raise DataFormatError(path, number, "-DOCSTART- inside a sentence (no blank line before it)")
            document = 0 if document is None else document + 1
            pending_docstart = number
            continue
        if not tokens:
            first_line = number
        tokens.append(token)
        tags.append(fields[1])
        if columns == 3:
            predicted.append(fields[2])
    flush()
    if repairs:
        warnings.warn(
            f"{len(repairs)} tag(s) repaired while reading {source} (conlleval's rule):\n"
            + "\n".join(repairs),
            IOBWarning,
            stacklevel=2,
        )
    return sentences


def format_iob(sentences: Iterable[TaggedSentence], predicted: Sequence[Sequence[str]] | None = None) -> str:
    """The text :func:`write_iob` writes."""
    sentences = list(sentences)
    if predicted is None and sentences and all(s.predicted is not None for s in sentences):
        predicted = [s.predicted for s in sentences]
    if predicted is not None and len(predicted) != len(sentences):
        raise ValueError(f"{len(predicted)} predicted tag sequences for {len(sentences)} sentences")
    out: list[str] = []
    previous_document: int | None = None
    for i, sentence in enumerate(sentences):
        if len(sentence.tags) != len(sentence.tokens):
            raise ValueError(
                f"{sentence.location}: {len(sentence.tokens)} tokens but {len(sentence.tags)} tags"
            )
        pred = predicted[i] if predicted is not None else None
        if pred is not None and len(pred) != len(sentence.tokens):
            raise ValueError(
                f"{sentence.location}: {len(sentence.tokens)} tokens but {len(pred)} predicted tags"
            )
        if sentence.document is not None and sentence.document != previous_document:
            # as many columns as the token lines: the reader holds every line of a file to one width
            out.append(f"{DOCSTART}\tO\tO\n\n" if pred is not None else f"{DOCSTART}\tO\n\n")
        previous_document = sentence.document
        for j, (token, tag) in enumerate(zip(sentence.tokens, sentence.tags, strict=True)):
            if "\t" in token or "\n" in token:
                raise ValueError(f"{sentence.location}: token {token!r} holds a tab or line break")
            out.append(f"{token}\t{tag}\t{pred[j]}\n" if pred is not None else f"{token}\t{tag}\n")
        out.append("\n")
    return "".join(out)


def write_iob(
    sentences: Iterable[TaggedSentence],
    path: str | Path,
    predicted: Sequence[Sequence[str]] | None = None,
) -> Path:
    """Write ``token<TAB>gold`` lines, or ``token<TAB>gold<TAB>predicted`` when ``predicted`` (one tag
    list per sentence) is given or every sentence carries :attr:`~TaggedSentence.predicted`; a blank
    line after each sentence, ``-DOCSTART-`` lines where :attr:`~TaggedSentence.document` changes.
    Returns the path."""
    return atomic_write_text(path, format_iob(sentences, predicted))


def iob_stats(sentences: Iterable[TaggedSentence]) -> dict:
    """Sentences, tokens, documents and mentions per entity type. Mentions are what the kit's decoder
    (:func:`mernlib.tags.tags_to_spans`, conlleval's rule) finds in the gold tags, so the count agrees
    with the metrics even for tags that are not IOB2."""
    n_sentences = n_tokens = 0
    documents: set[int] = set()
    mentions: dict[str, int] = {}
    for sentence in sentences:
        n_sentences += 1
        n_tokens += len(sentence.tokens)
        if sentence.document is not None:
            documents.add(sentence.document)
        for _, _, kind in tags_to_spans(sentence.tags, "IOBES"):  # IOBES accepts IOB2 tags too
            mentions[kind] = mentions.get(kind, 0) + 1
    return {
        "sentences": n_sentences,
        "tokens": n_tokens,
        "documents": len(documents) or None,
        "mentions": sum(mentions.values()),
        "mentions_per_type": dict(sorted(mentions.items())),
    }


__all__ = [
    "DOCSTART",
    "IOBWarning",
    "TaggedSentence",
    "check_tag",
    "format_iob",
    "iob_stats",
    "read_iob",
    "write_iob",
]
