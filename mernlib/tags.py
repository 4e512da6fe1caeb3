"""Tag schemes (BIO, IOBES): mentions -> token tags for training, tags -> mentions for prediction.

A *span* is ``(i, j, label)`` over a sentence's tokens, ``j`` exclusive. Two tag sequences describe a
sentence's mentions:

* NER tags (:func:`ner_tags`) carry the mention type (``B-Disease``);
* concept tags (:func:`concept_tags`) carry the concept string (``B-D003924``), for models that
  normalize by tagging (Zhao et al.). A composite concept (``D014786|D006311``) is one label. NIL
  (``-1``) is kept as a label so that no gold mention disappears from the tags; a mention with an
  *empty* concept gets ``O`` concept tags (there is nothing to learn) and decodes back to ``''``.

Flat tags cannot express overlapping or nested mentions. The real NCBI-disease and BC5CDR files have
none (the tests count them); if some appear, :func:`ner_tags` raises ``ValueError`` instead of
guessing, and :func:`overlapping_mentions` finds them so the caller can decide what to drop.

Decoding (:func:`tags_to_spans`) is the one decoder of the kit, used by the metrics too: by default it
follows conlleval (an ``I-X`` that does not continue an open ``X`` entity starts a new one), with
``strict=True`` seqeval's strict mode; both agree with seqeval exactly (tests/test_metrics.py).

**Ill-formed tags: one rule everywhere.** An ``I-X`` after ``O``, after ``B-Y``/``I-Y`` of another type or
at the start of a sentence (and, in IOBES, an ``I-``/``E-`` after a closed ``E-``/``S-``) is read the way
conlleval reads it: it *starts a new mention* of type ``X``. :func:`repair_tags` writes that reading
out (``I-X`` -> ``B-X``, ``E-X`` -> ``S-X``) without changing what the default decoder finds;
:func:`mernlib.conll.read_iob` applies it to the gold tags of a file with a warning naming each
``file:line``, and :func:`mernlib.conll.iob_stats` counts mentions with the same decoder, so counting and
decoding never disagree. Why conlleval's rule: it is what the papers' scores and seqeval's default mode
compute, it loses no annotated token (seqeval's strict mode would drop the mention), and it is the only
reading that needs no guess about where the mention "should" have begun.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from .corpus import Document, Mention
from .tokenize import Sentence, tokenize_document

OUTSIDE = "O"


def spans_to_tags(n_tokens: int, spans, scheme: str = "BIO") -> list[str]:
    """Tags for ``n_tokens`` tokens with entity ``spans`` ``(i, j_exclusive, label)``.

    Raises ``ValueError`` for a span out of range, empty, or overlapping another span.
    """
    scheme = _scheme(scheme)
    tags = [OUTSIDE] * n_tokens
    for i, j, label in sorted(spans, key=lambda s: (s[0], s[1])):
        if not 0 <= i < j <= n_tokens:
            raise ValueError(f"span ({i}, {j}) does not fit {n_tokens} tokens")
        if any(t != OUTSIDE for t in tags[i:j]):
            raise ValueError(f"span ({i}, {j}, {label!r}) overlaps another span: flat tags cannot hold both")
        if scheme == "IOBES" and j - i == 1:
            tags[i] = f"S-{label}"
            continue
        tags[i] = f"B-{label}"
        for k in range(i + 1, j):
            tags[k] = f"I-{label}"
        if scheme == "IOBES":
            tags[j - 1] = f"E-{label}"
    return tags


_SCHEMES = {"BIO": "BIO", "IOB2": "BIO", "IOBES": "IOBES", "BIOES": "IOBES"}
_ALLOWED_PREFIXES = {"BIO": frozenset("BIO"), "IOBES": frozenset("BIOES")}


def _scheme(scheme: str) -> str:
    try:
        return _SCHEMES[scheme.upper()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown tag scheme {scheme!r}; use 'BIO' (IOB2) or 'IOBES'") from None


def _parse_tags(tags: Sequence[str], scheme: str) -> list[tuple[str, str]]:
    """``["B-X", "O"]`` -> ``[("B", "X"), ("O", "")]``, checking each prefix against the scheme."""
    allowed = _ALLOWED_PREFIXES[scheme]
    parsed = []
    for position, tag in enumerate(tags):
        if tag == "O":
            parsed.append(("O", ""))
            continue
        prefix, rest = tag[:1], tag[1:]
        if prefix not in allowed or prefix == "O" or (rest and not rest.startswith("-")):
            raise ValueError(f"ill-formed tag {tag!r} at position {position}: not a {scheme} tag")
        parsed.append((prefix, rest[1:]))
    return parsed


def _decode_conlleval(parsed: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    spans = []
    prev_prefix, prev_type, begin = "O", "", 0
    for i, (prefix, type_) in enumerate(parsed + [("O", "")]):
        ends = (
            prev_prefix in ("E", "S")
            or (prev_prefix in ("B", "I") and prefix in ("B", "S", "O"))
            or (prev_prefix != "O" and prev_type != type_)
        )
        starts = (
            prefix in ("B", "S")
            or (prefix in ("I", "E") and prev_prefix in ("E", "S", "O"))
            or (prefix != "O" and prev_type != type_)
        )
        if ends:
            spans.append((begin, i, prev_type))
        if starts:
            begin = i
        prev_prefix, prev_type = prefix, type_
    return spans


def _decode_strict(parsed: list[tuple[str, str]], scheme: str) -> list[tuple[int, int, str]]:
    spans = []
    n = len(parsed)
    i = 0
    while i < n:
        prefix, type_ = parsed[i]
        if prefix == "S" or (prefix == "B" and scheme == "BIO"):
            j = i + 1
            if prefix == "B":
                while j < n and parsed[j] == ("I", type_):
                    j += 1
            spans.append((i, j, type_))
            i = j
        elif prefix == "B":  # IOBES: B-X I-X* E-X
            j = i + 1
            while j < n and parsed[j] == ("I", type_):
                j += 1
            if j < n and parsed[j] == ("E", type_):
                spans.append((i, j + 1, type_))
                j += 1
            i = j  # an unfinished chunk is no entity; decoding resumes at the token that broke it
        else:
            i += 1
    return spans


def tags_to_spans(
    tags: Sequence[str], scheme: str = "BIO", *, strict: bool = False
) -> list[tuple[int, int, str]]:
    """The entities of one tag sequence as ``(i, j, label)`` token spans, ``j`` exclusive.

    ``scheme`` is ``"BIO"`` (alias ``"IOB2"``) or ``"IOBES"`` (alias ``"BIOES"``); a tag whose prefix
    the scheme does not allow raises ``ValueError``. ``strict=False`` decodes like conlleval (and
    seqeval's default mode); ``strict=True`` like seqeval's ``mode="strict"``: an entity must start with
    ``B-``/``S-`` and continue with ``I-`` of its label (ending with ``E-`` in IOBES), ill-formed chunks
    are no entity. Both agree with seqeval exactly (tests/test_metrics.py).

    >>> tags_to_spans(["I-X", "I-X", "O", "B-Y"])
    [(0, 2, 'X'), (3, 4, 'Y')]
    >>> tags_to_spans(["I-X", "I-X", "O", "B-Y"], strict=True)
    [(3, 4, 'Y')]
    """
    scheme = _scheme(scheme)
    parsed = _parse_tags(tags, scheme)
    return _decode_strict(parsed, scheme) if strict else _decode_conlleval(parsed)


def repair_tags(tags: Sequence[str], scheme: str = "BIO") -> tuple[list[str], list[int]]:
    """``tags`` with every mention start made explicit, and the positions that changed.

    An ``I-X`` (IOBES also ``E-X``) that does not continue an open ``X`` mention starts one under
    conlleval's rule (see the module docstring); it becomes ``B-X`` (``S-X``). The default decoder finds
    the same mentions before and after; for BIO, ``strict=True`` decoding of the repaired tags does too.
    Untyped tags (``I``) keep no type (``B``).

    >>> repair_tags(["O", "I-X", "I-X", "B-Y", "I-X"])
    (['O', 'B-X', 'I-X', 'B-Y', 'B-X'], [1, 4])
    """
    parsed = _parse_tags(tags, _scheme(scheme))
    repaired, changed = list(tags), []
    prev_prefix, prev_type = "O", ""
    for i, (prefix, type_) in enumerate(parsed):
        if prefix in ("I", "E") and (prev_prefix in ("E", "S", "O") or prev_type != type_):
            repaired[i] = ("B" if prefix == "I" else "S") + tags[i][1:]
            changed.append(i)
        prev_prefix, prev_type = prefix, type_
    return repaired, changed


def sentence_mentions(sentence: Sentence, doc: Document) -> list[Mention]:
    """The mentions of ``doc`` that lie inside ``sentence``."""
    return [m for m in doc.mentions if sentence.start <= m.start and m.end <= sentence.end]


def overlapping_mentions(mentions: list[Mention]) -> list[Mention]:
    """The mentions that overlap (or duplicate the span of) another mention in ``mentions``."""
    ordered = sorted(mentions, key=lambda m: (m.start, m.end))
    found: list[Mention] = []
    reach_end, reach_mention = -1, None
    for m in ordered:
        if m.start < reach_end:
            if reach_mention is not None and all(x is not reach_mention for x in found):
                found.append(reach_mention)
            found.append(m)
        if m.end > reach_end:
            reach_end, reach_mention = m.end, m
    return found


def mention_spans(sentence: Sentence, mentions: list[Mention], label: str = "type", types=None):
    """Token spans ``(i, j, label)`` of the ``mentions`` inside ``sentence``.

    ``label`` is the :class:`Mention` attribute used as label (``"type"`` or ``"concept"``); ``types``
    restricts the mentions by type. Mentions outside the sentence are ignored; a mention crossing the
    sentence boundary or not matching token boundaries raises ``ValueError``.
    """
    starts = {t.start: k for k, t in enumerate(sentence.tokens)}
    ends = {t.end: k + 1 for k, t in enumerate(sentence.tokens)}
    spans = []
    for m in mentions:
        if types is not None and m.type not in types:
            continue
        if m.end <= sentence.start or m.start >= sentence.end:
            continue
        i, j = starts.get(m.start), ends.get(m.end)
        if i is None or j is None:
            raise ValueError(
                f"mention {m.start}-{m.end} {m.text!r} is not a token span of sentence {sentence.doc_uid}/"
                f"{sentence.index} ({sentence.start}-{sentence.end}); tokenize with tokenize_document"
            )
        spans.append((i, j, getattr(m, label)))
    return spans


def ner_tags(sentence: Sentence, mentions: list[Mention], scheme: str = "BIO", *, types=None) -> list[str]:
    """NER tags (label = mention type) of ``sentence`` for the ``mentions`` in it (``types``: only these)."""
    return spans_to_tags(len(sentence.tokens), mention_spans(sentence, mentions, "type", types), scheme)


def concept_tags(
    sentence: Sentence, mentions: list[Mention], scheme: str = "BIO", *, types=None
) -> list[str]:
    """Concept tags (label = concept string, NIL kept, empty concept left ``O``) of ``sentence``."""
    spans = [s for s in mention_spans(sentence, mentions, "concept", types) if s[2]]
    return spans_to_tags(len(sentence.tokens), spans, scheme)


def spans_to_mentions(
    sentence: Sentence, doc_text: str, spans, *, label_as: str = "type", mention_type: str = ""
) -> list[Mention]:
    """Mentions (document offsets) for token ``spans`` of ``sentence``.

    The span label becomes the mention's type (``label_as="type"``) or its concept
    (``label_as="concept"``, with type ``mention_type``).
    """
    if label_as not in ("type", "concept"):
        raise ValueError(f"label_as must be 'type' or 'concept', not {label_as!r}")
    out = []
    for i, j, label in spans:
        start, end = sentence.tokens[i].start, sentence.tokens[j - 1].end
        if label_as == "type":
            out.append(Mention(start, end, doc_text[start:end], label))
        else:
            out.append(Mention(start, end, doc_text[start:end], mention_type, label))
    return out


def decode_mentions(
    sentence: Sentence,
    doc_text: str,
    ner_tags: list[str] | None = None,
    concept_tags: list[str] | None = None,
    *,
    scheme: str = "BIO",
    concept_scheme: str | None = None,
    mention_type: str = "",
) -> list[Mention]:
    """Mentions of ``sentence`` from an NER tag sequence, a concept tag sequence, or both.

    * NER tags only: spans and types from them, concept ``''``.
    * Concept tags only: spans and concepts from them, type ``mention_type``.
    * Both: spans and types from the NER tags; each span's concept is the majority label among the
      concept tags on its tokens (ties go to the label seen first; ``''`` if all its tokens are ``O``).
      The two sequences come from separate model outputs and need not agree on boundaries, so the
      NER tags decide where mentions are and the concept tags only vote on what they are.
    """
    concept_scheme = concept_scheme or scheme
    if ner_tags is None and concept_tags is None:
        raise ValueError("decode_mentions needs ner_tags, concept_tags or both")
    for name, tags in (("ner_tags", ner_tags), ("concept_tags", concept_tags)):
        if tags is not None and len(tags) != len(sentence.tokens):
            raise ValueError(f"{name} has {len(tags)} tags for {len(sentence.tokens)} tokens")
    if ner_tags is None:
        spans = tags_to_spans(concept_tags, concept_scheme)
        return spans_to_mentions(sentence, doc_text, spans, label_as="concept", mention_type=mention_type)
    mentions = spans_to_mentions(sentence, doc_text, tags_to_spans(ner_tags, scheme))
    if concept_tags is None:
        return mentions
    labels = [
        label if prefix != OUTSIDE else None
        for prefix, label in _parse_tags(concept_tags, _scheme(concept_scheme))
    ]
    for (i, j, _), m in zip(tags_to_spans(ner_tags, scheme), mentions, strict=True):
        votes = Counter(label for label in labels[i:j] if label is not None)
        m.concept = votes.most_common(1)[0][0] if votes else ""
    return mentions


# --------------------------------------------------------------------------------------------------
# Documents <-> labeled sentences: the bridge every model of the kit trains and predicts through


@dataclass
class LabeledSentence:
    """One tokenized sentence of a document with its gold mentions.

    Models see ``words`` and the tag sequences; predictions come back through :meth:`decode`, which
    gives mentions with document offsets, and :func:`predicted_documents` assembles them into documents
    that the metrics and the PubTator writer take.
    """

    document: Document
    sentence: Sentence
    mentions: list[Mention]

    @property
    def words(self) -> list[str]:
        return [t.text for t in self.sentence.tokens]

    def ner_tags(self, scheme: str = "BIO", types=None) -> list[str]:
        return ner_tags(self.sentence, self.mentions, scheme, types=types)

    def concept_tags(self, scheme: str = "BIO", types=None) -> list[str]:
        return concept_tags(self.sentence, self.mentions, scheme, types=types)

    def decode(self, ner_tags=None, concept_tags=None, **kwargs) -> list[Mention]:
        return decode_mentions(self.sentence, self.document.text, ner_tags, concept_tags, **kwargs)


def labeled_sentences(documents) -> list[LabeledSentence]:
    """Every sentence of ``documents``, tokenized so that each gold mention is a token span."""
    out = []
    for doc in documents:
        for sentence in tokenize_document(doc):
            out.append(LabeledSentence(doc, sentence, sentence_mentions(sentence, doc)))
    return out


@dataclass
class SpannedSentence:
    """A sentence as plain words and its mentions as word spans ``(i, j_exclusive, type, concept)``: what
    a model that reads words and spans (E2EMERN) trains on, without the document behind it. Build one
    from a :class:`LabeledSentence` with :meth:`LabeledSentence.spanned`, or by hand for a toy example."""

    words: list[str]
    spans: list[tuple[int, int, str, str]] = field(default_factory=list)


def spanned_sentence(item: LabeledSentence, types=None) -> SpannedSentence:
    """``item``'s words and its gold mentions (of ``types``, if given) as word spans."""
    inside = [m for m in item.mentions if types is None or m.type in types]
    # mention_spans keeps the order of `inside` (all of them lie in the sentence)
    spans = [
        (i, j, m.type, m.concept)
        for (i, j, _), m in zip(mention_spans(item.sentence, inside, "type"), inside, strict=True)
    ]
    return SpannedSentence(item.words, spans)


def spanned_sentences(documents, types=None) -> list[SpannedSentence]:
    """:func:`spanned_sentence` of every sentence of ``documents`` (:func:`labeled_sentences`)."""
    return [spanned_sentence(item, types) for item in labeled_sentences(documents)]


def predicted_documents(labeled: list[LabeledSentence], mentions_per_sentence) -> list[Document]:
    """Copies of the documents of ``labeled`` (in order of first appearance) holding the predicted mentions.

    ``mentions_per_sentence[k]`` are the predictions for ``labeled[k]``. Relations are not copied: a
    prediction file holds mentions only.
    """
    by_doc: dict[int, Document] = {}
    for item, predicted in zip(labeled, mentions_per_sentence, strict=True):
        key = id(item.document)
        if key not in by_doc:
            d = item.document
            by_doc[key] = Document(d.pmid, d.title, d.abstract, [], [], d.source, d.index)
        by_doc[key].mentions.extend(predicted)
    return list(by_doc.values())
