"""Candidate generation for normalization, and the simplest honest normalization baseline.

A normalization model that scores (mention, concept) pairs cannot score all ~300k MeSH concepts for
every mention; a cheap retriever first proposes a short list. :class:`CandidateGenerator` indexes
``(name, concept_id)`` pairs -- entity base names, synonyms and the texts of training mentions -- and
ranks concepts for a mention text by:

1. **exact match** of the normalized text (lowercase, punctuation to spaces, whitespace collapsed):
   those concepts come first, with score 1.0;
2. **TF-IDF cosine similarity** over character 3-grams taken inside words padded with a space on each
   side (``"renal"`` -> ``" re", "ren", "ena", "nal", "al "``), which tolerates inflection, spelling
   variants and word order. A concept's score is the maximum over its names.

The TF-IDF is scikit-learn's ``TfidfVectorizer(analyzer="char_wb")`` rather than a hand-written one:
its ``char_wb`` analyzer is exactly the padded in-word n-grams above, its default smooth IDF
(``ln((1 + n) / (1 + df)) + 1``) and L2-normalized rows are what the kit computed by hand before, and a
maintained library is one less thing to test. Query n-grams unseen in the base are ignored, as before.

:func:`recall_at_k` measures how often the gold concept is in the top ``k`` (the ceiling of any
re-ranker), and :class:`DictionaryNormalizer` is the baseline every learned model must beat:
the concept a training mention with the same text had, else an entity name's, else TF-IDF top-1.
The stronger, staged normalizer (abbreviations, string rules, composite mentions, dense retrieval) is
:class:`mernlib.normalize.Normalizer`; this baseline stays as it is so that numbers stay comparable.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from .corpus import split_concept

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize_text(text: str) -> str:
    """Lowercase, every run of non-alphanumeric characters to one space, stripped."""
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def char_ngram_vectorizer(n: int = 3) -> TfidfVectorizer:
    """The TF-IDF the kit uses: character ``n``-grams inside words of :func:`normalize_text`'s output,
    each word padded by one space (a word shorter than ``n`` once padded is one gram)."""
    return TfidfVectorizer(
        analyzer="char_wb", ngram_range=(n, n), preprocessor=normalize_text, lowercase=False, dtype=np.float64
    )


def char_ngrams(text: str, n: int = 3) -> list[str]:
    """Character ``n``-grams of each word of ``normalize_text(text)``, each word padded by one space
    (what :func:`char_ngram_vectorizer` counts, for inspection)."""
    return char_ngram_vectorizer(n).build_analyzer()(text)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores``, best first, ties in index order.

    ``np.argpartition`` alone returns an *arbitrary* member of a tie at the cut (with ``k=1``, any of
    the concepts that share the best score: MeSH's "Leukemia, Myeloid, Acute" and an OMIM title with
    the same words do), so every index scoring at least the ``k``-th best value is kept, sorted, and cut.
    """
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    candidates = np.flatnonzero(scores >= kth)
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]


class CandidateGenerator:
    """Exact match, then character n-gram TF-IDF cosine, over ``(name, concept_id)`` pairs.

    ``concept_id`` is stored as given (a composite concept string from a training mention stays one
    candidate). Empty names and empty or NIL (``-1``) concepts are ignored.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]], n: int = 3):
        self.n = n
        names: dict[tuple[str, str], None] = {}
        for name, concept in pairs:
            key = normalize_text(name)
            if key and concept and split_concept(concept):
                names[(key, concept)] = None
        if not names:
            raise ValueError("CandidateGenerator needs at least one (name, concept) pair")
        # sort by concept so that each concept's names are contiguous (np.maximum.reduceat below)
        ordered = sorted(names, key=lambda kc: (kc[1], kc[0]))
        self.concepts: list[str] = sorted({c for _, c in ordered})
        concept_index = {c: i for i, c in enumerate(self.concepts)}
        self.names = [k for k, _ in ordered]
        self._name_concept = np.array([concept_index[c] for _, c in ordered], dtype=np.int64)
        self._concept_starts = np.flatnonzero(np.r_[True, np.diff(self._name_concept) != 0])
        self.exact: dict[str, list[int]] = defaultdict(list)
        for key, concept in ordered:
            idx = concept_index[concept]
            if idx not in self.exact[key]:
                self.exact[key].append(idx)
        self.vectorizer = char_ngram_vectorizer(n)
        self.matrix = self.vectorizer.fit_transform(self.names)  # [n_names, n_grams], rows L2-normalized

    @classmethod
    def from_entity_base(
        cls,
        entity_names: dict[str, str],
        synonyms: dict[str, Iterable[str]] | None = None,
        mentions: Iterable[tuple[str, str]] = (),
        n: int = 3,
    ) -> CandidateGenerator:
        """From ``{concept_id: name}``, optional ``{concept_id: [synonyms]}`` and ``(text, concept)`` of
        training mentions."""
        pairs = [(name, cid) for cid, name in entity_names.items()]
        for cid, names in (synonyms or {}).items():
            pairs.extend((s, cid) for s in names)
        pairs.extend((text, concept) for text, concept in mentions)
        return cls(pairs, n=n)

    def vectorize(self, texts: Sequence[str]):
        """TF-IDF rows (``scipy.sparse``, L2-normalized) of ``texts``; n-grams unseen in the base are ignored."""
        return self.vectorizer.transform(list(texts))

    def concept_scores(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), n_concepts]`` cosine similarity of each text to each concept's best name."""
        sims = (self.vectorize(texts) @ self.matrix.T).toarray()
        return np.maximum.reduceat(sims, self._concept_starts, axis=1) if sims.size else sims

    def top_k(self, mention_text: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` best concepts for ``mention_text`` as ``(concept_id, score)``, best first."""
        return self.top_k_batch([mention_text], k)[0]

    def top_k_batch(
        self, texts: Sequence[str], k: int = 10, chunk: int = 256
    ) -> list[list[tuple[str, float]]]:
        """:meth:`top_k` for many texts, vectorised (``chunk`` texts per matrix product)."""
        out = []
        k = max(0, min(k, len(self.concepts)))
        for lo in range(0, len(texts), chunk):
            part = list(texts[lo : lo + chunk])
            scores = self.concept_scores(part)
            for row, text in zip(scores, part, strict=True):
                exact = self.exact.get(normalize_text(text), [])
                row = row.copy()
                row[exact] = 1.0 + 1e-9  # exact matches first, then cosine order
                top = top_k_indices(row, k)  # by score, ties by concept order
                out.append([(self.concepts[i], float(min(row[i], 1.0))) for i in top])
        return out


def recall_at_k(
    generator: CandidateGenerator, mentions: Iterable[tuple[str, str | Iterable[str]]], ks=(1, 5, 10, 20)
) -> dict:
    """Fraction of mentions whose gold concept is among the top ``k`` candidates, for each ``k``.

    ``generator`` is anything with ``top_k_batch(texts, k) -> [[(concept, score), ...], ...]`` (a
    :class:`CandidateGenerator`, or :class:`mernlib.normalize.DenseRetriever`). ``mentions`` are
    ``(text, gold)`` where gold is a concept string or a collection of IDs. A mention counts as found at
    ``k`` when one of its gold IDs is one of the IDs of a top-``k`` candidate (lenient for composite
    mentions). Mentions without any gold ID (NIL, empty) are not counted in the denominator; their
    number is reported as ``"nil"``.
    """
    items = []
    nil = 0
    for text, gold in mentions:
        ids = set(split_concept(gold)) if isinstance(gold, str) else {g for g in gold if g and g != "-1"}
        if ids:
            items.append((text, ids))
        else:
            nil += 1
    kmax = max(ks)
    ranked = generator.top_k_batch([t for t, _ in items], kmax)
    result: dict = {"mentions": len(items), "nil": nil}
    for k in ks:
        hits = 0
        for (_, gold), cands in zip(items, ranked, strict=True):
            found = set()
            for concept, _ in cands[:k]:
                found.update(split_concept(concept))
            hits += bool(gold & found)
        result[k] = hits / len(items) if items else 0.0
    return result


class DictionaryNormalizer:
    """Baseline normalizer: exact-text lookup, then TF-IDF top-1.

    Lookup order for a normalized mention text: the most frequent concept of training mentions with
    that text (ties: the one seen first), else the concept of an entity name or synonym with that text
    (several: the smallest ID, for determinism), else the TF-IDF top-1 candidate.

    This is the kit's documented baseline and is kept deliberately simple; every stage that
    :class:`mernlib.normalize.Normalizer` adds is measured against it (``benchmarks/README.md``).
    """

    def __init__(
        self,
        entity_names: dict[str, str],
        mentions: Iterable[tuple[str, str]] = (),
        synonyms: dict[str, Iterable[str]] | None = None,
    ):
        mentions = [(t, c) for t, c in mentions if c and split_concept(c)]
        self.mention_table: dict[str, Counter] = defaultdict(Counter)
        for text, concept in mentions:
            self.mention_table[normalize_text(text)][concept] += 1
        self.name_table: dict[str, str] = {}
        pairs = [(n, c) for c, n in entity_names.items()]
        for c, names in (synonyms or {}).items():
            pairs.extend((n, c) for n in names)
        for name, concept in sorted(pairs, key=lambda p: p[1]):
            self.name_table.setdefault(normalize_text(name), concept)
        self.generator = CandidateGenerator.from_entity_base(entity_names, synonyms, mentions)

    def predict(self, text: str) -> str:
        """The concept string for one mention text."""
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: Sequence[str]) -> list[str]:
        out: list[str | None] = []
        missing = []
        for i, text in enumerate(texts):
            key = normalize_text(text)
            if key in self.mention_table:
                out.append(self.mention_table[key].most_common(1)[0][0])  # Counter keeps first-seen order
            elif key in self.name_table:
                out.append(self.name_table[key])
            else:
                out.append(None)
                missing.append(i)
        if missing:
            ranked = self.generator.top_k_batch([texts[i] for i in missing], 1)
            for i, cands in zip(missing, ranked, strict=True):
                out[i] = cands[0][0] if cands and cands[0][1] > 0 else ""
        return out  # type: ignore[return-value]

    def normalize_documents(self, documents):
        """Copies of ``documents`` whose mentions (spans and types kept) get predicted concepts."""
        import copy

        docs = copy.deepcopy(list(documents))
        flat = [m for d in docs for m in d.mentions]
        for m, concept in zip(flat, self.predict_batch([m.text for m in flat]), strict=True):
            m.concept = concept
        return docs
