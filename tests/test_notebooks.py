"""Every notebook: committed clean, with a literal-only ``parameters`` cell, a Colab install cell, and a
papermill smoke run on the bundled sample (the same run ``make run`` does)."""

import ast
import json

import nbformat
import pytest

from mernlib.runner import NOTEBOOKS_DIR, discover_notebooks, execute_notebook

NOTEBOOKS = discover_notebooks(NOTEBOOKS_DIR)
STANDARD_PARAMETERS = {"scale", "corpus", "data_dir", "seed", "metrics_file"}


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_on_colab_only(path):
    nb = nbformat.read(str(path), as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.source.lstrip().startswith("! [ -e /content ] && pip install"), first_code.source


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_smoke_run_on_the_sample(path, tmp_path):
    result = execute_notebook(
        path, tmp_path, {"scale": "quick", "corpus": "sample", "data_dir": "", "seed": 13}
    )
    assert result.status == "ok", result.error
    assert result.metrics, f"{path.name} wrote no headline metrics"
