"""Every notebook: committed clean, with a literal-only ``parameters`` cell, the install cell for the
repository named in pyproject.toml, and a papermill smoke run on the bundled sample (the same run
``make run`` does). The executed notebooks are made once per session (:func:`run_once`) and shared with
tests/test_browser.py, which opens their HTML in a real browser."""

import ast
import json
import re

import nbformat
import pytest
import tomllib

from mernlib.runner import NOTEBOOKS_DIR, discover_notebooks, execute_notebook, install_cell

NOTEBOOKS = discover_notebooks(NOTEBOOKS_DIR)
STANDARD_PARAMETERS = {"scale", "corpus", "data_dir", "seed", "metrics_file"}
SAMPLE_RUN = {"scale": "quick", "corpus": "sample", "data_dir": "", "seed": 13}

_executed = {}  # notebook path -> NotebookResult, for this test session
_run_dir = []


def run_once(path, tmp_path_factory):
    """``path`` executed on the sample, at most once per test session; the executed notebook and its HTML
    are in ``executed_path(path)``'s folder."""
    if path not in _executed:
        if not _run_dir:
            _run_dir.append(tmp_path_factory.mktemp("executed-notebooks"))
        _executed[path] = execute_notebook(path, _run_dir[0], SAMPLE_RUN)
    return _executed[path]


def executed_path(path):
    return _run_dir[0] / path.name


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no NN_*.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs; run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_holds_literals_only(path):
    nb = nbformat.read(str(path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell must be tagged 'parameters'"
    names = set()
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        ast.literal_eval(node.value)  # raises on anything but a literal
        names.add(node.targets[0].id)
    assert STANDARD_PARAMETERS <= names, f"{path.name}: missing parameters {STANDARD_PARAMETERS - names}"


def _repository(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def test_the_repository_is_a_github_project(repo_root):
    """Binder and Colab open notebooks from GitHub: the URL must name an owner and a repository."""
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", _repository(repo_root))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_from_the_repository(path, repo_root):
    """The first code cell is the install cell for pyproject.toml's repository: `make install-cells`."""
    nb = nbformat.read(str(path), as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.source == install_cell(_repository(repo_root)), (
        f"{path.name}: run `make install-cells` (the first cell must install from pyproject.toml's "
        "[project.urls] Repository)"
    )


def readme_badges(repository):
    """The README's two badge lines for ``repository`` (opening notebook 00 on Binder and on Colab)."""
    owner_repo = repository.removeprefix("https://github.com/")
    first = "notebooks/00_data_tour.ipynb"
    return [
        "[![Binder](https://mybinder.org/badge_logo.svg)]"
        f"(https://mybinder.org/v2/gh/{owner_repo}/main?urlpath=lab/tree/{first})",
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{owner_repo}/blob/main/{first})",
    ]


def test_readme_badges_name_the_repository(repo_root):
    readme = (repo_root / "README.md").read_text().splitlines()
    badges = [
        line for line in readme if "mybinder.org/v2" in line or "colab.research.google.com/github" in line
    ]
    assert badges == readme_badges(_repository(repo_root))


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_smoke_run_on_the_sample(path, tmp_path_factory):
    result = run_once(path, tmp_path_factory)
    assert result.status == "ok", result.error
    assert result.metrics, f"{path.name} wrote no headline metrics"
    assert executed_path(path).with_suffix(".html").is_file(), "the runner exports every notebook to HTML"
