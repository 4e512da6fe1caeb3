"""Every committed prediction file re-scores to the numbers stored beside it (needs the real corpora)."""

import pytest

from mernlib.data import corpus_files
from mernlib.experiments import e2emern, mtl
from mernlib.metrics import evaluate_documents, men_document_prf, men_mention_prf
from mernlib.paths import REPO_ROOT
from mernlib.pubtator import read_predictions, read_pubtator
from mernlib.results import load_results

RESULTS = REPO_ROOT / "results"
MAX_PREDICTION_BYTES = 1 << 20


def _predictions(path, gold):
    """A stored prediction file read against ``gold``: stand-off (no text lines) and under 1 MiB, so
    results/ stays small however many runs land."""
    path = REPO_ROOT / path
    assert "|t|" not in path.read_text(encoding="utf-8"), f"{path}: stored with its texts; write texts=False"
    assert path.stat().st_size < MAX_PREDICTION_BYTES, f"{path}: {path.stat().st_size} bytes"
    return read_predictions(path, gold)[0]


def _runs(experiment, stored_runs=None):
    for path in sorted((RESULTS / experiment).glob("*.json")):
        result = load_results(path)
        runs = stored_runs(result) if stored_runs else result["runs"].values()
        for run in runs:
            yield pytest.param(
                path.stem, run, id=f"{path.stem}:{run.get('variant', run.get('row'))}:{run['seed']}"
            )


@pytest.mark.parametrize("corpus, run", list(_runs("mtl")))
def test_mtl_outputs_rescore(real_corpora, corpus, run):
    gold = read_pubtator(corpus_files(corpus, real_corpora, ("test",))["test"])
    pred = _predictions(run["predictions"]["combined"], gold)
    stored = run["test"]["standard_protocol"]
    again = evaluate_documents(gold, pred)["protocols"]
    assert again["ner-mention-strict"] == stored["ner-mention-strict"]
    types = None if run["men_types"] == "all" else set(run["men_types"])
    assert men_mention_prf(gold, pred, types=types).as_dict()["f1"] == stored["men-mention"]["f1"]
    assert men_document_prf(gold, pred, types=types).as_dict()["f1"] == stored["men-document"]["f1"]


@pytest.mark.parametrize("corpus, run", [p for p in _runs("mtl") if p.values[1].get("with_normalizer")])
def test_mtl_outputs_renamed_by_the_normalizer_rescore(real_corpora, corpus, run):
    """``--only with-normalizer``: the run's MER mentions with the shared normalizer's IDs."""
    gold = read_pubtator(corpus_files(corpus, real_corpora, ("test",))["test"])
    named = run["with_normalizer"]
    pred = _predictions(named["predictions"], gold)
    types = None if run["men_types"] == "all" else set(run["men_types"])
    stored = named["standard_protocol"]
    assert men_document_prf(gold, pred, types=types).as_dict()["f1"] == stored["men-document"]["f1"]
    assert men_mention_prf(gold, pred, types=types).as_dict()["f1"] == stored["men-mention"]["f1"]
    # the same mentions as the run's own output: only their concept IDs differ
    own = _predictions(run["predictions"]["combined"], gold)
    spans = lambda docs: [[(m.start, m.end, m.type) for m in d.mentions] for d in docs]  # noqa: E731
    assert spans(pred) == spans(own)


@pytest.mark.parametrize("corpus, run", list(_runs("e2emern", e2emern.stored_runs)))
def test_e2emern_outputs_rescore(real_corpora, corpus, run):
    gold = read_pubtator(corpus_files(corpus, real_corpora, ("test",))["test"])
    pred = _predictions(run["standard_protocol"]["predictions"], gold)
    assert evaluate_documents(gold, pred)["protocols"] == run["standard_protocol"]["test"]["protocols"]


ANNOTATIONS = sorted((RESULTS / "annotate").glob("*/*.pubtator.scores.json"))


@pytest.mark.parametrize("scores", ANNOTATIONS, ids=lambda p: f"{p.parent.name}:{p.name}")
def test_annotate_outputs_rescore(real_corpora, scores):
    """``results/annotate/<corpus>/<model>.pubtator``: the pipeline's output from the test text alone."""
    import json

    stored = json.loads(scores.read_text())
    gold = read_pubtator(corpus_files(scores.parent.name, real_corpora, ("test",))["test"])
    pred = _predictions(stored["predictions"], gold)
    assert evaluate_documents(gold, pred)["protocols"] == stored["evaluation"]["protocols"]


@pytest.mark.parametrize("scores", ANNOTATIONS, ids=lambda p: f"{p.parent.name}:{p.name}")
def test_annotate_outputs_name_exactly_one_stored_card(scores):
    """Each annotated test set names the model that wrote it; that card is in ``results/models/`` once, and
    its test scores are the ones the output was checked against (so two cards may never share a name)."""
    import json

    stored = json.loads(scores.read_text())
    cards = [json.loads(p.read_text()) for p in (RESULTS / "models").rglob("*.json")]
    (card,) = [c for c in cards if c["name"] == stored["model"]]
    assert card["provenance"]["git_commit"] == stored["model_card_commit"]
    test = card["scores"]["test"]["protocols"]
    assert {k: round(test[k]["f1"], 4) for k in stored["card_test_scores"]} == stored["card_test_scores"]


def test_there_are_stored_runs():
    assert list(_runs("mtl")) and list(_runs("e2emern", e2emern.stored_runs)) and ANNOTATIONS
    assert mtl.VARIANTS
