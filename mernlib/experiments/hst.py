"""Chai et al. (BMC Bioinformatics 2022): hierarchical shared transfer against its baselines, trained and
scored the same way in notebook 06 and in ``python -m mernlib reproduce hst``.

The variants (:data:`VARIANTS`, in the paper's order), all built on :class:`mernlib.models.hst.HSTTagger`:

========================  ===========================================================================
``single-task``           one encoder-CRF per dataset, trained on that dataset alone (the paper's baseline)
``multi-task``            one shared encoder, one CRF head per dataset, no type level, all datasets at once
``multi-task+fine-tune``  the multi-task model, then a copy fine-tuned on each target dataset
``hierarchical``          HST: the entity-type level, multi-task training, then fine-tuning per target
========================  ===========================================================================

The ``multi-task`` model *is* the first stage of ``multi-task+fine-tune`` (same configuration, same
seed), so when both are asked for it is trained once and scored before the fine-tuned copies are made.

The pieces (notebook 06 and :func:`reproduce` call the same ones):

* data: :func:`mernlib.datasets.load_iob_datasets`; :func:`load_selection` reads a dataset selection at
  a scale's caps. Selections: ``"paper"`` (:data:`PAPER_DATASETS`, the datasets whose change the paper
  reports; BC4CHEMD is absent here and recorded as skipped), ``"sample"`` (the five bundled sample IOB
  datasets), ``"crichton"`` (every dataset of the collection), an entity type, or a dataset name;
* configuration: :func:`scale_config` (a scale of ``mernlib.experiments.SCALES["hst"]``), and for the
  notebook's seconds-long teaching run :func:`quick_config` with :func:`quick_encoder` (a tiny random BERT);
* training stages on :func:`mernlib.train.fit`: :func:`train_multitask` (one task per dataset, drawn
  by :func:`mernlib.train.task_sampler`) and :func:`fine_tune` (a copy trained on one target, every
  other part frozen: :func:`freeze`, :func:`unfreeze`, :func:`fine_tune_parts`);
* scoring: :func:`score` (strict and lenient F1 from one prediction), :func:`rescore` (a stored file);
* :func:`train_variants` -- train and score variants, yielding each (:class:`TrainedVariant`) as it ends;
* :func:`reproduce`, :func:`summarize`, :func:`table` -- the experiment contract
  (:mod:`mernlib.experiments`); charts for the notebook.

**Which F1.** Every F1 here is mention-level (exact span and type) from the tags, computed two ways by
:func:`mernlib.metrics.ner_prf_from_tags`: **strict** -- seqeval's strict IOB2 mode, where an entity must
start with ``B-`` (a stray ``I-`` is no entity) -- is the headline; **lenient** -- conlleval's decoding
(and seqeval's default), where a stray ``I-`` starts an entity -- is printed beside it. The two differ by
up to 4 points on a weak model (BC2GM single-task at the reduced scale: 0.392 lenient, 0.422 strict).
Model selection on dev (the best epoch) uses the lenient F1, as every stored run did.

**Protocol.** The dev split selects the best epoch (mean dev F1 over datasets in the multi-task stage,
the target's dev F1 in fine-tuning and single-task training); the test split is predicted once, by the
selected model. **Scales** (``SCALES["hst"]``): ``quick`` (64/32/64 sentences per dataset, 1 + 1
epochs), ``reduced`` (a seeded 600/300/1,000-sentence subset of each split, 3 multi-task + 1 fine-tuning
epochs, sized to finish in about an hour on one CPU core, see ``benchmarks/bench_hst.py``), ``full``
(every sentence, 3 + 2 epochs: a GPU job). ``--epochs N`` replaces the multi-task (and single-task)
epochs; fine-tuning keeps the scale's. Numbers at ``reduced`` are about *the methods under a small
budget*, not the paper's absolute scores: with 600 training sentences per dataset, sharing has more to
give than with the full sets.

**Files.** One run = one variant at one seed over every dataset of the selection, stored with
:func:`mernlib.results.add_run` in ``<results_dir>/hst/<selection>.json`` (+ the summary as CSV):
per dataset its strict and lenient test scores (with counts), best epoch and dev F1, training seconds
and its predictions, ``<selection>/<variant>/<dataset>.tsv`` (``token<TAB>gold<TAB>predicted``,
re-scorable with :func:`rescore`). Runs of another seed add ``-seed<S>`` to the folder, runs of a
configuration that is not committed (``quick``, ``--epochs N``) add ``-<scale>-e<epochs>``
(:func:`prediction_dir`), so they never overwrite the committed predictions.

The committed ``results/hst/paper.json`` is a clean re-run (commit 11902a2) of the reduced comparison that
an earlier session had stored as ``results/hst/reduced.json`` from an uncommitted tree: it gave the same F1
to the last digit on 16 of the 20 (dataset, variant) pairs and differed by at most 0.4 points on the
others, so the old file was retired.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..datasets import SPLITS, IOBDataset, IOBSelection, load_iob_datasets
from ..paths import RESULTS_DIR

TITLE = "Hierarchical shared transfer (Chai et al., BMC Bioinformatics 2022)"
SHORT_TITLE = "Chai et al. 2022 (HST)"  # the README summary table's first column

PAPER_DATASETS = ("BC5CDR-chem", "BC5CDR-disease", "NCBI-disease", "BC2GM", "linnaeus", "BC4CHEMD")
"""The datasets whose change the paper reports (``mernlib/reference/chai2022.json``), in the order the
models are built; BC4CHEMD is absent from the project's data: it is skipped, and the runs say so."""

VARIANTS: dict[str, dict] = {
    "single-task": {
        "use_type_level": False,
        "multitask": False,
        "fine_tune": False,
        "description": "one encoder-CRF per dataset (the paper's baseline)",
    },
    "multi-task": {
        "use_type_level": False,
        "multitask": True,
        "fine_tune": False,
        "description": "shared encoder, one CRF head per dataset, no type level",
    },
    "multi-task+fine-tune": {
        "use_type_level": False,
        "multitask": True,
        "fine_tune": True,
        "description": "multi-task, then a copy fine-tuned per target (no type level)",
    },
    "hierarchical": {
        "use_type_level": True,
        "multitask": True,
        "fine_tune": True,
        "description": "HST: type level + multi-task, then fine-tuning per target",
    },
}
"""The paper's comparison: the baseline, plain multi-task, multi-task then fine-tuning (no type level),
and HST. The first three isolate what multi-task training, fine-tuning and the type level each add."""

DEFAULT_VARIANTS = tuple(VARIANTS)

README_COLUMNS = (
    "dataset",
    "variant",
    "scale",
    "epochs",
    "fine_tune_epochs",
    "seeds",
    "f1_strict",
    "f1_lenient",
    "delta_strict",
    "delta_lenient",
    "paper_delta",
    "commits",
    "note",
)
"""The columns of ``results/hst/README.md``: F1 (strict headline, lenient beside), the change against
single-task in F1 points, the paper's change for its hierarchical model."""

F1_KINDS = ("strict", "lenient")
COMMITTED_SEED = 13


# --------------------------------------------------------------------------------------------------
# Data and configuration
# --------------------------------------------------------------------------------------------------


def selection_names(corpus: str | Sequence[str]) -> str | list[str]:
    """The dataset names of ``corpus``: ``"paper"`` is :data:`PAPER_DATASETS`; anything else is what
    :func:`mernlib.datasets.expand_selection` understands."""
    return list(PAPER_DATASETS) if corpus == "paper" else corpus


def load_selection(
    corpus: str | Sequence[str] = "paper",
    *,
    data_dir=None,
    scale: str = "reduced",
    seed: int = 13,
    caps: dict | None = None,
) -> IOBSelection:
    """The datasets of ``corpus`` at ``scale``'s caps (or explicit ``caps``), with those skipped."""
    from . import scale_settings

    if caps is None:
        settings = scale_settings("hst", scale)
        caps = {s: settings[s] for s in SPLITS}
    selection = load_iob_datasets(selection_names(corpus), data_dir=data_dir, caps=caps, seed=seed)
    if isinstance(corpus, str):
        selection.name = corpus
    return selection


def scale_config(scale: str = "reduced", *, seed: int = 13, epochs: int | None = None, **overrides):
    """The default :class:`~mernlib.models.hst.HSTConfig` with ``scale``'s epochs (``epochs`` replaces
    the multi-task ones), ``seed`` and ``overrides`` (HSTConfig fields)."""
    from ..models.hst import get_default_config
    from . import scale_settings

    settings = scale_settings("hst", scale)
    values = {
        "seed": seed,
        "epochs": epochs or settings["epochs"],
        "fine_tune_epochs": settings["fine_tune_epochs"],
    }
    return get_default_config(**(values | overrides))


def quick_config(seed: int = 13, **overrides):
    """Notebook 06's teaching run: 2 multi-task epochs + 1 fine-tuning epoch at lr 3e-3 without dropout,
    for :func:`quick_encoder`'s tiny random BERT (windows of 64 pieces): seconds on the sample, numbers
    that show the machinery and nothing about the method."""
    from ..models.hst import get_default_config

    values = dict(
        seed=seed,
        epochs=2,
        fine_tune_epochs=1,
        progress=False,
        lr=3e-3,  # a random tiny encoder needs a large learning rate
        head_lr=3e-3,
        dropout=0.0,
        max_length=64,  # the tiny encoder's window
    )
    return get_default_config(**(values | overrides))


def quick_encoder(seed: int = 13, hidden_size: int = 64, tokenizer=None) -> Callable:
    """A factory of fresh tiny random BERTs (one layer, ``hidden_size``, weights fixed by ``seed``) over
    the MiniLM's vocabulary (``tokenizer``: already loaded): pass it as ``new_encoder`` to
    :func:`train_variants`."""
    from ..encoders import load_encoder, tiny_random_encoder

    tokenizer = tokenizer or load_encoder()[1]
    return lambda: tiny_random_encoder(tokenizer, hidden_size=hidden_size, seed=seed)


def variant_config(variant: str, config):
    """``config`` with the variant's switches (the type level on or off)."""
    _check_variants([variant])
    return dataclasses.replace(config, use_type_level=VARIANTS[variant]["use_type_level"])


def _check_variants(variants: Iterable[str]) -> list[str]:
    variants = list(variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose among {list(VARIANTS)}")
    return [v for v in VARIANTS if v in variants]


def _as_list(datasets) -> list[IOBDataset]:
    if isinstance(datasets, IOBDataset):
        return [datasets]
    if isinstance(datasets, IOBSelection):
        return list(datasets.datasets.values())
    if isinstance(datasets, Mapping):
        return list(datasets.values())
    return list(datasets)


# --------------------------------------------------------------------------------------------------
# Training stages
# --------------------------------------------------------------------------------------------------


def _set_trainable(model, parts, value: bool) -> list[str]:
    known = model.parts()
    if parts is None or parts == "all":
        parts = list(known)
    elif isinstance(parts, str):
        parts = [parts]
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise KeyError(f"unknown parts {unknown}; the model has {list(known)}")
    params = dict(model.named_parameters())
    changed = [n for p in parts for n in known[p]]
    for n in changed:
        params[n].requires_grad_(value)
    return changed


def freeze(model, parts: str | Iterable[str] | None = None) -> list[str]:
    """Stop training ``parts`` (names of :meth:`HSTTagger.parts`; ``None``/``"all"``: everything).
    Returns the names of the parameters frozen."""
    return _set_trainable(model, parts, False)


def unfreeze(model, parts: str | Iterable[str] | None = None) -> list[str]:
    """Train ``parts`` again (``None``/``"all"``: everything). Returns the parameter names."""
    return _set_trainable(model, parts, True)


def trainable_parts(model) -> list[str]:
    """Parts with at least one parameter that requires a gradient."""
    params = dict(model.named_parameters())
    return [p for p, names in model.parts().items() if any(params[n].requires_grad for n in names)]


def fine_tune_parts(model, dataset, config=None) -> list[str]:
    """What :func:`fine_tune` trains for ``dataset``: the encoder (``fine_tune_encoder``), the
    dataset's type layer + type head (``fine_tune_type_layer``, when there is a type level) and its head."""
    c = config or model.config
    name = model._name(dataset)
    parts = ["encoder"] if c.fine_tune_encoder else []
    if c.fine_tune_type_layer and model.config.use_type_level:
        parts.append(f"type:{model.entity_type_of[name]}")
    return parts + [f"head:{name}"]


def _optimizer(model, config, lr: float, head_lr: float | None):
    """The config's optimiser: the encoder at ``lr``, every new layer at ``head_lr`` (or ``lr``)."""
    from ..train import make_optimizer

    return make_optimizer(model, config, lr_by_prefix={"encoder.": lr}, lr=head_lr or lr)


def _train_data(model, datasets: list[IOBDataset], batch_size: int) -> dict:
    """Task -> a function of the epoch's generator returning that dataset's shuffled batches."""
    data = {}
    for d in datasets:
        encoded = model.encoder.aligner.encode([s.tokens for s in d.train])  # once, not every epoch

        def epoch(generator, d=d, encoded=encoded):
            return model.make_batches(
                d, d.train, batch_size, shuffle=True, generator=generator, encoded=encoded
            )

        data[d.name] = epoch
    return data


def mean_dev_f1(model, datasets, split: str = "devel") -> float:
    """Mean over datasets of the (lenient) mention F1 on ``split``: the multi-task stage's selection."""
    scores = [evaluate(model, d, split).f1 for d in _as_list(datasets)]
    return sum(scores) / len(scores)


def train_multitask(model, datasets, config=None, select_on=None, **overrides):
    """Multi-task stage: one :func:`mernlib.train.fit` task per dataset (returns its ``FitResult``).

    Each step draws a dataset with :func:`mernlib.train.task_sampler` (``config.task_sampler``:
    ``"proportional"`` to its batches left, so datasets interleave evenly over the epoch; ``"uniform"``
    exhausts the small ones early) and takes its next batch; the loss is the dataset head's CRF loss
    (+ the type-level loss with the type level). With ``select_on_dev`` the epoch with the best mean dev
    F1 over ``select_on`` (default: every dataset) is kept -- a system built for one target corpus selects
    on that corpus's dev alone. With a single dataset this is ordinary single-task training."""
    from ..train import fit, task_sampler

    c = dataclasses.replace(config or model.config, **overrides)
    datasets = _as_list(datasets)
    for d in datasets:
        model._name(d)
    judged = datasets if select_on is None else _as_list(select_on)
    dev = (lambda m: mean_dev_f1(m, judged)) if c.select_on_dev else None
    result = fit(
        model,
        _train_data(model, datasets, c.batch_size),
        c,
        dev_eval_fn=dev,
        task_sampler=task_sampler(c.task_sampler),
        optimizer=_optimizer(model, c, c.lr, c.head_lr),
    )
    model.history = getattr(model, "history", []) + [{"stage": "multitask", "result": result}]
    return result


def fine_tune(model, dataset: IOBDataset, config=None, **overrides):
    """Fine-tuning stage: a *copy* of ``model`` trained on ``dataset`` alone for ``fine_tune_epochs``;
    only :func:`fine_tune_parts` are trainable, everything else is frozen (the encoder is fine-tuned by
    default because adapting the shared representation to the target is what the paper's second stage
    is for). The copy is returned (its ``history[-1]["result"]`` is the ``FitResult``); ``model`` is
    unchanged."""
    from ..train import fit, task_sampler

    c = dataclasses.replace(config or model.config, **overrides)
    tuned = model.copy()
    freeze(tuned)
    unfreeze(tuned, fine_tune_parts(tuned, dataset, c))
    dev = (lambda m: evaluate(m, dataset, "devel").f1) if c.select_on_dev else None
    result = fit(
        tuned,
        _train_data(tuned, [dataset], c.batch_size),
        c,
        dev_eval_fn=dev,
        task_sampler=task_sampler(c.task_sampler),
        optimizer=_optimizer(tuned, c, c.fine_tune_lr or c.lr, c.fine_tune_head_lr or c.head_lr),
        epochs=c.fine_tune_epochs,
    )
    tuned.history = list(getattr(model, "history", [])) + [
        {"stage": f"fine-tune:{dataset.name}", "result": result}
    ]
    return tuned


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


def score(model, dataset: IOBDataset, split: str = "test", output: str | Path | None = None) -> dict:
    """``{"strict": PRF, "lenient": PRF}`` of ``model``'s predictions on one split of ``dataset`` (gold =
    the file's tags; see "Which F1" above). ``output``: also write ``token<TAB>gold<TAB>predicted``."""
    from ..conll import write_iob
    from ..metrics import ner_prf_from_tags

    sentences = dataset.split(split)
    predicted = model.predict(sentences, dataset.name) if sentences else []
    if output is not None:
        write_iob(sentences, output, predicted)
    gold = [s.tags for s in sentences]
    return {kind: ner_prf_from_tags(gold, predicted, strict=kind == "strict") for kind in F1_KINDS}


def evaluate(model, dataset: IOBDataset, split: str = "test", output=None, strict: bool = False):
    """One of :func:`score`'s two: the lenient PRF (what dev selection uses), or the strict one."""
    return score(model, dataset, split, output)["strict" if strict else "lenient"]


def rescore(path: str | Path, strict: bool = False) -> dict:
    """P/R/F1 (and counts) of a ``token<TAB>gold<TAB>predicted`` file, read back from disk."""
    from ..conll import read_iob
    from ..metrics import ner_prf_from_tags

    sentences = read_iob(path)
    if any(s.predicted is None for s in sentences):
        raise ValueError(f"{path}: expected three columns (token, gold, predicted)")
    gold, predicted = [s.tags for s in sentences], [s.predicted for s in sentences]
    return ner_prf_from_tags(gold, predicted, strict=strict).as_dict()


# --------------------------------------------------------------------------------------------------
# Training the variants
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainedVariant:
    """One variant trained and scored on every dataset. ``scores[dataset]`` is ``{"strict": PRF,
    "lenient": PRF}``; ``fits[dataset]`` the ``FitResult`` that selected the dataset's model (for the
    multi-task variant, the one shared fit); ``multitask_fit`` the shared stage's (multi-task variants);
    ``train_seconds[dataset]`` the training time of that model (the shared stage included); ``seconds``
    the whole variant; ``models`` only with ``keep_models``."""

    variant: str
    config: object
    scores: dict[str, dict] = field(default_factory=dict)
    fits: dict[str, object] = field(default_factory=dict)
    multitask_fit: object = None
    train_seconds: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    models: dict[str, object] = field(default_factory=dict)

    def f1(self, kind: str = "strict") -> dict[str, float]:
        return {name: s[kind].f1 for name, s in self.scores.items()}

    def mean_f1(self, kind: str = "strict") -> float:
        values = list(self.f1(kind).values())
        return sum(values) / len(values)


def train_variants(
    variants: Iterable[str],
    datasets,
    config=None,
    *,
    new_encoder: Callable | None = None,
    split: str = "test",
    predictions: Callable[[str, str], Path | None] | None = None,
    keep_models: bool = False,
    log: Callable[[str], None] | None = None,
) -> Iterator[TrainedVariant]:
    """Train each of ``variants`` on ``datasets`` with ``config`` and score ``split``; yield each
    :class:`TrainedVariant` as soon as it is done (so a long run can store it at once).

    ``new_encoder()`` gives a fresh encoder per model (default: the one ``config.encoder`` names).
    ``predictions(variant, dataset)`` is where to write a model's predictions (``None``: nowhere).
    Models are dropped once scored unless ``keep_models``. Order: single-task, then the shared
    multi-task stage (scored as ``multi-task``) and its fine-tuned copies, then the hierarchical model.
    """
    from tqdm.auto import tqdm

    from ..models.hst import HSTTagger, get_default_config

    variants = _check_variants(variants)
    datasets = _as_list(datasets)
    base = config or get_default_config()
    log = log or (lambda message: None)

    def encoder():
        return new_encoder() if new_encoder is not None else None

    def add(out: TrainedVariant, model, d: IOBDataset, fit, seconds: float):
        path = predictions(out.variant, d.name) if predictions is not None else None
        out.scores[d.name] = score(model, d, split, output=path)
        out.fits[d.name], out.train_seconds[d.name] = fit, seconds
        if path is not None:
            out.predictions[d.name] = Path(path)
        if keep_models:
            out.models[d.name] = model
        strict, lenient = out.scores[d.name]["strict"], out.scores[d.name]["lenient"]
        log(f"  {out.variant:22s} {d.name:16s} F1 strict {strict.f1:.4f} (lenient {lenient.f1:.4f})")

    if "single-task" in variants:  # one encoder-CRF per dataset (no type level)
        started = time.time()
        c = variant_config("single-task", base)
        out = TrainedVariant("single-task", c)
        for d in tqdm(datasets, desc="single-task", disable=not c.progress):
            t0 = time.time()
            model = HSTTagger(c, [d], encoder())
            fit = train_multitask(model, [d], c)
            add(out, model, d, fit, time.time() - t0)
            del model
        out.seconds = time.time() - started
        yield out

    # the multi-task stage (shared encoder, one CRF head per dataset), then fine-tuned copies of it
    for variant, stage1 in (("multi-task+fine-tune", "multi-task"), ("hierarchical", None)):
        want_stage1 = stage1 is not None and stage1 in variants
        if variant not in variants and not want_stage1:
            continue
        started = time.time()
        c = variant_config(variant, base)
        model = HSTTagger(c, datasets, encoder())
        log(f"{variant}: multi-task stage over {len(datasets)} datasets")
        fit = train_multitask(model, datasets, c)
        stage_seconds = time.time() - started
        if want_stage1:
            out = TrainedVariant(stage1, variant_config(stage1, base), multitask_fit=fit)
            for d in datasets:
                add(out, model, d, fit, stage_seconds)
            out.seconds = stage_seconds
            yield out
        if variant in variants:
            out = TrainedVariant(variant, c, multitask_fit=fit)
            for d in tqdm(datasets, desc=f"{variant}: fine-tuning", disable=not c.progress):
                t0 = time.time()
                tuned = fine_tune(model, d, c)
                add(out, tuned, d, tuned.history[-1]["result"], stage_seconds + time.time() - t0)
                del tuned
            out.seconds = time.time() - started
            yield out
        del model


def train_variant(variant: str, datasets, config=None, **options) -> TrainedVariant:
    """One variant of :func:`train_variants` (same options)."""
    return next(train_variants([variant], datasets, config, **options))


# --------------------------------------------------------------------------------------------------
# Reproduction: runs stored in results/hst/<selection>.json
# --------------------------------------------------------------------------------------------------


def prediction_dir(selection: str, variant: str, seed: int, scale: str, epochs: int) -> str:
    """``<selection>/<scale>/<variant>`` for a committed configuration (``reduced`` or ``full`` at the
    scale's own epochs) at seed 13; another seed adds ``-seed<S>``, another configuration ``-e<epochs>``,
    so that no run overwrites the predictions of another (the scale is always part of the path)."""
    from . import SCALES

    name = variant if seed == COMMITTED_SEED else f"{variant}-seed{seed}"
    committed = scale in ("reduced", "full") and epochs == SCALES["hst"][scale]["epochs"]
    return f"{selection}/{scale}/{name}" if committed else f"{selection}/{scale}/{name}-e{epochs}"


def make_run(
    trained: TrainedVariant,
    datasets,
    *,
    scale: str,
    encoder: str,
    root: Path | None = None,
    provenance: dict | None = None,
) -> dict:
    """The stored form of a :class:`TrainedVariant` (one run: one variant, one seed, every dataset).
    ``datasets``: an :class:`~mernlib.datasets.IOBSelection` (its name, caps and skipped datasets are
    recorded too) or the datasets. Prediction paths are stored relative to ``root`` (the results
    file's folder)."""
    c = trained.config
    spec = VARIANTS[trained.variant]

    def epochs_of(fit) -> list[dict]:
        return [
            {
                "epoch": h["epoch"],
                "loss": h["loss"],
                "dev_lenient": h["dev"],
                "seconds": round(h["seconds"], 1),
            }
            for h in fit.history
        ]

    history = {}  # per training stage: its epochs (loss per dataset, mean dev F1, seconds)
    if trained.multitask_fit is not None:
        history["multi-task"] = epochs_of(trained.multitask_fit)
    for name, fit in trained.fits.items():
        if fit is not trained.multitask_fit:
            history[f"{'fine-tune' if spec['fine_tune'] else 'single-task'}:{name}"] = epochs_of(fit)

    test = {}
    for name, scores in trained.scores.items():
        fit = trained.fits[name]
        entry = {kind: scores[kind].as_dict() for kind in F1_KINDS}
        entry["best_epoch"] = fit.best_epoch
        entry["best_dev_lenient"] = fit.best_score
        entry["train_seconds"] = round(trained.train_seconds[name], 1)
        if name in trained.predictions:
            path = trained.predictions[name]
            entry["predictions"] = str(path.relative_to(root) if root is not None else path)
        test[name] = entry
    run = {
        "variant": trained.variant,
        "seed": c.seed,
        "scale": scale,
        "epochs": c.epochs,
        "encoder": encoder,
        "fine_tune_epochs": c.fine_tune_epochs if spec["fine_tune"] else None,
        "description": spec["description"],
        "scoring": "F1 strict: seqeval's strict IOB2 mode (the headline); lenient: conlleval's decoding; "
        "dev selection: lenient",
        "datasets": {d.name: d.describe() for d in _as_list(datasets)},
        "test": test,
        "history": history,
        "seconds": round(trained.seconds, 1),
        "config": dataclasses.asdict(c),
    }
    if isinstance(datasets, IOBSelection):
        run["selection"] = datasets.name
        run["caps"] = dict(datasets.caps)
        run["skipped"] = list(datasets.skipped)
    if provenance is not None:
        run["provenance"] = provenance
    return run


def reproduce(
    corpus: str = "paper",
    *,
    data_dir=None,
    seed: int = 13,
    scale: str = "full",
    epochs: int | None = None,
    only=None,
    results_dir=RESULTS_DIR,
    progress: bool = True,
    **overrides,
) -> list[Path]:
    """Train the variants ``only`` (default: all four) on the selection ``corpus`` at ``scale`` and add
    each as a run to ``results_dir/hst/<corpus>.json`` (+ CSV), its test predictions beside it
    (:func:`prediction_dir`). ``overrides`` are :class:`~mernlib.models.hst.HSTConfig` fields (e.g.
    ``encoder="/path/to/biobert"``: the encoder is named by ``config.encoder`` and nothing else).
    ``$MERNLIB_THREADS`` sets torch's thread count. Returns the JSON and CSV paths."""
    import torch
    from tqdm.auto import tqdm

    from .. import reference
    from ..encoders import encoder_name
    from ..errors import DataNotFoundError
    from ..report import run_record
    from ..results import add_run, result_path

    threads = int(os.environ.get("MERNLIB_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    config = scale_config(scale, seed=seed, epochs=epochs, progress=progress, **overrides)
    selection = load_selection(corpus, data_dir=data_dir, scale=scale, seed=seed)
    log = tqdm.write
    for s in selection.skipped:
        log(f"SKIPPED {s['dataset']}: {s['reason']}")
    if not selection.datasets:
        reasons = "; ".join(f"{s['dataset']}: {s['reason'].splitlines()[0]}" for s in selection.skipped)
        raise DataNotFoundError(f"hst: none of the datasets of {corpus!r} could be read ({reasons})")
    variants = _check_variants(only or DEFAULT_VARIANTS)
    encoder = encoder_name(config.encoder)
    path = result_path(results_dir, "hst", selection.name)
    root = path.parent
    header = {"experiment": "hst", "paper": reference.load("chai2022")["citation"], "corpus": selection.name}
    log(
        f"HST {scale}: {len(selection.datasets)} datasets ({', '.join(selection.datasets)}); variants "
        f"{', '.join(variants)}; caps {selection.caps}; {config.epochs} + {config.fine_tune_epochs} epochs"
    )

    def where(variant: str, dataset: str) -> Path:
        return root / prediction_dir(selection.name, variant, seed, scale, config.epochs) / f"{dataset}.tsv"

    for trained in train_variants(variants, selection, config, predictions=where, log=log):
        provenance = run_record(
            seed=seed,
            scale=scale,
            encoder=encoder,
            started=time.time() - trained.seconds,
            threads=torch.get_num_threads(),
            selection=selection.name,
        )
        run = make_run(trained, selection, scale=scale, encoder=encoder, root=root, provenance=provenance)
        add_run(path, run, header=header, summarize=summarize)
    return [path, path.with_suffix(".csv")]


# --------------------------------------------------------------------------------------------------
# Reading results back: runs (both layouts), the summary, the table
# --------------------------------------------------------------------------------------------------


def runs_of(result: dict) -> list[dict]:
    """The runs of a results file."""
    if "runs" not in result:
        raise ValueError("not an hst results file of the kit: it has no runs")
    return list(result["runs"].values())


def summarize(runs) -> list[dict]:
    """One row per dataset and configuration (variant, scale, epochs, encoder): F1 strict and lenient
    (means over seeds, ``_sd`` their spread), the change against single-task of the same scale, epochs
    and encoder in F1 points, and the paper's change beside the hierarchical model's
    (``mernlib/reference/chai2022.json``); then a ``mean`` row per variant, then the skipped datasets."""
    from .. import reference
    from ..report import short_commit
    from ..results import configurations

    paper = reference.load("chai2022")["delta_f1_vs_single_task"]
    runs = list(runs.values()) if isinstance(runs, dict) else list(runs)
    blocks: dict[tuple, list[tuple[str, list[dict]]]] = {}
    for (variant, scale, epochs, encoder), members in configurations(runs, order=VARIANTS):
        blocks.setdefault((scale, epochs, encoder), []).append((variant, members))

    def f1s(members: list[dict], name: str, kind: str) -> list[float]:
        return [r["test"][name][kind]["f1"] for r in members if r["test"].get(name, {}).get(kind)]

    def mean(values):
        return statistics.mean(values) if values else None

    rows = []
    for (scale, epochs, _encoder), groups in blocks.items():
        names = list(dict.fromkeys(n for _, members in groups for r in members for n in r["test"]))
        types = {
            n: e["entity_type"] for _, ms in groups for r in ms for n, e in r.get("datasets", {}).items()
        }
        single = dict(groups).get("single-task", [])
        per_variant_means: dict[str, dict[str, dict[str, float]]] = {}
        for name in names:
            for variant, members in groups:
                if not any(name in r["test"] for r in members):
                    continue
                row = {
                    "dataset": name,
                    "entity_type": types.get(name),
                    "variant": variant,
                    "scale": scale,
                    "epochs": epochs,
                    "fine_tune_epochs": members[0].get("fine_tune_epochs"),
                    "seeds": [r["seed"] for r in members],
                }
                for kind in F1_KINDS:
                    values = f1s(members, name, kind)
                    row[f"f1_{kind}"] = None if not values else round(mean(values), 4)
                    if len(values) > 1:
                        row[f"f1_{kind}_sd"] = round(statistics.stdev(values), 4)
                    if values:
                        per_variant_means.setdefault(variant, {}).setdefault(kind, {})[name] = mean(values)
                for kind in F1_KINDS:
                    ours, base = mean(f1s(members, name, kind)), mean(f1s(single, name, kind))
                    delta = None if variant == "single-task" or ours is None or base is None else ours - base
                    row[f"delta_{kind}"] = None if delta is None else round(100 * delta, 2)
                row["paper_delta"] = paper.get(name) if variant == "hierarchical" else None
                row["commits"] = _commits(members, short_commit)
                sources = {r["test"][name].get("strict_source") for r in members if name in r["test"]}
                row["note"] = next((s for s in sources if s), None)
                rows.append(row)
        for variant, members in groups:  # the mean over the datasets each variant was scored on
            means = per_variant_means.get(variant, {})
            row = {
                "dataset": "mean",
                "entity_type": None,
                "variant": variant,
                "scale": scale,
                "epochs": epochs,
            }
            row["fine_tune_epochs"] = members[0].get("fine_tune_epochs")
            row["seeds"] = [r["seed"] for r in members]
            for kind in F1_KINDS:
                row[f"f1_{kind}"] = round(mean(list(means[kind].values())), 4) if kind in means else None
            single_means = per_variant_means.get("single-task", {})
            for kind in F1_KINDS:
                shared = [n for n in means.get(kind, {}) if n in single_means.get(kind, {})]
                row[f"delta_{kind}"] = (
                    round(100 * mean([means[kind][n] - single_means[kind][n] for n in shared]), 2)
                    if shared and variant != "single-task"
                    else None
                )
            row["paper_delta"] = None
            row["commits"] = _commits(members, short_commit)
            row["note"] = f"mean over {len(means.get('lenient', {}))} datasets"
            rows.append(row)
        skipped = {s["dataset"]: s for _, ms in groups for r in ms for s in r.get("skipped", [])}
        for name, s in skipped.items():
            rows.append(
                {
                    "dataset": name,
                    "variant": None,
                    "scale": scale,
                    "epochs": epochs,
                    "paper_delta": paper.get(name),
                    "note": "skipped: " + s["reason"].splitlines()[0],
                }
            )
    return rows


def _commits(members: list[dict], short_commit) -> list[str]:
    return sorted({short_commit(r["provenance"]["git_commit"]) for r in members if r.get("provenance")})


def table(result: dict) -> list[dict]:
    """The summary of a results file (``python -m mernlib table``), recomputed from its runs."""
    return summarize(runs_of(result))


def summary_of(trained: Iterable[TrainedVariant], datasets, scale: str = "notebook") -> list[dict]:
    """:func:`summarize` of variants trained in a notebook (not stored): the same rows as a results file."""
    runs = [make_run(t, datasets, scale=scale, encoder="notebook") for t in trained]
    return summarize(runs)


# --------------------------------------------------------------------------------------------------
# Charts (notebook 06 shows them for its own run and for results/hst/)
# --------------------------------------------------------------------------------------------------

VARIANT_COLORS = {
    "single-task": "#9e9e9e",
    "multi-task": "#80b1d3",
    "multi-task+fine-tune": "#8dd3c7",
    "hierarchical": "#fb8072",
    "paper (hierarchical)": "#333333",
}


def _dataset_rows(rows: list[dict], key: str) -> list[dict]:
    return [
        r for r in rows if r.get("variant") in VARIANTS and r["dataset"] != "mean" and r.get(key) is not None
    ]


def f1_chart(rows: list[dict], title: str = "Test F1 per dataset", f1: str = "f1_strict"):
    """Grouped bars: each variant's F1 per dataset (summary rows; ``f1``: ``"f1_strict"`` or
    ``"f1_lenient"``)."""
    import altair as alt

    rows = _dataset_rows(rows, f1)
    variants = [v for v in VARIANT_COLORS if any(r["variant"] == v for r in rows)]
    label = f"F1 ({f1.removeprefix('f1_')})"
    return (
        alt.Chart(
            alt.Data(
                values=[
                    {
                        "dataset": r["dataset"],
                        "entity_type": r["entity_type"],
                        "variant": r["variant"],
                        "f1": r[f1],
                    }
                    for r in rows
                ]
            )
        )
        .mark_bar()
        .encode(
            x=alt.X("variant:N", sort=variants, title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("f1:Q", title=label, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "variant:N",
                sort=variants,
                scale=alt.Scale(domain=variants, range=[VARIANT_COLORS[v] for v in variants]),
                title="model",
            ),
            column=alt.Column("dataset:N", title=None, header=alt.Header(labelAngle=0, labelFontSize=10)),
            tooltip=[
                "dataset:N",
                "entity_type:N",
                "variant:N",
                alt.Tooltip("f1:Q", format=".4f", title=label),
            ],
        )
        .properties(width=90, height=180, title=title)
    )


def delta_chart(
    rows: list[dict],
    reference: dict | None = None,
    title: str = "Change in F1 against single-task",
    delta: str = "delta_strict",
):
    """Bars: our change in F1 points against single-task per dataset and variant (``delta``:
    ``"delta_strict"`` or ``"delta_lenient"``); beside them (dark bars) the paper's change for its
    hierarchical model on every dataset it reports (``reference``: the ``chai2022`` reference data; its
    datasets that are not in ``rows`` get a panel of their own, so the paper's six numbers are always
    all shown)."""
    import altair as alt

    rows = _dataset_rows(rows, delta)
    values = [
        {"dataset": r["dataset"], "model": r["variant"], "delta": r[delta], "source": "this run"}
        for r in rows
    ]
    if reference is not None:
        names = reference.get("paper_names", {})
        ours = {r["dataset"] for r in rows}
        values += [
            {
                "dataset": names.get(k, k) if k not in ours else k,
                "model": "paper (hierarchical)",
                "delta": v,
                "source": "paper",
            }
            for k, v in reference["delta_f1_vs_single_task"].items()
        ]
    models = [m for m in VARIANT_COLORS if any(v["model"] == m for v in values)]
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X("model:N", sort=models, title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("delta:Q", title=f"F1 points vs single-task ({delta.removeprefix('delta_')})"),
            color=alt.Color(
                "model:N",
                sort=models,
                scale=alt.Scale(domain=models, range=[VARIANT_COLORS[m] for m in models]),
                title="model",
            ),
            column=alt.Column("dataset:N", title=None, header=alt.Header(labelAngle=0, labelFontSize=10)),
            tooltip=["dataset:N", "model:N", "source:N", alt.Tooltip("delta:Q", format="+.2f")],
        )
        .properties(width=70, height=200, title=title)
    )


def structure_chart(datasets: dict[str, str], encoder: str = "shared encoder"):
    """The three levels as a tree: the shared encoder, one node per entity type, one per dataset
    (``datasets``: name -> entity type)."""
    import altair as alt

    types = sorted(set(datasets.values()))
    by_type = {t: sorted(n for n, et in datasets.items() if et == t) for t in types}
    order = [n for t in types for n in by_type[t]]
    y_data = {n: i for i, n in enumerate(order)}
    y_type = {t: sum(y_data[n] for n in by_type[t]) / len(by_type[t]) for t in types}
    y_enc = (len(order) - 1) / 2
    nodes = [{"x": 0, "y": y_enc, "label": encoder, "level": "bottom: encoder"}]
    nodes += [{"x": 1, "y": y_type[t], "label": t, "level": "middle: entity type"} for t in types]
    nodes += [{"x": 2, "y": y_data[n], "label": n, "level": "top: dataset (own CRF)"} for n in order]
    edges = [{"x": 0, "y": y_enc, "x2": 1, "y2": y_type[t]} for t in types]
    edges += [{"x": 1, "y": y_type[datasets[n]], "x2": 2, "y2": y_data[n]} for n in order]
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=[-0.3, 2.9]))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[-0.5, len(order) - 0.5], reverse=True))
    links = (
        alt.Chart(alt.Data(values=edges)).mark_rule(color="#bbbbbb").encode(x=x, y=y, x2="x2:Q", y2="y2:Q")
    )
    dots = (
        alt.Chart(alt.Data(values=nodes))
        .mark_circle(size=180)
        .encode(x=x, y=y, color=alt.Color("level:N", title="level"), tooltip=["label:N", "level:N"])
    )
    text = (
        alt.Chart(alt.Data(values=nodes))
        .mark_text(align="left", dx=9, fontSize=11)
        .encode(x=x, y=y, text="label:N")
    )
    return (links + dots + text).properties(
        width=520,
        height=max(120, 26 * len(order)),
        title="Hierarchical sharing: encoder -> entity types -> datasets",
    )


__all__ = [
    "DEFAULT_VARIANTS",
    "PAPER_DATASETS",
    "README_COLUMNS",
    "TITLE",
    "VARIANTS",
    "TrainedVariant",
    "delta_chart",
    "evaluate",
    "f1_chart",
    "fine_tune",
    "fine_tune_parts",
    "freeze",
    "load_selection",
    "make_run",
    "mean_dev_f1",
    "prediction_dir",
    "quick_config",
    "quick_encoder",
    "reproduce",
    "rescore",
    "runs_of",
    "scale_config",
    "score",
    "structure_chart",
    "summarize",
    "summary_of",
    "table",
    "train_multitask",
    "train_variant",
    "train_variants",
    "trainable_parts",
    "unfreeze",
    "variant_config",
]


def headline(result: dict) -> dict | None:
    """The hierarchical model against single-task training, ours beside the paper's (the paper reports the
    change in F1 per dataset): the mean change over the datasets both have, for the README."""
    rows = [r for r in table(result) if r["variant"] == "hierarchical" and r["dataset"] != "mean"]
    rows = [r for r in rows if r.get("delta_strict") is not None]
    if not rows:
        return None
    paired = [r for r in rows if r.get("paper_delta") is not None]
    mean = [r for r in table(result) if r["variant"] == "hierarchical" and r["dataset"] == "mean"]
    ours = sum(r["delta_strict"] for r in paired) / len(paired)
    theirs = sum(r["paper_delta"] for r in paired) / len(paired)
    scale = rows[0]["scale"]
    return {
        "model": f"hierarchical (type level + fine-tuning), MiniLM, {scale} scale, seed {rows[0]['seeds'][0]}",
        "paper protocol: ours": f"mean Δ F1 vs single-task over {len(paired)} datasets: {ours:+.2f} points",
        "paper protocol: paper": f"{theirs:+.2f} points (XLNet-CRF, full data)",
        "standard NER F1": f"{mean[0]['f1_strict']:.4f} (mean, strict)" if mean else None,
        "standard men-document F1": None,
    }
