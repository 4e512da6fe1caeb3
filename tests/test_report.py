"""Provenance: the commit a result names, and the markdown tables printed from results."""

import subprocess

import pytest

from mernlib.report import git_commit, markdown_table, short_commit


@pytest.fixture
def repo(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}\n")
    git("add", ".")
    git("commit", "-qm", "init")
    return tmp_path


def test_dirty_code_is_flagged_but_rewritten_results_are_not(repo):
    clean = git_commit(repo)
    assert len(clean) == 40 and "+" not in clean
    (repo / "results" / "r.json").write_text('{"runs": 1}\n')  # a run adding to a committed results file
    assert git_commit(repo) == clean
    (repo / "code.py").write_text("x = 2\n")  # a code change is not
    assert git_commit(repo) == clean + "+dirty"
    assert short_commit(clean + "+dirty") == clean[:7] + "+dirty"


def test_not_a_checkout(tmp_path):
    assert git_commit(tmp_path).startswith("unknown")


def test_markdown_table_merges_spread_and_formats_numbers():
    rows = [{"row": "a", "f1": 0.81234, "f1_sd": 0.0021, "seconds": 869.21, "seeds": [13, 14]}, {"row": "b"}]
    lines = markdown_table(rows).splitlines()
    assert lines[0] == "| row | f1 | seconds | seeds |"
    assert lines[1] == "|---|---:|---:|---|"
    assert lines[2] == "| a | 0.8123 ± 0.0021 | 869.2 | 13 14 |"
    assert lines[3] == "| b | — | — | — |"


def test_run_records_name_the_cpu_they_ran_on(monkeypatch):
    import builtins
    import io
    import os

    from mernlib.report import machine, run_record

    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            return io.StringIO("processor\t: 0\nmodel name\t: Example CPU 9000\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert machine().endswith(f", Example CPU 9000, {os.cpu_count()} CPUs")
    assert run_record(command="x")["machine"] == machine()

    def no_cpuinfo(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_cpuinfo)  # macOS, Windows: the model is left out
    assert machine().endswith(f"{os.cpu_count()} CPUs") and "Example" not in machine()
