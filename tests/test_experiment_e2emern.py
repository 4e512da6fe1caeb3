"""The E2EMERN reproduction on the sample corpus, tiny: structure of the JSON, provenance, and the
PubTator predictions re-scoring to the stored numbers (what `python -m mernlib evaluate` would print)."""

import csv
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from mernlib import data, experiments
from mernlib.cli import evaluate_files
from mernlib.experiments import e2emern as experiment
from mernlib.metrics import evaluate_documents
from mernlib.pubtator import read_predictions

TINY = {"epochs": 1, "batch_size": 8, "max_length": 48}
N_DOCS = 6
PRED = "no-gate-quick-e1-seed13.pubtator"


def _reproduce(out, only, **settings):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return experiment.reproduce(
            "sample",
            results_dir=out,
            scale="quick",
            only=only,
            progress=False,
            max_documents=N_DOCS,
            **(TINY | settings),
        )
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    return out, _reproduce(out, ["no-gate"])


def _only_run(path):
    result = json.loads(path.read_text())
    (run,) = result["runs"].values()
    return result, run


def test_written_files(run):
    out, written = run
    root = out / "e2emern"
    assert set(written) == {root / "sample.json", root / "sample.csv"}
    assert all(p.exists() for p in written) and (root / "sample" / PRED).exists()
    rows = list(csv.DictReader((root / "sample.csv").open()))
    assert [(r["variant"], r["scale"]) for r in rows] == [("no-gate", "quick")]


def test_json_structure_and_provenance(run):
    out, _ = run
    result, v = _only_run(out / "e2emern" / "sample.json")
    assert result["experiment"] == "e2emern" and result["corpus"] == "sample"
    assert result["paper_setup"]["numbers"] is None  # the paper has no numbers for the sample
    assert set(result["protocols"]) == {"paper protocol", "standard protocol"}
    recall = result["candidates"]["dev_recall_at_k"]
    assert 0 <= recall["1"] <= recall["5"] <= recall["50"] <= 1
    assert (v["variant"], v["seed"], v["scale"], v["epochs"]) == ("no-gate", 13, "quick", 1)
    assert v["config"]["use_gate"] is False and v["best_epoch"] == 1
    assert v["encoder"].startswith("all-MiniLM-L6-v2")
    assert len(v["history"]) == 1 and v["history"][0]["loss"]["e2emern"] > 0
    assert v["history"][0]["parts"]["total"] == pytest.approx(v["history"][0]["loss"]["e2emern"])
    std = v["standard_protocol"]
    assert std["k_chosen_on_dev"] in experiment.K_CHOICES and std["alpha"] == "inf"
    assert set(std["dev_f1_by_choice"]) == {f"k={k},alpha=inf" for k in experiment.K_CHOICES}
    # k = 1 is the normalizer alone: dev never chooses worse than it
    best = std["dev_f1_by_choice"][f"k={std['k']},alpha=inf"]["men-mention"]
    assert best >= std["dev_f1_by_choice"]["k=1,alpha=inf"]["men-mention"]
    assert set(std["test"]["protocols"]) == {"ner-mention-strict", "men-mention", "men-document"}
    assert std["rescored_from_pubtator_equal"] is True
    paper = v["paper_protocol"]
    assert "paper protocol" in paper["label"] and 0 <= paper["men_f1"] <= 1
    assert (
        paper["detail"]["n_pairs"] > 0
        and paper["mer_f1"] == std["test"]["protocols"]["ner-mention-strict"]["f1"]
    )
    for key in ("command", "seed", "scale", "encoder", "git_commit", "wall_time_s", "date"):
        assert v["provenance"].get(key) is not None, key
    assert v["provenance"]["seed"] == 13
    assert (
        result["baseline"]["on_gold_mentions"]["protocols"]["ner-mention-strict"]["f1"] == 1.0
    )  # gold spans
    assert "men-mention" in v["baseline_on_predicted_mentions"]["protocols"]
    assert result["summary"][0]["variant"] == "no-gate"


def test_pubtator_rescores_to_the_json_numbers(run):
    out, _ = run
    _, v = _only_run(out / "e2emern" / "sample.json")
    stored = v["standard_protocol"]["test"]
    gold = data.load_corpus("sample", "test")[:N_DOCS]
    pred, _ = read_predictions(out / "e2emern" / "sample" / PRED, gold)
    assert evaluate_documents(gold, pred)["protocols"] == stored["protocols"]
    assert (
        stored["protocols"]["ner-mention-strict"]["tp"] + stored["protocols"]["ner-mention-strict"]["fp"] > 0
    )
    # the CLI on the full gold file: documents beyond the first N_DOCS count as predicted empty
    full = evaluate_files(str(data.corpus_files("sample")["test"]), str(out / "e2emern" / "sample" / PRED))
    cli, ours = full["protocols"]["ner-mention-strict"], stored["protocols"]["ner-mention-strict"]
    assert (cli["tp"], cli["fp"]) == (ours["tp"], ours["fp"]) and cli["fn"] >= ours["fn"]


def test_bad_names_fail_through_the_contract(run):
    out, _ = run
    with pytest.raises(ValueError, match="unknown variant"):
        experiments.reproduce("e2emern", ["sample"], results_dir=out, scale="quick", only=["no-such"])
    with pytest.raises(ValueError, match="scale"):
        experiments.reproduce("e2emern", ["sample"], results_dir=out, scale="huge")
    assert set(experiment.VARIANTS) == {
        "e2emern",
        "additive-attention",
        "no-mid",
        "no-high",
        "no-gate",
        "no-attention",
        "paper-training",
        "e2emern-kit",
        "e2emern-kit-1neg",
        "e2emern-kit-1neg-lr5e-5",
    }
    # a study row runs only when asked for by name; it differs from the row it studies in one setting
    assert experiment.DEFAULT_VARIANTS == tuple(
        v for v in experiment.VARIANTS if not v.startswith("e2emern-kit-1")
    )
    variants = experiment.VARIANTS
    for study, base, setting, value in [
        ("e2emern-kit-1neg", "e2emern-kit", "n_negatives", 1),
        ("e2emern-kit-1neg-lr5e-5", "e2emern-kit-1neg", "lr", 5e-5),
    ]:
        changed = {
            k
            for k in variants[study].keys() | variants[base].keys()
            if variants[study].get(k) != variants[base].get(k)
        }
        assert changed == {setting} and variants[study][setting] == value


def test_paper_training_variant_trains_on_train_and_dev(tmp_path):
    """The authors' regime: train + dev, the lowest-training-loss epoch, k fixed (dev is not held out)."""
    _reproduce(tmp_path, ["paper-training"], epochs=2)
    _, v = _only_run(tmp_path / "e2emern" / "sample.json")
    spanned = experiment.prepare("sample", None, N_DOCS).spanned
    assert v["train_sentences"] == len(spanned["train"]) + len(spanned["dev"])
    assert v["trained_on"].startswith("train + dev")
    assert all(h["dev_men_mention_f1"] is None for h in v["history"])  # dev never scored
    losses = [h["loss"]["e2emern"] for h in v["history"]]
    assert v["best_epoch"] == 1 + losses.index(min(losses))
    std = v["standard_protocol"]
    assert (
        std["k"] == experiment.PAPER_TRAINING_K
        and std["k_chosen_on_dev"] is None
        and std["dev_f1_by_choice"] is None
    )


def test_a_run_stored_by_another_process_meanwhile_is_kept(run, tmp_path):
    """Two processes train variants at once: each re-reads the file under the lock and adds only its own
    run, so what another process stored since is never lost."""
    from mernlib.results import add_run

    out, _ = run
    path = tmp_path / "sample.json"
    result, v = _only_run(out / "e2emern" / "sample.json")
    path.write_text(json.dumps(result))
    header = {k: result[k] for k in ("experiment", "corpus")}
    add_run(path, v | {"variant": "no-mid"}, header=header, summarize=experiment.summarize)  # another process
    add_run(path, v | {"variant": "no-high"}, header=header, summarize=experiment.summarize)
    kept = json.loads(path.read_text())
    assert sorted(r["variant"] for r in kept["runs"].values()) == ["no-gate", "no-high", "no-mid"]
    with path.with_suffix(".csv").open() as f:
        assert [row["variant"] for row in csv.DictReader(f)] == [
            "no-mid",
            "no-high",
            "no-gate",
        ]  # paper order


def test_the_committed_results_file_prints_its_table():
    """results/e2emern/ncbi-disease.json (written before the one results store) reads through stored_runs."""
    from mernlib.paths import REPO_ROOT
    from mernlib.results import load_results

    rows = experiment.table(load_results(REPO_ROOT / "results" / "e2emern" / "ncbi-disease.json"))
    assert {r["variant"] for r in rows} <= set(experiment.VARIANTS) and len(rows) >= 7
    assert all(r["scale"] in ("full", "reduced") for r in rows)


def test_the_kit_variant_trains_on_retrieved_negatives_and_chooses_alpha(tmp_path):
    _reproduce(tmp_path, ["e2emern-kit"])
    _, v = _only_run(tmp_path / "e2emern" / "sample.json")
    assert v["config"]["negatives"] == "retrieved" and v["config"]["attention_score"] == "additive"
    std = v["standard_protocol"]
    alphas = {key.split("alpha=")[1] for key in std["dev_f1_by_choice"]}
    assert alphas == {"0.0", "0.25", "0.5", "1.0", "2.0", "4.0", "inf"}
    assert std["test_f1_normalizer_alone_not_selected"]["men-mention"] >= 0
    # the epoch is chosen by the best decision dev can take at k = K_SELECT, not the model's re-ranking alone
    (epoch,) = v["history"]
    by_alpha = epoch["dev_men_mention_f1_by_alpha"]
    assert set(by_alpha) == {f"alpha={a}" for a in alphas}
    assert epoch["dev_men_mention_f1"] == max(by_alpha.values())
    at_k = {
        key.split(",")[1]: f1["men-mention"]
        for key, f1 in std["dev_f1_by_choice"].items()
        if key.startswith(f"k={experiment.K_SELECT},")
    }
    assert by_alpha == pytest.approx(at_k, abs=5e-5)  # choose_k scores the same decisions (rounded)


def test_decide_reads_k_and_alpha_from_one_annotation():
    from mernlib.models.e2emern import PredictedMention

    pm = PredictedMention(0, 1, "Disease", "", 0.0, [("B", 0.9), ("A", 0.1)], {"A": 0, "B": 1})
    annotation = experiment.Annotation("dev", [[pm]], [[("A", 1.0), ("B", 0.6)]], ["training"])
    assert experiment.decide(annotation, 1)[0][0].concept == "A"  # k = 1: the normalizer's answer
    assert experiment.decide(annotation, 2)[0][0].concept == "B"  # the model alone
    assert experiment.decide(annotation, 2, 0.0)[0][0].concept == "A"  # alpha = 0: retrieval order
    assert experiment.decide(annotation, 2, 1.0)[0][0].concept == "B"  # 0.6 + 0.9 beats 1.0 + 0.1
    assert experiment.decide(annotation, 2, 0.25)[0][0].concept == "A"  # 1.0 + 0.025 beats 0.6 + 0.225


def test_a_run_on_another_encoder_keeps_its_own_prediction_file(tmp_path):
    """Two runs of one variant on two encoders must not write one file (the second overwrote the first
    once: ``--encoder`` runs of ``e2emern`` wrote ``e2emern.pubtator``)."""
    from mernlib.experiments.e2emern import prediction_file

    default = prediction_file("results", "ncbi-disease", "e2emern", 13, "full", 2)
    assert default.name == "e2emern.pubtator"
    folder = tmp_path / "minilm-mlm"  # a local encoder: named by its folder
    folder.mkdir()
    local = prediction_file("results", "ncbi-disease", "e2emern", 13, "full", 2, folder)
    assert local.name == "e2emern-minilm-mlm.pubtator"
    hub = prediction_file(
        "results", "ncbi-disease", "e2emern", 13, "full", 2, "dmis-lab/biobert-large-cased-v1.1"
    )
    assert hub.name == "e2emern-dmis-lab-biobert-large-cased-v1.1.pubtator"


def test_the_headline_is_the_run_on_the_default_encoder(repo_root):
    """The README row of E2EMERN is the published variant on the kit's default encoder, whatever other
    encoders were also run (a run on the MLM-adapted MiniLM sorts after it)."""
    result = json.loads((repo_root / "results" / "e2emern" / "ncbi-disease.json").read_text())
    encoders = {r["encoder"] for r in result["runs"].values() if r["variant"] == "e2emern"}
    assert len(encoders) > 1  # the stored file has runs on two encoders
    assert "all-MiniLM-L6-v2" in experiment.headline(result)["model"]
