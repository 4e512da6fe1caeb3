"""Reproduction runs, one module per paper, all under one contract (``python -m mernlib reproduce NAME``).

=========  ==============================================  =========================================
name       what                                            module
=========  ==============================================  =========================================
``data``   the papers' Table 1: corpus statistics          :mod:`mernlib.experiments.data`
``mtl``    Zhao et al. (AAAI 2019), Table 2                :mod:`mernlib.experiments.mtl`
``e2emern``  Zhou et al. (ACL 2021), main table, ablations   :mod:`mernlib.experiments.e2emern`
``hst``    Chai et al. (BMC Bioinformatics 2022)           :mod:`mernlib.experiments.hst`
=========  ==============================================  =========================================

**The contract.** Every experiment module exposes

* ``reproduce(corpus, *, data_dir, seed, scale, epochs, only, results_dir, progress, **overrides)`` --
  train and score the variants ``only`` (default: the experiment's default variants) on one corpus and
  store every run with :func:`mernlib.results.add_run`; returns the paths written;
* ``summarize(runs) -> rows`` -- the summary rows of a results file (one per configuration, means over
  seeds, the paper's number beside ours), which ``python -m mernlib table`` prints;
* ``VARIANTS`` (in the paper's order) and ``DEFAULT_VARIANTS``.

:func:`reproduce` below checks the arguments once for all of them (an unknown experiment, scale,
variant or corpus, an epoch count where nothing is trained: a clear error) and chooses where results go:
runs of a committed configuration (``reduced`` or ``full`` scale, the scale's own epochs) go to
``results/``, anything else (``quick``, ``--epochs N``) to ``runs/results/`` unless ``results_dir`` says
otherwise -- a smoke run never lands in the committed tables.

**One scale vocabulary** (:data:`SCALES`): ``quick`` (seconds to minutes, for notebooks and tests: the
numbers show the machinery, not the papers), ``reduced`` (the real corpora under a budget a shared
2-core CPU can afford, each reduction written down), ``full`` (the papers' settings where the CPU allows).
What each means per experiment is the table itself; the experiment modules read their settings from it.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..paths import RESULTS_DIR, SCRATCH_RESULTS_DIR

SCALE_NAMES = ("quick", "reduced", "full")

SCALES: dict[str, dict[str, dict]] = {
    "data": {
        # statistics read every document at every scale: nothing is trained
        "quick": {"about": "every document (nothing to reduce)"},
        "reduced": {"about": "every document (nothing to reduce)"},
        "full": {"about": "every document"},
    },
    "mtl": {
        # "config": MTLConfig overrides; "max_sentences": cap per split (whole documents kept)
        "quick": {
            "about": "a smaller network (1 Bi-LSTM layer of 50) and 8 epochs of Adam (lr 0.01), at most 500 "
            "sentences per split (the whole sample): the machinery in seconds; the normalizer of "
            "--only with-normalizer retrieves with TF-IDF (no encoder to tune)",
            "max_sentences": 500,
            "normalizer": {"retriever": "tfidf"},
            "config": {
                "epochs": 8,
                "optimizer": "adam",
                "lr": 0.01,
                "hidden_size": 50,
                "num_layers": 1,
                "batch_size": 16,
            },
        },
        "reduced": {
            "about": "every sentence, the paper's network and protocol (momentum SGD lr 0.001) for 5 epochs",
            "max_sentences": None,
            "config": {"epochs": 5},
        },
        "full": {
            "about": "every sentence, the paper's protocol: momentum SGD lr 0.001, 20 epochs, dev selection",
            "max_sentences": None,
            "config": {},
        },
    },
    "e2emern": {
        "quick": {
            "about": "the first 20 documents per split, 1 epoch, max 64 pieces; the normalizer retrieves "
            "with TF-IDF instead of a tuned encoder (seconds, not minutes)",
            "max_documents": 20,
            "normalizer": {"retriever": "tfidf"},
            "epochs": 1,
            "batch_size": 8,
            "lr": 3e-4,
            "head_lr": 3e-3,
            "n_negatives": 1,
            "max_length": 64,
        },
        "reduced": {
            "about": "every document, the full settings with 1 epoch (the ablations)",
            "max_documents": None,
            "epochs": 1,
            "batch_size": 16,
            "lr": 1e-4,
            "head_lr": 1e-3,
            "n_negatives": 1,
            "max_length": 128,
        },
        "full": {
            "about": "every document, 2 epochs, Adam (encoder lr 1e-4, heads 1e-3), 128 pieces per window",
            "max_documents": None,
            "epochs": 2,
            "batch_size": 16,
            "lr": 1e-4,
            "head_lr": 1e-3,
            "n_negatives": 1,
            "max_length": 128,
        },
    },
    "hst": {
        "quick": {
            "about": "64/32/64 sentences per dataset (train/devel/test), 1 + 1 epochs",
            "train": 64,
            "devel": 32,
            "test": 64,
            "epochs": 1,
            "fine_tune_epochs": 1,
        },
        "reduced": {
            "about": "a seeded 600/300/1,000-sentence subset per dataset, 3 multi-task + 1 fine-tuning epochs",
            "train": 600,
            "devel": 300,
            "test": 1000,
            "epochs": 3,
            "fine_tune_epochs": 1,
        },
        "full": {
            "about": "every sentence of every dataset, 3 multi-task + 2 fine-tuning epochs (a GPU-sized job)",
            "train": None,
            "devel": None,
            "test": None,
            "epochs": 3,
            "fine_tune_epochs": 2,
        },
    },
}
"""experiment -> scale -> settings (``about`` says it in words). The one table of scales."""


@dataclass(frozen=True)
class Experiment:
    """What :func:`reproduce` needs to know about an experiment before importing it."""

    name: str
    module: str
    corpora: tuple[str, ...]  # the default corpora (or dataset selection)
    trains: bool = True  # whether ``epochs`` means anything


EXPERIMENTS: dict[str, Experiment] = {
    "data": Experiment("data", "mernlib.experiments.data", ("ncbi-disease", "bc5cdr"), trains=False),
    "mtl": Experiment("mtl", "mernlib.experiments.mtl", ("ncbi-disease", "bc5cdr")),
    "e2emern": Experiment("e2emern", "mernlib.experiments.e2emern", ("ncbi-disease",)),
    "hst": Experiment("hst", "mernlib.experiments.hst", ("paper",)),
}


def module(name: str):
    """The experiment's module (imported on demand: ``reproduce data`` does not load torch)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: choose 'all' or one of {list(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name].module)


def scale_settings(experiment: str, scale: str) -> dict:
    """The settings of ``scale`` for ``experiment`` (:data:`SCALES`), checked."""
    if scale not in SCALE_NAMES:
        raise ValueError(f"scale must be one of {'|'.join(SCALE_NAMES)}, not {scale!r}")
    return dict(SCALES[experiment][scale])


def default_results_dir(scale: str, epochs: int | None) -> Path:
    """``results/`` for a committed configuration, ``runs/results/`` for a quick or epoch-overridden run."""
    return SCRATCH_RESULTS_DIR if scale == "quick" or epochs is not None else RESULTS_DIR


def reproduce(
    experiment: str,
    corpora=None,
    *,
    data_dir=None,
    seed: int = 13,
    scale: str = "full",
    epochs: int | None = None,
    only=None,
    results_dir=None,
    progress: bool | None = None,
    **overrides,
) -> list[Path]:
    """Run ``experiment`` (or ``"all"``) on each of ``corpora`` (default: the experiment's own); the one
    entry point of ``python -m mernlib reproduce``. Arguments are checked here, for every experiment."""
    names = list(EXPERIMENTS) if experiment == "all" else [experiment]
    for name in names:
        module(name)  # raises on an unknown name before anything runs
    if scale not in SCALE_NAMES:
        raise ValueError(f"scale must be one of {'|'.join(SCALE_NAMES)}, not {scale!r}")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a positive whole number, not {epochs!r}")
    if progress is None:
        import os

        progress = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
    written: list[Path] = []
    for name in names:
        spec, mod = EXPERIMENTS[name], module(name)
        if epochs is not None and not spec.trains:
            if experiment == "all":
                continue_epochs = None
            else:
                raise ValueError(f"{name} trains nothing: --epochs does not apply to it")
        else:
            continue_epochs = epochs
        if only:
            unknown = [v for v in only if v not in mod.VARIANTS]
            if unknown and experiment != "all":
                raise ValueError(f"{name}: unknown variant(s) {unknown}; choose among {list(mod.VARIANTS)}")
        chosen = [v for v in (only or mod.DEFAULT_VARIANTS) if v in mod.VARIANTS]
        target = Path(results_dir) if results_dir is not None else default_results_dir(scale, continue_epochs)
        for corpus in corpora or spec.corpora:
            written += mod.reproduce(
                corpus,
                data_dir=data_dir,
                seed=seed,
                scale=scale,
                epochs=continue_epochs,
                only=chosen,
                results_dir=target,
                progress=progress,
                **overrides,
            )
    return written


def table(result: dict) -> list[dict]:
    """The summary rows of a results file, recomputed from its runs by its experiment's ``summarize``."""
    name = result.get("experiment")
    if name not in EXPERIMENTS:
        raise ValueError(f"not a results file of the kit (experiment {name!r})")
    mod = module(name)
    if hasattr(mod, "table"):
        return mod.table(result)
    return mod.summarize(list(result.get("runs", {}).values()))


def results_readme(folder) -> str:
    """``results/<experiment>/README.md``: the paper, then per results file its summary table, then the
    hand-written ``findings.md`` of the folder (what the numbers mean, why they differ from the paper).

    Written by ``python -m mernlib table results/<experiment> --write``; tests/test_results_readme.py
    checks that every committed README is what this function writes from the committed JSON."""
    from ..report import markdown_table
    from ..results import load_results

    folder = Path(folder)
    name = folder.name
    mod = module(name)
    files = sorted(folder.glob("*.json"))
    lines = [
        f"# {getattr(mod, 'TITLE', name)}: our runs",
        "",
        f"<!-- written by `python -m mernlib table results/{name} --write` from the JSON files here; "
        "do not edit by hand -->",
        "",
    ]
    for path in files:
        result = load_results(path)
        if lines[-1] == "" and result.get("paper") and "Paper:" not in "\n".join(lines):
            lines += [f"Paper: {result['paper']}", ""]
        rows = table(result)
        lines += [f"## `{path.name}`", ""]
        lines += [
            markdown_table(rows, list(getattr(mod, "README_COLUMNS", ())) or None) if rows else "(no runs)"
        ]
        lines += [""]
    findings = folder / "findings.md"
    if findings.exists():
        lines += [findings.read_text(encoding="utf-8").rstrip("\n"), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def headline_rows(results_dir=RESULTS_DIR) -> list[dict]:
    """One row per paper and corpus -- each experiment's ``headline(result)`` -- for the README's summary
    table, linking to the experiment's results README."""
    from ..results import load_results

    rows = []
    for name in EXPERIMENTS:
        mod = module(name)
        if not hasattr(mod, "headline"):
            continue
        for path in sorted((Path(results_dir) / name).glob("*.json")):
            row = mod.headline(load_results(path))
            if row:
                paper = getattr(mod, "SHORT_TITLE", getattr(mod, "TITLE", name))
                rows.append({"paper": f"[{paper}](results/{name}/README.md)", "corpus": path.stem, **row})
    # the kit's trained systems (results/models/, from `train` and `soup`): per corpus, the pipeline and the
    # kit's own system. Of several own systems of one corpus (`train best` with other settings, soups) the
    # row is the one dev prefers, by its men-document F1, as notebook 07 chooses; all are in results/models/
    from ..pipeline import dev_choice, headline

    groups: dict[tuple[str, str], list[dict]] = {}
    for path in sorted((Path(results_dir) / "models").glob("*-full*.json")):
        card = json.loads(path.read_text(encoding="utf-8")) | {"file": path.name}
        kind = "pipeline" if card["name"].startswith("pipeline") else "own system"
        groups.setdefault((card["corpus"]["name"], kind), []).append(card)
    for key in sorted(groups, key=lambda k: (k[1] == "pipeline", k[0])):
        card = dev_choice(groups[key])
        row = headline(card)
        rows.append({**row, "paper": f"[{row['paper']}](results/models/{card['file']})"})
    return rows


def summary_table(results_dir=RESULTS_DIR) -> str:
    """The README's summary table (``python -m mernlib table --summary``)."""
    from ..report import markdown_table

    return markdown_table(headline_rows(results_dir))


__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "SCALE_NAMES",
    "Experiment",
    "default_results_dir",
    "headline_rows",
    "summary_table",
    "module",
    "reproduce",
    "results_readme",
    "scale_settings",
    "table",
]
