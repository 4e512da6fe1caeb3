"""Execute the notebook sequence headlessly with papermill and write a short report.

``python -m mernlib run`` (and ``make run``) executes every ``notebooks/NN_*.ipynb`` in order, passing the
same parameters to each (``scale``, ``corpus``, ``data_dir``, ``seed`` and the ``metrics_file`` the notebook
writes its headline numbers to), and writes under ``runs/<timestamp>/``:

* the executed notebooks (on failure the notebook carries papermill's error cell: read it there);
* ``report.md``: one line per notebook with its status, run time and headline metrics;
* ``run.json``: the same, machine-readable, with the git commit and parameters.

``runs/latest`` points at the newest run. A failure exits non-zero and names the notebook and the cell.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import REPO_ROOT
from .report import git_commit, write_json

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


@dataclass
class NotebookResult:
    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    metrics: dict = field(default_factory=dict)
    error: str = ""


def discover_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks of the sequence, in order (``00_*.ipynb``, ``01_*.ipynb``, ...)."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def describe_failure(notebook: Path, error: Exception) -> str:
    """One line naming the notebook and the cell that failed, and the error."""
    cell = getattr(error, "cell_index", None)
    exec_count = getattr(error, "exec_count", None)
    ename = getattr(error, "ename", type(error).__name__)
    evalue = getattr(error, "evalue", str(error))
    where = f"cell {cell}" if cell is not None else "before any cell ran"
    if exec_count is not None:
        where += f" (In [{exec_count}])"
    return f"{notebook.name}, {where}: {ename}: {str(evalue).strip().splitlines()[-1] if evalue else ''}"


def execute_notebook(
    notebook: Path, out_dir: Path, parameters: dict, timeout: int | None = None
) -> NotebookResult:
    """Run one notebook with papermill into ``out_dir`` and collect its metrics file."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = out_dir.resolve() / f"{notebook.stem}.metrics.json"
    params = {**parameters, "metrics_file": str(metrics_file)}
    started = time.time()
    try:
        pm.execute_notebook(
            str(notebook),
            str(out_dir / notebook.name),
            parameters=params,
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=timeout,
        )
    except Exception as error:  # papermill's PapermillExecutionError, or a kernel that died
        return NotebookResult(
            notebook.name, "failed", round(time.time() - started, 1), error=describe_failure(notebook, error)
        )
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return NotebookResult(notebook.name, "ok", round(time.time() - started, 1), metrics)


def format_report(results: list[NotebookResult], parameters: dict, commit: str) -> str:
    lines = [
        "# mernlib notebook run",
        "",
        f"parameters: `{json.dumps(parameters)}` · commit `{commit}`",
        "",
        "| notebook | status | time (s) | headline metrics |",
        "|---|---|---:|---|",
    ]
    for r in results:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in r.metrics.items()) or "—"
        if r.error:
            shown = f"**{r.error}**"
        lines.append(f"| {r.notebook} | {r.status} | {r.seconds:.1f} | {shown} |")
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def run_all(
    notebooks: list[Path],
    runs_dir: Path,
    parameters: dict,
    timeout: int | None = None,
    stop_on_failure: bool = False,
) -> tuple[Path, list[NotebookResult]]:
    """Execute ``notebooks`` in order; returns the run folder and one result per notebook."""
    from tqdm.auto import tqdm

    run_dir = Path(runs_dir) / time.strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while run_dir.exists():  # two runs in one second keep separate folders
        run_dir = run_dir.with_name(f"{run_dir.name.split('.')[0]}.{suffix}")
        suffix += 1
    run_dir.mkdir(parents=True)
    results = []
    for notebook in tqdm(notebooks, desc="notebooks", unit="nb"):
        result = execute_notebook(notebook, run_dir, parameters, timeout)
        results.append(result)
        print(
            f"{result.status:>6}  {result.seconds:7.1f}s  {notebook.name}"
            + (f"  {result.error}" if result.error else ""),
            flush=True,
        )
        if result.status != "ok" and stop_on_failure:
            break
    commit = git_commit()
    (run_dir / "report.md").write_text(format_report(results, parameters, commit), encoding="utf-8")
    write_json(
        {"parameters": parameters, "git_commit": commit, "notebooks": [asdict(r) for r in results]},
        run_dir / "run.json",
    )
    _point_latest(run_dir)
    return run_dir, results


def _point_latest(run_dir: Path) -> None:
    latest = run_dir.parent / "latest"
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.exists():  # a copy left by a system without symlinks
        import shutil

        shutil.rmtree(latest)
    try:
        os.symlink(run_dir.name, latest, target_is_directory=True)
    except OSError:  # e.g. Windows without developer mode: copy instead
        import shutil

        shutil.copytree(run_dir, latest)


def strip_outputs(path: Path) -> bool:
    """Remove outputs, execution counts and widget state from a notebook; True if it changed.

    Cell tags (the ``parameters`` tag papermill needs) are kept.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    after = nbformat.writes(nb)
    if after != before:
        Path(path).write_text(after + ("" if after.endswith("\n") else "\n"), encoding="utf-8")
    return after != before
