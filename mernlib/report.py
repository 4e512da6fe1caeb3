"""Headline metrics and run records: how a notebook hands its numbers to the runner and to `results/`.

A notebook ends with ``save_metrics({...}, metrics_file)``; the runner passes ``metrics_file`` as a
papermill parameter and collects the JSON into its report. In JupyterLab ``metrics_file`` is empty and
the call only displays the numbers.

Every number the kit stores comes from a run, so :func:`run_record` stamps what produced it: the command,
seed, scale, encoder, wall time and git commit.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .files import atomic_write_text
from .paths import REPO_ROOT

OUTPUT_DIRS = ("results", "runs")


def git_commit(repo: Path = REPO_ROOT) -> str:
    """The commit of the working tree that produced a result, with ``+dirty`` when files were modified.

    Files under :data:`OUTPUT_DIRS` do not count: they are what runs write (a second run of a series
    rewrites the committed ``results/<experiment>/<corpus>.json`` it adds to), not code that produced them.
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
            + [f":(exclude){d}" for d in OUTPUT_DIRS],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


def short_commit(commit: str) -> str:
    """``0123456789abc...+dirty`` -> ``0123456+dirty``: short, but never hiding a dirty tree."""
    head, _, dirty = commit.partition("+")
    return head[:7] + (f"+{dirty}" if dirty else "")


def invocation() -> str:
    """The command line that is running, as a user would type it (``python -m mernlib ...``)."""
    program = Path(sys.argv[0])
    head = (
        "python -m mernlib"
        if program.name == "__main__.py" and program.parent.name == "mernlib"
        else program.name
    )
    return " ".join([head, *sys.argv[1:]])


def machine() -> str:
    """What the numbers were measured on: architecture, CPU model (Linux's ``/proc/cpuinfo``, when
    readable) and CPU count. Speed readings from two machines are not comparable: the same benchmark at
    the same commit ran 1.7x faster on one 2-core machine of this workplace than on another
    (``benchmarks/README.md``), so every reading names its machine."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), ""
            )
    except OSError:
        pass
    return f"{platform.machine()}{', ' + model if model else ''}, {os.cpu_count()} CPUs"


def run_record(
    *,
    command: str | None = None,
    seed: int | None = None,
    scale: str | None = None,
    encoder: str | None = None,
    started: float | None = None,
    **extra,
) -> dict:
    """The provenance block stored next to every result of the kit."""
    record = {
        "command": command if command is not None else invocation(),
        "seed": seed,
        "scale": scale,
        "encoder": encoder,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if started is not None:
        record["wall_time_s"] = round(time.time() - started, 1)
    record.update(extra)
    return record


def write_json(data: dict, path: str | Path) -> Path:
    """Write JSON atomically (a reader never sees half a file)."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextmanager
def locked(path: str | Path):
    """Hold an exclusive lock on ``<path>.lock`` for a read-modify-write of a results file that several
    processes add to at once (rows, seeds or variants trained in parallel). Re-read the file inside the
    lock: what a process read before it started training may be stale by the time it writes."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield path


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """The CSV beside a results JSON: one line per row, the union of the rows' keys as columns, lists
    space-separated. Written atomically, with the csv module's CRLF line ends as before."""
    import csv
    import io

    keys = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.items()})
    return atomic_write_text(path, buffer.getvalue())


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A GitHub markdown table of result rows, so the README's tables are printed from `results/`,
    not typed. ``x`` and ``x_sd`` (a spread over seeds) print as one cell ``x ± sd``; lists print
    space-separated; missing values print as an em dash."""
    columns = columns or [k for k in dict.fromkeys(k for row in rows for k in row) if not k.endswith("_sd")]

    def cell(row: dict, key: str) -> str:
        value = row.get(key)
        if value is None or value == "":
            return "—"
        if isinstance(value, list):
            return " ".join(map(str, value))
        if isinstance(value, float):  # 4 significant digits: 0.8065, 0.97 (F1 points), 11.42, 869.2
            text = f"{value:.4g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.1e}"
            spread = row.get(key + "_sd")
            return text + (f" ± {spread:.4f}" if spread is not None else "")
        return str(value)

    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]
    lines = ["| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(cell(row, c) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def save_metrics(metrics: dict, metrics_file: str = "") -> dict:
    """Hand a notebook's headline metrics to the runner (when ``metrics_file`` is set) and show them.

    Keys are short names (``"ner_f1"``), values numbers or strings; nested dicts are flattened with dots
    so the report stays one line per notebook.
    """
    flat = _flatten(metrics)
    if metrics_file:
        write_json(flat, metrics_file)
    return flat


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:  # NumPy and torch scalars become plain Python numbers (JSON, and a readable echo)
            out[name] = value.item() if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value
    return out
