"""Sentence splitting and tokenization that keep document character offsets.

Every :class:`Token` and :class:`Sentence` carries ``[start, end)`` offsets into ``Document.text``, so
tags predicted on tokens map straight back to mentions with document offsets (see :mod:`mernlib.tags`).

Sentence splitter (rule-based, no model to download): the title is its own sentence; in the rest, a
sentence ends at ``.``, ``?`` or ``!`` (optionally followed by closing quotes/brackets) when whitespace
and then an uppercase letter or a digit follow -- unless the word before the period is a known
abbreviation ("e.g.", "i.e.", "et al.", "vs.", "Fig.", ...) or a single capital initial ("J. Smith";
the price is that "hepatitis B. The" is not split, which costs nothing but a longer sentence). With gold
mentions, a boundary that would cut a mention is skipped, so every mention lies inside one sentence.

Tokenizer: a regular expression takes runs of letters and digits ("H2", "1178G"), decimal numbers
("3.5") and every other non-space character on its own. Then *refinement*: any token with a gold
mention boundary strictly inside it is split there. Real annotations often start or end inside what
any tokenizer calls one word ("G6PD-deficient" annotated as "G6PD"), and a mention that is not a token
span cannot be written as tags, so without refinement it would be lost from training and evaluation.
Refinement makes every gold mention an exact token span (:func:`lost_mentions` checks it); at
prediction time there are no gold mentions and :func:`tokenize_text` tokenizes without it.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from .corpus import Document, Mention

_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+|\S")
_BOUNDARY = re.compile(r"[.?!][\"')\]]*(\s+)(?=[A-Z0-9])")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")

ABBREVIATIONS = frozenset(
    """e.g i.e al vs fig figs ref refs cf ca approx resp dr mr mrs ms prof st no nos vol eq eqs
    sp spp var inc ltd co jr sr dept univ""".split()
)
"""Words (lowercase, without the final period) after which a period does not end a sentence."""


@dataclass(frozen=True)
class Token:
    """A token: its text and its ``[start, end)`` offsets in the document text."""

    text: str
    start: int
    end: int


@dataclass
class Sentence:
    """A sentence of document ``doc_uid``: its position ``index``, document offsets and tokens."""

    doc_uid: str
    index: int
    start: int
    end: int
    tokens: list[Token] = field(default_factory=list)

    def text(self, doc_text: str) -> str:
        """The sentence's text, cut from the document text it came from."""
        return doc_text[self.start : self.end]


def tokenize_document(doc: Document) -> list[Sentence]:
    """Sentences and tokens of ``doc``, such that every gold mention is one sentence's token span."""
    text = doc.text
    boundaries = sorted({b for m in doc.mentions for b in (m.start, m.end)})
    sentences = []
    for start, end in split_sentences(text, title_end=len(doc.title), mentions=doc.mentions):
        tokens = _tokens(text, start, end, boundaries)
        if tokens:
            sentences.append(Sentence(doc.uid, len(sentences), tokens[0].start, tokens[-1].end, tokens))
    return sentences


def tokenize_text(text: str, doc_uid: str = "") -> list[Sentence]:
    """Sentences and tokens of raw ``text`` (no title, no gold mentions, hence no refinement)."""
    sentences = []
    for start, end in split_sentences(text):
        tokens = _tokens(text, start, end, [])
        if tokens:
            sentences.append(Sentence(doc_uid, len(sentences), tokens[0].start, tokens[-1].end, tokens))
    return sentences


def split_sentences(
    text: str, *, title_end: int | None = None, mentions: list[Mention] = ()
) -> list[tuple[int, int]]:
    """``[start, end)`` spans of the sentences of ``text`` (see the module docstring for the rules).

    ``title_end`` (the title's length) forces a boundary after the title; no boundary is placed
    inside any of ``mentions``. Spans may include surrounding whitespace; tokens never do.
    """
    cuts: list[tuple[int, int]] = []  # (end of a sentence, start of the next)
    if title_end is not None and 0 < title_end < len(text):
        cuts.append((title_end, title_end))
    for match in _BOUNDARY.finditer(text, title_end or 0):
        end = match.start(1)
        if _is_abbreviation(text, match.start()):
            continue
        cuts.append((end, match.end(1)))
    spans = [(m.start, m.end) for m in mentions]
    out, start = [], 0
    for end, next_start in cuts:
        if any(m_start < next_start and m_end > end for m_start, m_end in spans):
            continue  # this cut would split a mention
        out.append((start, end))
        start = next_start
    out.append((start, len(text)))
    return [(s, e) for s, e in out if text[s:e].strip()]


def _is_abbreviation(text: str, period: int) -> bool:
    """Whether the period at ``text[period]`` ends an abbreviation or an initial rather than a sentence."""
    if text[period] != ".":
        return False
    match = _WORD_BEFORE.search(text, max(0, period - 20), period)
    if not match:
        return False
    word = match.group(1)
    if len(word) == 1 and word.isupper():
        return True  # an initial: "J. Smith"
    return word.lower().rstrip(".") in ABBREVIATIONS


def _tokens(text: str, start: int, end: int, boundaries: list[int]) -> list[Token]:
    """Regex tokens of ``text[start:end]``, each split at every boundary strictly inside it."""
    tokens = []
    for match in _TOKEN.finditer(text, start, end):
        t_start, t_end = match.span()
        lo = bisect_right(boundaries, t_start)
        hi = bisect_left(boundaries, t_end, lo)
        for cut in boundaries[lo:hi]:  # refinement: a mention starts or ends inside this token
            tokens.append(Token(text[t_start:cut], t_start, cut))
            t_start = cut
        tokens.append(Token(text[t_start:t_end], t_start, t_end))
    return tokens


def lost_mentions(doc: Document, sentences: list[Sentence]) -> list[Mention]:
    """The mentions of ``doc`` that are *not* exactly a token span within one of ``sentences``."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for sentence in sentences:
        for token in sentence.tokens:
            starts[token.start] = sentence.index
            ends[token.end] = sentence.index
    lost = []
    for m in doc.mentions:
        s = starts.get(m.start)
        if s is None or ends.get(m.end) != s:
            lost.append(m)
    return lost
