"""Zhao et al. (AAAI 2019): the rows of Table 2, trained and scored the same way in notebooks and in
``python -m mernlib reproduce mtl``.

The pieces (used by notebooks 02-04 and by :func:`reproduce`):

* :func:`prepare` -- a corpus as labeled sentences with MER tags (BIO entity types) and MEN tags (BIO +
  concept). For BC5CDR the paper normalizes disease mentions only (``men_types={"Disease"}``); pass
  ``men_types=None`` to normalize chemicals too.
* :func:`word_vectors` -- word2vec (50-d) trained in the kit with gensim on text that holds no test split
  of an evaluated corpus (:func:`mernlib.data.embedding_training_text`), cached on disk.
* :func:`train_row` -- one row of Table 2 (a pipeline of single-task taggers, or a multi-task model with
  or without feedback), trained with :func:`mernlib.train.fit` and selected on dev.
* :func:`evaluate` -- MER and MEN scores of a trained row under two labelled protocols:

  - **paper protocol** (Zhao et al.): MER F1 = exact span and type from the MER tags; MEN F1 = exact
    span and concept from the MEN tags alone (each task's own output, scored separately);
  - **standard protocol** (the kit's): one end-to-end output -- spans and types from the MER tags, each
    span's concept voted by the MEN tags -- scored with :func:`mernlib.metrics.evaluate_documents`
    (``ner-mention-strict``, ``men-mention``, ``men-document``), which is what
    ``python -m mernlib evaluate`` recomputes from the written PubTator predictions.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..corpus import Document
from ..tags import LabeledSentence, labeled_sentences, predicted_documents

ROWS = {
    # name: (paper's row, config overrides); "pipeline" rows train one single-task tagger per task.
    "bilstm": ("Bi-LSTM (pipeline)", {"pipeline": True, "use_chars": False, "decoder": "softmax"}),
    "bilstm-crf": ("Bi-LSTM-CRF (pipeline)", {"pipeline": True, "use_chars": False, "decoder": "crf"}),
    "bilstm-cnns": ("Bi-LSTM-CNNs (pipeline)", {"pipeline": True, "use_chars": True, "decoder": "softmax"}),
    "bilstm-cnns-crf": ("Bi-LSTM-CNNs-CRF (pipeline)", {"pipeline": True}),
    "mtl": ("MTL + Bi-LSTM-CNNs-CRF", {"feedback": "none"}),
    "mtl-men-feedback": ("MTL-MEN_feedback + Bi-LSTM-CNNs-CRF", {"feedback": "men"}),
    "mtl-mer-feedback": ("MTL-MER_feedback + Bi-LSTM-CNNs-CRF", {"feedback": "mer"}),
    "mtl-both-feedback": ("MTL-MEN&MER_feedback + Bi-LSTM-CNNs-CRF", {"feedback": "both"}),
}
HEADLINE_ROW = "mtl-both-feedback"
DEFAULT_ROWS = ("bilstm-cnns-crf", "mtl", "mtl-both-feedback", "mtl-both-feedback-converged-dropout0.3")
"""What ``reproduce mtl`` (and ``make reproduce``) trains without ``--only``: the pipeline, plain MTL and the
headline row as the paper trains them, and the headline trained to convergence with the dropout dev chose,
which is the README summary's row on both corpora (``findings.md``)."""
PAPER_MEN_TYPES = {"ncbi-disease": None, "bc5cdr": {"Disease"}}
STUDIES = ("word-vectors", "men-convergence")
WITH_NORMALIZER = "with-normalizer"
"""``--only with-normalizer``: give every stored run's end-to-end test output (its MER mentions) concept
IDs from the shared normalizer instead of the MEN tags' vote (:func:`normalize_outputs`), and store the
scores in the run as ``with_normalizer`` -- the option issue 13 asks for, and the yardstick for the MEN
head: what the same mentions score when a dictionary-and-retrieval normalizer names them. New runs get it
as they are made."""
"""Dev-set studies that choose settings (never read test): ``--only word-vectors`` compares word vectors
(:func:`compare_word_vectors`), ``--only men-convergence`` measures how fast the MEN head learns under
different optimisers (:func:`men_convergence`). Written to ``results/mtl/studies/<study>-<corpus>.json``."""
CONVERGED = "-converged"
CONVERGED_TRAINING = {"optimizer": "sgd", "lr": 0.001, "epochs": 60, "patience": 6}
"""How the *converged* rows (``<row>-converged``, e.g. ``mtl-both-feedback-converged``) train, at full
scale: the paper's model, decoder and optimiser (momentum SGD, lr 0.001), trained until dev stops improving
instead of stopping at the paper's 20 epochs, where the MEN head's dev F1 still rises. Deviations from the
paper: at most 60 epochs, and the epoch count chosen on dev: stop after 6 epochs without a better dev score
(the mean of MER and MEN dev F1), keep the best epoch. At smaller scales the scale's own training is kept
(Adam), with the same patience.

Why SGD: the first converged run (stored as ``<row>-converged-seed13-full-e40``) used Adam at lr 0.001,
fixed before any dev comparison of optimisers; on NCBI-disease it plateaued at dev 0.705 (epoch 26), below
the paper's SGD at epoch 20 (0.728, still rising) -- ``results/mtl/findings.md``. Dev therefore chose the
paper's SGD trained longer; 60 epochs is three times the paper's budget, the most a full NCBI run fits in
two CPU-hours."""
CONVERGED_TRAININGS = {
    CONVERGED: CONVERGED_TRAINING,
    CONVERGED + "-dropout0.3": {**CONVERGED_TRAINING, "dropout": 0.3},
    CONVERGED + "-dropout0.3-shared-concepts": {
        **CONVERGED_TRAINING,
        "dropout": 0.3,
        "concept_descriptor_dim": 50,
    },
}
"""Every converged training by its variant suffix. ``-converged-dropout0.3`` is the same training with
dropout 0.3 instead of the paper's 0.5: the MEN convergence study (dev only, ``findings.md`` item 4) found
that the single-task MEN head learned fastest with it (dev MEN 0.405 against 0.376 after 8 epochs). Which of
the two a headline row uses is then chosen on dev, by the multi-task runs' own dev scores
(:func:`headline`), never on test. ``-converged-dropout0.3-shared-concepts`` adds the kit's answer to the
study's other finding, that concepts seen 1-5 times in training are never predicted: the MEN head's rows share
parameters through descriptors of their concepts (``MTLConfig.concept_descriptor_dim``,
:func:`concept_descriptors`), 50 numbers each, as the word vectors."""
VARIANTS = (
    tuple(ROWS)
    + tuple(row + suffix for suffix in CONVERGED_TRAININGS for row in ROWS)
    + STUDIES
    + (WITH_NORMALIZER,)
)
"""The experiment contract's names (:mod:`mernlib.experiments`): a row as the paper trains it, the same row
trained to convergence, or a study."""
DEFAULT_VARIANTS = DEFAULT_ROWS


def split_variant(variant: str) -> tuple[str, bool]:
    """``"mtl-converged"`` (or ``"mtl-converged-dropout0.3"``) -> ``("mtl", True)``; ``"mtl"`` ->
    ``("mtl", False)``."""
    row = variant
    for suffix in sorted(CONVERGED_TRAININGS, key=len, reverse=True):
        if variant.endswith(suffix):
            row = variant.removesuffix(suffix)
            break
    if row not in ROWS:
        raise ValueError(f"unknown row {variant!r}: choose one of {list(VARIANTS)}")
    return row, row != variant


def converged_training(variant: str) -> dict:
    """The training settings of a converged ``variant`` (:data:`CONVERGED_TRAININGS`); ``{}`` for a row
    trained as the paper trains it."""
    row, converged = split_variant(variant)
    return CONVERGED_TRAININGS[variant.removeprefix(row)] if converged else {}


OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}


def variant_label(variant: str, optimizers=()) -> str:
    """The paper's name of the row, with ``(converged)`` for the kit's trained-to-convergence version
    (``(converged, SGD)`` when its runs' ``optimizers`` are given: two converged trainings, one line each)."""
    row, converged = split_variant(variant)
    if not converged:
        return ROWS[row][0]
    names = [OPTIMIZER_NAMES.get(o, o) for o in sorted(set(optimizers))]
    dropout = converged_training(variant).get("dropout")
    names += [f"dropout {dropout}"] if dropout is not None else []
    names += ["shared concept rows"] if converged_training(variant).get("concept_descriptor_dim") else []
    return ROWS[row][0] + (f" (converged, {', '.join(names)})" if names else " (converged)")


TITLE = "Multi-task MER + MEN with explicit feedback (Zhao et al., AAAI 2019)"
SHORT_TITLE = "Zhao et al. 2019 (MTL + feedback)"  # the README summary table's first column
README_COLUMNS = (
    "paper_row",
    "scale",
    "epochs",
    "vectors",
    "seeds",
    "mer_f1_paper_protocol",
    "men_f1_paper_protocol",
    "paper_mer_f1",
    "paper_men_f1",
    "ner_f1_standard",
    "men_mention_f1_standard",
    "men_document_f1_standard",
    "men_document_f1_with_normalizer",
    "commits",
)


@dataclass
class MTLData:
    """A corpus as the taggers see it: per split the documents, labeled sentences, words and tags."""

    corpus: str
    documents: dict[str, list[Document]]
    sentences: dict[str, list[LabeledSentence]]
    men_types: set | None
    words: dict[str, list[list[str]]] = field(default_factory=dict)
    tags: dict[str, dict[str, list[list[str]]]] = field(default_factory=dict)

    def __post_init__(self):
        for split, items in self.sentences.items():
            self.words[split] = [x.words for x in items]
            self.tags[split] = {
                "mer": [x.ner_tags() for x in items],
                "men": [x.concept_tags(types=self.men_types) for x in items],
            }

    @property
    def men_type(self) -> str:
        """The type given to mentions decoded from MEN tags alone (paper protocol)."""
        return next(iter(self.men_types)) if self.men_types and len(self.men_types) == 1 else "Disease"


def prepare(
    corpus: str = "sample", data_dir=None, men_types="paper", max_sentences: int | None = None
) -> MTLData:
    """Load ``corpus`` and tag every sentence for both tasks.

    ``men_types="paper"`` follows the paper (BC5CDR: diseases only); ``None`` normalizes every type.
    ``max_sentences`` caps each split (for smoke runs), keeping whole documents in order.
    """
    from ..data import load_corpus

    if men_types == "paper":
        men_types = PAPER_MEN_TYPES.get(corpus)
    documents = load_corpus(corpus, data_dir=data_dir)
    sentences = {}
    for split, docs in documents.items():
        items = labeled_sentences(docs)
        if max_sentences is not None and len(items) > max_sentences:
            keep = {id(x.document) for x in items[:max_sentences]}
            documents[split] = [d for d in docs if id(d) in keep]
            items = [x for x in items if id(x.document) in keep]
        sentences[split] = items
    return MTLData(corpus, documents, sentences, set(men_types) if men_types else None)


# --------------------------------------------------------------------------------------------------
# Word vectors


def word_vectors(
    corpus: str = "sample",
    data_dir=None,
    dim: int = 50,
    seed: int = 13,
    epochs: int = 5,
    sg: int = 1,
    window: int = 5,
    min_count: int = 1,
):
    """word2vec vectors trained in the kit (gensim, ``workers=1`` for determinism), cached on disk.

    ``sg=0`` is CBOW, ``sg=1`` skip-gram. The defaults are what dev chose: skip-gram 50-d had the best dev
    MER F1 of :data:`WORD_VECTOR_CHOICES` on NCBI (0.851, against 0.824 for the CBOW 50-d vectors the first
    rows used; ``results/mtl/studies/word-vectors-ncbi-disease.json``). The training text never holds a
    test split of any corpus (:func:`mernlib.data.embedding_training_text`). Returns ``(KeyedVectors, info)``
    and ``info["name"]`` says which vectors in a few words (``"skip-gram 50-d"``).
    """
    from gensim.models import KeyedVectors

    from ..data import embedding_training_text
    from ..embeddings import train_word2vec
    from ..paths import cache_dir

    kind = "sample" if corpus == "sample" else "real"
    identity = [kind, dim, seed, epochs, 1]
    if (sg, window, min_count) != (0, 5, 1):  # the first vectors' key stays what it was
        identity += [sg, window, min_count]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:12]
    cache = cache_dir("word2vec")
    path = cache / f"{kind}-{dim}d-{key}.kv"
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        return KeyedVectors.load(str(path)), {"name": vectors_name(sg, dim)} | json.loads(
            info_path.read_text()
        )
    started = time.time()
    sentences, sources = embedding_training_text(corpus, data_dir)
    vectors = train_word2vec(
        sentences, dim=dim, seed=seed, epochs=epochs, workers=1, sg=sg, window=window, min_count=min_count
    )
    info = {
        "name": vectors_name(sg, dim),
        "method": f"word2vec {vectors_name(sg, dim)}, window {window}, min_count {min_count}, {epochs} epochs, "
        f"seed {seed} (gensim)",
        "settings": {"sg": sg, "dim": dim, "window": window, "min_count": min_count, "epochs": epochs},
        "sentences": len(sentences),
        "tokens": sum(len(s) for s in sentences),
        "vocabulary": len(vectors.key_to_index),
        "sources": sources,
        "seconds": round(time.time() - started, 1),
    }
    cache.mkdir(parents=True, exist_ok=True)
    vectors.save(str(path))
    info_path.write_text(json.dumps(info, indent=2))
    return vectors, info


def vectors_name(sg: int, dim: int) -> str:
    """``"skip-gram 50-d"`` / ``"CBOW 50-d"``: which word2vec vectors, as run keys and tables name them."""
    return f"{'skip-gram' if sg else 'CBOW'} {dim}-d"


DEFAULT_VECTORS = "skip-gram 50-d"
"""What :func:`word_vectors`' defaults give (chosen on dev), and so what ``reproduce`` trains on."""

FIRST_VECTORS = "CBOW 50-d"
"""The vectors of the first stored rows. Their output files keep their names (``<row>-seed<S>``); runs
on other vectors add the vectors to the name (:func:`output_stem`)."""


def vectors_encoder(name: str) -> str:
    """The ``encoder`` a run on the word vectors ``name`` records (part of its run key)."""
    return f"Bi-LSTM-CNNs (word2vec {name} trained in the kit)"


WORD_VECTOR_CHOICES: dict[str, dict | None] = {
    "random init (no pretrained vectors)": None,
    "CBOW 50-d, 5 epochs (the first kit vectors)": {"sg": 0, "dim": 50, "epochs": 5},
    "skip-gram 50-d, 5 epochs": {"sg": 1, "dim": 50, "epochs": 5},
    "skip-gram 100-d, 10 epochs": {"sg": 1, "dim": 100, "epochs": 10},
    "skip-gram 200-d, 10 epochs": {"sg": 1, "dim": 200, "epochs": 10},
}
"""The word vectors compared on dev (:func:`compare_word_vectors`), as Zhao et al.'s Table 4 compares
pretrained embeddings; all trained in the kit on every non-test split of the corpora."""

WORD_VECTOR_PROBE = {"optimizer": "adam", "lr": 0.002, "epochs": 6, "batch_size": 32}
"""How each set of vectors is judged: a Bi-LSTM-CNNs-CRF MER tagger (the paper's network) trained with
Adam for a few epochs, its best dev F1. Cheap enough to try several vectors; MER is where word vectors act
most directly (MEN tags sit on the same representation)."""


def compare_word_vectors(
    corpus: str = "ncbi-disease",
    data_dir=None,
    seed: int = 13,
    choices: dict | None = None,
    probe: dict | None = None,
    progress: bool = False,
    max_sentences: int | None = None,
) -> list[dict]:
    """Dev MER F1 of a tagger on each set of word vectors in ``choices`` (name -> :func:`word_vectors`
    settings, ``None`` for random rows), nearest neighbours of a few words, and coverage. Test is never
    read; the best row is what the full runs use."""
    from ..embeddings import embedding_matrix, nearest_neighbours
    from ..models.mtl_feedback import MultiTaskTagger
    from ..train import fit

    data = prepare(corpus, data_dir, max_sentences=max_sentences)
    rows = []
    for name, settings in (choices or WORD_VECTOR_CHOICES).items():
        started = time.time()
        vectors, info = (
            (None, None) if settings is None else word_vectors(corpus, data_dir, seed=seed, **settings)
        )
        dim = vectors.vector_size if vectors is not None else 50
        config = row_config(
            "bilstm-cnns-crf",
            tasks=("mer",),
            feedback="none",
            seed=seed,
            word_dim=dim,
            **(probe or WORD_VECTOR_PROBE),
        )
        model = MultiTaskTagger.build(
            config,
            data.words["train"],
            {"mer": data.tags["train"]["mer"]},
            keyed_vectors=vectors,
            extra_words=_vector_words(vectors, data),
        )

        def dev_f1(m):
            combined, _ = decode_predictions(data, "dev", m.predict_tags(data.words["dev"]))
            return paper_protocol(data, "dev", combined, None)["mer"]["f1"]

        result = fit(
            model,
            {
                "mer": lambda g, m=model: m.make_batches(
                    data.words["train"], {"mer": data.tags["train"]["mer"]}, shuffle=True, generator=g
                )
            },
            config,
            dev_eval_fn=dev_f1,
            progress=progress,
        )
        row = {
            "vectors": name,
            "settings": settings,
            "dev_mer_f1": round(result.best_score, 4),
            "best_epoch": result.best_epoch,
            "dev_mer_f1_by_epoch": [round(h["dev"], 4) for h in result.history],
            "seconds": round(time.time() - started, 1),
        }
        if vectors is not None:
            _, coverage = embedding_matrix(model.vocab, vectors, dim=dim, seed=seed)
            row["vocabulary"] = info["vocabulary"]
            row["training_tokens"] = info["tokens"]
            row["coverage"] = round(coverage.found, 4)
            row["neighbours"] = {
                w: [n for n, _ in nearest_neighbours(vectors, w, 5)]
                for w in ("cirrhosis", "cancer", "seizures")
                if w in vectors.key_to_index
            }
        rows.append(row)
    return rows


MEN_CONVERGENCE_SETTINGS: dict[str, dict] = {
    "paper: SGD lr 0.001, momentum 0.9, dropout 0.5": {},
    "Adam lr 0.001, dropout 0.5": {"optimizer": "adam", "lr": 0.001},
    "Adam lr 0.003, dropout 0.5": {"optimizer": "adam", "lr": 0.003},
    "Adam lr 0.001, dropout 0.3": {"optimizer": "adam", "lr": 0.001, "dropout": 0.3},
    "SGD, dropout 0.3": {"dropout": 0.3},
    "SGD, emission bias = log tag prior": {"emission_prior_init": True},
    "SGD, softmax (no transitions)": {"decoder": "softmax"},
}
"""What :func:`men_convergence` compares, each a change of the paper's settings (the first row): the
optimiser (Adam at two rates), dropout, the head's initialisation (``MTLConfig.emission_prior_init``) and
the transitions (a softmax per token has none; the default factorised CRF has O(L) of them, the paper's
dense one L^2 = 1.5 million on NCBI's 1,230 MEN tags). The dense CRF is left out for its cost, not its
training: per batch of 32 sentences its loss and backward take 0.34 CPU-s against 0.05, but its exact
Viterbi 10 CPU-s against 0.015, about 5 CPU-minutes for each of the study's 8 dev evaluations
(``benchmarks/bench_crf.py``)."""


def men_convergence(
    corpus: str = "ncbi-disease",
    data_dir=None,
    seed: int = 13,
    epochs: int = 8,
    settings: dict | None = None,
    progress: bool = False,
    max_sentences: int | None = None,
) -> dict:
    """Why the MEN head learns slowly, measured on dev: a single-task MEN tagger (the pipeline's) trained
    for ``epochs`` under each of ``settings``, its dev MEN F1 and training loss per epoch; and, for the
    best setting's model, dev MEN recall by how often the gold concept occurs in training (seen once,
    2-5 times, more, never) -- a concept tagger can only learn what it sees, and many concepts are rare."""
    from collections import Counter

    from ..corpus import split_concept
    from ..models.mtl_feedback import MultiTaskTagger
    from ..train import fit

    data = prepare(corpus, data_dir, max_sentences=max_sentences)
    vectors, info = word_vectors(corpus, data_dir, seed=seed)
    curves, best = {}, (None, -1.0, None)
    for name, overrides in (settings or MEN_CONVERGENCE_SETTINGS).items():
        config = row_config(
            "bilstm-cnns-crf",
            tasks=("men",),
            feedback="none",
            seed=seed,
            epochs=epochs,
            word_dim=vectors.vector_size,
            **overrides,
        )
        model = MultiTaskTagger.build(
            config,
            data.words["train"],
            {"men": data.tags["train"]["men"]},
            keyed_vectors=vectors,
            extra_words=_vector_words(vectors, data),
        )

        def dev_f1(m):
            _, men_only = decode_predictions(data, "dev", m.predict_tags(data.words["dev"]))
            return paper_protocol(data, "dev", None, men_only)["men"]["f1"]

        started = time.time()
        result = fit(
            model,
            {
                "men": lambda g, m=model: m.make_batches(
                    data.words["train"], {"men": data.tags["train"]["men"]}, shuffle=True, generator=g
                )
            },
            config,
            dev_eval_fn=dev_f1,
            selection="last",
            progress=progress,
        )
        curves[name] = {
            "overrides": overrides,
            "dev_men_f1": [round(h["dev"], 4) for h in result.history],
            "loss": [round(h["loss"]["men"], 3) for h in result.history],
            "seconds": round(time.time() - started, 1),
        }
        if result.history[-1]["dev"] > best[1]:
            best = (name, result.history[-1]["dev"], model)
    # recall by training frequency of the gold concept, for the best setting
    freq = Counter(
        cid for d in data.documents["train"] for m in d.mentions for cid in split_concept(m.concept)
    )
    _, men_only = decode_predictions(data, "dev", best[2].predict_tags(data.words["dev"]))
    predicted = {(d.uid, m.start, m.end, m.concept) for d in men_only for m in d.mentions}
    buckets: dict[str, list[int]] = {}
    for d in data.documents["dev"]:
        for m in d.mentions:
            if not split_concept(m.concept):
                continue
            n = min(freq[c] for c in split_concept(m.concept))
            bucket = "never" if n == 0 else "once" if n == 1 else "2-5 times" if n <= 5 else "more than 5"
            buckets.setdefault(bucket, []).append((d.uid, m.start, m.end, m.concept) in predicted)
    by_frequency = {
        b: {"mentions": len(v), "recall": round(sum(v) / len(v), 4)}
        for b, v in sorted(
            buckets.items(), key=lambda kv: ["never", "once", "2-5 times", "more than 5"].index(kv[0])
        )
    }
    return {
        "curves": curves,
        "best": best[0],
        "dev_recall_by_training_frequency": by_frequency,
        "word_vectors": info["method"],
    }


def run_study(
    study: str,
    corpus: str,
    *,
    data_dir=None,
    seed: int = 13,
    results_dir=Path("results"),
    progress: bool = True,
) -> Path:
    """Run one of :data:`STUDIES` on dev and write ``results_dir/mtl/studies/<study>-<corpus>.json``."""
    from ..report import run_record, write_json

    started = time.time()
    if study == "word-vectors":
        result = {
            "rows": compare_word_vectors(corpus, data_dir, seed=seed, progress=progress),
            "probe": WORD_VECTOR_PROBE,
        }
    elif study == "men-convergence":
        result = men_convergence(corpus, data_dir, seed=seed, progress=progress)
    else:
        raise ValueError(f"unknown study {study!r}: choose one of {STUDIES}")
    result = {
        "study": study,
        "corpus": corpus,
        "split": "dev",
        **result,
        "provenance": run_record(seed=seed, scale="full", encoder=None, started=started),
    }
    return write_json(result, Path(results_dir) / "mtl" / "studies" / f"{study}-{corpus}.json")


def men_ceiling(data: MTLData, split: str = "test", seen_splits=("train",)) -> dict:
    """How much of ``split``'s normalization a tagger trained on ``seen_splits`` can get right at best.

    The MEN head tags ``B-<concept>``/``I-<concept>`` for the concepts its training data contains, so a
    gold mention whose concept never occurs there cannot be normalized: recall is at most the share of
    mentions with a seen concept, and F1 at most ``2R / (1 + R)`` (perfect precision). The normalized
    types only (``data.men_types``) and mentions with an ID.
    """
    seen = {
        tag[2:] for sp in seen_splits for sentence in data.tags[sp]["men"] for tag in sentence if tag != "O"
    }
    gold = [
        m
        for d in data.documents[split]
        for m in d.mentions
        if m.ids and (data.men_types is None or m.type in data.men_types)
    ]
    covered = sum(m.concept in seen for m in gold)
    recall = covered / len(gold) if gold else 0.0
    return {
        "split": split,
        "seen_splits": list(seen_splits),
        "mentions": len(gold),
        "concept_seen": covered,
        "max_recall": round(recall, 4),
        "max_f1": round(2 * recall / (1 + recall), 4) if gold else 0.0,
    }


# --------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainedRow:
    """A trained row: one multi-task model, or one single-task model per task (pipeline)."""

    row: str
    models: dict  # task -> MultiTaskTagger (the same object for both tasks of a multi-task row)
    histories: dict  # task or "mtl" -> FitResult.history
    seconds: float

    def predict_tags(self, words: list[list[str]]) -> dict[str, list[list[str]]]:
        out = {}
        for model in {id(m): m for m in self.models.values()}.values():
            out.update(model.predict_tags(words))
        return out


def row_config(row: str, base=None, **overrides):
    """The :class:`~mernlib.models.mtl_feedback.MTLConfig` of a Table 2 row (pipeline rows: the MER one)."""
    from ..models.mtl_feedback import get_default_config

    _, settings = ROWS[row]
    settings = {k: v for k, v in settings.items() if k != "pipeline"}
    config = base or get_default_config()
    return replace(config, **{**settings, **overrides})


def scale_config(row: str, scale: str = "quick", **overrides):
    """The config of ``row`` at ``scale`` (:data:`mernlib.experiments.SCALES`), then ``overrides``: what
    the notebooks and :func:`reproduce` both train. ``row`` may be a converged variant
    (:data:`CONVERGED_TRAININGS`)."""
    from . import scale_settings

    training = converged_training(row)
    if training and scale != "full":  # smaller scales keep their own training (same patience, model)
        training = {
            k: v for k, v in training.items() if k in ("patience", "dropout", "concept_descriptor_dim")
        }
    row = split_variant(row)[0]
    return row_config(row, **{**scale_settings("mtl", scale)["config"], **training, **overrides})


def train_row(row: str, data: MTLData, config=None, vectors=None, progress: bool = True) -> TrainedRow:
    """Train one row of Table 2 on ``data['train']``, selecting the epoch on dev.

    Dev score (for selection): the mean of the paper-protocol MER and MEN F1 of the tasks the model has;
    every epoch's record keeps each task's dev F1 too (``history[i]["dev_scores"]``).
    """
    from ..models.mtl_feedback import MultiTaskTagger
    from ..train import fit

    started = time.time()
    row = split_variant(row)[0]  # a converged variant is the same row; its training is in ``config``
    pipeline = ROWS[row][1].get("pipeline", False)
    config = row_config(row, config)
    words = data.words["train"]
    dev_words = data.words["dev"]
    task_sets = [("mer",), ("men",)] if pipeline else [("mer", "men")]
    models, histories = {}, {}
    for tasks in task_sets:
        cfg = replace(config, tasks=tasks, feedback="none" if pipeline else config.feedback)
        descriptors = None
        if cfg.concept_descriptor_dim and "men" in tasks:
            if vectors is None or vectors.vector_size != cfg.concept_descriptor_dim:
                size = None if vectors is None else vectors.vector_size
                raise ValueError(
                    f"shared concept rows need word vectors of {cfg.concept_descriptor_dim} dims, not {size}"
                )
            descriptors = concept_descriptors(data, vectors)
        model = MultiTaskTagger.build(
            cfg,
            words,
            {t: data.tags["train"][t] for t in tasks},
            keyed_vectors=vectors,
            extra_words=_vector_words(vectors, data),
            concept_descriptors=descriptors,
        )
        train_data = {
            t: (
                lambda g, t=t, m=model: m.make_batches(
                    words, {t: data.tags["train"][t]}, shuffle=True, generator=g
                )
            )
            for t in tasks
        }

        def dev_score(m, tasks=tasks):
            scores = paper_protocol(data, "dev", *decode_predictions(data, "dev", m.predict_tags(dev_words)))
            per_task = {f"{t}_f1": scores[t]["f1"] for t in tasks}
            return {"score": sum(per_task.values()) / len(tasks), **per_task}

        result = fit(model, train_data, cfg, dev_eval_fn=dev_score, progress=progress)
        for t in tasks:
            models[t] = model
        histories["+".join(tasks)] = result.history
    return TrainedRow(row, models, histories, time.time() - started)


def concept_descriptors(data: MTLData, vectors) -> dict:
    """Concept ID -> the mean word vector of the words of its training mentions (every part of a composite
    ``a|b`` mention counts for ``a`` and for ``b``): what :class:`~mernlib.models.mtl_feedback.ConceptSharedLinear`
    shares the MEN head's rows through. Words without a vector (as is, or lower-cased) are left out; a
    concept none of whose words has one gets no descriptor (its rows stay free). Only training text is read.
    Returns concept ID -> ``torch.Tensor``."""
    import re

    import numpy as np
    import torch

    words_of: dict[str, list[str]] = {}
    for document in data.documents["train"]:
        for mention in document.mentions:
            if not mention.concept or (data.men_types is not None and mention.type not in data.men_types):
                continue
            for cid in mention.concept.split("|"):
                words_of.setdefault(cid, []).extend(re.findall(r"\w+", mention.text))
    out = {}
    for cid, words in words_of.items():
        found = [w if w in vectors.key_to_index else w.lower() for w in words]
        rows = [vectors[w] for w in found if w in vectors.key_to_index]
        if rows:
            out[cid] = torch.tensor(np.mean(rows, axis=0), dtype=torch.float32)
    return out


def _vector_words(vectors, data: MTLData) -> list[str]:
    """Words of dev/test that have a pretrained vector: they get their own embedding row instead of
    UNK (the usual practice; their vectors come from unlabeled text, never from test labels)."""
    if vectors is None:
        return []
    seen = {w for split in ("dev", "test") for s in data.words.get(split, []) for w in s}
    return sorted(w for w in seen if w in vectors.key_to_index or w.lower() in vectors.key_to_index)


# --------------------------------------------------------------------------------------------------
# Evaluation


def decode_predictions(data: MTLData, split: str, tags: dict[str, list[list[str]]]):
    """Predicted documents: the standard end-to-end output, and the MEN-tags-only output (paper)."""
    items = data.sentences[split]
    combined = None
    if "mer" in tags:
        men_tags = tags.get("men", [None] * len(items))
        combined = [
            x.decode(ner_tags=mer, concept_tags=men)
            for x, mer, men in zip(items, tags["mer"], men_tags, strict=True)
        ]
    if combined is not None and data.men_types is not None:  # concepts only for the normalized types
        for mentions in combined:
            for m in mentions:
                if m.type not in data.men_types:
                    m.concept = ""
    men_only = (
        [
            x.decode(concept_tags=t, mention_type=data.men_type)
            for x, t in zip(items, tags["men"], strict=True)
        ]
        if "men" in tags
        else None
    )
    return (
        predicted_documents(items, combined) if combined is not None else None,
        predicted_documents(items, men_only) if men_only is not None else None,
    )


def paper_protocol(data: MTLData, split: str, combined: list[Document], men_only: list[Document]) -> dict:
    """MER F1 from the MER output (span + type), MEN F1 from the MEN tags' output alone (span + concept IDs)."""
    from ..metrics import men_mention_prf, ner_prf

    gold = data.documents[split]
    out = {}
    if combined is not None:
        out["mer"] = ner_prf(gold, combined).as_dict()
    if men_only is not None:
        out["men"] = men_mention_prf(gold, men_only, types=data.men_types).as_dict()
    return out


def evaluate(trained: TrainedRow, data: MTLData, split: str = "test") -> dict:
    """Both protocols on ``split``, plus the boundary inconsistency between the MER and MEN outputs."""
    tags = trained.predict_tags(data.words[split])
    combined, men_only = decode_predictions(data, split, tags)
    return score_outputs(data, split, combined, men_only)


def score_outputs(data: MTLData, split: str, combined: list[Document], men_only: list[Document]) -> dict:
    """:func:`evaluate` for outputs already made: a model's, or those a reproduction stored
    (:func:`stored_outputs`). ``combined`` is the end-to-end output (MER spans with voted concepts),
    ``men_only`` the MEN tags' own output."""
    from ..metrics import boundary_inconsistency

    standard = standard_scores(data, split, combined)
    mer_spans = [
        (d.uid, m.start, m.end)
        for d in combined
        for m in d.mentions
        if data.men_types is None or m.type in data.men_types
    ]
    men_spans = [(d.uid, m.start, m.end) for d in men_only for m in d.mentions]
    return {
        "paper_protocol": paper_protocol(data, split, combined, men_only),
        "standard_protocol": standard,
        "boundary_inconsistency": boundary_inconsistency(mer_spans, men_spans),
        "_predictions": {"combined": combined, "men_tags": men_only},
    }


def standard_scores(data: MTLData, split: str, documents: list[Document]) -> dict:
    """The standard protocol's scores of end-to-end output (:func:`mernlib.metrics.evaluate_documents`),
    normalization scored on the normalized types only (``data.men_types``)."""
    from ..metrics import evaluate_documents, men_document_prf, men_mention_prf

    gold = data.documents[split]
    standard = evaluate_documents(gold, documents)["protocols"]
    if data.men_types is not None:
        for name, prf in (("men-mention", men_mention_prf), ("men-document", men_document_prf)):
            standard[name] = {
                **prf(gold, documents, types=data.men_types).as_dict(),
                "types": sorted(data.men_types),
            }
    return standard


def test_normalizer(data: MTLData, data_dir=None, settings: dict | None = None):
    """The shared normalizer (:class:`mernlib.normalize.Normalizer`, its defaults updated by ``settings``,
    the scale's ``"normalizer"``) fitted as for a test run: on the train and dev documents, with the
    corpus's entity base."""
    from ..data import load_corpus_entity_base
    from ..normalize import Normalizer, NormalizerConfig

    base = load_corpus_entity_base(data.corpus, data_dir)
    config = NormalizerConfig(**({"progress": False} | (settings or {})))
    return Normalizer(config).fit(data.documents["train"] + data.documents["dev"], base)


def normalize_outputs(data: MTLData, combined: list[Document], normalizer) -> list[Document]:
    """Copies of end-to-end output whose mentions take the normalizer's concept IDs instead of the MEN
    tags' vote (mentions of types that are not normalized, ``data.men_types``, get none)."""
    named = normalizer.normalize(combined)
    for document in named:
        for m in document.mentions:
            if data.men_types is not None and m.type not in data.men_types:
                m.concept = ""
    return named


def with_normalizer(data: MTLData, combined: list[Document], normalizer, stem: Path) -> dict:
    """``run["with_normalizer"]``: the standard scores of ``combined`` renamed by ``normalizer``
    (:func:`normalize_outputs`), its PubTator file (``<stem>.normalizer.pubtator``) and what the
    normalizer was."""
    from ..pubtator import write_pubtator
    from ..report import run_record

    started = time.time()
    named = normalize_outputs(data, combined, normalizer)
    path = write_pubtator(named, output_file(stem, "normalizer"), texts=False)
    described = normalizer.describe()
    return {
        "label": "MER mentions of the run, concept IDs from the shared normalizer (fitted on train + dev)",
        "standard_protocol": standard_scores(data, "test", named),
        "predictions": str(path),
        "normalizer": {k: described[k] for k in ("abbreviation_detector", "retriever", "surface_forms")},
        # the commit and command of this renaming (which may come later than the run: --only with-normalizer)
        "provenance": run_record(
            seed=normalizer.config.seed, encoder=described["retriever"], started=started
        ),
    }


def add_normalizer_scores(
    corpus: str, *, data_dir=None, results_dir=Path("results"), scale: str = "full"
) -> Path:
    """``--only with-normalizer``: :func:`with_normalizer` for every run stored in
    ``results_dir/mtl/<corpus>.json`` (from its stored end-to-end PubTator), written back into each run.
    ``scale`` says which normalizer (its ``"normalizer"`` settings), not which runs: all are done."""
    from ..pubtator import read_predictions
    from ..results import result_path
    from . import scale_settings

    path = result_path(results_dir, "mtl", corpus)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no stored MTL runs of {corpus} to normalize")
    stored = json.loads(path.read_text(encoding="utf-8"))
    runs = [upgrade_run(r) for r in stored["runs"].values()]
    data = prepare(corpus, data_dir)
    normalizer = test_normalizer(data, data_dir, scale_settings("mtl", scale).get("normalizer"))
    for run in runs:
        combined_file = Path(run["predictions"]["combined"])
        stem = combined_file.with_name(combined_file.name.removesuffix(OUTPUT_SUFFIXES["combined"]))
        combined, _ = read_predictions(combined_file, data.documents["test"])
        run["with_normalizer"] = with_normalizer(data, combined, normalizer, stem)
        store_run(results_dir, corpus, run)
    return path


def store_run(results_dir, corpus: str, run: dict) -> Path:
    """Add ``run`` to ``results_dir/mtl/<corpus>.json`` (+ CSV) and recompute the summary, the paper's
    numbers beside ours (:func:`mernlib.results.add_run`)."""
    from .. import reference
    from ..results import add_run, result_path

    paper = reference.load("zhao2019")
    header = {"experiment": "mtl", "paper": paper["citation"], "corpus": corpus}
    return add_run(
        result_path(results_dir, "mtl", corpus),
        run,
        header=header,
        summarize=lambda runs: summarize(runs, paper.get(corpus, {})),
        upgrade=upgrade_run,
    )


def stored_outputs(
    corpus: str,
    row: str,
    seed: int = 13,
    results_dir=Path("results"),
    scale: str = "full",
    epochs: int = 20,
    data_dir=None,
    vectors: str = DEFAULT_VECTORS,
):
    """The test-set outputs a reproduction run stored for ``row`` and ``seed`` (``combined``,
    ``men_tags``), read back from its stand-off PubTator files with the texts of ``corpus``'s test set
    (found in ``data_dir``, else ``MERNLIB_DATA``); ``None`` when that run has not been made. ``vectors``:
    the run's word vectors (:func:`vectors_name`; :data:`FIRST_VECTORS` for the first stored rows).

    This is how the error-analysis notebook studies the very models of the results table without
    training them again.
    """
    from ..data import load_corpus
    from ..pubtator import read_predictions

    stem = Path(results_dir) / "mtl" / corpus / output_stem(row, seed, scale, epochs, vectors=vectors)
    files = {
        "combined": output_file(stem, "combined"),
        "men_tags": output_file(stem, "men_tags"),
    }
    if not all(f.exists() for f in files.values()):
        return None
    gold = load_corpus(corpus, "test", data_dir)
    return {name: read_predictions(f, gold)[0] for name, f in files.items()}


def oov_subset_scores(
    data: MTLData, split: str, combined: list[Document], men_only: list[Document], embedding_vocab
) -> dict:
    """F1 of the MER and MEN outputs on the IV / OOTV / OOEV / OOBV test entities (Zhao et al., Tables 6-7).

    The training vocabulary is the words of ``data``'s train split, the embedding vocabulary the words
    that have a vector; comparisons are lowercased (:func:`mernlib.metrics.oov_partition`).
    """
    from ..metrics import OOV_SUBSETS, oov_partition, prf_on_subset

    training_vocab = {w for s in data.words["train"] for w in s}
    gold_mentions, entities = [], []
    for x in data.sentences[split]:
        for m in x.mentions:
            gold_mentions.append((x.document.uid, m))
            entities.append([t.text for t in x.sentence.tokens if m.start <= t.start and t.end <= m.end])
    subsets = oov_partition(entities, training_vocab, set(embedding_vocab))
    gold_docs = {d.uid: d for d in data.documents[split]}

    def keys(docs, task):
        out = set()
        for d in docs:
            uid = gold_docs[d.uid].uid if d.uid in gold_docs else d.uid
            for m in d.mentions:
                out.add(
                    (uid, m.start, m.end, m.type)
                    if task == "mer"
                    else (uid, m.start, m.end, frozenset(m.ids))
                )
        return out

    normalized = data.men_types
    gold = {
        "mer": {(u, m.start, m.end, m.type) for u, m in gold_mentions},
        "men": {
            (u, m.start, m.end, frozenset(m.ids))
            for u, m in gold_mentions
            if m.ids and (normalized is None or m.type in normalized)
        },
    }
    pred = {"mer": keys(combined, "mer"), "men": keys(men_only, "men")}
    out = {}
    for name in OOV_SUBSETS:
        chosen = [gold_mentions[i] for i in subsets[name]]
        out[name] = {"entities": len(chosen)}
        for task in ("mer", "men"):
            subset = {
                (u, m.start, m.end, m.type) if task == "mer" else (u, m.start, m.end, frozenset(m.ids))
                for u, m in chosen
            }
            out[name][task] = prf_on_subset(gold[task], pred[task], subset & gold[task]).as_dict()
    return out


# --------------------------------------------------------------------------------------------------
# Reproduction


def reproduce(
    corpus: str,
    *,
    data_dir=None,
    seed: int = 13,
    scale: str = "full",
    epochs: int | None = None,
    only=None,
    results_dir=Path("results"),
    progress: bool = True,
    **overrides,
) -> list[Path]:
    """Train the Table 2 rows ``only`` (default :data:`DEFAULT_ROWS`) on ``corpus`` at ``scale`` and add
    each as a run to ``results_dir/mtl/<corpus>.json`` (+ CSV), with its test outputs as stand-off
    PubTator files (annotation lines alone: :func:`mernlib.pubtator.read_predictions`) beside it (``<corpus>/<row>-seed<S>.pubtator`` end to end, ``.men-tags.pubtator`` the MEN tags alone;
    a run at another scale or epoch count than the committed one adds ``-<scale>-e<epochs>`` to the name).

    Results accumulate: another seed or row adds to the file (:func:`mernlib.results.add_run`), so the
    spread over seeds is computed from every seed run so far. ``overrides`` are MTLConfig fields.
    """
    from ..pubtator import write_pubtator
    from ..report import run_record
    from . import scale_settings

    settings = scale_settings("mtl", scale)
    data = prepare(corpus, data_dir, max_sentences=settings["max_sentences"])
    vectors, vector_info = word_vectors(corpus, data_dir, seed=seed)
    encoder = vectors_encoder(vector_info["name"])
    written = []
    normalizer = None  # the shared normalizer, fitted once (train + dev) when the first run needs it
    for row in only or DEFAULT_ROWS:
        if row == WITH_NORMALIZER:
            written.append(
                add_normalizer_scores(corpus, data_dir=data_dir, results_dir=results_dir, scale=scale)
            )
            continue
        if row in STUDIES:
            written.append(
                run_study(
                    row, corpus, data_dir=data_dir, seed=seed, results_dir=results_dir, progress=progress
                )
            )
            continue
        started = time.time()
        config = scale_config(
            row,
            scale,
            seed=seed,
            word_dim=vectors.vector_size,
            **({"epochs": epochs} if epochs else {}),
            **overrides,
        )
        trained = train_row(row, data, config, vectors, progress=progress)
        scores = evaluate(trained, data, "test")
        predictions = scores.pop("_predictions")
        stem = (
            Path(results_dir)
            / "mtl"
            / corpus
            / output_stem(row, seed, scale, config.epochs, epochs is None, vectors=vector_info["name"])
        )
        files = {
            "combined": write_pubtator(predictions["combined"], output_file(stem, "combined"), texts=False),
            "men_tags": write_pubtator(predictions["men_tags"], output_file(stem, "men_tags"), texts=False),
        }
        run = {
            "variant": row,
            "seed": seed,
            "scale": scale,
            "epochs": config.epochs,
            "encoder": encoder,
            "row": split_variant(row)[0],
            "paper_row": variant_label(row),
            "training": "converged" if split_variant(row)[1] else "paper",
            "test": scores,
            "dev_best": {
                k: max((h["dev"] for h in hist if h["dev"] is not None), default=None)
                for k, hist in trained.histories.items()
            },
            "epochs_run": {k: len(h) for k, h in trained.histories.items()},
            "best_epoch": {
                k: max(h, key=lambda e: e["dev"] or -1)["epoch"] for k, h in trained.histories.items()
            },
            "history": trained.histories,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()},
            "men_types": sorted(data.men_types) if data.men_types else "all",
            "word_vectors": vector_info,
            "predictions": {name: str(path) for name, path in files.items()},
            "with_normalizer": None,
            "rescore": (
                f"python -m mernlib evaluate --gold <{corpus} test file> --pred {files['combined']}"
                + (
                    f" --types {' '.join(sorted(data.men_types))}  (normalization scores)"
                    if data.men_types
                    else ""
                )
            ),
            "provenance": run_record(seed=seed, scale=scale, encoder=encoder, started=started),
        }
        if normalizer is None:
            normalizer = test_normalizer(data, data_dir, settings.get("normalizer"))
        run["with_normalizer"] = with_normalizer(data, predictions["combined"], normalizer, stem)
        written.append(store_run(results_dir, corpus, run))
    return written


OUTPUT_SUFFIXES = {
    "combined": ".pubtator",
    "men_tags": ".men-tags.pubtator",
    "normalizer": ".normalizer.pubtator",
}
"""The stored prediction files of a run, by what they hold: end to end, the MEN tags alone, and the MER
mentions named by the shared normalizer."""


def output_file(stem: Path, kind: str) -> Path:
    """``<stem><suffix>`` for ``kind`` in :data:`OUTPUT_SUFFIXES`. Appended to the name, never through
    ``Path.with_suffix``, which would cut a stem with a dot in it (``...-dropout0.3``)."""
    return stem.with_name(stem.name + OUTPUT_SUFFIXES[kind])


def output_stem(
    row: str,
    seed: int,
    scale: str = "full",
    epochs: int = 20,
    default_epochs: bool | None = None,
    vectors: str = FIRST_VECTORS,
) -> str:
    """``<row>-seed<S>`` for the committed configuration (full scale, the variant's own epoch count:
    20, or :data:`CONVERGED_TRAINING`'s for a converged row), else with ``-<scale>-e<epochs>`` added, so
    runs of other configurations never overwrite its outputs; ``-<vectors>`` (``-skip-gram-50d``) is added
    for word vectors other than :data:`FIRST_VECTORS`. ``default_epochs``: whether ``epochs`` is the
    variant's own (``None``: compare with it)."""
    if default_epochs is None:
        default_epochs = epochs == converged_training(row).get("epochs", 20)
    committed = scale == "full" and default_epochs
    stem = f"{row}-seed{seed}" if committed else f"{row}-seed{seed}-{scale}-e{epochs}"
    if vectors != FIRST_VECTORS:
        stem += "-" + vectors.replace(" ", "-").replace("-d", "d")
    return stem


LEGACY_ENCODER = "Bi-LSTM-CNNs (word2vec 50-d trained in the kit)"
"""The ``encoder`` the first runs recorded, before it named the word2vec method (they were all CBOW)."""


def encoder_vectors(encoder: str) -> str:
    """The word vectors a run's ``encoder`` names (``"skip-gram 50-d"``), or the encoder itself."""
    prefix, suffix = "Bi-LSTM-CNNs (word2vec ", " trained in the kit)"
    return encoder[len(prefix) : -len(suffix)] if encoder.startswith(prefix) else encoder


def upgrade_run(run: dict) -> dict:
    """A run stored by an older kit, with what its key needs filled in from facts it records: before runs
    named their configuration (``row/seedN`` keys), ``variant``, ``scale``, ``epochs`` and ``encoder`` from
    its row, provenance and config; before the encoder named the word2vec method, the method from the
    run's ``word_vectors`` record (so CBOW and skip-gram runs never share a key)."""
    if "variant" not in run:
        run = {
            "variant": run["row"],
            "scale": run["provenance"]["scale"],
            "epochs": run["config"]["epochs"],
            "encoder": run["provenance"]["encoder"],
            **run,
        }
    method = (run.get("word_vectors") or {}).get("method", "")
    if run["encoder"] == LEGACY_ENCODER and method.startswith("word2vec CBOW 50-d"):
        run = run | {"encoder": vectors_encoder("CBOW 50-d")}
    return run


def summarize(runs, paper_rows: dict | None = None) -> list[dict]:
    """One line per configuration (row, scale, epochs, word vectors), rows in the paper's order of
    :data:`ROWS`: mean over seeds (and the spread), the paper's value beside ours. Scales never mix."""
    import statistics

    from ..report import short_commit
    from ..results import configurations

    runs = [upgrade_run(r) for r in (runs.values() if isinstance(runs, dict) else runs)]
    paper_rows = paper_rows or {}
    lines = []
    for (row, scale, epochs, encoder), row_runs in configurations(runs, order=VARIANTS):

        def values(get, row_runs=row_runs):
            return [get(r["test"]) for r in row_runs]

        metrics = {
            "mer_f1_paper_protocol": values(lambda t: t["paper_protocol"]["mer"]["f1"]),
            "men_f1_paper_protocol": values(lambda t: t["paper_protocol"]["men"]["f1"]),
            "ner_f1_standard": values(lambda t: t["standard_protocol"]["ner-mention-strict"]["f1"]),
            "men_mention_f1_standard": values(lambda t: t["standard_protocol"]["men-mention"]["f1"]),
            "men_document_f1_standard": values(lambda t: t["standard_protocol"]["men-document"]["f1"]),
        }
        line = {
            "row": row,
            "paper_row": variant_label(row, [r["config"].get("optimizer", "?") for r in row_runs]),
            "scale": scale,
            "seeds": [r["seed"] for r in row_runs],
            "epochs": epochs,
            "vectors": encoder_vectors(encoder),
            "commits": sorted({short_commit(r["provenance"]["git_commit"]) for r in row_runs}),
        }
        named = [r.get("with_normalizer") for r in row_runs]
        if all(named):  # every seed's output also renamed by the shared normalizer
            metrics["men_document_f1_with_normalizer"] = [
                n["standard_protocol"]["men-document"]["f1"] for n in named
            ]
        for name, vals in metrics.items():
            line[name] = round(statistics.mean(vals), 4)
            if len(vals) > 1:
                line[name + "_sd"] = round(statistics.stdev(vals), 4)
        published = paper_rows.get(ROWS[split_variant(row)[0]][0], {})  # a converged row: the same model
        line["paper_mer_f1"] = published.get("mer_f1")
        line["paper_men_f1"] = published.get("men_f1")
        lines.append(line)
    return lines


def table(result: dict) -> list[dict]:
    """The summary of a stored results file, recomputed from its runs (``python -m mernlib table``)."""
    from .. import reference

    return summarize(list(result["runs"].values()), reference.load("zhao2019").get(result["corpus"], {}))


def headline(result: dict) -> dict | None:
    """The headline row (MTL-MEN&MER_feedback) at full scale, ours beside the paper's, for the README: of
    its paper-trained and converged versions, the one with the better dev score (mean over its seeds of
    the best epoch's dev score) -- chosen on dev, like everything else."""
    runs = [upgrade_run(r) for r in result["runs"].values()]

    def dev(line):
        scores = [
            max(r["dev_best"].values())
            for r in runs
            if (r["variant"], r["scale"], r["epochs"]) == (line["row"], "full", line["epochs"])
            and encoder_vectors(r["encoder"]) == line["vectors"]
        ]
        return sum(scores) / len(scores) if scores else -1.0

    full = [r for r in table(result) if r["scale"] == "full" and split_variant(r["row"])[0] == HEADLINE_ROW]
    if not full:
        return None
    row = max(full, key=dev)

    def both(key):
        return row[key] if key + "_sd" not in row else f"{row[key]:.4f} ± {row[key + '_sd']:.4f}"

    return {
        "model": f"{row['paper_row']} ({'≤ ' if split_variant(row['row'])[1] else ''}{row['epochs']} "
        f"epochs, {row['vectors']}, seeds {' '.join(map(str, row['seeds']))})",
        "paper protocol: ours": f"MER {both('mer_f1_paper_protocol')} / MEN {both('men_f1_paper_protocol')}",
        "paper protocol: paper": f"MER {row['paper_mer_f1']} / MEN {row['paper_men_f1']}",
        "standard NER F1": both("ner_f1_standard"),
        "standard men-document F1": both("men_document_f1_standard"),
    }


# The paper's claims, as (better row, worse row): MTL beats the pipeline, feedback beats plain MTL.
PAPER_ORDERING = (
    ("mtl", "bilstm-cnns-crf"),
    ("mtl-both-feedback", "mtl"),
    ("mtl-both-feedback", "bilstm-cnns-crf"),
)
COMPARED_METRICS = (
    "mer_f1_paper_protocol",
    "men_f1_paper_protocol",
    "ner_f1_standard",
    "men_document_f1_standard",
)


def check_ordering(
    summary: list[dict], pairs=PAPER_ORDERING, metrics=COMPARED_METRICS, scale: str = "full"
) -> list[dict]:
    """For each (row, other) pair both run at ``scale``: ``row`` minus ``other`` on each metric (means over
    seeds), and the largest seed spread (standard deviation) of the two rows, so a difference can be read
    against the noise. Pairs with a row not yet run are left out."""
    by_row = {line["row"]: line for line in summary if line.get("scale", scale) == scale}
    out = []
    for row, other in pairs:
        if row not in by_row or other not in by_row:
            continue
        a, b = by_row[row], by_row[other]
        line = {"comparison": f"{a['paper_row']} vs {b['paper_row']}"}
        for m in metrics:
            line[m] = round(a[m] - b[m], 4)
        spreads = [r.get(m + "_sd") for r in (a, b) for m in metrics if r.get(m + "_sd") is not None]
        line["largest_seed_sd"] = max(spreads) if spreads else None
        out.append(line)
    return out
