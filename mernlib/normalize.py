"""The kit's normalizer: a mention and its abstract in, MeSH/OMIM concept IDs out.

:class:`Normalizer` is fitted once on training documents and an entity base, then normalizes the
mentions of any documents (gold mentions, or mentions a model predicted)::

    normalizer = Normalizer(NormalizerConfig()).fit(train_docs, entity_base)
    predicted = normalizer.normalize(documents)          # copies, every mention's concept set
    normalizer.candidates("breast cancer", document, k=10)  # [(concept_id, score), ...] for re-rankers

It is a cascade of stages, each switchable in :class:`NormalizerConfig` and measured on its own by
``benchmarks/normalizer_ablation.py`` (numbers in ``benchmarks/README.md``, section "Normalizer"). For
every mention, in order, the first stage that gives an answer wins:

1. **Abbreviation resolution** (per document, :mod:`mernlib.abbreviations`): when the mention is, or
   contains, a short form the abstract defines ("HNPCC"), its long form ("hereditary nonpolyposis
   colorectal cancer") is looked up first, the mention's own text second. Long forms come first because
   an abbreviation means what *this* abstract says (NCBI's "DM" is diabetes in one abstract and myotonic
   dystrophy in another), while the training dictionary only knows what it meant most often. The parts
   of a compound definition count as defined ("HPT-JT" = "hyperparathyroidism-jaw tumor syndrome" gives
   HPT and JT: :func:`mernlib.abbreviations.compound_parts`), and a defined short form with a number
   ("MEN2", MEN defined) is read as its long form and the number; on NCBI dev the two took mention
   accuracy from 0.8577 to 0.8640 and left BC5CDR dev unchanged.
2. **Exact lookup** in tables of training mentions (the corpus's own annotations: by far the best
   source, since the entity base has one name per MeSH concept) and entity-base names (MeSH names, OMIM
   titles and symbols, any extra base such as CTD MEDIC), tried at four levels of string normalization,
   stricter first, training mentions before names at each level (:func:`lookup_keys`):
   ``exact`` (case and punctuation), ``rules`` (British spellings, possessive 's, plurals, and
   *cancer/tumour -> neoplasm*, because MeSH names neoplasms "Breast Neoplasms" where abstracts write
   "breast cancer"), ``bag`` (word order and "of": MeSH's inverted "Leukemia, Myeloid") and
   ``compact`` (spaces: "non-polyposis" = "nonpolyposis"). A training text mostly annotated NIL
   (BC5CDR's ``-1``) is predicted NIL.
3. **Composite mentions** ("breast and ovarian cancer"): split on *and / or / , / /* with the shared
   head or modifier distributed (:func:`composite_parts`); used only when every part is found by the
   exact lookup, and then the distinct IDs are joined with ``|`` as the corpora write them. A composite
   text seen in training is found whole by stage 2 first.
4. **Retrieval** for everything else: the nearest surface form (entity names and training mention
   texts) by cosine similarity, with a sentence encoder (``retriever="dense"``, :class:`DenseRetriever`)
   or character 3-gram TF-IDF (``retriever="tfidf"``, :class:`mernlib.candidates.CandidateGenerator`).
   The dense encoder is the kit's MiniLM by default, tuned SapBERT-style (Liu et al., NAACL 2021) on
   the names and training mentions (:func:`tune_encoder`, ``tune_encoder=True``): each training mention
   text is pulled towards another form of its concept (a name or another mention) and pushed away from
   the other forms of its batch and from a *hard negative*, a form of another concept that the TF-IDF
   retriever ranks close (InfoNCE loss).
   The tuned encoder is cached under ``$MERNLIB_CACHE/normalizer-encoders/<key>`` where the key hashes
   everything that defines it (base encoder, surface forms, hyper-parameters, seed), so a second fit is
   free and a change of data retunes.

A fitted normalizer is written to a folder with :meth:`Normalizer.save` and read back with
:meth:`Normalizer.load`: its training mentions, entity base and configuration, and for the dense retriever
a copy of the (tuned) encoder with the surface forms' vectors, so a saved normalizer needs no cache and
does no tuning (an annotation pipeline, :mod:`mernlib.pipeline`, keeps one in its model folder).

With typed corpora (BC5CDR's Chemical and Disease) the training table is consulted with the mention's
type first, and retrieval skips concepts seen in training only under another type, so a chemical is
not normalized to a disease.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .abbreviations import METHODS as ABBREVIATION_METHODS
from .abbreviations import find_abbreviations, resolved_method
from .candidates import CandidateGenerator, normalize_text, top_k_indices
from .corpus import NIL, Document, split_concept
from .entity_base import EntityBase

RETRIEVERS = ("dense", "tfidf")
LOOKUP_LEVELS = ("exact", "rules", "bag", "compact")
_TUNING_VERSION = 1  # bump when tune_encoder's algorithm changes, so cached encoders are not reused


@dataclass
class NormalizerConfig:
    """What :class:`Normalizer` does; every stage can be switched off to measure it (see the module docstring).

    * ``abbreviations``: ``"auto"`` (Ab3P through ``pyab3p`` when importable, else the pure-Python
      Schwartz & Hearst detector), ``"ab3p"``, ``"schwartz-hearst"``, or ``"off"``.
    * ``training_mentions`` / ``entity_names``: which exact-lookup tables exist (the training mentions
      also feed the retriever's surface forms and the encoder tuning).
    * ``string_rules``: the ``rules``, ``bag`` and ``compact`` lookup levels (off: ``exact`` only).
    * ``composite``: split composite mentions ("breast and ovarian cancer" -> two IDs). Parts must all be
      found by the exact lookup: retrieving the unknown parts of a partly known reading was tried and
      lost on NCBI dev (0.8488 -> 0.8475 accuracy; BC5CDR unchanged), since "X and Y syndrome" is as often
      one disease as two.
    * ``retriever``: ``"dense"`` (a sentence encoder) or ``"tfidf"`` (character 3-grams) for the mentions
      no exact lookup resolves, and for :meth:`Normalizer.candidates`.
    * ``retrieval_tfidf_weight``: with the dense retriever, a concept's score is its best cosine plus this
      weight times its best TF-IDF cosine (0, the default: dense alone; on NCBI dev with the untuned
      MiniLM, 0.25 moved accuracy by +0.004 and 1.0 by -0.014, within noise, so the simpler one stays).
    * ``encoder``: the dense retriever's base encoder (``None``: the kit's MiniLM; a local folder or a
      hub name, as :func:`mernlib.encoders.load_encoder`).
    * ``tune_encoder`` and the ``tuning_*`` fields: contrastive tuning of that encoder (defaults: 2
      epochs, batch 64, learning rate 2e-5, temperature 0.05, hard negatives from the TF-IDF top 16, two
      training-mention anchors per concept and epoch, word-piece embeddings frozen; chosen on NCBI dev,
      where they take 26 steps, 3-10 CPU-minutes on one core depending on the machine's load).
      ``tuning_threads`` fixes torch's thread count during tuning (1 by default: results are
      bit-identical for a given seed only at a fixed thread count, and the kit's machines have 2 cores
      shared); ``None`` keeps torch's current setting.
    * ``seed``: tuning's sampling, shuffling and dropout.
    * ``cache``: reuse / store tuned encoders and the dense vectors of the surface forms under
      ``$MERNLIB_CACHE/normalizer-encoders`` (``cache_dir`` overrides the folder).
    * ``type_aware``: use mention types (training table per type, retrieval restricted by type).
    * ``progress``: tqdm bars while tuning and encoding.
    """

    abbreviations: str = "auto"
    training_mentions: bool = True
    entity_names: bool = True
    string_rules: bool = True
    composite: bool = True
    retriever: str = "dense"
    encoder: str | None = None
    tune_encoder: bool = True
    tuning_epochs: int = 2
    tuning_batch_size: int = 64
    tuning_learning_rate: float = 2e-5
    tuning_temperature: float = 0.05
    tuning_hard_negatives: int = 16
    tuning_anchors_per_concept: int = 2
    tuning_freeze_embeddings: bool = True
    tuning_threads: int | None = 1
    retrieval_tfidf_weight: float = 0.0
    max_length: int = 32
    seed: int = 13
    cache: bool = True
    cache_dir: str | None = None
    type_aware: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.abbreviations not in (*ABBREVIATION_METHODS, "off"):
            raise ValueError(
                f"abbreviations must be one of {(*ABBREVIATION_METHODS, 'off')}, not {self.abbreviations!r}"
            )
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"retriever must be one of {RETRIEVERS}, not {self.retriever!r}")


# --------------------------------------------------------------------------------------------------
# String normalization


_BRITISH = [
    (re.compile(r"tumour"), "tumor"),
    (re.compile(r"aemia"), "emia"),  # anaemia, leukaemia, septicaemia, hypoglycaemia
    (re.compile(r"haem"), "hem"),  # haemophilia, haemorrhage
    (re.compile(r"aem"), "em"),  # ischaemia
    (re.compile(r"^oe"), "e"),  # oedema, oesophagus, oestrogen
    (re.compile(r"oea$"), "ea"),  # diarrhoea
    (re.compile(r"paed"), "ped"),
]
_DROP_WORDS = frozenset({"s", "the", "a", "an"})  # "s": the possessive of "Huntington's disease"
_BAG_DROP_WORDS = frozenset({"of", "in", "with", "to", "type"})
_KEEP_FINAL_S = ("ss", "us", "is", "ous", "ics", "sis", "xis")
_NEOPLASM_WORDS = frozenset({"cancer", "tumor", "neoplasm"})


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(_KEEP_FINAL_S):
        return word[:-1]
    return word


def rule_words(text: str) -> list[str]:
    """The words of ``text`` after the kit's string rules, in order (see :func:`lookup_keys`)."""
    out = []
    for word in normalize_text(text).split():
        if word in _DROP_WORDS:
            continue
        for pattern, replacement in _BRITISH:
            word = pattern.sub(replacement, word)
        word = _singular(word)
        out.append("neoplasm" if word in _NEOPLASM_WORDS else word)
    return out


def lookup_keys(text: str, string_rules: bool = True) -> list[tuple[str, str]]:
    """``[(level, key), ...]`` under which ``text`` is looked up, strictest first.

    * ``exact``: lowercase, every run of non-alphanumerics one space (:func:`mernlib.candidates.normalize_text`);
    * ``rules``: also British spellings to American (tumour, anaemia, haem-, oedema, diarrhoea, paed-),
      the possessive ``'s`` and ``the / a / an`` dropped, plural words made singular (``-ies`` -> ``-y``,
      a final ``-s`` dropped unless ``-ss, -us, -is, -ous, -ics, -sis, -xis``), and *cancer*, *tumor*,
      *neoplasm* one word (MeSH names neoplasms "X Neoplasms"; abstracts write "X cancer" and "X tumour");
    * ``bag``: the ``rules`` words without *of, in, with, to, type*, sorted (word order: MeSH's
      "Leukemia, Myeloid"; "deficiency of X" = "X deficiency");
    * ``compact``: the ``rules`` words joined without spaces (hyphenation: "non-polyposis").

    The rules are deliberately few: each one was checked on NCBI dev to fix more than it breaks, and
    anything fuzzier is the retriever's job. Empty keys are left out.
    """
    exact = normalize_text(text)
    keys = [("exact", exact)] if exact else []
    if not string_rules:
        return keys
    words = rule_words(text)
    bag_words = sorted(w for w in words if w not in _BAG_DROP_WORDS) or sorted(words)
    for level, key in (("rules", " ".join(words)), ("bag", " ".join(bag_words)), ("compact", "".join(words))):
        if key:
            keys.append((level, key))
    return keys


# --------------------------------------------------------------------------------------------------
# Composite mentions

_CONJUNCTION = re.compile(r"\s*(?:,\s*(?:and/or|and|or)\s+|,\s*|\s+(?:and/or|and|or)\s+|\s*/\s*)", re.I)


def composite_parts(text: str) -> list[list[str]]:
    """Readings of ``text`` as several mentions, most likely first; ``[]`` if it has no conjunction.

    ``"breast and ovarian cancer"`` -> ``[["breast cancer", "ovarian cancer"], ["breast", "ovarian
    cancer"], ...]``: the segments between *and / or / , / /* with the last segment's head words shared
    (``X and Y head``), with the first segment's modifier shared (``modifier X and Y``: "colorectal
    adenomas and carcinomas"), and as they are. The caller keeps the first reading whose parts are all
    known, so a wrong reading costs nothing unless every part of it is a known name.
    """
    segments = [s.strip() for s in _CONJUNCTION.split(text.strip())]
    segments = [s for s in segments if s]
    if len(segments) < 2:
        return []
    readings: list[list[str]] = []
    last = segments[-1].split()
    for shared in range(1, len(last)):  # X and Y <head>: the head is the last `shared` words of the last part
        head = " ".join(last[-shared:])
        readings.append([f"{s} {head}" for s in segments[:-1]] + [segments[-1]])
    first = segments[0].split()
    if len(first) > 1 and all(len(s.split()) == 1 for s in segments[1:]):  # <modifier> X and Y
        modifier = " ".join(first[:-1])
        readings.append([segments[0]] + [f"{modifier} {s}" for s in segments[1:]])
    readings.append(segments)
    return list({tuple(r): r for r in readings}.values())


# --------------------------------------------------------------------------------------------------
# Dense retrieval and encoder tuning


def _pool(model, tokenizer, texts: Sequence[str], max_length: int):
    """L2-normalized mean of the last hidden states over each text's real tokens ([CLS]/[SEP] included,
    as sentence-transformers' MiniLM was trained)."""
    import torch

    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def encode_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    max_length: int = 32,
    batch_size: int = 256,
    progress: bool = False,
) -> np.ndarray:
    """``[len(texts), hidden]`` float32 unit vectors (texts sorted by length inside, for less padding)."""
    import torch
    from tqdm.auto import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for lo in tqdm(range(0, len(order), batch_size), desc="encoding", disable=not progress, leave=False):
            idx = order[lo : lo + batch_size]
            out[idx] = _pool(model, tokenizer, [texts[i] for i in idx], max_length).numpy()
    model.train(was_training)
    return out


class DenseRetriever:
    """Nearest surface forms by cosine similarity of sentence-encoder vectors; a concept scores its best form.

    ``forms`` are ``(text, concept_id)`` pairs (one ID each). :meth:`top_k_batch` has the signature of
    :meth:`mernlib.candidates.CandidateGenerator.top_k_batch`, so :func:`mernlib.candidates.recall_at_k`
    and E2EMERN's ``annotate`` accept it. Encoding the ~8,000 forms of a corpus takes minutes on a loaded
    CPU core, so with ``cache_dir`` the vectors are kept there as ``vectors-<key>.npy``, the key hashing the
    encoder (``encoder_fingerprint``), ``max_length`` and the form texts; ``vectors`` (those of these very
    forms, as a saved normalizer holds them) skip encoding altogether.
    """

    def __init__(
        self,
        model,
        tokenizer,
        forms: Sequence[tuple[str, str]],
        max_length: int = 32,
        progress: bool = False,
        cache_dir: str | os.PathLike | None = None,
        encoder_fingerprint: dict | None = None,
        vectors: np.ndarray | None = None,
    ):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        unique = list(dict.fromkeys((normalize_text(t), c) for t, c in forms if normalize_text(t)))
        if not unique:
            raise ValueError("DenseRetriever needs at least one (text, concept) form")
        self.concepts = sorted({c for _, c in unique})
        index = {c: i for i, c in enumerate(self.concepts)}
        self.form_texts = [t for t, _ in unique]
        self.form_concept = np.array([index[c] for _, c in unique], dtype=np.int64)
        if vectors is not None:  # the vectors of these very forms, saved with a normalizer (Normalizer.load)
            if vectors.shape != (len(self.form_texts), model.config.hidden_size):
                raise ValueError(
                    f"{vectors.shape[0]} saved vectors of size {vectors.shape[1:]} for "
                    f"{len(self.form_texts)} forms and an encoder of size {model.config.hidden_size}"
                )
            self.vectors = vectors
            return
        cached = None
        if cache_dir is not None and encoder_fingerprint is not None:
            payload = {"encoder": encoder_fingerprint, "max_length": max_length, "forms": self.form_texts}
            digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
            cached = Path(cache_dir) / f"vectors-{digest}.npy"
        if cached is not None and cached.is_file():
            self.vectors = np.load(cached)
        else:
            self.vectors = encode_texts(model, tokenizer, self.form_texts, max_length, progress=progress)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                staging = cached.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(staging, self.vectors)
                os.replace(staging, cached)

    def concept_scores(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), n_concepts]`` best cosine of each text to each concept's forms (-1 if none)."""
        queries = encode_texts(
            self.model, self.tokenizer, [normalize_text(t) or t for t in texts], self.max_length
        )
        sims = queries @ self.vectors.T
        scores = np.full((len(texts), len(self.concepts)), -1.0, dtype=np.float32)
        for row in range(len(texts)):
            np.maximum.at(scores[row], self.form_concept, sims[row])
        return scores

    def top_k_batch(
        self, texts: Sequence[str], k: int = 10, allowed: np.ndarray | None = None
    ) -> list[list[tuple[str, float]]]:
        """The ``k`` best ``(concept_id, cosine)`` per text, best first; ``allowed`` ``[len(texts),
        n_concepts]`` booleans restrict each row (e.g. by mention type)."""
        out = []
        for lo in range(0, len(texts), 512):
            scores = self.concept_scores(texts[lo : lo + 512])
            if allowed is not None:
                scores = np.where(allowed[lo : lo + 512], scores, -np.inf)
            for row in scores:
                top = top_k_indices(row, k)
                out.append([(self.concepts[i], float(row[i])) for i in top if np.isfinite(row[i])])
        return out

    def top_k(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        return self.top_k_batch([text], k)[0]


def _encoder_fingerprint(encoder) -> dict:
    """What identifies an encoder in a cache key: a hub name as is; a local folder by the SHA-256 of its
    files' contents (not its path: the same weights elsewhere are the same encoder, and weights retrained
    in place are not; hashing MiniLM's 90 MB takes well under a second)."""
    from .encoders import resolve_encoder

    resolved, local = resolve_encoder(encoder)
    if not local:
        return {"encoder": resolved}
    digest = hashlib.sha256()
    for path in sorted(
        p for p in Path(resolved).iterdir() if p.is_file() and p.name != "mernlib-tuning.json"
    ):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return {"encoder": Path(resolved).name, "sha256": digest.hexdigest()}


def tuning_key(
    config: NormalizerConfig,
    forms_by_concept: dict[str, list[str]],
    anchors_by_concept: dict[str, list[str]] | None = None,
) -> str:
    """The cache key of a tuned encoder: a hash of the base encoder, the surface forms and every
    tuning setting (not of ``progress``, ``cache`` or the lookup stages, which do not change it)."""
    settings = {
        k: v for k, v in asdict(config).items() if k.startswith("tuning_") or k in ("max_length", "seed")
    }
    payload = {
        "version": _TUNING_VERSION,
        "base": _encoder_fingerprint(config.encoder),
        "settings": settings,
        "forms": sorted((c, sorted(f)) for c, f in forms_by_concept.items()),
        "anchors": None
        if anchors_by_concept is None
        else sorted((c, sorted(f)) for c, f in anchors_by_concept.items()),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _cache_root(config: NormalizerConfig) -> Path:
    if config.cache_dir:
        return Path(config.cache_dir)
    from .registry import cache_root

    return cache_root() / "normalizer-encoders"


def _mine_hard_negatives(texts: list[str], concepts: list[str], k: int) -> list[list[int]]:
    """For each form, up to ``k`` forms of *other* concepts that character 3-gram TF-IDF ranks closest:
    cheap to compute for every form, and close in spelling is exactly where an encoder that has only
    seen general English confuses concepts ("hypotension" / "hypertension")."""
    from .candidates import char_ngram_vectorizer

    matrix = char_ngram_vectorizer(3).fit_transform(texts)
    out: list[list[int]] = []
    for lo in range(0, len(texts), 1024):
        sims = (matrix[lo : lo + 1024] @ matrix.T).toarray()
        for r, row in enumerate(sims):
            i = lo + r
            take = min(len(row), k * 4 + 1)
            top = np.argpartition(-row, take - 1)[:take]
            top = top[np.lexsort((top, -row[top]))]
            out.append([int(j) for j in top if concepts[j] != concepts[i]][:k])
    return out


def tune_encoder(
    config: NormalizerConfig,
    forms_by_concept: dict[str, list[str]],
    anchors_by_concept: dict[str, list[str]] | None = None,
) -> Path:
    """Contrastively tune ``config.encoder`` on surface forms; return the folder of the tuned encoder.

    ``forms_by_concept`` maps a concept ID to its surface forms (entity names and training mention texts);
    ``anchors_by_concept`` (default: all of them) says which forms may be *anchors*. Each epoch,
    ``tuning_anchors_per_concept`` anchors (sampled) of every concept with at least two forms are each
    paired with another form of its concept (the *positive*) and one of its TF-IDF-mined hard negatives.
    Sampling per concept keeps a concept with hundreds of training mentions from dominating and an epoch
    to minutes on a CPU. The :class:`Normalizer` passes the training-mention texts as anchors: that is
    the retrieval task (a mention to its concept's forms), and on NCBI dev tuning with every form as an
    anchor -- mostly OMIM title/symbol pairs, the only concepts with several names -- made the encoder
    worse than untuned (accuracy 0.8488 -> 0.8335), while mention anchors made it better (-> 0.8539). The loss is InfoNCE: the anchor must pick its positive among the batch's
    positives and hard negatives at temperature ``tuning_temperature``; candidates of the anchor's own
    concept other than its positive are masked out (they are not negatives). Concepts with a single form
    still serve as other anchors' hard negatives.

    With ``tuning_freeze_embeddings`` the word-piece embedding matrix (half of MiniLM's 22M parameters)
    is not updated: a few thousand short names touch few of its 30k rows, and not computing its gradient
    and optimizer step makes a step about 40% cheaper on a CPU (measured: 7.7 s instead of 13 s for a
    batch of 64 on a loaded core). The transformer layers, where the similarity is computed, all learn.

    Deterministic for a seed at a fixed ``tuning_threads``. Cached (see :func:`tuning_key`); a cached
    encoder is loaded, not retrained.
    """
    import torch
    from tqdm.auto import tqdm

    from .encoders import load_encoder

    key = tuning_key(config, forms_by_concept, anchors_by_concept)
    target = _cache_root(config) / key
    if config.cache and (target / "config.json").is_file():
        return target
    rng = random.Random(config.seed)
    concepts = sorted(forms_by_concept)
    texts: list[str] = []
    text_concept: list[str] = []
    for cid in concepts:
        for text in sorted(set(forms_by_concept[cid])):
            texts.append(text)
            text_concept.append(cid)
    by_concept: dict[str, list[int]] = defaultdict(list)
    for i, cid in enumerate(text_concept):
        by_concept[cid].append(i)
    negatives = _mine_hard_negatives(texts, text_concept, config.tuning_hard_negatives)

    threads_before = torch.get_num_threads()
    if config.tuning_threads:
        torch.set_num_threads(config.tuning_threads)
    torch.manual_seed(config.seed)
    model, tokenizer = load_encoder(config.encoder)
    model.train()
    if config.tuning_freeze_embeddings:
        for parameter in model.get_input_embeddings().parameters():
            parameter.requires_grad = False
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.tuning_learning_rate, weight_decay=0.01)
    history = []
    try:
        for epoch in range(config.tuning_epochs):
            examples = []
            for cid in concepts:
                members = by_concept[cid]
                if len(members) < 2:
                    continue
                allowed = members
                if anchors_by_concept is not None:
                    wanted = set(anchors_by_concept.get(cid, ()))
                    allowed = [m for m in members if texts[m] in wanted]
                anchors = rng.sample(allowed, min(len(allowed), config.tuning_anchors_per_concept))
                for a in anchors:
                    positive = rng.choice([m for m in members if m != a])
                    negative = rng.choice(negatives[a]) if negatives[a] else rng.randrange(len(texts))
                    examples.append((a, positive, negative))
            rng.shuffle(examples)
            total, steps = 0.0, 0
            bar = tqdm(
                range(0, len(examples), config.tuning_batch_size),
                desc=f"tuning encoder, epoch {epoch + 1}/{config.tuning_epochs}",
                disable=not config.progress,
            )
            for lo in bar:
                batch = examples[lo : lo + config.tuning_batch_size]
                anchor_ids = [a for a, _, _ in batch]
                candidate_ids = [p for _, p, _ in batch] + [n for _, _, n in batch]
                anchors = _pool(model, tokenizer, [texts[i] for i in anchor_ids], config.max_length)
                candidates = _pool(model, tokenizer, [texts[i] for i in candidate_ids], config.max_length)
                logits = anchors @ candidates.T / config.tuning_temperature
                same = torch.tensor(
                    [[text_concept[c] == text_concept[a] for c in candidate_ids] for a in anchor_ids]
                )
                own = torch.zeros_like(same)
                own[torch.arange(len(batch)), torch.arange(len(batch))] = True
                logits = logits.masked_fill(same & ~own, float("-inf"))
                loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item()
                steps += 1
                bar.set_postfix(loss=f"{total / steps:.3f}")
            history.append(
                {"epoch": epoch + 1, "examples": len(examples), "mean_loss": total / max(steps, 1)}
            )
    finally:
        torch.set_num_threads(threads_before)
    model.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a cache shared by a team must stay readable
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "mernlib-tuning.json").write_text(
        json.dumps(
            {
                "key": key,
                "base": _encoder_fingerprint(config.encoder),
                "settings": {
                    k: v
                    for k, v in asdict(config).items()
                    if k.startswith("tuning_") or k in ("max_length", "seed")
                },
                "concepts": len(concepts),
                "forms": len(texts),
                "history": history,
            },
            indent=1,
        )
    )
    if not config.cache:
        return staging
    try:
        os.replace(staging, target)  # atomic: a parallel fit of the same key either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------------
# The normalizer


@dataclass
class Resolution:
    """How one mention was normalized: the concept string and the stage that decided it
    (``"training"``, ``"name"``, ``"composite"``, ``"retrieval"``, or ``"none"``), the lookup level,
    and the text that was looked up (the long form when an abbreviation was resolved)."""

    concept: str
    stage: str
    level: str = ""
    query: str = ""
    abbreviation: bool = False
    candidates: list[tuple[str, float]] = field(default_factory=list)


def _merge_bases(entity_base: EntityBase | Iterable[EntityBase]) -> EntityBase:
    if isinstance(entity_base, EntityBase):
        return entity_base
    merged = EntityBase()
    for base in entity_base:
        merged.update(base)
    return merged


class Normalizer:
    """The staged normalizer described in the module docstring. ``fit`` first, then ``normalize`` or
    ``candidates``."""

    def __init__(self, config: NormalizerConfig | None = None, **overrides):
        self.config = config if config is not None else NormalizerConfig()
        if overrides:
            self.config = NormalizerConfig(**(asdict(self.config) | overrides))
        self.fitted = False

    # -- fitting ------------------------------------------------------------------------------------

    def fit(
        self, training_documents: Iterable[Document], entity_base: EntityBase | Iterable[EntityBase]
    ) -> Normalizer:
        """Build the lookup tables and the retriever (tuning the encoder if configured, or loading it
        from the cache) from training documents and one entity base or several (e.g. MeSH + OMIM, then
        CTD MEDIC from :func:`mernlib.entity_base.load_ctd_medic`; merged in order). Returns ``self``."""
        mentions = [(m.text, m.type, m.concept) for d in training_documents for m in d.mentions]
        self._build_tables(mentions, _merge_bases(entity_base))
        self._build_retriever()
        return self

    def _build_tables(self, mentions: Sequence[tuple[str, str, str]], base: EntityBase) -> None:
        """The exact-lookup tables and the surface forms, from ``(text, type, concept)`` training mentions
        and the entity base. Keeps the mentions that carry a concept (``training_mentions``): what
        :meth:`save` writes, so that :meth:`load` rebuilds the very same tables."""
        cfg = self.config
        self.entity_base = base
        self.training_table: dict[tuple[str | None, str, str], Counter] = defaultdict(Counter)
        self.name_table: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self.concept_prior: Counter = Counter()
        self.concept_types: dict[str, set[str]] = defaultdict(set)
        self.training_mentions: list[tuple[str, str, str]] = []
        forms: list[tuple[str, str]] = []
        mention_forms: list[tuple[str, str]] = []
        for text, mention_type, raw_concept in mentions:
            ids = split_concept(raw_concept)
            concept = raw_concept if ids else (NIL if raw_concept.strip() == NIL else "")
            if not concept:
                continue
            self.training_mentions.append((text, mention_type, raw_concept))
            for cid in ids:
                self.concept_prior[cid] += 1
                self.concept_types[cid].add(mention_type)
            if not cfg.training_mentions:
                continue
            for level, key in lookup_keys(text, cfg.string_rules):
                self.training_table[(mention_type, level, key)][concept] += 1
                self.training_table[(None, level, key)][concept] += 1
            if len(ids) == 1:
                forms.append((text, ids[0]))
                mention_forms.append((text, ids[0]))
        if cfg.entity_names:
            for name, cid in base.names():
                for level, key in lookup_keys(name, cfg.string_rules):
                    self.name_table[(level, key)][cid] += 1
                forms.append((name, cid))
        if not forms:
            raise ValueError("nothing to normalize to: no training mention and no entity-base name")
        self.forms = list(dict.fromkeys(forms))
        self.mention_forms = list(dict.fromkeys(mention_forms))

    def _build_retriever(self, encoder_path: Path | None = None, vectors: np.ndarray | None = None) -> None:
        """The retriever over ``self.forms``; a saved normalizer passes its encoder folder and the forms'
        vectors (:meth:`load`), so nothing is tuned or encoded again."""
        cfg = self.config
        self.tfidf = None
        if cfg.retriever == "tfidf":
            self.retriever = CandidateGenerator(self.forms)
            self.encoder_path = None
        else:
            self.retriever, self.encoder_path = self._dense_retriever(encoder_path, vectors)
            if cfg.retrieval_tfidf_weight:
                self.tfidf = CandidateGenerator(self.forms)
                if (
                    self.tfidf.concepts != self.retriever.concepts
                ):  # pragma: no cover - same forms, same concepts
                    raise AssertionError("TF-IDF and dense retrievers index different concepts")
        self._allowed_cache: dict[str | None, np.ndarray] = {}
        self.fitted = True

    def _dense_retriever(
        self, saved_encoder: Path | None = None, vectors: np.ndarray | None = None
    ) -> tuple[DenseRetriever, Path | None]:
        from .encoders import load_encoder

        cfg = self.config
        path = None
        if saved_encoder is not None:  # a saved normalizer's own copy of its (tuned) encoder
            path = saved_encoder
            model, tokenizer = load_encoder(path)
        elif cfg.tune_encoder:
            forms_by_concept: dict[str, list[str]] = defaultdict(list)
            for text, cid in self.forms:
                key = normalize_text(text)
                if key and key not in forms_by_concept[cid]:
                    forms_by_concept[cid].append(key)
            anchors_by_concept: dict[str, list[str]] = defaultdict(list)
            for text, cid in self.mention_forms:
                key = normalize_text(text)
                if key and key not in anchors_by_concept[cid]:
                    anchors_by_concept[cid].append(key)
            path = tune_encoder(cfg, dict(forms_by_concept), dict(anchors_by_concept))
            model, tokenizer = load_encoder(path)
        else:
            model, tokenizer = load_encoder(cfg.encoder)
        model.eval()
        if vectors is not None:
            return DenseRetriever(model, tokenizer, self.forms, cfg.max_length, vectors=vectors), path
        fingerprint = _encoder_fingerprint(path if path is not None else cfg.encoder)
        retriever = DenseRetriever(
            model,
            tokenizer,
            self.forms,
            cfg.max_length,
            progress=cfg.progress,
            cache_dir=_cache_root(cfg) if cfg.cache else None,
            encoder_fingerprint=fingerprint,
        )
        return retriever, path

    # -- lookups ------------------------------------------------------------------------------------

    def _preference(self, cid: str) -> tuple:
        # several concepts under one key: the one training mentions use most, then MeSH descriptors
        # (D), supplementary concepts (C), OMIM -- the order in which both corpora prefer IDs
        prefix = 0 if cid.startswith("D") else 1 if cid.startswith("C") else 2
        return (-self.concept_prior[cid], prefix, cid)

    def lookup(self, text: str, mention_type: str | None = None) -> tuple[str, str, str] | None:
        """``(concept string, "training" | "name", level)`` from the exact-lookup tables, or None."""
        omim_only = None
        for level, key in lookup_keys(text, self.config.string_rules):
            for typed in (mention_type, None) if self.config.type_aware and mention_type else (None,):
                found = self.training_table.get((typed, level, key))
                if found:
                    return found.most_common(1)[0][0], "training", level  # ties: first seen
            found = [c for c in self.name_table.get((level, key), ()) if self._type_allows(c, mention_type)]
            if found:
                best = min(found, key=self._preference)
                if not best.startswith("OMIM:"):
                    return best, "name", level
                # Both corpora use an OMIM ID only where MeSH has no concept: "pancreatic cancer" is an
                # OMIM title word for word but NCBI annotates MeSH's "Pancreatic Neoplasms", which the
                # looser levels find. An OMIM name is the answer only if no level finds a MeSH one.
                omim_only = omim_only or (best, "name", level)
        return omim_only

    def _composite(self, text: str, mention_type: str | None) -> str | None:
        for parts in composite_parts(text):
            concepts = [self.lookup(p, mention_type) for p in parts]
            if all(c is not None and split_concept(c[0]) for c in concepts):
                ids = list(dict.fromkeys(i for c in concepts for i in split_concept(c[0])))  # type: ignore[index]
                if len(ids) > 1:
                    return "|".join(ids)
        return None

    def _type_allows(self, concept: str, mention_type: str | None) -> bool:
        """False for a concept that training mentions give only other types than ``mention_type`` (a
        Chemical mention is not normalized to a concept annotated only as a Disease). Concepts that no
        training mention uses are allowed for every type: the entity base does not say their type."""
        if not (self.config.type_aware and mention_type):
            return True
        types = self.concept_types.get(concept)
        return not types or mention_type in types

    def _allowed(self, mention_type: str | None) -> np.ndarray | None:
        """Concepts retrieval may return for a type: those never seen in training under another type."""
        if not (self.config.type_aware and mention_type):
            return None
        if mention_type not in self._allowed_cache:
            self._allowed_cache[mention_type] = np.array(
                [self._type_allows(c, mention_type) for c in self.retriever.concepts]
            )
        return self._allowed_cache[mention_type]

    def retrieval_scores(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), n_concepts]`` retrieval scores (concepts in ``self.retriever.concepts`` order):
        the retriever's best cosine per concept, plus ``retrieval_tfidf_weight`` times the TF-IDF one
        when the retriever is dense."""
        scores = self.retriever.concept_scores(list(texts)).astype(np.float64)
        if self.tfidf is not None:
            scores += self.config.retrieval_tfidf_weight * self.tfidf.concept_scores(list(texts))
        return scores

    def _retrieve(
        self, texts: Sequence[str], types: Sequence[str | None], k: int
    ) -> list[list[tuple[str, float]]]:
        out = []
        concepts = self.retriever.concepts
        dense = isinstance(self.retriever, DenseRetriever)
        for lo in range(0, len(texts), 512):
            scores = self.retrieval_scores(texts[lo : lo + 512])
            for row, mention_type in zip(scores, types[lo : lo + 512], strict=True):
                mask = self._allowed(mention_type)
                if mask is not None:
                    row = np.where(mask, row, -np.inf)
                top = top_k_indices(row, k)  # by score, ties by concept order (MeSH before OMIM)
                # a TF-IDF score of 0 shares no n-gram: no candidate at all (as the baseline); any cosine
                # of a dense encoder is a ranking
                out.append(
                    [
                        (concepts[i], float(row[i]))
                        for i in top
                        if np.isfinite(row[i]) and (dense or row[i] > 0)
                    ]
                )
        return out

    def abbreviations(self, document: Document | None) -> dict[str, str]:
        """``{short form: long form}`` of a document (cached per document text); empty when off."""
        if document is None or self.config.abbreviations == "off":
            return {}
        cache = self.__dict__.setdefault("_abbreviation_cache", {})
        text = document.text
        if text not in cache:
            cache[text] = find_abbreviations(text, self.config.abbreviations)
        return cache[text]

    def queries(self, mention_text: str, document: Document | None = None) -> tuple[list[str], bool]:
        """The texts to look a mention up by, in order, and whether an abbreviation was expanded: the
        long form (whole mention a short form) or the mention with its short forms expanded, then the
        mention itself."""
        found = self.abbreviations(document)
        text = mention_text.strip()
        if not found:
            return [text], False
        if text in found:
            return [found[text], text], True
        numbered = re.fullmatch(r"(.+?)[ -]?(\d+[A-Za-z]?)", text)
        if numbered and numbered.group(1) in found:  # "MEN2", MEN defined: "multiple endocrine neoplasia 2"
            return [f"{found[numbered.group(1)]} {numbered.group(2)}", text], True
        expanded = text
        for short, long in sorted(found.items(), key=lambda kv: -len(kv[0])):
            if long.lower() in expanded.lower():
                # "hypoxanthine ... transferase (HPRT) deficiency": the definition itself; drop "(HPRT)"
                expanded = re.sub(rf"\s*\(\s*{re.escape(short)}\s*\)", "", expanded)
            else:
                expanded = re.sub(rf"(?<![\w-]){re.escape(short)}(?![\w-])", long, expanded)
        # "HPT-JT syndrome" -> "hyperparathyroidism-jaw tumor syndrome syndrome": a repeated word once
        expanded = re.sub(r"\b(\w+)(\s+\1\b)+", r"\1", expanded, flags=re.I)
        return ([expanded, text], True) if expanded != text else ([text], False)

    def resolve_batch(
        self, items: Sequence[tuple[str, str | None, Document | None]], k: int = 1
    ) -> list[Resolution]:
        """:class:`Resolution` of many ``(mention text, mention type, document)``; retrieval batched."""
        self._check_fitted()
        out: list[Resolution | None] = [None] * len(items)
        pending: list[int] = []
        pending_queries: list[str] = []
        for i, (text, mention_type, document) in enumerate(items):
            queries, expanded = self.queries(text, document)
            for query in queries:
                found = self.lookup(query, mention_type)
                if found is not None:
                    concept, stage, level = found
                    out[i] = Resolution(concept, stage, level, query, expanded and query != text.strip())
                    break
            if out[i] is None and self.config.composite:
                for query in queries:
                    concept = self._composite(query, mention_type)
                    if concept is not None:
                        out[i] = Resolution(
                            concept, "composite", "", query, expanded and query != text.strip()
                        )
                        break
            if out[i] is None:
                pending.append(i)
                pending_queries.append(queries[0])
        ranked = self._retrieve(pending_queries, [items[i][1] for i in pending], max(k, 1))
        for i, query, cands in zip(pending, pending_queries, ranked, strict=True):
            concept = cands[0][0] if cands else ""
            out[i] = Resolution(
                concept, "retrieval" if concept else "none", "", query, query != items[i][0].strip(), cands
            )
        return out  # type: ignore[return-value]

    # -- public API ---------------------------------------------------------------------------------

    def normalize(
        self, documents: Iterable[Document], min_retrieval_score: float | None = None
    ) -> list[Document]:
        """Copies of ``documents`` in which every mention's ``concept`` is the predicted concept string
        (several IDs joined by ``|`` for a composite mention; ``-1`` where training says NIL; spans,
        types and the input documents untouched). A mention named by retrieval alone (no lookup found
        it) keeps its best retrieval score in ``attrs["retrieval_score"]``; with ``min_retrieval_score``
        the mentions scoring below it are left out (:func:`drop_weak_mentions`)."""
        docs = copy.deepcopy(list(documents))
        items = [(m.text, m.type, d) for d in docs for m in d.mentions]
        flat = [m for d in docs for m in d.mentions]
        for m, res in zip(flat, self.resolve_batch(items), strict=True):
            m.concept = res.concept
            if res.stage == "retrieval" and res.candidates:
                m.attrs["retrieval_score"] = float(res.candidates[0][1])
        return docs if min_retrieval_score is None else drop_weak_mentions(docs, min_retrieval_score)

    def normalize_mention(
        self, mention_text: str, document: Document | None = None, mention_type: str | None = None
    ) -> str:
        """The concept string of one mention (``document`` gives its abbreviations)."""
        return self.resolve_batch([(mention_text, mention_type, document)])[0].concept

    def candidates(
        self,
        mention_text: str,
        document: Document | None = None,
        k: int = 10,
        mention_type: str | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` best ``(concept_id, score)`` for one mention, best first, for re-rankers.

        What the cascade decides comes first (an exact or composite answer; a composite answer is one
        ``A|B`` candidate, split by re-rankers that want IDs), scored 1.0 or, if higher, the best
        retrieved score: a re-ranker that adds a weight times its own score to these keeps the
        cascade's answer at weight 0. (A form shared by two concepts retrieves both at cosine 1.0, the
        float error can lift either above 1.0, and the cascade's preference between them would be lost.)
        The retriever's ranking of the (abbreviation-expanded) text follows with its scores, without
        repeats.
        """
        return self.candidates_batch([(mention_text, mention_type, document)], k)[0][0]

    def candidates_batch(
        self, items: Sequence[tuple[str, str | None, Document | None]], k: int = 10
    ) -> tuple[list[list[tuple[str, float]]], list[Resolution]]:
        """:meth:`candidates` of many ``(mention text, mention type, document)`` at once (retrieval
        batched), and their :class:`Resolution` (which stage decided, on what query)."""
        self._check_fitted()
        resolutions = self.resolve_batch(items, k)
        todo = [n for n, res in enumerate(resolutions) if not res.candidates]
        retrieved = self._retrieve(
            [resolutions[n].query or items[n][0] for n in todo], [items[n][1] for n in todo], k
        )
        extra = dict(zip(todo, retrieved, strict=True))
        out = []
        for n, res in enumerate(resolutions):
            retrieved = res.candidates or extra[n]
            ranked: dict[str, float] = {}
            if res.stage in ("training", "name", "composite") and split_concept(res.concept):
                ranked[res.concept] = max([1.0, *(float(score) for _, score in retrieved)])
            for cid, score in retrieved:
                ranked.setdefault(cid, float(score))
            out.append(list(ranked.items())[:k])
        return out, resolutions

    def top_k_batch(self, texts: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """:meth:`candidates` for bare mention texts (no document, no type): the interface of
        :class:`mernlib.candidates.CandidateGenerator`, so E2EMERN's ``annotate`` and
        :func:`mernlib.candidates.recall_at_k` accept a fitted normalizer."""
        return [self.candidates(t, None, k) for t in texts]

    def describe(self) -> dict:
        """JSON-ready summary: configuration, abbreviation detector, table sizes, encoder folder."""
        self._check_fitted()
        return {
            "config": asdict(self.config),
            "abbreviation_detector": "off"
            if self.config.abbreviations == "off"
            else resolved_method(self.config.abbreviations),
            "training_keys": len(self.training_table),
            "name_keys": len(self.name_table),
            "surface_forms": len(self.forms),
            "retriever": type(self.retriever).__name__,
            "encoder": str(self.encoder_path) if self.encoder_path else self.config.encoder,
        }

    def _check_fitted(self):
        if not self.fitted:
            raise RuntimeError("call Normalizer.fit(training_documents, entity_base) first")

    # -- saving and loading -------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the fitted normalizer to ``directory`` (created; files of the same names replaced):

        * ``config.json``: ``format`` (:data:`SAVE_FORMAT`), the :class:`NormalizerConfig`, the abbreviation
          detector it ran with, where its dense encoder is (``"encoder"``: the copy below; ``null``: the
          kit's bundled MiniLM; else a hub name), and the SHA-256 of the retriever's surface forms;
        * ``training_mentions.json``: the ``[text, type, concept]`` of every training mention with a
          concept (NIL included), from which the lookup tables are rebuilt;
        * ``entity_base.tsv``: the entity base (:meth:`mernlib.entity_base.EntityBase.to_tsv`);
        * dense retriever only: ``vectors.npy`` (the surface forms' vectors) and ``encoder/``, a copy of the
          tuned encoder (or of an untuned local one), so that :meth:`load` needs neither the cache
          (``$MERNLIB_CACHE``) nor any tuning or encoding.

        The tables themselves are not written: rebuilding them from the mentions and names takes a second,
        and keeps the folder readable.
        """
        self._check_fitted()
        cfg = self.config
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        encoder: str | None = None
        if isinstance(self.retriever, DenseRetriever):
            local = self.encoder_path if self.encoder_path is not None else cfg.encoder
            if local is not None and Path(os.path.expanduser(str(local))).is_dir():
                if (directory / "encoder").exists():
                    shutil.rmtree(directory / "encoder")
                shutil.copytree(
                    Path(os.path.expanduser(str(local))),
                    directory / "encoder",
                    ignore=shutil.ignore_patterns("mernlib-tuning.json"),
                )
                encoder = "encoder"
            else:
                encoder = cfg.encoder  # None: the bundled MiniLM; otherwise a hub name
            np.save(directory / "vectors.npy", self.retriever.vectors)
        meta = {
            "format": SAVE_FORMAT,
            "config": asdict(cfg),
            "abbreviation_detector": self.describe()["abbreviation_detector"],
            "retriever": type(self.retriever).__name__,
            "encoder": encoder,
            "tuned_encoder": None if self.encoder_path is None else Path(self.encoder_path).name,
            "forms": len(self.forms),
            "forms_sha256": _forms_digest(self.forms),
        }
        (directory / "config.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        rows = ",\n".join(json.dumps(list(m), ensure_ascii=False) for m in self.training_mentions)
        (directory / "training_mentions.json").write_text(f"[\n{rows}\n]\n", encoding="utf-8")
        self.entity_base.to_tsv(directory / "entity_base.tsv")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, **overrides) -> Normalizer:
        """The normalizer :meth:`save` wrote to ``directory``, ready to normalize. ``overrides`` change
        config fields that do not alter what was fitted (e.g. ``progress=False``).

        Raises ``ValueError`` for a folder that is not a saved normalizer, or whose surface forms no longer
        match its vectors. A config field this version of the kit does not know is an error too (it would
        be a stage this normalizer cannot run). When ``abbreviations="auto"`` resolves to another detector
        here than where it was saved (Ab3P installed there, not here), a ``UserWarning`` says so.
        """
        import warnings
        from dataclasses import fields

        from .entity_base import load_entity_base

        directory = Path(directory)
        try:
            meta = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{directory}: not a saved normalizer ({err})") from None
        if not isinstance(meta, dict) or meta.get("format") != SAVE_FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise ValueError(f"{directory}: format {found!r}, expected {SAVE_FORMAT!r}")
        known = {f.name for f in fields(NormalizerConfig)}
        unknown = sorted(set(meta["config"]) - known)
        if unknown:
            raise ValueError(f"{directory}: config fields {unknown} are unknown to this version of mernlib")
        bad = sorted(set(overrides) - {"progress", "cache", "cache_dir", "tuning_threads"})
        if bad:
            raise ValueError(f"{bad} cannot be changed on a fitted normalizer")
        normalizer = cls(NormalizerConfig(**(meta["config"] | overrides)))
        mentions = json.loads((directory / "training_mentions.json").read_text(encoding="utf-8"))
        normalizer._build_tables(
            [tuple(m) for m in mentions], load_entity_base(directory / "entity_base.tsv")
        )
        if _forms_digest(normalizer.forms) != meta["forms_sha256"]:
            raise ValueError(f"{directory}: the rebuilt surface forms differ from the saved ones")
        encoder_path = vectors = None
        if meta["retriever"] == "DenseRetriever":
            vectors = np.load(directory / "vectors.npy")
            if meta["encoder"] == "encoder":
                encoder_path = directory / "encoder"
            elif meta["encoder"] != normalizer.config.encoder:  # pragma: no cover - written together
                raise ValueError(f"{directory}: encoder {meta['encoder']!r} is not the config's")
        normalizer._build_retriever(encoder_path, vectors)
        here = normalizer.describe()["abbreviation_detector"]
        if here != meta["abbreviation_detector"]:
            warnings.warn(
                f"{directory}: saved with the {meta['abbreviation_detector']} abbreviation detector, "
                f"normalizing with {here} here (pip install pyab3p for Ab3P)",
                stacklevel=2,
            )
        return normalizer


SAVE_FORMAT = "mernlib.normalizer/1"
"""The ``format`` of a saved normalizer's ``config.json`` (:meth:`Normalizer.save`)."""


def _forms_digest(forms: Sequence[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps([list(f) for f in forms], ensure_ascii=False).encode()).hexdigest()


def drop_weak_mentions(documents: Iterable[Document], floor: float | None) -> list[Document]:
    """Copies of normalized ``documents`` without the mentions that only retrieval could name, and that
    with a best score (``attrs["retrieval_score"]``, set by :meth:`Normalizer.normalize`) below ``floor``
    (``None``: all kept). Why a normalizer may veto a mention: a tagger's false positive is rarely a
    training mention or a concept name, so it falls through to retrieval, where it matches nothing well;
    document-level concept F1 counts every such mention as a wrong concept. The annotation pipeline
    chooses the floor on dev (:func:`mernlib.pipeline.choose_retrieval_floor`)."""
    out = []
    for doc in documents:
        kept = copy.copy(doc)
        kept.mentions = [
            m for m in doc.mentions if floor is None or m.attrs.get("retrieval_score", math.inf) >= floor
        ]
        out.append(kept)
    return out


__all__ = [
    "DenseRetriever",
    "LOOKUP_LEVELS",
    "Normalizer",
    "NormalizerConfig",
    "RETRIEVERS",
    "Resolution",
    "SAVE_FORMAT",
    "composite_parts",
    "drop_weak_mentions",
    "encode_texts",
    "lookup_keys",
    "rule_words",
    "tune_encoder",
    "tuning_key",
]
