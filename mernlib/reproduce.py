"""``python -m mernlib reproduce EXPERIMENT``: full-scale runs on the real corpora, written to ``results/``.

Each experiment is a function ``(corpora, data_dir, seed, results_dir) -> list of written paths`` and
stores its numbers with :func:`mernlib.report.run_record` (command, seed, scale, wall time, commit).
The model issues add their experiments (``mtl``, ``e2emern``, ``hst``) to :data:`EXPERIMENTS`.
"""

from __future__ import annotations

import time
from pathlib import Path

from .report import run_record, write_json


def reproduce_data(corpora=None, data_dir=None, seed=13, results_dir=Path("results")) -> list[Path]:
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


EXPERIMENTS = {"data": reproduce_data}


def reproduce(experiment: str, corpora=None, data_dir=None, seed=13, results_dir=Path("results")) -> list[Path]:
    if experiment == "all":
        names = list(EXPERIMENTS)
    elif experiment in EXPERIMENTS:
        names = [experiment]
    else:
        raise ValueError(f"unknown experiment {experiment!r}: choose 'all' or one of {sorted(EXPERIMENTS)}")
    written = []
    for name in names:
        written += EXPERIMENTS[name](corpora=corpora, data_dir=data_dir, seed=seed, results_dir=results_dir)
    return written
