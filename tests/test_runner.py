"""The runner names the failing notebook and cell, writes a report, and points runs/latest at it."""

import json

import nbformat

from mernlib.runner import export_html, install_cell, run_all, strip_outputs, write_install_cells


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'scale = "quick"\ncorpus = "sample"\ndata_dir = ""\nseed = 13\nmetrics_file = ""'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_report_and_failure_naming(tmp_path, capfd):
    good = _notebook(
        tmp_path / "00_good.ipynb",
        [
            "from mernlib.report import save_metrics\nsave_metrics({'answer': 42, 'f1': {'ner': 0.5}}, metrics_file)"
        ],
    )
    bad = _notebook(tmp_path / "01_bad.ipynb", ["x = 1", "raise ValueError('boom in the second cell')"])
    run_dir, results = run_all(
        [good, bad], tmp_path / "runs", {"scale": "quick", "corpus": "sample", "data_dir": "", "seed": 13}
    )
    assert [r.status for r in results] == ["ok", "failed"]
    assert results[0].metrics == {"answer": 42, "f1.ner": 0.5}
    assert "01_bad.ipynb" in results[1].error and "ValueError: boom in the second cell" in results[1].error
    assert "cell" in results[1].error
    report = (run_dir / "report.md").read_text()
    assert "| 00_good.ipynb | ok |" in report and "answer=42" in report
    assert (tmp_path / "runs" / "latest" / "report.md").read_text() == report
    assert json.loads((run_dir / "run.json").read_text())["notebooks"][1]["status"] == "failed"
    # The executed failing notebook is kept, with papermill's error marker, as the artifact to read.
    assert "papermill-error-cell-tag" in (run_dir / "01_bad.ipynb").read_text()
    # Both are also HTML; the report says what to open and that sample numbers are no result.
    assert (run_dir / "00_good.html").is_file() and (run_dir / "01_bad.html").is_file()
    assert "[as HTML](00_good.html)" in report and "make lab RUN=latest" in report
    assert "say nothing about the papers" in report
    # The terminal gets the progress and nothing from the kernels (ipykernel's warning about unencrypted
    # TCP, the KeyboardInterrupt of jupyter_client's interrupt-before-shutdown).
    err = capfd.readouterr().err
    assert "without encryption" not in err and "KeyboardInterrupt" not in err, err


def test_export_html_draws_equations_without_mathjax(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "Feedback: $v \\circ (v + yU)$, and\n\n$$L = L_{low} + \\lambda L_{mid}$$"
        )
    ]
    path = tmp_path / "00_math.ipynb"
    nbformat.write(nb, str(path))
    page = export_html(path).read_text()
    assert page.count("<math") == 2 and "\\circ" not in page and "$$" not in page
    assert "mathjax" not in page.lower()


def test_install_cells_follow_the_repository(tmp_path):
    path = _notebook(tmp_path / "00_x.ipynb", ["print(1)"])
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("! [ -e /content ] && pip install mernlib"))
    nbformat.write(nb, str(path))
    url = "https://github.com/some-org/mernlib"
    assert write_install_cells(url, [path]) == [path]
    first = nbformat.read(str(path), as_version=4).cells[0].source
    assert first == install_cell(url) and f'"{url}"' in first and "import mernlib.viz" in first
    assert write_install_cells(url, [path]) == []


def test_strip_outputs_keeps_the_parameters_tag(tmp_path):
    path = _notebook(tmp_path / "00_x.ipynb", ["print(1)"])
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[1].execution_count = 3
    nbformat.write(nb, str(path))
    assert strip_outputs(path) is True
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert nb.cells[0].metadata["tags"] == ["parameters"]
    assert strip_outputs(path) is False
