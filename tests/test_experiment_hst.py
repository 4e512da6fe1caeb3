"""``python -m mernlib reproduce hst``: results structure, re-scorable predictions, provenance, skipped
datasets -- on the bundled sample IOB datasets with a tiny encoder (seconds, no real corpora needed)."""

import csv
import json

import pytest

from mernlib.encoders import load_encoder, tiny_random_encoder
from mernlib.experiments import hst as experiment
from mernlib.models.hst import VARIANTS, get_default_config
from mernlib.sample import IOB_DATASETS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_encoder_fn():
    tokenizer = load_encoder()[1]
    return lambda: tiny_random_encoder(tokenizer)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny run on three sample datasets plus one absent registry dataset (BC4CHEMD)."""
    out = tmp_path_factory.mktemp("results")
    config = get_default_config(lr=3e-3, head_lr=3e-3, batch_size=8, dropout=0.0)
    corpora = ["sample-chem", "sample-disease-a", "sample-disease-b", "BC4CHEMD"]
    caps = {"train": 24, "devel": 12, "test": 16, "epochs": 1, "fine_tune_epochs": 1}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MERNLIB_OFFLINE", "1")
        mp.setenv("MERNLIB_DATA", str(out / "no-corpora-here"))
        mp.setenv("MERNLIB_CACHE", str(out / "no-cache-here"))
        written = experiment.reproduce(
            corpora,
            seed=5,
            results_dir=out,
            scale="tiny",
            config=config,
            encoder_fn=tiny_encoder_fn(),
            caps=caps,
            progress=False,
            encoder_label="tiny BERT (test)",
            command="pytest",
        )
    return out, written, json.loads(written[0].read_text())


def test_writes_json_and_csv(run):
    out, written, _ = run
    assert [p.name for p in written] == ["tiny.json", "tiny.csv"]
    assert all(p.parent == out / "hst" for p in written)


def test_json_structure(run):
    _, _, result = run
    assert result["experiment"] == "hst" and result["scale"] == "tiny" and result["complete"] is True
    assert result["caps"] == {"train": 24, "devel": 12, "test": 16}
    assert result["variants"] == list(VARIANTS)
    assert set(result["datasets"]) == {"sample-chem", "sample-disease-a", "sample-disease-b"}
    for name, entry in result["datasets"].items():
        assert entry["entity_type"] == IOB_DATASETS[name]["entity_type"].replace("/", "-")
        assert entry["used"]["train"] == 24 and entry["used"]["devel"] == 12 and entry["used"]["test"] == 16
        assert entry["sizes"]["train"] >= 24
        assert set(entry["variants"]) == set(VARIANTS)
        for scores in entry["variants"].values():
            assert {"precision", "recall", "f1", "tp", "fp", "fn", "predictions"} <= set(scores)
            assert 0.0 <= scores["f1"] <= 1.0
        deltas = entry["delta_f1_points_vs_single_task"]
        assert set(deltas) == set(VARIANTS) - {"single-task"}
        single = entry["variants"]["single-task"]["f1"]
        for v, delta in deltas.items():
            assert delta == pytest.approx(100 * (entry["variants"][v]["f1"] - single), abs=0.01)
        assert entry["paper_delta_f1_points_hierarchical"] is None  # the paper reports no sample dataset
    assert set(result["mean_f1"]) == set(VARIANTS)


def test_predictions_rescore_to_the_json_numbers(run):
    out, _, result = run
    root = out / "hst"
    for name, entry in result["datasets"].items():
        for variant, scores in entry["variants"].items():
            path = root / scores["predictions"]
            assert path == root / "tiny" / variant / f"{name}.tsv"
            again = experiment.rescore(path)
            for key in ("tp", "fp", "fn"):
                assert again[key] == scores[key], (variant, name, key)
            for key in ("precision", "recall", "f1"):
                assert again[key] == pytest.approx(scores[key], abs=1e-6), (variant, name, key)
            # the file holds the capped test split, three columns per token
            lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("-DOCSTART-")]
            assert all(len(ln.split("\t")) == 3 for ln in lines)


def test_csv_matches_json(run):
    out, _, result = run
    rows = list(csv.DictReader(open(out / "hst" / "tiny.csv", encoding="utf-8")))
    assert len(rows) == len(result["datasets"]) * len(VARIANTS)
    for row in rows:
        scores = result["datasets"][row["dataset"]]["variants"][row["variant"]]
        assert float(row["f1"]) == pytest.approx(scores["f1"])


def test_provenance(run):
    _, _, result = run
    prov = result["provenance"]
    for key in ("command", "seed", "scale", "encoder", "git_commit", "wall_time_s", "date", "seeds"):
        assert key in prov, key
    assert prov["command"] == "pytest" and prov["seed"] == 5 and prov["seeds"] == [5]
    assert prov["scale"] == "tiny" and prov["encoder"] == "tiny BERT (test)"
    assert result["config"]["seed"] == 5 and result["config"]["epochs"] == 1


def test_absent_dataset_is_reported_as_skipped(run, capsys):
    _, _, result = run
    assert [s["dataset"] for s in result["skipped"]] == ["BC4CHEMD"]
    reason = result["skipped"][0]["reason"]
    assert "BC4CHEMD" in reason and "absent" in reason


def test_only_and_unknown_variants(tmp_path):
    with pytest.raises(ValueError, match="unknown variants"):
        experiment.reproduce(["sample-chem"], results_dir=tmp_path, scale="tiny", only=["nope"])
    with pytest.raises(ValueError, match="scale"):
        experiment.reproduce(["sample-chem"], results_dir=tmp_path, scale="huge")


def test_only_multitask_trains_stage_one_only(tmp_path):
    config = get_default_config(lr=3e-3, head_lr=3e-3, batch_size=8, dropout=0.0)
    caps = {"train": 8, "devel": 8, "test": 8, "epochs": 1, "fine_tune_epochs": 1}
    written = experiment.reproduce(
        ["sample-chem", "sample-gene"],
        results_dir=tmp_path,
        scale="tiny",
        only=["multi-task"],
        config=config,
        encoder_fn=tiny_encoder_fn(),
        caps=caps,
        progress=False,
    )
    result = json.loads(written[0].read_text())
    assert result["variants"] == ["multi-task"]
    assert all(set(e["variants"]) == {"multi-task"} for e in result["datasets"].values())
    assert "delta_f1_points_vs_single_task" not in result["datasets"]["sample-chem"]
    assert result["skipped"] == []


def test_scales_state_their_caps():
    assert experiment.SCALES["full"]["train"] is None
    reduced = experiment.SCALES["reduced"]
    assert all(isinstance(reduced[k], int) for k in ("train", "devel", "test", "epochs", "fine_tune_epochs"))
    assert {"BC5CDR-disease", "NCBI-disease"} <= set(reduced["corpora"])


def test_rows_and_charts_read_the_results(run):
    from mernlib.reference import load

    _, _, result = run
    rows = experiment.result_rows(result)
    assert len(rows) == len(result["datasets"]) * len(VARIANTS)
    assert {r["variant"] for r in rows if r["delta"] is None} == {"single-task"}
    reference = load("chai2022")
    spec = experiment.delta_chart(rows, reference).to_dict()
    shown = {v["dataset"] for v in spec["data"]["values"] if v["source"] == "paper"}
    assert shown == {"BC5CDR-chemical", "BC5CDR-disease", "BC2GM", "BC4CHEMD", "NCBI-disease", "LINNAEUS"}
    experiment.f1_chart(rows).to_dict()
    experiment.structure_chart({n: e["entity_type"] for n, e in result["datasets"].items()}).to_dict()


def test_comparison_has_the_results_shape():
    from mernlib.metrics import PRF

    scores = {"single-task": {"a": PRF.from_counts(5, 5, 5)}, "hierarchical": {"a": PRF.from_counts(6, 4, 4)}}
    out = experiment.comparison(scores, {"a": "disease"}, {"delta_f1_vs_single_task": {"a": 1.5}})
    entry = out["datasets"]["a"]
    assert entry["delta_f1_points_vs_single_task"] == {"hierarchical": 10.0}
    assert entry["paper_delta_f1_points_hierarchical"] == 1.5
    assert [r["paper_delta"] for r in experiment.result_rows(out)] == [None, 1.5]


def test_reference_data_is_the_papers():
    from mernlib.reference import load

    ref = load("chai2022")
    assert ref["delta_f1_vs_single_task"] == {
        "BC5CDR-chem": 0.57,
        "BC5CDR-disease": 0.90,
        "BC2GM": 0.42,
        "BC4CHEMD": 0.77,
        "NCBI-disease": 0.98,
        "linnaeus": -2.16,
    }
    assert "BMC Bioinformatics 23:8" in ref["citation"]
    from mernlib import registry

    assert all(registry.get(name) for name in ref["delta_f1_vs_single_task"])
