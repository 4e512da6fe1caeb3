"""Evaluation protocols for medical entity recognition (MER) and normalization (MEN).

Every number the kit reports names the protocol that produced it. The protocols are:

``ner-mention-strict``
    Mention-level NER. A mention is the key ``(document, start, end, type)``; a prediction is a true
    positive only when a gold mention has exactly the same span *and* type. Micro-averaged
    precision, recall and F1 over all mentions of all documents (duplicate keys count once).
    Gold mentions without a concept ID (NIL, ``-1``) are ordinary gold mentions here.

``men-mention``
    End-to-end normalization at mention level. A mention is the key
    ``(document, start, end, ID set)`` where the ID set is the set of the mention's concept IDs
    (a composite mention ``D014786|D006311`` has two). A prediction is correct when a gold mention has
    the same span and the same ID set. The entity *type is ignored*: the concept IDs determine it.
    Gold mentions with no ID (NIL) are *excluded from the gold set* and predicted mentions with no ID
    are *excluded from the predicted set*, so NIL mentions neither count as misses nor as errors here
    (they are scored by ``ner-mention-strict``). Micro-averaged over mentions.

``men-document``
    The BioCreative V CDR concept-level (DNER) evaluation. For each document, the set of
    ``(type, concept ID)`` pairs annotated anywhere in it: a concept mentioned five times counts
    once, a composite mention contributes each of its IDs, NIL contributes nothing. True positives,
    false positives and false negatives are summed over documents (micro average).

All three accept a ``types=`` filter (e.g. ``{"Disease"}``) that keeps only mentions of those types
on both sides (each side by its own mention types), and report per-type scores. For ``men-mention``
this means a predicted mention with the right span and IDs but the wrong type is a hit overall yet
a miss of its gold type and an error of its predicted type in the per-type scores, so per-type counts
need not add up to the overall ones. Precision, recall and F1 are 0 when undefined (no
predictions, no gold, or both), never a ZeroDivisionError.

**Matching documents.** Gold and predicted documents are paired by :func:`align_documents`: by
position when both lists hold the same PMIDs in the same order (predictions written to PubTator and
read back get their ``index`` from their file position, so their ``uid`` may differ from gold's),
otherwise by :attr:`~mernlib.corpus.Document.uid`, falling back to the PMID when it names exactly one
gold document, and, when several gold documents share the PMID (NCBI's training file holds PMID 8528200
twice, as two different abstracts), to the one with the same text. A pair is only accepted when both
documents carry *exactly* the same text (title + abstract): offsets mean nothing against another text,
and a prediction made on other text, or paired with the other document of a repeated PMID, would
otherwise be scored silently against the wrong abstract. A predicted document that is not in gold, or
whose text differs from its gold document's, raises :class:`~mernlib.errors.DocumentMismatchError` (a
``ValueError``) naming its file, PMID and, for a text difference, the first differing offset; a gold
document without prediction counts as predicted empty. Keys always use the *gold* document's uid.

**Tag sequences.** :func:`ner_prf_from_tags` scores BIO (IOB2) or IOBES tag sequences with the
``ner-mention-strict`` protocol after decoding them into spans (:func:`mernlib.tags.tags_to_spans`) in one of two
ways, both implemented here:

* ``strict=False`` (default), the conlleval convention: an ``I-X`` (or ``E-X``) that does not
  continue an ``X`` entity starts a new one; a type change ends the entity. This is what
  ``conlleval`` and seqeval's default mode compute, and what the papers report.
* ``strict=True``, seqeval's ``mode='strict'``: an entity must start with ``B-X`` (or ``S-X`` in
  IOBES) and continue with ``I-X`` (and, in IOBES, end with ``E-X``); ill-formed chunks are not
  entities at all.

**Analyses.** :func:`boundary_inconsistency` (Zhao et al., AAAI 2019, Table 5), :func:`oov_partition`
(Ma & Hovy 2016; Zhao et al. Table 6) and :func:`prf_on_subset` (scores restricted to such a subset).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from mernlib.corpus import Document, Mention, normalize_concept, split_concept
from mernlib.errors import DocumentMismatchError
from mernlib.tags import tags_to_spans

NER_MENTION_STRICT = "ner-mention-strict"
MEN_MENTION = "men-mention"
MEN_DOCUMENT = "men-document"

PROTOCOLS: dict[str, str] = {
    NER_MENTION_STRICT: "mention-level NER: exact span and type, micro P/R/F1",
    MEN_MENTION: "mention-level normalization: exact span and same concept-ID set (type ignored, "
    "NIL excluded on both sides), micro P/R/F1",
    MEN_DOCUMENT: "BioCreative V CDR concept level: per-document set of (type, concept ID), composite "
    "mentions contribute each ID, NIL excluded, micro-averaged over documents",
}
"""Protocol name -> one-line definition (the module docstring has the full ones)."""


# ---------------------------------------------------------------------------------------------------
# Precision, recall, F1


@dataclass(frozen=True)
class PRF:
    """Counts and scores of one evaluation. Scores are 0 when undefined."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> PRF:
        """Precision ``tp/(tp+fp)``, recall ``tp/(tp+fn)``, F1 their harmonic mean (0 if undefined)."""
        if min(tp, fp, fn) < 0:
            raise ValueError(f"negative count in tp={tp}, fp={fp}, fn={fn}")
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(tp, fp, fn, precision, recall, f1)

    def __add__(self, other: PRF) -> PRF:
        """Micro-average: counts add up, scores are recomputed."""
        if not isinstance(other, PRF):
            return NotImplemented
        return PRF.from_counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_dict(self) -> dict:
        """``{"tp", "fp", "fn", "precision", "recall", "f1"}``, JSON-ready."""
        return asdict(self)


def prf_from_sets(gold: set, pred: set) -> PRF:
    """Micro P/R/F1 of two sets of hashable keys: ``tp = |gold & pred|``."""
    gold, pred = set(gold), set(pred)
    tp = len(gold & pred)
    return PRF.from_counts(tp, len(pred) - tp, len(gold) - tp)


# ---------------------------------------------------------------------------------------------------
# Tag sequences


def ner_prf_from_tags(
    gold_tag_seqs: Sequence[Sequence[str]],
    pred_tag_seqs: Sequence[Sequence[str]],
    scheme: str = "BIO",
    strict: bool = False,
) -> PRF:
    """``ner-mention-strict`` over tag sequences: entity key ``(sequence index, start, end, type)``."""
    if len(gold_tag_seqs) != len(pred_tag_seqs):
        raise ValueError(f"{len(gold_tag_seqs)} gold sequences but {len(pred_tag_seqs)} predicted")
    gold: set = set()
    pred: set = set()
    for k, (g, p) in enumerate(zip(gold_tag_seqs, pred_tag_seqs, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sequence {k}: {len(g)} gold tags but {len(p)} predicted")
        gold.update((k, s, e, t) for s, e, t in tags_to_spans(g, scheme, strict=strict))
        pred.update((k, s, e, t) for s, e, t in tags_to_spans(p, scheme, strict=strict))
    return prf_from_sets(gold, pred)


# ---------------------------------------------------------------------------------------------------
# Documents


def align_documents(
    gold: Sequence[Document], pred: Sequence[Document]
) -> list[tuple[Document, Document | None]]:
    """Pair every gold document with its prediction: ``[(gold_doc, pred_doc or None), ...]`` in gold order.

    * Same PMIDs in the same order -> paired by position.
    * Otherwise each predicted document is matched by ``uid`` (``pmid#index``); failing that, by PMID
      when exactly one gold document has it; failing that (several gold documents share the PMID), by
      PMID and text when exactly one of them has the same text.
    * Every pair must have identical text (title + abstract).
    * A predicted document whose PMID is not in gold, whose text differs from its gold document's,
      whose PMID is ambiguous (several gold documents share it and neither the uid nor the text picks
      one), or that matches a gold document already taken raises
      :class:`~mernlib.errors.DocumentMismatchError` (a ``ValueError``) naming its file and PMID.
    * A gold document without prediction is paired with ``None`` (scored as predicted empty).
    """
    gold, pred = list(gold), list(pred)
    if [d.pmid for d in gold] == [d.pmid for d in pred]:
        for g, p in zip(gold, pred, strict=True):
            _check_same_text(g, p)
        return list(zip(gold, pred, strict=True))
    by_uid = {d.uid: i for i, d in enumerate(gold)}
    by_pmid: dict[str, list[int]] = {}
    for i, d in enumerate(gold):
        by_pmid.setdefault(d.pmid, []).append(i)
    matched: list[Document | None] = [None] * len(gold)
    for d in pred:
        candidates = by_pmid.get(d.pmid, [])
        if d.uid in by_uid:
            i = by_uid[d.uid]
        elif len(candidates) == 1:
            i = candidates[0]
        elif candidates:
            same_text = [k for k in candidates if gold[k].text == d.text]
            if len(same_text) != 1:
                raise _mismatch(
                    d,
                    f"PMID {d.pmid} is ambiguous: gold has it {len(candidates)} times, none with this uid "
                    f"({d.uid}), and {len(same_text) or 'none'} of them with the same text",
                )
            i = same_text[0]
        else:
            raise _mismatch(d, f"PMID {d.pmid} is not in the gold standard")
        _check_same_text(gold[i], d)
        if matched[i] is not None:
            raise _mismatch(
                d, f"two predicted documents match gold document PMID {d.pmid} (uid {gold[i].uid})"
            )
        matched[i] = d
    return list(zip(gold, matched, strict=True))


def _mismatch(d: Document, message: str) -> DocumentMismatchError:
    where = f"predicted document {d.index + 1} of the file" if d.source else f"predicted document {d.uid}"
    return DocumentMismatchError(d.source or "<predictions>", d.index, f"{where}: {message}")


def _check_same_text(g: Document, p: Document) -> None:
    """Raise :class:`~mernlib.errors.DocumentMismatchError` unless ``p`` has exactly ``g``'s text."""
    gold_text, pred_text = g.text, p.text
    if gold_text == pred_text:
        return
    k = next(
        (k for k, (a, b) in enumerate(zip(gold_text, pred_text, strict=False)) if a != b),
        min(len(gold_text), len(pred_text)),
    )
    gold_where = f"{g.source} document {g.index + 1}" if g.source else f"gold document {g.uid}"
    raise _mismatch(
        p,
        f"PMID {p.pmid}: the text differs from the gold text ({gold_where}) at offset {k}: "
        f"{pred_text[k : k + 20]!r} where gold has {gold_text[k : k + 20]!r}; predictions must be made "
        "on the gold documents' text",
    )


def _type_filter(types) -> frozenset[str] | None:
    if types is None:
        return None
    if isinstance(types, str):
        return frozenset([types])
    return frozenset(types)


def _ids(mention: Mention) -> tuple[str, ...]:
    """Sorted distinct concept IDs (normalized again, so unnormalized predictions still compare)."""
    return tuple(sorted(set(split_concept(normalize_concept(mention.concept)))))


def _doc_keys(uid: str, doc: Document | None, protocol: str, keep: frozenset[str] | None) -> set:
    keys: set = set()
    if doc is None:
        return keys
    for m in doc.mentions:
        if keep is not None and m.type not in keep:
            continue
        if protocol == NER_MENTION_STRICT:
            keys.add((uid, m.start, m.end, m.type))
        elif protocol == MEN_MENTION:
            ids = _ids(m)
            if ids:
                keys.add((uid, m.start, m.end, ids))
        elif protocol == MEN_DOCUMENT:
            keys.update((uid, m.type, cid) for cid in _ids(m))
        else:
            raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return keys


def protocol_keys(
    gold_docs: Sequence[Document], pred_docs: Sequence[Document], protocol: str, types=None
) -> tuple[set, set]:
    """The gold and predicted key sets a protocol compares (after :func:`align_documents`).

    Keys: ``ner-mention-strict`` ``(uid, start, end, type)``; ``men-mention``
    ``(uid, start, end, sorted ID tuple)``; ``men-document`` ``(uid, type, concept ID)``; ``uid`` is
    always the gold document's.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    keep = _type_filter(types)
    gold: set = set()
    pred: set = set()
    for g, p in align_documents(gold_docs, pred_docs):
        gold |= _doc_keys(g.uid, g, protocol, keep)
        pred |= _doc_keys(g.uid, p, protocol, keep)
    return gold, pred


def ner_prf(gold_docs: Sequence[Document], pred_docs: Sequence[Document], types=None) -> PRF:
    """``ner-mention-strict``: key ``(doc uid, start, end, type)``."""
    return prf_from_sets(*protocol_keys(gold_docs, pred_docs, NER_MENTION_STRICT, types))


def men_mention_prf(gold_docs: Sequence[Document], pred_docs: Sequence[Document], types=None) -> PRF:
    """``men-mention``: key ``(doc uid, start, end, ID set)``, NIL excluded on both sides."""
    return prf_from_sets(*protocol_keys(gold_docs, pred_docs, MEN_MENTION, types))


def men_document_prf(gold_docs: Sequence[Document], pred_docs: Sequence[Document], types=None) -> PRF:
    """``men-document`` (BioCreative V CDR): key ``(doc uid, type, concept ID)``, summed over documents."""
    return prf_from_sets(*protocol_keys(gold_docs, pred_docs, MEN_DOCUMENT, types))


def evaluate_documents(gold_docs: Sequence[Document], pred_docs: Sequence[Document], types=None) -> dict:
    """All three protocols, overall and per type, as a JSON-ready dict::

        {"documents": <gold documents>, "types": <filter or None>,
         "protocols": {"ner-mention-strict": {"tp", "fp", "fn", "precision", "recall", "f1",
                                              "per_type": {type: {...}}},
                       "men-mention": {...}, "men-document": {...}}}

    Per-type scores cover every type (within ``types``) seen in gold or prediction.
    """
    keep = _type_filter(types)
    pairs = align_documents(gold_docs, pred_docs)
    seen = {m.type for g, p in pairs for d in (g, p) if d is not None for m in d.mentions}
    if keep is not None:
        seen &= keep
    protocols = {}
    for protocol in PROTOCOLS:
        gold: set = set()
        pred: set = set()
        per_type_sets: dict[str, tuple[set, set]] = {t: (set(), set()) for t in sorted(seen)}
        for g, p in pairs:
            gold |= _doc_keys(g.uid, g, protocol, keep)
            pred |= _doc_keys(g.uid, p, protocol, keep)
            for t, (tg, tp) in per_type_sets.items():
                tg |= _doc_keys(g.uid, g, protocol, frozenset([t]))
                tp |= _doc_keys(g.uid, p, protocol, frozenset([t]))
        entry = prf_from_sets(gold, pred).as_dict()
        entry["per_type"] = {t: prf_from_sets(tg, tp).as_dict() for t, (tg, tp) in per_type_sets.items()}
        protocols[protocol] = entry
    return {
        "documents": len(pairs),
        "types": sorted(keep) if keep is not None else None,
        "protocols": protocols,
    }


# ---------------------------------------------------------------------------------------------------
# Analyses


def mention_spans(documents: Iterable[Document]) -> set[tuple[str, int, int]]:
    """``{(uid, start, end)}`` of every mention: the input :func:`boundary_inconsistency` expects
    when comparing outputs over several documents (both outputs must use the same uids)."""
    return {(d.uid, m.start, m.end) for d in documents for m in d.mentions}


def _span(item) -> tuple:
    if isinstance(item, Mention):
        return (item.start, item.end)
    return tuple(item)


def boundary_inconsistency(mer_mentions: Iterable, men_mentions: Iterable) -> dict:
    """How often a model's MER output and MEN output disagree on mention boundaries.

    Zhao et al. (AAAI 2019), Table 5, report "the ratio of inconsistent boundaries" between the two
    outputs of one model without stating the denominator. The kit defines it as::

        ratio = |A ^ B| / |A | B|

    where ``A`` and ``B`` are the *distinct spans* of the MER and the MEN output: the number of
    predicted spans that appear in one output but not in the other, over the number of distinct
    spans predicted by either. Types and concept IDs are ignored (only boundaries count).

    Items are :class:`~mernlib.corpus.Mention` objects (span ``(start, end)``, for one document) or
    span tuples such as ``(uid, start, end)`` from :func:`mention_spans` (several documents).
    Returns ``{"mer_only", "men_only", "inconsistent", "union", "ratio"}``; ratio 0 when both are empty.
    """
    a = {_span(x) for x in mer_mentions}
    b = {_span(x) for x in men_mentions}
    union = len(a | b)
    inconsistent = len(a ^ b)
    return {
        "mer_only": len(a - b),
        "men_only": len(b - a),
        "inconsistent": inconsistent,
        "union": union,
        "ratio": inconsistent / union if union else 0.0,
    }


OOV_SUBSETS = ("IV", "OOTV", "OOEV", "OOBV")
_OOV_NAME = {(False, False): "IV", (True, False): "OOTV", (False, True): "OOEV", (True, True): "OOBV"}


def _tokens(entity) -> list[str]:
    if isinstance(entity, Mention):
        return entity.text.split()
    if isinstance(entity, str):
        return entity.split()
    return list(entity)


def oov_partition(
    entities: Sequence, training_vocab: set, embedding_vocab: set, lowercase: bool = True
) -> dict:
    """Split entities into IV / OOTV / OOEV / OOBV (Ma & Hovy 2016; Zhao et al. 2019, Table 6).

    Each entity is a list of its token strings (preferred: the caller's tokenizer decides); a string
    or a :class:`~mernlib.corpus.Mention` is split on whitespace. With ``lowercase`` both the tokens
    and the vocabularies are compared lowercased. Following Ma & Hovy, an entity is

    * ``IV``   if every token is in the training vocabulary and in the embedding vocabulary;
    * ``OOTV`` if some token is outside the training vocabulary but every token is in the embedding vocabulary;
    * ``OOEV`` if some token is outside the embedding vocabulary but every token is in the training vocabulary;
    * ``OOBV`` if some token is outside the training vocabulary *and* some token (the same or another)
      is outside the embedding vocabulary.

    The four subsets partition the entities (an entity with no tokens is IV). Returns
    ``{"IV": [indices], "OOTV": [...], "OOEV": [...], "OOBV": [...]}``, all four keys always present.
    """
    if lowercase:
        training_vocab = {w.lower() for w in training_vocab}
        embedding_vocab = {w.lower() for w in embedding_vocab}
    out: dict[str, list[int]] = {name: [] for name in OOV_SUBSETS}
    for index, entity in enumerate(entities):
        tokens = _tokens(entity)
        if lowercase:
            tokens = [t.lower() for t in tokens]
        out_train = any(t not in training_vocab for t in tokens)
        out_emb = any(t not in embedding_vocab for t in tokens)
        out[_OOV_NAME[(out_train, out_emb)]].append(index)
    return out


def recall_by_training_text(
    gold_docs: Sequence[Document],
    pred_docs: Sequence[Document],
    training_docs: Sequence[Document],
    types=None,
) -> dict:
    """Recall on the gold mentions whose text (lowercased) is, or is not, the text of a training mention.

    A tagger that memorises surface forms finds the first kind and misses the second; where the two
    recalls differ is where a test set harder than dev hurts (NCBI test has 38% unseen mention texts, dev
    35%). Returns ``{"seen": {...}, "unseen": {...}}``, each with ``mentions`` and the recall of
    ``ner-mention-strict`` and ``men-mention`` on them (``men_mentions`` counts those with an ID), and
    ``ner_precision`` (``ner-mention-strict`` over all predictions) beside them.
    """
    keep = _type_filter(types)
    kept = [m for d in training_docs for m in d.mentions if keep is None or m.type in keep]
    training_texts = {m.text.lower() for m in kept}
    counts = {
        name: {"mentions": 0, "ner_found": 0, "men_mentions": 0, "men_found": 0}
        for name in ("seen", "unseen")
    }
    ner_gold: set = set()
    ner_pred: set = set()
    for g, p in align_documents(gold_docs, pred_docs):
        predicted = {
            protocol: _doc_keys(g.uid, p, protocol, keep) for protocol in (NER_MENTION_STRICT, MEN_MENTION)
        }
        ner_gold |= _doc_keys(g.uid, g, NER_MENTION_STRICT, keep)
        ner_pred |= predicted[NER_MENTION_STRICT]
        for m in g.mentions:
            if keep is not None and m.type not in keep:
                continue
            row = counts["seen" if m.text.lower() in training_texts else "unseen"]
            row["mentions"] += 1
            row["ner_found"] += (g.uid, m.start, m.end, m.type) in predicted[NER_MENTION_STRICT]
            if _ids(m):
                row["men_mentions"] += 1
                row["men_found"] += (g.uid, m.start, m.end, _ids(m)) in predicted[MEN_MENTION]
    out = {
        name: {
            "mentions": row["mentions"],
            "ner_recall": row["ner_found"] / row["mentions"] if row["mentions"] else 0.0,
            "men_mentions": row["men_mentions"],
            "men_recall": row["men_found"] / row["men_mentions"] if row["men_mentions"] else 0.0,
        }
        for name, row in counts.items()
    }
    out["training_texts"] = len(training_texts)
    out["ner_precision"] = prf_from_sets(ner_gold, ner_pred).precision
    return out


def prf_on_subset(gold_keys: set, pred_keys: set, subset_gold_keys: set) -> PRF:
    """P/R/F1 restricted to a subset of the gold mentions (e.g. the OOBV entities).

    Keys are tuples ``(doc, start, end, *rest)`` as in ``ner-mention-strict`` (``rest`` e.g. the type).

    * ``tp`` = subset gold keys that are predicted exactly; ``fn`` = the other subset gold keys,
      so recall is the usual recall on the subset.
    * ``fp`` = predictions that are not any gold key (of the whole gold set) but whose span overlaps
      (same doc, at least one shared position, type ignored) the span of a subset gold key. A
      prediction that exactly matches a gold mention outside the subset is attributed to that
      mention and not counted; a prediction overlapping no subset mention is not counted. A
      prediction overlapping mentions of two subsets counts as an error in both.

    So precision answers: of the predictions made *on these entities*, how many were right.
    ``subset_gold_keys`` must be a subset of ``gold_keys`` (``ValueError`` otherwise).
    """
    gold, pred, subset = set(gold_keys), set(pred_keys), set(subset_gold_keys)
    if not subset <= gold:
        raise ValueError(
            f"{len(subset - gold)} subset keys are not gold keys, e.g. {next(iter(subset - gold))!r}"
        )
    tp = len(subset & pred)
    spans_by_doc: dict = {}
    for doc, start, end, *_ in subset:
        spans_by_doc.setdefault(doc, []).append((start, end))
    fp = 0
    for key in pred - gold:
        doc, start, end = key[0], key[1], key[2]
        if any(start < g_end and g_start < end for g_start, g_end in spans_by_doc.get(doc, ())):
            fp += 1
    return PRF.from_counts(tp, fp, len(subset) - tp)


# --------------------------------------------------------------------------------------------------
# Binary decisions (E2EMERN's paper protocol scores yes/no per (sentence, concept) pair)


def binary_prf(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """Per-class precision, recall, F1 and support for classes 0 and 1, their support-weighted
    averages (as scikit-learn's ``average='weighted'``: weights are the true supports; 0/0 counts as 0)
    and the accuracy."""
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    out: dict = {}
    total = len(y_true)
    for c in (0, 1):
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p == c)
        n_pred = sum(1 for p in y_pred if p == c)
        support = sum(1 for t in y_true if t == c)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[c] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    for metric in ("precision", "recall", "f1"):
        out[f"weighted_{metric}"] = (
            sum(out[c][metric] * out[c]["support"] for c in (0, 1)) / total if total else 0.0
        )
    out["accuracy"] = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == p) / total if total else 0.0
    return out


def weighted_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Support-weighted F1 over the classes 0 and 1 (scikit-learn's ``f1_score(average='weighted')``)."""
    return binary_prf(y_true, y_pred)["weighted_f1"]
