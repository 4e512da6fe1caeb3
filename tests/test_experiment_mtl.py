"""The Table 2 reproduction (Zhao et al. 2019) on the sample corpus, one epoch: the JSON rows accumulate
across seeds with their spread, the provenance is complete, the stored PubTator predictions re-score to the
stored numbers, and `python -m mernlib table` prints the summary."""

import json
from pathlib import Path

import pytest
import torch

from mernlib.cli import evaluate_files, main
from mernlib.data import corpus_files
from mernlib.experiments import mtl as experiment

ROWS = ["bilstm-cnns-crf", "mtl-both-feedback"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("results")
        for seed in (13, 14):
            only = ROWS if seed == 13 else ROWS[1:]  # a second seed of the headline row only
            experiment.reproduce("sample", results_dir=out, scale="quick", only=only, epochs=1, seed=seed)
    finally:
        torch.set_num_threads(before)
    return out, json.loads((out / "mtl" / "sample.json").read_text())


def test_runs_accumulate_per_row_and_seed(run):
    out, result = run
    assert result["experiment"] == "mtl" and result["corpus"] == "sample"
    encoder = "encoder=Bi-LSTM-CNNs (word2vec skip-gram 50-d trained in the kit)"
    assert sorted(result["runs"]) == [
        f"bilstm-cnns-crf|seed=13|scale=quick|epochs=1|{encoder}",
        f"mtl-both-feedback|seed=13|scale=quick|epochs=1|{encoder}",
        f"mtl-both-feedback|seed=14|scale=quick|epochs=1|{encoder}",
    ]
    for key, r in result["runs"].items():
        assert r["config"]["epochs"] == 1 and f"seed={r['seed']}" in key
        assert set(r["test"]) >= {"paper_protocol", "standard_protocol"}
        for field in ("command", "seed", "scale", "encoder", "git_commit", "wall_time_s", "date"):
            assert r["provenance"].get(field) is not None, field
    assert (out / "mtl" / "sample.csv").exists()


def test_summary_has_the_spread_over_seeds(run):
    _, result = run
    by_row = {line["row"]: line for line in result["summary"]}
    headline, single = by_row["mtl-both-feedback"], by_row["bilstm-cnns-crf"]
    assert headline["seeds"] == [13, 14] and single["seeds"] == [13]
    assert "ner_f1_standard_sd" in headline and "ner_f1_standard_sd" not in single
    runs = [r for r in result["runs"].values() if r["variant"] == "mtl-both-feedback"]
    mean = sum(r["test"]["standard_protocol"]["ner-mention-strict"]["f1"] for r in runs) / 2
    assert headline["ner_f1_standard"] == pytest.approx(mean, abs=1e-4)
    assert headline["epochs"] == 1 and headline["scale"] == "quick" and headline["commits"]


def test_summary_lists_rows_in_the_papers_order(run):
    _, result = run
    headline = next(r for r in result["runs"].values() if r["variant"] == "mtl-both-feedback")
    runs = [headline, headline | {"row": "mtl", "variant": "mtl"}]
    # sorted run keys put "mtl-both-feedback" first; the table follows the paper (plain MTL first)
    assert [line["row"] for line in experiment.summarize(runs, {})] == ["mtl", "mtl-both-feedback"]


def test_predictions_rescore_to_the_stored_numbers(run):
    out, result = run
    gold = corpus_files("sample")["test"]
    for r in result["runs"].values():
        rescored = evaluate_files(str(gold), r["predictions"]["combined"])["protocols"]
        stored = r["test"]["standard_protocol"]
        for protocol in ("ner-mention-strict", "men-mention", "men-document"):
            assert rescored[protocol]["f1"] == pytest.approx(stored[protocol]["f1"], abs=1e-9), protocol


def test_table_command_prints_the_summary(run, capsys):
    out, _ = run
    assert (
        main(["table", str(out / "mtl" / "sample.json"), "--columns", "row", "seeds", "ner_f1_standard"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| row | seeds | ner_f1_standard |"
    headline = next(line for line in lines if line.startswith("| mtl-both-feedback |"))
    assert "13 14" in headline and " ± " in headline


def test_table_command_refuses_a_file_without_a_table(tmp_path, capsys):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"experiment": "data"}))
    assert main(["table", str(path)]) == 2
    assert "nothing to print" in capsys.readouterr().err


def test_stored_outputs_score_like_the_run(run):
    """The error-analysis notebook reads the stored outputs back: they must give the run's numbers."""
    out, result = run
    from mernlib.experiments import SCALES

    data = experiment.prepare("sample", max_sentences=SCALES["mtl"]["quick"]["max_sentences"])  # as quick did
    stored = experiment.stored_outputs("sample", "mtl-both-feedback", 14, out, scale="quick", epochs=1)
    scores = experiment.score_outputs(data, "test", stored["combined"], stored["men_tags"])
    expected = next(
        r for r in result["runs"].values() if r["variant"] == "mtl-both-feedback" and r["seed"] == 14
    )
    expected = expected["test"]
    assert scores["paper_protocol"] == expected["paper_protocol"]
    assert scores["standard_protocol"] == expected["standard_protocol"]
    assert scores["boundary_inconsistency"] == expected["boundary_inconsistency"]
    assert experiment.stored_outputs("sample", "mtl", 14, out, scale="quick", epochs=1) is None  # never run
    assert experiment.stored_outputs("sample", "mtl-both-feedback", 14, out) is None  # not at full scale


def test_a_quick_run_never_replaces_a_committed_run(tmp_path):
    """Runs are keyed by everything that defines them: a quick or --epochs run of the same row and seed
    is another run, and the summary never averages across scales."""
    from mernlib.results import add_run

    base = {"variant": "mtl", "seed": 13, "encoder": "e", "provenance": {"git_commit": "abc"}, "test": {}}
    path = tmp_path / "r.json"
    for scale, epochs in (("full", 20), ("quick", 1), ("full", 2)):
        add_run(
            path,
            base | {"scale": scale, "epochs": epochs},
            header={"experiment": "mtl"},
            summarize=lambda r: [],
        )
    stored = json.loads(path.read_text())["runs"]
    assert len(stored) == 3
    add_run(
        path,
        base | {"scale": "full", "epochs": 20, "again": 1},
        header={"experiment": "mtl"},
        summarize=lambda r: [],
    )
    stored = json.loads(path.read_text())["runs"]
    assert len(stored) == 3 and stored["mtl|seed=13|scale=full|epochs=20|encoder=e"]["again"] == 1


def test_check_ordering_subtracts_the_rows():
    summary = [
        {"row": "bilstm-cnns-crf", "paper_row": "pipeline", "a": 0.70, "b": 0.60},
        {"row": "mtl", "paper_row": "MTL", "a": 0.75, "b": 0.58, "a_sd": 0.01},
    ]
    lines = experiment.check_ordering(summary, metrics=("a", "b"))
    assert lines == [{"comparison": "MTL vs pipeline", "a": 0.05, "b": -0.02, "largest_seed_sd": 0.01}]


def test_men_ceiling_counts_mentions_whose_concept_was_seen():
    data = experiment.prepare("sample")
    itself = experiment.men_ceiling(data, "test", seen_splits=("test",))
    assert itself["mentions"] > 0 and itself["max_recall"] == 1.0 and itself["max_f1"] == 1.0
    train = experiment.men_ceiling(data, "test")
    seen = {t[2:] for s in data.tags["train"]["men"] for t in s if t != "O"}
    gold = [m for d in data.documents["test"] for m in d.mentions if m.ids]
    assert train["concept_seen"] == sum(m.concept in seen for m in gold) < len(gold)
    r = train["max_recall"]
    assert train["max_f1"] == pytest.approx(2 * r / (1 + r), abs=1e-4)


def test_converged_rows_are_labelled_and_train_until_dev_stops(tmp_path):
    # the paper's model and optimiser, trained until dev stops improving (at full scale)
    full = experiment.scale_config("mtl-both-feedback-converged", "full")
    paper = experiment.scale_config("mtl-both-feedback", "full")
    assert (paper.optimizer, paper.lr, paper.epochs, paper.patience) == ("sgd", 0.001, 20, None)
    assert {k: getattr(full, k) for k in experiment.CONVERGED_TRAINING} == experiment.CONVERGED_TRAINING
    assert full.feedback == paper.feedback == "both"
    quick = experiment.scale_config("mtl-converged", "quick")
    assert quick.epochs == experiment.scale_config("mtl", "quick").epochs and quick.patience is not None
    assert experiment.split_variant("mtl-converged") == ("mtl", True)
    with pytest.raises(ValueError, match="unknown row"):
        experiment.split_variant("mtl-convergd")
    assert (full.optimizer, full.epochs, full.patience) == ("sgd", 60, 6)
    assert experiment.output_stem("mtl-converged", 13, "full", 60) == "mtl-converged-seed13"
    assert experiment.output_stem("mtl-converged", 13, "full", 40) == "mtl-converged-seed13-full-e40"
    assert experiment.output_stem("mtl-converged", 13, "full", 20) == "mtl-converged-seed13-full-e20"
    assert experiment.output_stem("mtl", 13, "full", 20) == "mtl-seed13"
    assert experiment.output_stem("mtl", 13, vectors="skip-gram 50-d") == "mtl-seed13-skip-gram-50d"
    # the dropout-0.3 converged training: the same training but dropout, its own row, label and files
    low = experiment.scale_config("mtl-both-feedback-converged-dropout0.3", "full")
    assert (low.dropout, full.dropout) == (0.3, 0.5)
    assert {k: getattr(low, k) for k in experiment.CONVERGED_TRAINING} == experiment.CONVERGED_TRAINING
    assert experiment.scale_config("mtl-converged-dropout0.3", "quick").dropout == 0.3
    assert experiment.split_variant("mtl-both-feedback-converged-dropout0.3") == ("mtl-both-feedback", True)
    assert experiment.variant_label("mtl-converged-dropout0.3", ["sgd"]).endswith(
        "(converged, SGD, dropout 0.3)"
    )
    assert (
        experiment.output_stem("mtl-converged-dropout0.3", 13, "full", 60)
        == "mtl-converged-dropout0.3-seed13"
    )
    # shared concept rows: the same training with the MEN head's rows shared through concept descriptors,
    # at every scale (it is the model, not the training); its own label
    shared = "mtl-both-feedback-converged-dropout0.3-shared-concepts"
    assert experiment.split_variant(shared) == ("mtl-both-feedback", True)
    assert experiment.scale_config(shared, "full").concept_descriptor_dim == 50
    assert experiment.scale_config(shared, "quick").concept_descriptor_dim == 50
    assert experiment.scale_config(shared, "quick").dropout == 0.3
    assert experiment.variant_label(shared, ["sgd"]).endswith(
        "(converged, SGD, dropout 0.3, shared concept rows)"
    )
    # a stored converged run: its own summary line, the paper's numbers beside it, and the headline
    # prefers it to the paper-trained row
    torch.set_num_threads(1)
    experiment.reproduce(
        "sample", results_dir=tmp_path, scale="quick", only=["mtl-both-feedback-converged"], epochs=2
    )
    result = json.loads((tmp_path / "mtl" / "sample.json").read_text())
    (run,) = result["runs"].values()
    assert run["variant"] == "mtl-both-feedback-converged" and run["row"] == "mtl-both-feedback"
    assert run["training"] == "converged" and run["config"]["patience"] == 6
    (line,) = result["summary"]
    assert line["paper_row"] == "MTL-MEN&MER_feedback + Bi-LSTM-CNNs-CRF (converged, Adam)"  # quick: Adam
    stem = "mtl-both-feedback-converged-seed13-quick-e2-skip-gram-50d"
    assert (tmp_path / "mtl" / "sample" / f"{stem}.pubtator").exists()
    # a variant with a dot in its name keeps the whole name in its files (Path.with_suffix cut it at the
    # dot once: "...-dropout0.pubtator")
    experiment.reproduce(
        "sample", results_dir=tmp_path, scale="quick", only=["mtl-converged-dropout0.3"], epochs=1
    )
    result = json.loads((tmp_path / "mtl" / "sample.json").read_text())
    (low,) = [r for r in result["runs"].values() if r["variant"] == "mtl-converged-dropout0.3"]
    stem = "mtl-converged-dropout0.3-seed13-quick-e1-skip-gram-50d"
    assert low["predictions"] == {
        "combined": str(tmp_path / "mtl" / "sample" / f"{stem}.pubtator"),
        "men_tags": str(tmp_path / "mtl" / "sample" / f"{stem}.men-tags.pubtator"),
    }
    assert all(Path(f).exists() for f in low["predictions"].values())


def test_headline_is_the_version_dev_prefers(run):
    from mernlib.results import run_key

    _, result = run
    base = next(r for r in result["runs"].values() if r["variant"] == "mtl-both-feedback")

    def stored(paper_dev, converged_dev):
        runs = [
            base | {"scale": "full", "dev_best": {"mer+men": paper_dev}},
            base
            | {
                "variant": "mtl-both-feedback-converged",
                "scale": "full",
                "dev_best": {"mer+men": converged_dev},
            },
        ]
        return {"corpus": "sample", "runs": {run_key(r): r for r in runs}}

    assert "(converged" not in experiment.headline(stored(0.73, 0.70))["model"]
    assert "(converged" in experiment.headline(stored(0.70, 0.73))["model"]


def test_the_run_output_renamed_by_the_shared_normalizer(run):
    """Every run also scores its MER mentions with the normalizer's IDs (``with_normalizer``): same spans,
    a PubTator file that re-scores to the stored numbers; ``--only with-normalizer`` recomputes it."""
    from mernlib.experiments.mtl import prepare, standard_scores
    from mernlib.pubtator import read_predictions

    out, result = run
    data = prepare("sample")
    gold = data.documents["test"]
    for stored in result["runs"].values():
        named = stored["with_normalizer"]
        pred, _ = read_predictions(named["predictions"], gold)
        assert standard_scores(data, "test", pred) == named["standard_protocol"]
        own, _ = read_predictions(stored["predictions"]["combined"], gold)
        assert [[(m.start, m.end) for m in d.mentions] for d in pred] == [
            [(m.start, m.end) for m in d.mentions] for d in own
        ]
    line = result["summary"][0]
    assert "men_document_f1_with_normalizer" in line


def test_runs_stored_before_the_key_named_the_vectors_are_rekeyed_from_their_own_record():
    legacy = {
        "variant": "mtl",
        "seed": 13,
        "scale": "full",
        "epochs": 20,
        "encoder": experiment.LEGACY_ENCODER,
        "word_vectors": {"method": "word2vec CBOW 50-d, window 5, min_count 1, 5 epochs, seed 13 (gensim)"},
    }
    upgraded = experiment.upgrade_run(legacy)
    assert upgraded["encoder"] == experiment.vectors_encoder("CBOW 50-d") != legacy["encoder"]
    assert experiment.encoder_vectors(upgraded["encoder"]) == "CBOW 50-d"
    # a run that does not record CBOW vectors is not guessed at
    unknown = legacy | {"word_vectors": {}}
    assert experiment.upgrade_run(unknown)["encoder"] == experiment.LEGACY_ENCODER
    new = legacy | {"encoder": experiment.vectors_encoder(experiment.DEFAULT_VECTORS)}
    assert experiment.upgrade_run(new) == new


def test_men_convergence_study_reports_curves_and_recall_by_concept_frequency():
    """The dev study behind notebook 03's "Why does MEN learn slowly?": a curve per setting, and the
    best setting's dev recall split by how often the gold concept occurs in training."""
    from mernlib.corpus import split_concept

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = {"paper": {}, "Adam": {"optimizer": "adam", "lr": 0.003}}
        study = experiment.men_convergence("sample", epochs=1, settings=settings)
    finally:
        torch.set_num_threads(before)
    assert set(study["curves"]) == set(settings) and study["best"] in settings
    for curve in study["curves"].values():
        assert len(curve["dev_men_f1"]) == len(curve["loss"]) == 1
        assert all(0.0 <= f1 <= 1.0 for f1 in curve["dev_men_f1"])
    buckets = study["dev_recall_by_training_frequency"]
    assert set(buckets) <= {"never", "once", "2-5 times", "more than 5"}
    data = experiment.prepare("sample")
    normalized = [m for d in data.documents["dev"] for m in d.mentions if split_concept(m.concept)]
    assert sum(b["mentions"] for b in buckets.values()) == len(normalized)
    assert buckets.get("never", {"recall": 0.0})["recall"] == 0.0  # an unseen concept is never tagged


def test_concept_descriptors_read_training_mentions_only():
    """The MEN head's concept descriptors: the mean vector of the words of each concept's training mentions
    (composite mentions count for each part); dev and test mentions are never read."""
    import numpy as np

    data = experiment.prepare("sample")

    class Vectors:  # a word -> vector table with gensim's two members that the function reads
        def __init__(self, words):
            self.key_to_index = {w: i for i, w in enumerate(words)}

        def __getitem__(self, word):
            return np.eye(len(self.key_to_index), dtype=np.float32)[self.key_to_index[word]]

    train_words = {w.lower() for d in data.documents["train"] for m in d.mentions for w in m.text.split()}
    held_out = {
        w.lower()
        for s in ("dev", "test")
        for d in data.documents[s]
        for m in d.mentions
        for w in m.text.split()
    }
    only_held_out = sorted(held_out - train_words)
    vectors = Vectors(sorted(train_words | held_out))
    descriptors = experiment.concept_descriptors(data, vectors)
    train_concepts = {
        c for d in data.documents["train"] for m in d.mentions if m.concept for c in m.concept.split("|")
    }
    assert set(descriptors) <= train_concepts and len(descriptors) > 0.8 * len(train_concepts)
    held = [vectors.key_to_index[w] for w in only_held_out if w.isalnum()]
    assert held and all(float(v[held].sum()) == 0.0 for v in descriptors.values())
