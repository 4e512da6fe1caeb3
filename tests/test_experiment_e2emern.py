"""The E2EMERN reproduction on the sample corpus, tiny: structure of the JSON, provenance, and the
PubTator predictions re-scoring to the stored numbers (what `python -m mernlib evaluate` would print)."""

import copy
import csv
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from mernlib import data
from mernlib import reference as reference_data
from mernlib.cli import evaluate_files
from mernlib.experiments import e2emern as experiment
from mernlib.metrics import evaluate_documents
from mernlib.pubtator import read_pubtator

TINY = {"epochs": 1, "batch_size": 8, "max_length": 48}
N_DOCS = 6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("results")
        written = experiment.reproduce(
            corpora=["sample"],
            results_dir=out,
            scale="quick",
            only=["no-gate"],
            config=TINY,
            progress=False,
            max_documents=N_DOCS,
        )
    finally:
        torch.set_num_threads(before)
    return out, written


def test_written_files(run):
    out, written = run
    root = out / "e2emern"
    assert set(written) == {root / "sample.json", root / "sample.csv", root / "sample" / "no-gate.pubtator"}
    assert all(p.exists() for p in written)
    rows = list(csv.DictReader((root / "sample.csv").open()))
    assert [r["variant"] for r in rows] == ["no-gate"]


def test_json_structure_and_provenance(run):
    out, _ = run
    result = json.loads((out / "e2emern" / "sample.json").read_text())
    assert result["experiment"] == "e2emern" and result["corpus"] == "sample" and result["scale"] == "quick"
    assert result["paper"]["numbers"] is None  # the paper has no numbers for the sample
    assert set(result["protocols"]) == {"paper protocol", "standard protocol"}
    assert result["max_documents_per_split"] == N_DOCS
    recall = result["candidates"]["dev_recall_at_k"]
    assert 0 <= recall["1"] <= recall["5"] <= recall["50"] <= 1
    v = result["variants"]["no-gate"]
    assert v["config"]["use_gate"] is False and v["epochs"] == 1 and v["best_epoch"] == 1
    assert v["encoder"].startswith("all-MiniLM-L6-v2")
    assert len(v["history"]) == 1 and v["history"][0]["loss"]["e2emern"] > 0
    std = v["standard_protocol"]
    assert std["k_chosen_on_dev"] in experiment.K_CHOICES
    assert set(std["dev_f1_by_k"]) == {str(k) for k in experiment.K_CHOICES}
    assert set(std["test"]["protocols"]) == {"ner-mention-strict", "men-mention", "men-document"}
    assert std["rescored_from_pubtator_equal"] is True
    paper = v["paper_protocol"]
    assert "paper protocol" in paper["label"] and 0 <= paper["men_f1"] <= 1
    assert (
        paper["detail"]["n_pairs"] > 0
        and paper["mer_f1"] == std["test"]["protocols"]["ner-mention-strict"]["f1"]
    )
    for record in (v["provenance"], result["provenance"]):
        for key in ("command", "seed", "scale", "encoder", "git_commit", "wall_time_s", "date"):
            assert record.get(key) is not None, key
    assert v["provenance"]["seed"] == 13
    for key in ("on_gold_mentions",):
        assert result["baseline"][key]["protocols"]["ner-mention-strict"]["f1"] == 1.0  # gold spans
    assert "men-mention" in v["baseline_on_predicted_mentions"]["protocols"]
    assert result["table"][0]["variant"] == "no-gate"


def test_pubtator_rescores_to_the_json_numbers(run):
    out, _ = run
    result = json.loads((out / "e2emern" / "sample.json").read_text())
    stored = result["variants"]["no-gate"]["standard_protocol"]["test"]
    gold = data.load_corpus("sample", "test")[:N_DOCS]
    pred = read_pubtator(out / "e2emern" / "sample" / "no-gate.pubtator")
    assert evaluate_documents(gold, pred)["protocols"] == stored["protocols"]
    assert (
        stored["protocols"]["ner-mention-strict"]["tp"] + stored["protocols"]["ner-mention-strict"]["fp"] > 0
    )
    # the CLI on the full gold file: documents beyond the first N_DOCS count as predicted empty
    full = evaluate_files(
        str(data.corpus_files("sample")["test"]), str(out / "e2emern" / "sample" / "no-gate.pubtator")
    )
    cli, ours = full["protocols"]["ner-mention-strict"], stored["protocols"]["ner-mention-strict"]
    assert (cli["tp"], cli["fp"]) == (ours["tp"], ours["fp"]) and cli["fn"] >= ours["fn"]


def test_variants_accumulate_and_bad_names_fail(run, tmp_path):
    out, _ = run
    with pytest.raises(ValueError, match="unknown variant"):
        experiment.reproduce(corpora=["sample"], results_dir=out, scale="quick", only=["no-such"])
    with pytest.raises(ValueError, match="scale"):
        experiment.reproduce(corpora=["sample"], results_dir=out, scale="huge")
    path = out / "e2emern" / "sample.json"
    kept = experiment._earlier_variants(path, "sample", "quick")
    assert list(kept) == ["no-gate"]
    assert experiment._earlier_variants(path, "sample", "full") == {}  # quick and full never mix
    assert set(experiment.VARIANTS) == {
        "e2emern",
        "additive-attention",
        "no-mid",
        "no-high",
        "no-gate",
        "no-attention",
        "paper-training",
    }


def test_paper_training_variant_trains_on_train_and_dev(tmp_path):
    """The authors' regime: train + dev, the lowest-training-loss epoch, k fixed (dev is not held out)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        experiment.reproduce(
            corpora=["sample"],
            results_dir=tmp_path,
            scale="quick",
            only=["paper-training"],
            config=TINY | {"epochs": 2},
            progress=False,
            max_documents=N_DOCS,
        )
    finally:
        torch.set_num_threads(before)
    v = json.loads((tmp_path / "e2emern" / "sample.json").read_text())["variants"]["paper-training"]
    tagged = experiment._corpus_parts("sample", None, N_DOCS)[2]
    assert v["train_sentences"] == len(tagged["train"]) + len(tagged["dev"])
    assert v["trained_on"].startswith("train + dev")
    assert all(h["dev_men_mention_f1"] is None for h in v["history"])  # dev never scored
    losses = [h["loss"]["e2emern"] for h in v["history"]]
    assert v["best_epoch"] == 1 + losses.index(min(losses))
    std = v["standard_protocol"]
    assert (
        std["k"] == experiment.PAPER_TRAINING_K
        and std["k_chosen_on_dev"] is None
        and std["dev_f1_by_k"] is None
    )


def test_a_variant_stored_by_another_process_meanwhile_is_kept(run, tmp_path):
    """Two processes train variants at once: each re-reads the file under the lock and replaces only its own
    variant, so a stale copy held in memory never overwrites what the other process stored since."""
    out, _ = run
    path = tmp_path / "sample.json"
    path.write_text((out / "e2emern" / "sample.json").read_text())
    stored = json.loads(path.read_text())
    result = copy.deepcopy(stored)  # this process's view when it started: no-gate only
    newer = stored["variants"]["no-gate"] | {"train_seconds": -1.0}
    stored["variants"] |= {"no-mid": newer}  # meanwhile another process stores no-mid
    path.write_text(json.dumps(stored))
    result["variants"]["no-mid"] = stored["variants"]["no-gate"]  # an older no-mid in memory
    reference = reference_data.load("zhou2021")
    finished = stored["variants"]["no-gate"] | {"variant": "no-high"}
    experiment._store_variant(path, result, "no-high", finished, reference, stored["provenance"])
    kept = json.loads(path.read_text())
    assert list(kept["variants"]) == ["no-mid", "no-high", "no-gate"]  # in VARIANTS order
    assert kept["variants"]["no-mid"]["train_seconds"] == -1.0  # the other process's, not the stale one
    with path.with_suffix(".csv").open() as f:
        assert [row["variant"] for row in csv.DictReader(f)] == ["no-mid", "no-high", "no-gate"]
