"""The one results store: every number of ours, with what produced it.

A results file is ``<results_dir>/<experiment>/<corpus>.json``::

    {"experiment": "mtl", "corpus": "ncbi-disease", "paper": "<citation>",
     "runs": {"<key>": run, ...},          # every run stored so far
     "summary": [row, ...]}                # one row per configuration, computed from the runs

A *run* is one trained variant at one seed: a dict that names everything that defines it --
``variant``, ``seed``, ``scale``, ``epochs``, ``encoder`` -- plus its scores and its ``provenance``
(:func:`mernlib.report.run_record`: command, seed, scale, encoder, wall time, git commit). Its key is
made from those five fields (:func:`run_key`), so a run replaces only a run of the very same
configuration: a quick-scale smoke run or an ``--epochs 2`` run never overwrites (nor is averaged with)
the committed full-scale run of the same variant and seed. Summaries group runs by configuration
(:func:`configurations`) and average over seeds only inside a group, so scales are never mixed.

Several variants or seeds are often trained at once in separate processes, all adding to one file:
:func:`add_run` re-reads the file and writes it back under an exclusive lock
(:func:`mernlib.report.locked`), so none overwrites another's run. The CSV beside the JSON holds the
summary (:func:`mernlib.report.write_csv`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from .report import locked, write_csv, write_json

RUN_FIELDS = ("variant", "seed", "scale", "epochs", "encoder")
"""What defines a stored run: two runs that agree on all of these are the same configuration."""


def run_key(run: dict) -> str:
    """``"mtl-both-feedback|seed=13|scale=full|epochs=20|encoder=..."``: the run's identity."""
    missing = [f for f in RUN_FIELDS if f not in run]
    if missing:
        raise ValueError(f"a stored run must name {', '.join(RUN_FIELDS)}; this one lacks {missing}")
    variant, seed, scale, epochs, encoder = (run[f] for f in RUN_FIELDS)
    return f"{variant}|seed={seed}|scale={scale}|epochs={epochs}|encoder={encoder}"


def configuration(run: dict) -> tuple:
    """``(variant, scale, epochs, encoder)``: the runs of one configuration differ only in their seed."""
    return tuple(run[f] for f in RUN_FIELDS if f != "seed")


def configurations(runs: Iterable[dict], order: Iterable[str] = ()) -> list[tuple[tuple, list[dict]]]:
    """The runs grouped by :func:`configuration`, seeds sorted; groups in ``order`` of variants (then
    by scale, epochs, encoder), variants not in ``order`` last."""
    order = list(order)
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(configuration(run), []).append(run)

    def rank(config: tuple):
        variant = config[0]
        return (order.index(variant) if variant in order else len(order), variant, *map(str, config[1:]))

    return [(c, sorted(groups[c], key=lambda r: r["seed"])) for c in sorted(groups, key=rank)]


def result_path(results_dir: str | Path, experiment: str, corpus: str) -> Path:
    return Path(results_dir) / experiment / f"{corpus}.json"


def load_results(path: str | Path) -> dict:
    """A results file, read; raises ``FileNotFoundError`` naming it when there is none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results here yet (python -m mernlib reproduce writes them)")
    return json.loads(path.read_text(encoding="utf-8"))


def add_run(
    path: str | Path,
    run: dict,
    *,
    header: dict,
    summarize: Callable[[list[dict]], list[dict]],
    upgrade: Callable[[dict], dict] | None = None,
    stored_runs: Callable[[dict], Iterable[dict]] | None = None,
) -> Path:
    """Store ``run`` in the results file ``path`` (created with ``header`` if absent), recompute the
    summary with ``summarize(runs)`` and write the JSON and its CSV, all under the file's lock.

    Stored runs are re-keyed with :func:`run_key` on every write, so the key always says what the run is;
    ``upgrade(run)`` fills the fields that runs stored by an older kit lack (it must only copy facts the
    run already records, e.g. its scale from its provenance); ``stored_runs(result)`` reads the runs of a
    file written in an older layout. The file keeps ``header``, the runs and the summary, nothing else.
    """
    path = Path(path)
    with locked(path):
        stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        result = dict(header)
        upgrade = upgrade or (lambda r: r)
        previous = stored_runs(stored) if stored_runs else stored.get("runs", {}).values()
        runs = {run_key(r): r for r in map(upgrade, previous)}
        runs[run_key(run)] = run
        result["runs"] = dict(sorted(runs.items()))
        result["summary"] = summarize(list(result["runs"].values()))
        write_json(result, path)
        write_csv(result["summary"], path.with_suffix(".csv"))
    return path


__all__ = [
    "RUN_FIELDS",
    "add_run",
    "configuration",
    "configurations",
    "load_results",
    "result_path",
    "run_key",
]
