"""The papers' Table 1 for each corpus: documents, mentions per type, concepts, and the tokenization check.

``python -m mernlib reproduce data`` reads every document of every split (there is nothing to train, so
every scale reads everything) and stores one run per corpus in ``results/data/<corpus>.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

TITLE = "Corpus statistics (the papers' Table 1)"
VARIANTS = ("statistics",)
DEFAULT_VARIANTS = VARIANTS
SPLITS = ("train", "dev", "test")


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
) -> list[Path]:
    """Statistics of every split and of the whole corpus, stored as one run."""
    from ..data import corpus_statistics
    from ..registry import DATASETS
    from ..report import run_record
    from ..results import add_run, result_path

    started = time.time()
    splits = {split: corpus_statistics(corpus, split, data_dir) for split in SPLITS}
    total = corpus_statistics(corpus, None, data_dir)
    for stats in (*splits.values(), total):
        stats.pop("files")
    run = {
        "variant": "statistics",
        "seed": None,
        "scale": "full",  # every scale reads every document
        "epochs": None,
        "encoder": None,
        "all_splits": total,
        "splits": splits,
        "provenance": run_record(seed=None, scale="full", encoder=None, started=started),
    }
    header = {
        "experiment": "data",
        "corpus": corpus,
        "paper": getattr(DATASETS.get(corpus), "citation", None),
    }
    path = result_path(results_dir, "data", corpus)
    return [add_run(path, run, header=header, summarize=summarize, stored_runs=stored_runs)]


def summarize(runs: list[dict]) -> list[dict]:
    """One row per split and one for the whole corpus (the newest run)."""
    if not runs:
        return []
    run = max(runs, key=lambda r: r["provenance"]["date"])
    rows = []
    for name, stats in [*run["splits"].items(), ("all", run["all_splits"])]:
        row = {"split": name, "documents": stats["documents"], "mentions": stats["mentions"]}
        row.update({f"mentions_{t}": n for t, n in stats["mentions_per_type"].items()})
        row.update({"concepts": stats["concepts"], "lost_mentions": stats["lost_mentions"]})
        rows.append(row)
    return rows


def stored_runs(result: dict) -> list[dict]:
    """The runs of a results file (one written before the one results store held the statistics at the
    top level: it is read as one run)."""
    if "runs" in result:
        return list(result["runs"].values())
    if "all_splits" in result:
        fields = {"variant": "statistics", "seed": None, "scale": "full", "epochs": None, "encoder": None}
        return [fields | {k: result[k] for k in ("all_splits", "splits", "provenance")}]
    return []


def table(result: dict) -> list[dict]:
    return summarize(stored_runs(result))
