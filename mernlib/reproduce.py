"""``python -m mernlib reproduce EXPERIMENT``: full-scale runs on the real corpora, written to ``results/``.

Each experiment is a function ``(corpora, data_dir, seed, results_dir, scale, only) -> list of written
paths`` that stores its numbers with :func:`mernlib.report.run_record` (command, seed, scale, encoder,
wall time, commit). The models' experiments live in :mod:`mernlib.experiments` and are imported only
when asked for, so ``reproduce data`` does not load torch.
"""

from __future__ import annotations

import time
from pathlib import Path

from .report import run_record, write_json


def reproduce_data(
    corpora=None, data_dir=None, seed=13, results_dir=Path("results"), scale="full", only=None
) -> list[Path]:
    """Table 1 of the papers (articles, mentions by type, concepts) and the tokenization check, per split."""
    from .cli import corpus_statistics

    written = []
    for corpus in corpora or ["ncbi-disease", "bc5cdr"]:
        started = time.time()
        splits = {split: corpus_statistics(corpus, split, data_dir) for split in ("train", "dev", "test")}
        for stats in splits.values():
            stats.pop("files")
        total = corpus_statistics(corpus, None, data_dir)
        total.pop("files")
        result = {
            "experiment": "data",
            "corpus": corpus,
            "all_splits": total,
            "splits": splits,
            "provenance": run_record(seed=None, scale="full", encoder=None, started=started),
        }
        written.append(write_json(result, Path(results_dir) / "data" / f"{corpus}.json"))
    return written


EXPERIMENTS = {
    "data": reproduce_data,
    "mtl": "mernlib.experiments.mtl:reproduce",  # Zhao et al. (AAAI 2019), Table 2
    "e2emern": "mernlib.experiments.e2emern:reproduce",  # Zhou et al. (ACL 2021)
    "hst": "mernlib.experiments.hst:reproduce",  # Chai et al. (BMC Bioinformatics 2022)
}


def _experiment(name: str):
    target = EXPERIMENTS[name]
    if callable(target):
        return target
    import importlib

    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def reproduce(
    experiment: str,
    corpora=None,
    data_dir=None,
    seed=13,
    results_dir=Path("results"),
    scale: str | None = None,
    only=None,
    epochs: int | None = None,
) -> list[Path]:
    if experiment == "all":
        names = list(EXPERIMENTS)
    elif experiment in EXPERIMENTS:
        names = [experiment]
    else:
        raise ValueError(f"unknown experiment {experiment!r}: choose 'all' or one of {sorted(EXPERIMENTS)}")
    written = []
    for name in names:
        kwargs = {"scale": scale} if scale else {}
        if epochs:  # only experiments that take an epoch count accept it
            kwargs["epochs"] = epochs
        written += _experiment(name)(
            corpora=corpora, data_dir=data_dir, seed=seed, results_dir=results_dir, only=only, **kwargs
        )
    return written
