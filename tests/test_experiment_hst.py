"""``python -m mernlib reproduce hst`` on the experiment contract: runs stored with their keys, predictions
that re-score to the stored numbers (strict and lenient), the table, skipped datasets, the CLI -- on the
bundled sample IOB datasets with a tiny encoder saved as a local folder (seconds, no real corpora) -- and
the committed results/hst/paper.json re-scored and printed."""

import csv
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from mernlib import cli
from mernlib.encoders import load_encoder, tiny_random_encoder
from mernlib.experiments import SCALES
from mernlib.experiments import hst as experiment
from mernlib.results import run_key
from mernlib.sample import IOB_DATASETS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(lr=3e-3, head_lr=3e-3, batch_size=8, dropout=0.0, max_length=64)
"""HSTConfig overrides for the tiny random encoder (its windows are 64 pieces)."""


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    """A tiny random BERT written as a local encoder folder: ``encoder=<folder>`` names it, like any
    BioBERT or XLNet folder would be named."""
    folder = tmp_path_factory.mktemp("encoders") / "tiny-bert"
    encoder = tiny_random_encoder(load_encoder()[1])
    encoder.transformer.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_encoder_dir):
    """A quick reproduction of every variant on the five sample datasets, seed 5, one epoch."""
    out = tmp_path_factory.mktemp("results")
    written = experiment.reproduce(
        "sample",
        seed=5,
        scale="quick",
        epochs=1,
        results_dir=out,
        progress=False,
        encoder=str(tiny_encoder_dir),
        **TINY,
    )
    return out, written, json.loads(written[0].read_text())


def test_writes_json_and_csv(run):
    out, written, result = run
    assert written == [out / "hst" / "sample.json", out / "hst" / "sample.csv"]
    assert result["experiment"] == "hst" and result["corpus"] == "sample"
    assert "BMC Bioinformatics 23:8" in result["paper"]


def test_runs_are_stored_with_their_keys(run):
    _, _, result = run
    runs = result["runs"]
    assert sorted(r["variant"] for r in runs.values()) == sorted(experiment.VARIANTS)
    for key, r in runs.items():
        assert key == run_key(r)
        assert (r["seed"], r["scale"], r["epochs"], r["encoder"]) == (5, "quick", 1, "tiny-bert")
        assert r["fine_tune_epochs"] == (1 if experiment.VARIANTS[r["variant"]]["fine_tune"] else None)
        assert r["selection"] == "sample" and r["skipped"] == []
        assert r["caps"] == {"train": 64, "devel": 32, "test": 64}
        assert r["config"]["seed"] == 5 and r["config"]["epochs"] == 1 and r["config"]["max_length"] == 64
        assert r["config"]["use_type_level"] == (r["variant"] == "hierarchical")
        assert set(r["datasets"]) == set(IOB_DATASETS) == set(r["test"])
        for name, d in r["datasets"].items():
            assert d["entity_type"] == IOB_DATASETS[name]["entity_type"].replace("/", "-")
            assert d["used"] == d["sizes"] == {"train": 60, "devel": 20, "test": 20}  # under the caps
        prov = r["provenance"]
        for field in ("command", "seed", "scale", "encoder", "git_commit", "wall_time_s", "threads"):
            assert field in prov, field
        assert (prov["seed"], prov["scale"], prov["encoder"]) == (5, "quick", "tiny-bert")
    # the multi-task variant is the first stage of multi-task+fine-tune: one fit, recorded in both
    mt = next(r for r in runs.values() if r["variant"] == "multi-task")
    ft = next(r for r in runs.values() if r["variant"] == "multi-task+fine-tune")
    assert mt["history"]["multi-task"] == ft["history"]["multi-task"]
    assert set(ft["history"]) == {"multi-task"} | {f"fine-tune:{n}" for n in IOB_DATASETS}


def test_strict_and_lenient_are_both_stored(run):
    _, _, result = run
    for r in result["runs"].values():
        for entry in r["test"].values():
            for kind in ("strict", "lenient"):
                assert {"tp", "fp", "fn", "precision", "recall", "f1"} <= set(entry[kind])
                assert 0.0 <= entry[kind]["f1"] <= 1.0
            assert entry["best_epoch"] == 1 and entry["train_seconds"] >= 0
        assert "strict" in r["scoring"] and "lenient" in r["scoring"]


def test_predictions_rescore_to_the_stored_numbers(run):
    out, _, result = run
    root = out / "hst"
    for r in result["runs"].values():
        for name, entry in r["test"].items():
            path = root / entry["predictions"]
            assert path == root / "sample" / "quick" / f"{r['variant']}-seed5-e1" / f"{name}.tsv"
            for kind in ("strict", "lenient"):
                assert experiment.rescore(path, strict=kind == "strict") == entry[kind], (r["variant"], name)
            lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("-DOCSTART-")]
            assert all(len(ln.split("\t")) == 3 for ln in lines)


def test_summary_and_table(run):
    out, _, result = run
    rows = experiment.table(result)
    assert rows == result["summary"]
    by = {(r["dataset"], r["variant"]): r for r in rows}
    runs = {r["variant"]: r for r in result["runs"].values()}
    for name in IOB_DATASETS:
        single = runs["single-task"]["test"][name]
        for variant, r in runs.items():
            row = by[(name, variant)]
            for kind in ("strict", "lenient"):
                assert row[f"f1_{kind}"] == round(r["test"][name][kind]["f1"], 4)
                expected = (
                    None
                    if variant == "single-task"
                    else 100 * (r["test"][name][kind]["f1"] - single[kind]["f1"])
                )
                assert row[f"delta_{kind}"] == (
                    None if expected is None else pytest.approx(expected, abs=0.01)
                )
            assert row["paper_delta"] is None  # the paper reports no sample dataset
    assert {r["variant"] for r in rows if r["dataset"] == "mean"} == set(experiment.VARIANTS)
    text = cli.result_table(str(out / "hst" / "sample.json"))
    header = text.splitlines()[0]
    assert header.index("f1_strict") < header.index("f1_lenient") < header.index("delta_strict")
    csv_rows = list(csv.DictReader(open(out / "hst" / "sample.csv", encoding="utf-8")))
    assert len(csv_rows) == len(rows)


def test_only_multitask_and_a_skipped_dataset(tmp_path, tiny_encoder_dir, monkeypatch):
    monkeypatch.setenv("MERNLIB_OFFLINE", "1")
    monkeypatch.setenv("MERNLIB_DATA", str(tmp_path / "no-corpora-here"))
    monkeypatch.setenv("MERNLIB_CACHE", str(tmp_path / "no-cache-here"))
    written = experiment.reproduce(
        ["sample-chem", "sample-gene", "BC4CHEMD"],
        scale="quick",
        only=["multi-task"],
        results_dir=tmp_path,
        progress=False,
        encoder=str(tiny_encoder_dir),
        **TINY,
    )
    assert written[0] == tmp_path / "hst" / "sample-chem+sample-gene+BC4CHEMD.json"
    result = json.loads(written[0].read_text())
    (r,) = result["runs"].values()
    assert r["variant"] == "multi-task" and set(r["test"]) == {"sample-chem", "sample-gene"}
    assert [s["dataset"] for s in r["skipped"]] == ["BC4CHEMD"]
    assert "absent: BC4CHEMD train" in r["skipped"][0]["reason"]
    skipped = [row for row in result["summary"] if row["dataset"] == "BC4CHEMD"]
    assert skipped[0]["paper_delta"] == 0.77 and skipped[0]["note"].startswith("skipped: absent")
    assert all(row["delta_strict"] is None for row in result["summary"] if row["variant"])  # no baseline


def test_unknown_variant_and_scale(tmp_path):
    from mernlib import experiments

    with pytest.raises(ValueError, match="unknown variant"):
        experiments.reproduce("hst", ["sample"], only=["nope"], results_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown variant"):
        experiment.reproduce("sample", scale="quick", only=["nope"], results_dir=tmp_path)
    with pytest.raises(ValueError, match="scale"):
        experiments.reproduce("hst", ["sample"], scale="huge", results_dir=tmp_path)


def test_cli_reproduce_quick_on_the_sample(tmp_path, tiny_encoder_dir, monkeypatch, capsys):
    """``python -m mernlib reproduce hst --corpus sample --scale quick --epochs 1 --results-dir <tmp>``;
    the encoder is swapped for the tiny one (the command line names none) so that it takes seconds."""
    scale_config = experiment.scale_config
    monkeypatch.setattr(
        experiment,
        "scale_config",
        lambda *args, **kwargs: scale_config(*args, **(kwargs | {"encoder": str(tiny_encoder_dir)} | TINY)),
    )
    argv = ["reproduce", "hst", "--corpus", "sample", "--scale", "quick", "--epochs", "1"]
    assert cli.main([*argv, "--results-dir", str(tmp_path)]) == 0
    assert f"wrote {tmp_path / 'hst' / 'sample.json'}" in capsys.readouterr().out
    result = json.loads((tmp_path / "hst" / "sample.json").read_text())
    assert sorted(r["variant"] for r in result["runs"].values()) == sorted(experiment.VARIANTS)
    assert {(r["scale"], r["epochs"], r["seed"]) for r in result["runs"].values()} == {("quick", 1, 13)}
    assert cli.main(["table", str(tmp_path / "hst" / "sample.json")]) == 0
    assert "f1_strict" in capsys.readouterr().out


def test_prediction_folders_never_overwrite_the_committed_ones():
    reduced, full = SCALES["hst"]["reduced"]["epochs"], SCALES["hst"]["full"]["epochs"]
    dirs = {
        experiment.prediction_dir("paper", "hierarchical", 13, "reduced", reduced),
        experiment.prediction_dir("paper", "hierarchical", 13, "full", full),
        experiment.prediction_dir("paper", "hierarchical", 14, "reduced", reduced),
        experiment.prediction_dir("paper", "hierarchical", 13, "reduced", 1),
        experiment.prediction_dir("paper", "hierarchical", 13, "quick", 1),
    }
    assert len(dirs) == 5
    assert (
        experiment.prediction_dir("paper", "hierarchical", 13, "reduced", reduced)
        == "paper/reduced/hierarchical"
    )
    assert experiment.prediction_dir("sample", "multi-task", 13, "quick", 1) == "sample/quick/multi-task-e1"


# -- the committed results --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def committed(repo_root):
    path = repo_root / "results" / "hst" / "paper.json"
    return path, json.loads(path.read_text())


def test_committed_predictions_rescore_to_the_committed_numbers(committed):
    path, result = committed
    for run in result["runs"].values():
        for name, entry in run["test"].items():
            for kind in ("strict", "lenient"):
                again = experiment.rescore(path.parent / entry["predictions"], strict=kind == "strict")
                assert again == entry[kind], (run["variant"], name, kind)


def test_committed_results_are_the_reduced_comparison(committed):
    _, result = committed
    runs = {r["variant"]: r for r in result["runs"].values()}
    assert list(runs) == list(experiment.VARIANTS) or set(runs) == set(experiment.VARIANTS)
    h = runs["hierarchical"]
    assert (h["seed"], h["scale"], h["epochs"], h["fine_tune_epochs"]) == (13, "reduced", 3, 1)
    assert "+dirty" not in h["provenance"]["git_commit"]
    assert [s["dataset"] for s in h["skipped"]] == ["BC4CHEMD"]


def test_committed_results_print_as_a_table(repo_root, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    assert cli.main(["table", "results/hst/paper.json"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.index("f1_strict") < header.index("f1_lenient") and "paper_delta" in header
    rows = experiment.table(json.loads((repo_root / "results" / "hst" / "paper.json").read_text()))
    by = {(r["dataset"], r["variant"]): r for r in rows}
    single = by[("BC2GM", "single-task")]
    assert (single["f1_strict"], single["f1_lenient"]) == (0.4222, 0.3922)  # #10: up to 4 points apart
    assert by[("BC2GM", "hierarchical")]["paper_delta"] == 0.42
    assert by[("BC4CHEMD", None)]["paper_delta"] == 0.77
