"""Saved models: a quick annotation pipeline trained on the sample, saved as a folder with its card, loaded
back to the same predictions and the card's own scores; the normalizer's save/load (TF-IDF and a tuned
dense encoder: nothing tuned or encoded again); load_model dispatching on what a path holds.

The quick pipeline is trained once per session (:func:`quick_model`) and shared with tests/test_annotate.py.
"""

import json
import shutil

import pytest

import mernlib as ml
from mernlib.errors import DataFormatError
from mernlib.normalize import Normalizer, NormalizerConfig
from mernlib.pipeline import (
    FORMAT,
    QUICK_NOTE,
    AnnotationPipeline,
    card_scores,
    load_model,
    model_kind,
    paper_scores,
    quick_config,
    scores_chart,
    train_pipeline,
)

_trained = {}


def quick_model(tmp_path_factory):
    """``(pipeline, folder)``: the quick pipeline trained on the sample and saved, once per session."""
    if "model" not in _trained:
        import torch

        torch.set_num_threads(1)
        folder = tmp_path_factory.mktemp("quick-pipeline") / "model"
        pipeline = train_pipeline("sample", config=quick_config(13), model_dir=folder, progress=False)
        _trained["model"] = (pipeline, folder)
    return _trained["model"]


@pytest.fixture(scope="module")
def sample():
    return ml.data.load_corpus("sample")


def mentions(documents):
    return [[(m.start, m.end, m.type, m.concept) for m in d.mentions] for d in documents]


def test_the_folder_and_its_card(tmp_path_factory):
    pipeline, folder = quick_model(tmp_path_factory)
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "normalizer", "tagger"]
    assert {p.name for p in (folder / "tagger").iterdir()} == {"config.json", "encoder", "heads.pt"}
    assert {p.name for p in (folder / "normalizer").iterdir()} == {
        "config.json",
        "entity_base.tsv",
        "training_mentions.json",
    }  # TF-IDF retrieval: no encoder, no vectors
    card = json.loads((folder / "card.json").read_text())
    assert card == pipeline.card and card["format"] == FORMAT
    assert card["corpus"]["name"] == "sample" and card["corpus"]["documents"] == {
        "train": 80,
        "dev": 20,
        "test": 20,
    }
    assert set(card["corpus"]["types"]) == {"Chemical", "Disease"}
    assert card["seed"] == 13 and card["scale"] == "quick" and card["note"] == QUICK_NOTE
    assert card["tagger"]["best_epoch"] in range(1, 4) and len(card["tagger"]["history"]) == 3
    assert card["normalizer"]["fitted_on"] == "train + dev"
    for split in ("dev", "test"):
        protocols = card["scores"][split]["protocols"]
        assert set(protocols) == {"ner-mention-strict", "men-mention", "men-document"}
        assert set(protocols["men-mention"]["per_type"]) == {"Chemical", "Disease"}
        assert 0 < protocols["ner-mention-strict"]["f1"] <= 1
    assert set(card["protocol"]) == {"tagger", "dev", "test", "metrics"}
    provenance = card["provenance"]
    assert provenance["git_commit"] and provenance["wall_time_s"] > 0 and provenance["seed"] == 13
    assert card["config"]["tagger"]["use_type_level"] is False and card["config"]["tiny_encoder"] == 64


def test_round_trip_gives_the_same_annotations_and_the_cards_scores(tmp_path_factory, sample):
    pipeline, folder = quick_model(tmp_path_factory)
    loaded = load_model(folder)
    assert isinstance(loaded, AnnotationPipeline) and loaded.types == ["Chemical", "Disease"]
    test = sample["test"]
    ours, theirs = pipeline.annotate(test), loaded.annotate(test)
    assert mentions(theirs) == mentions(ours)
    assert sum(map(len, mentions(ours))) > 100
    assert [d.text for d in theirs] == [d.text for d in test]  # the text itself is never touched
    # the saved normalizer is the one fitted on train + dev: re-scoring the test set gives the card's scores
    assert ml.metrics.evaluate_documents(test, theirs) == loaded.card["scores"]["test"]
    # the input documents are left alone (gold mentions still there), relations are not copied
    assert test[0].mentions and all(not d.relations for d in theirs)


def test_annotate_text_reads_title_and_abstract(tmp_path_factory):
    pipeline, _ = quick_model(tmp_path_factory)
    doc = pipeline.annotate_text(
        "Renal damage after vincristine.\nVincristine caused nephrotoxicity in rats."
    )
    assert doc.title == "Renal damage after vincristine." and doc.abstract.startswith("Vincristine caused")
    assert {m.text for m in doc.mentions} & {"vincristine", "Vincristine", "nephrotoxicity", "Renal damage"}
    assert any(m.concept for m in doc.mentions)


def test_saving_over_a_folder(tmp_path_factory, tmp_path):
    pipeline, _ = quick_model(tmp_path_factory)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("not a model")
    with pytest.raises(FileExistsError, match="not a pipeline folder"):
        pipeline.save(other)
    assert (other / "notes.txt").read_text() == "not a model"
    target = tmp_path / "model"
    pipeline.save(target)
    pipeline.save(target)  # a pipeline folder is replaced
    assert model_kind(target) == "pipeline" and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_load_model_dispatches_and_refuses_what_is_no_model(tmp_path_factory, tmp_path):
    from mernlib.models.hst import HSTTagger

    _, folder = quick_model(tmp_path_factory)
    assert isinstance(load_model(folder / "tagger"), HSTTagger)  # the tagger alone is an HST folder
    assert model_kind(folder / "tagger") == "hst"
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.pt").write_bytes(b"not a checkpoint")
    for path, message in [
        (tmp_path / "absent", "no such model"),
        (tmp_path / "empty", "not a saved mernlib model"),
        (tmp_path / "file.pt", "not a saved mernlib model"),
    ]:
        with pytest.raises(DataFormatError, match=message) as err:
            load_model(path)
        assert str(err.value).startswith(str(path))
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "card.json").write_text('{"format": "something else"}')
    with pytest.raises(DataFormatError, match="expected 'mernlib.pipeline/1'"):
        load_model(broken)


def test_the_mtl_checkpoint_is_recognised(tmp_path):
    from mernlib.models.mtl_feedback import MultiTaskTagger, get_default_config

    small = get_default_config(word_dim=8, char_dim=4, char_filters=4, hidden_size=8, num_layers=1)
    sentences = [["Renal", "damage", "."]]
    tags = {"mer": [["B-Disease", "I-Disease", "O"]], "men": [["B-D007674", "I-D007674", "O"]]}
    MultiTaskTagger.build(small, sentences, tags).save(tmp_path / "mtl.pt")
    assert model_kind(tmp_path / "mtl.pt") == "mtl"
    assert isinstance(load_model(tmp_path / "mtl.pt"), MultiTaskTagger)


def test_the_e2emern_folder_is_recognised(tmp_path):
    """An E2EMERN folder loads through load_model with its configuration, ``low_crf`` included (the CRF's
    transitions are among the heads, so the loaded model decodes as the saved one)."""
    import torch

    from mernlib.encoders import load_encoder, tiny_random_encoder
    from mernlib.models.e2emern import E2EMERN, get_default_config

    torch.manual_seed(0)
    encoder = tiny_random_encoder(load_encoder()[1], num_layers=1, max_length=32, max_positions=64)
    names = {"D007022": "Hypotension", "D003000": "Clonidine"}
    model = E2EMERN(get_default_config(low_crf=True), ["Chemical", "Disease"], encoder, names).eval()
    sentences = [["clonidine", "caused", "hypotension"], ["no", "effect"]]
    model.save(tmp_path / "e2e")
    assert model_kind(tmp_path / "e2e") == "e2emern"
    loaded = load_model(tmp_path / "e2e")
    assert isinstance(loaded, E2EMERN) and loaded.config.low_crf and loaded.entity_names == names
    assert loaded.predict_tags(sentences) == model.predict_tags(sentences)


def test_card_rows_and_chart(tmp_path_factory):
    pipeline, _ = quick_model(tmp_path_factory)
    rows = card_scores(pipeline.card)
    assert {(r["split"], r["type"]) for r in rows} >= {
        ("dev", "all"),
        ("test", "Chemical"),
        ("test", "Disease"),
    }
    papers = paper_scores()
    assert {r["source"] for r in papers} == {
        "Zhao et al. 2019 (ncbi-disease)",
        "Zhao et al. 2019 (bc5cdr)",
        "Zhou et al. 2021 (ncbi-disease)",
        "Zhou et al. 2021 (bc5cdr)",
    }
    assert all(r["paper protocol"].startswith("paper protocol") for r in papers)
    spec = scores_chart(pipeline.card, papers).to_dict()
    assert len(spec["data"]["values"]) == len(rows) + len(papers)


# -- the normalizer alone --------------------------------------------------------------------------------


def test_normalizer_round_trip_tfidf(sample, tmp_path):
    base = ml.data.load_corpus_entity_base("sample")
    fitted = Normalizer(NormalizerConfig(retriever="tfidf", progress=False)).fit(sample["train"], base)
    fitted.save(tmp_path / "n")
    loaded = Normalizer.load(tmp_path / "n")
    assert mentions(loaded.normalize(sample["test"])) == mentions(fitted.normalize(sample["test"]))
    assert loaded.candidates("renal injury", k=5) == fitted.candidates("renal injury", k=5)
    assert loaded.describe() == fitted.describe()


@pytest.fixture(scope="module")
def tiny_encoder_folder(tmp_path_factory):
    from transformers import AutoTokenizer

    from mernlib.encoders import default_encoder_path, tiny_random_encoder

    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path(), local_files_only=True)
    encoder = tiny_random_encoder(tokenizer, hidden_size=32, num_layers=1, max_length=32, seed=0)
    folder = tmp_path_factory.mktemp("tiny-encoder")
    encoder.transformer.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    return folder


def test_normalizer_round_trip_dense_tuned_without_the_cache(
    sample, tiny_encoder_folder, tmp_path, monkeypatch
):
    import mernlib.normalize as normalize

    base = ml.data.load_corpus_entity_base("sample")
    config = NormalizerConfig(
        encoder=str(tiny_encoder_folder),
        cache_dir=str(tmp_path / "cache"),
        tuning_epochs=1,
        tuning_batch_size=8,
        progress=False,
    )
    fitted = Normalizer(config).fit(sample["train"], base)
    assert fitted.encoder_path is not None and fitted.encoder_path.parent == tmp_path / "cache"
    fitted.save(tmp_path / "n")
    assert {p.name for p in (tmp_path / "n").iterdir()} >= {"encoder", "vectors.npy", "config.json"}
    meta = json.loads((tmp_path / "n" / "config.json").read_text())
    assert meta["encoder"] == "encoder" and meta["tuned_encoder"] == fitted.encoder_path.name
    shutil.rmtree(tmp_path / "cache")  # the folder must be enough: no cache, no tuning, no encoding
    monkeypatch.setattr(normalize, "tune_encoder", lambda *a, **k: pytest.fail("tuned again"))
    monkeypatch.setattr(normalize, "encode_texts", _count_calls(normalize.encode_texts))
    loaded = Normalizer.load(tmp_path / "n")
    assert normalize.encode_texts.calls == 0
    assert loaded.encoder_path == tmp_path / "n" / "encoder"
    test = sample["test"]
    assert mentions(loaded.normalize(test)) == mentions(fitted.normalize(test))
    assert loaded.candidates("kidney harm", k=4) == fitted.candidates("kidney harm", k=4)


def _count_calls(function):
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        return function(*args, **kwargs)

    wrapper.calls = 0
    return wrapper


def test_normalizer_load_refuses(tmp_path, sample):
    base = ml.data.load_corpus_entity_base("sample")
    fitted = Normalizer(NormalizerConfig(retriever="tfidf", progress=False)).fit(sample["train"][:5], base)
    fitted.save(tmp_path / "n")
    with pytest.raises(ValueError, match="cannot be changed"):
        Normalizer.load(tmp_path / "n", retriever="dense")
    with pytest.raises(ValueError, match="not a saved normalizer"):
        Normalizer.load(tmp_path)
    (tmp_path / "n" / "training_mentions.json").write_text("[]\n")
    with pytest.raises(ValueError, match="surface forms differ"):
        Normalizer.load(tmp_path / "n")
