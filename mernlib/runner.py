"""Execute the notebook sequence headlessly with papermill and write a short report.

``python -m mernlib run`` (and ``make run``) executes every ``notebooks/NN_*.ipynb`` in order, passing the
same parameters to each (``scale``, ``corpus``, ``data_dir``, ``seed`` and the ``metrics_file`` the notebook
writes its headline numbers to), and writes under ``runs/<timestamp>/``:

* the executed notebooks (on failure the notebook carries papermill's error cell: read it there), to open
  in JupyterLab (``make lab RUN=latest``);
* each of them as one HTML file (:func:`export_html`) that any browser shows without a network;
* ``report.md``: one line per notebook with its status, run time and headline metrics, what to open next
  and what the numbers of a sample run mean;
* ``run.json``: the same, machine-readable, with the git commit and parameters.

``runs/latest`` points at the newest run. A failure exits non-zero and names the notebook and the cell.

The terminal shows only the progress and the report's path: each kernel talks to the runner over
CurveZMQ-encrypted sockets where jupyter_client and ipykernel offer it (:func:`kernel_manager_class`), so
ipykernel has no "running over TCP without encryption" to warn about, and a finished notebook's kernel is
asked to shut down without being interrupted first (jupyter_client's default), an interrupt that a kernel
still finishing its last reply logged as "KeyboardInterrupt caught in kernel".
"""

from __future__ import annotations

import json
import os
import sys
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


def kernel_manager_class():
    """The kernel manager the runner starts kernels with: jupyter_client's, with two changes.

    * Transport encryption ``"auto"``: where jupyter_client can provision CurveZMQ keys and the kernelspec
      declares support (ipykernel 7.4 and later), the kernel's sockets are encrypted. Those are also the
      ipykernel versions that warn, on every start, that a kernel runs "over TCP without encryption".
    * No interrupt before shutdown. jupyter_client sends SIGINT to every kernel it shuts down, busy or not;
      a kernel still finishing its last message then logs "KeyboardInterrupt caught in kernel" although
      the notebook ran to the end. The runner shuts a kernel down only after its notebook finished (or
      failed: papermill stops at the error), so there is nothing to interrupt; the kernel is asked to shut
      down and, if it does not, killed. An interrupt at any other time (a cell timeout) is unchanged.
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class RunnerKernelManager(AsyncKernelManager):
        if "transport_encryption" in AsyncKernelManager.class_trait_names() and zmq.has("curve"):

            @default("transport_encryption")
            def _default_transport_encryption(self) -> str:
                return "auto"

        async def _async_interrupt_kernel(self) -> None:
            if getattr(self, "shutting_down", False):
                return
            await super()._async_interrupt_kernel()

    return RunnerKernelManager


def execute_notebook(
    notebook: Path, out_dir: Path, parameters: dict, timeout: int | None = None, html: bool = True
) -> NotebookResult:
    """Run one notebook with papermill into ``out_dir`` and collect its metrics file; with ``html``, also
    write the executed notebook as ``<name>.html`` beside it (:func:`export_html`), failed or not."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = out_dir.resolve() / f"{notebook.stem}.metrics.json"
    params = {**parameters, "metrics_file": str(metrics_file)}
    executed = out_dir / notebook.name
    started = time.time()
    try:
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=timeout,
            kernel_manager_class=kernel_manager_class(),
        )
    except Exception as error:  # papermill's PapermillExecutionError, or a kernel that died
        result = NotebookResult(
            notebook.name, "failed", round(time.time() - started, 1), error=describe_failure(notebook, error)
        )
    else:
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        result = NotebookResult(notebook.name, "ok", round(time.time() - started, 1), metrics)
    if html and executed.exists():
        export_html(executed)
    return result


# --------------------------------------------------------------------------------------------------
# Executed notebooks as HTML that needs no network
# --------------------------------------------------------------------------------------------------

_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{#- Equations are MathML already (export_html): no MathJax from a CDN. -#}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
"""


def _mathml(tex: str, display: str) -> str:
    from latex2mathml.converter import convert

    try:
        return convert(tex, display=display)
    except Exception:  # a construct latex2mathml does not know: show the TeX rather than nothing
        import html

        return f"<code>{html.escape(tex)}</code>"


def _html_exporter():
    """nbconvert's JupyterLab-style HTML exporter, with equations converted to MathML."""
    from jinja2 import DictLoader, pass_context
    from nbconvert.exporters import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        def block_math(self, body: str) -> str:
            return _mathml(body, "block")

        def inline_math(self, body: str) -> str:
            return _mathml(body, "inline")

        def latex_environment(self, name: str, body: str) -> str:
            return _mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block")

    class OfflineHTMLExporter(HTMLExporter):
        @pass_context  # the filter reads the cell (its attachments) from the template's context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False,
                attachments=cell.get("attachments", {}),
                embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text,
                exclude_anchor_links=self.exclude_anchor_links,
                **self.lexer_options,
            )
            return MarkdownWithMath(renderer=renderer).render(source)

    return OfflineHTMLExporter(
        template_name="lab",
        template_file="mernlib-offline.html.j2",
        extra_loaders=[DictLoader({"mernlib-offline.html.j2": _OFFLINE_TEMPLATE})],
    )


def export_html(notebook: Path, html_path: Path | None = None) -> Path:
    """Write an executed notebook as one HTML file (default: beside it, ``.html``) that any browser shows
    without a network: charts are pictures already (:mod:`mernlib.viz`), and the equations of the markdown
    cells are converted to MathML, which browsers draw themselves, instead of being left to MathJax from a
    CDN (offline they would show as raw ``$...$``). Widgets still load their JavaScript from the internet."""
    import nbformat

    notebook = Path(notebook)
    html_path = Path(html_path) if html_path else notebook.with_suffix(".html")
    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = _html_exporter().from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    html_path.write_text(body, encoding="utf-8")
    return html_path


def what_the_numbers_mean(parameters: dict) -> str:
    """The report's warning for runs whose numbers are no result: the sample, or quick settings."""
    where = (
        "the bundled sample, a few dozen synthetic abstracts (`data/sample/README.md`),"
        if parameters.get("corpus") == "sample"
        else f"`{parameters.get('corpus')}`"
    )
    if parameters.get("corpus") != "sample" and parameters.get("scale") != "quick":
        return ""
    return (
        f"**What these numbers mean.** This run used {where} with "
        f"{'quick settings (a few epochs, small models)' if parameters.get('scale') == 'quick' else 'full settings'}, "
        "so that every notebook runs in minutes on a laptop. Its numbers show that each notebook runs from "
        "end to end; they say nothing about the papers or the models: neither how well a model does nor "
        "which one is better. Full-scale numbers on the real corpora are in `results/` and the README "
        "(`make reproduce` makes them); `make run CORPUS=ncbi-disease SCALE=full` runs the notebooks on a "
        "real corpus."
    )


def format_report(
    results: list[NotebookResult], parameters: dict, commit: str, run_dir: Path | None = None
) -> str:
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
    if note := what_the_numbers_mean(parameters):
        lines += ["", note]
    lines += ["", "## What to open next", ""]
    failed = [r for r in results if r.status != "ok"]
    if failed:
        lines.append(
            "A failed notebook stops at the cell that failed, which shows the error: start there: "
            + ", ".join(f"`{r.notebook}`" for r in failed)
            + "."
        )
        lines.append("")
    where = f"`{run_dir}`" if run_dir is not None else "this folder"
    lines += [
        f"The executed notebooks, with every output, are in {where}:",
        "",
        *[
            f"- [{r.notebook}]({r.notebook}) · [as HTML]({Path(r.notebook).with_suffix('.html')})"
            for r in results
        ],
        "",
        "Open the notebooks in JupyterLab with `make lab RUN=latest` (or `RUN=<the run's folder name>`), "
        "or the `.html` files in any browser, without Jupyter or a network. To change a notebook and run "
        "it yourself, open `notebooks/` instead: `make lab`.",
    ]
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
    progress = tqdm(notebooks, desc="notebooks", unit="nb")
    for notebook in progress:
        progress.set_postfix_str(notebook.name)
        result = execute_notebook(notebook, run_dir, parameters, timeout)
        results.append(result)
        # tqdm.write keeps the progress bar below the lines instead of tearing it
        progress.write(
            f"{result.status:>6}  {result.seconds:7.1f}s  {notebook.name}"
            + (f"  {result.error}" if result.error else ""),
            file=sys.stdout,
        )
        sys.stdout.flush()
        if result.status != "ok" and stop_on_failure:
            break
    progress.close()
    commit = git_commit()
    (run_dir / "report.md").write_text(format_report(results, parameters, commit, run_dir), encoding="utf-8")
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


# --------------------------------------------------------------------------------------------------
# The notebooks' first cell: install on Colab, charts everywhere
# --------------------------------------------------------------------------------------------------

COLAB_KIT = "/content/mernlib-kit"
"""Where the first cell clones the kit on Colab."""

_INSTALL_CELL = """\
# Colab only: clone the kit (its sample data and stored results come with it) and install it. Elsewhere
# (make, Binder) it is installed already and this cell only sets up the charts. `make install-cells`
# writes pyproject.toml's [project.urls] Repository here.
import os, sys
repository, checkout = "{url}", "{kit}"
if os.path.isdir("/content") and not os.path.isdir(checkout):
    !git clone -q --depth 1 {{repository}} {{checkout}} && pip install -q -e {{checkout}}
if os.path.isdir(checkout) and checkout not in sys.path:
    sys.path.insert(0, checkout)  # importable now; after a restart, through the editable install
import mernlib.viz  # charts are pictures drawn in Python: they show offline, in exported HTML, anywhere"""


def install_cell(url: str) -> str:
    """The source of every notebook's first code cell, for the kit's repository ``url``.

    On Colab it clones the repository (not ``pip install git+...``): a checkout carries ``results/`` (the
    stored full-scale runs notebooks 03 to 06 read) and ``data/sample``, and an editable install keeps
    ``mernlib.report.REPO_ROOT`` pointing at it. Everywhere it imports :mod:`mernlib.viz`, which sets up
    the charts (:func:`mernlib.viz.use_offline_charts`).
    """
    return _INSTALL_CELL.format(url=url, kit=COLAB_KIT)


def repository_url(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The kit's repository, ``[project.urls] Repository`` of ``pyproject.toml``: the one place it is set."""
    import tomllib  # Python 3.11+; only maintainers call this

    return tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]["urls"]["Repository"]


def write_install_cells(url: str | None = None, notebooks: list[Path] | None = None) -> list[Path]:
    """Make the first code cell of each notebook :func:`install_cell` (``url``: :func:`repository_url`);
    returns the notebooks that changed. Run by ``make install-cells`` after the URL changed."""
    import nbformat

    url = url or repository_url()
    changed = []
    for path in notebooks if notebooks is not None else discover_notebooks():
        nb = nbformat.read(str(path), as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        if first.source != install_cell(url):
            first.source = install_cell(url)
            text = nbformat.writes(nb)
            Path(path).write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
            changed.append(Path(path))
    return changed


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
