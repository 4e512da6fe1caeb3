"""``train best``: which auxiliary datasets the kit's own system learns from, and a quick best system on the
sample -- trained with its auxiliaries, the fine-tuning stage kept only when dev says so, saved and loaded
back to the same annotations."""

import pytest

from mernlib.corpus import Document, Mention
from mernlib.normalize import drop_weak_mentions
from mernlib.pipeline import (
    OWN_IOB_DATASETS,
    RETRIEVAL_FLOORS,
    add_retrieval_floor,
    auxiliary_names,
    best_config,
    choose_retrieval_floor,
    config_for,
    load_model,
    quick_best_config,
    quick_config,
    train_pipeline,
)


def test_same_type_auxiliaries_never_include_the_corpus_itself():
    assert auxiliary_names("ncbi-disease", ["disease"]) == ["BC5CDR-disease"]
    for_bc5cdr = auxiliary_names("bc5cdr", ["chemical", "disease"])
    assert "NCBI-disease" in for_bc5cdr and "CRAFT-chem" in for_bc5cdr
    assert not set(for_bc5cdr) & set(OWN_IOB_DATASETS["bc5cdr"])
    assert auxiliary_names("sample", ["disease"]) == ["sample-disease-a", "sample-disease-b"]
    assert auxiliary_names("sample", ["species"]) == ["sample-species"]


def test_best_config_is_the_pipeline_plus_sharing():
    config = best_config(7)
    assert (config.name, config.auxiliary, config.seed) == ("best", "same-type", 7)
    assert config.retrieval_floor == config_for("full", 7).retrieval_floor == "dev"
    assert not config.tagger.use_type_level and config.tagger.fine_tune_epochs == 1
    assert config_for("full", 7, 2, system="best").tagger.epochs == 2
    assert config_for("full", 7).name == "pipeline" and config_for("full", 7).auxiliary == ()
    with pytest.raises(ValueError, match="system must be one of"):
        config_for("full", 7, system="bestest")


@pytest.fixture(scope="module")
def quick_best(tmp_path_factory):
    """``(pipeline, folder)``: ``train best`` at quick scale, one epoch, trained once for this module."""
    import torch

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("best") / "best"
    best = train_pipeline(
        "sample", config=quick_best_config(13, epochs=1), model_dir=folder, progress=False, variant="-e1"
    )
    return best, folder


def test_quick_best_trains_with_its_auxiliaries_and_round_trips(quick_best, sample_documents):
    best, folder = quick_best
    card = best.card
    assert card["name"] == "best-sample-quick-seed13-e1"  # the variant ends the name
    aux = card["tagger"]["auxiliary"]
    assert list(aux["datasets"]) == ["sample-chem", "sample-disease-a", "sample-disease-b"]
    assert aux["missing"] == []
    tuning = aux["fine_tuning"]
    assert tuning["kept"] == (tuning["dev_tag_f1_after"] > tuning["dev_tag_f1_before"])
    # every auxiliary has its own head; the corpus's head is the one that annotates
    assert best.tagger.dataset_names[0] == "sample" and best.dataset == "sample"
    loaded = load_model(folder)
    assert loaded.card["tagger"]["auxiliary"] == aux
    # the retrieval floor was chosen on dev, is the one the dev scores were made with, and loads back
    floor = card["retrieval_floor"]
    assert (
        floor["value"] in RETRIEVAL_FLOORS
        and loaded.retrieval_floor == best.retrieval_floor == floor["value"]
    )
    dev_f1 = card["scores"]["dev"]["protocols"]["men-document"]["f1"]
    assert (
        floor["dev_men_document_f1"][str(floor["value"])]
        == round(dev_f1, 4)
        == max(floor["dev_men_document_f1"].values())
    )
    texts = sample_documents["test"][:5]
    spans = lambda docs: [[(m.start, m.end, m.type, m.concept) for m in d.mentions] for d in docs]  # noqa: E731
    assert spans(loaded.annotate(texts)) == spans(best.annotate(texts))


@pytest.fixture(scope="module")
def sample_documents():
    import mernlib as ml

    return ml.data.load_corpus("sample")


def test_train_all_trains_one_system_per_corpus(tmp_path, monkeypatch):
    """``train best --corpus all``: NCBI then BC5CDR, each into its own folder with its own card copy."""
    import mernlib.pipeline
    from mernlib.cli import ALL_TRAIN_CORPORA, main

    calls = []

    class Trained:
        def __init__(self, corpus, model_dir):
            self.card = {"name": corpus, "scores": {"test": {"protocols": {"men-document": {"f1": 0.5}}}}}

    def fake_train(corpus, data_dir, config, *, model_dir, progress, variant, log):
        calls.append((corpus, config.name, model_dir.name, variant))
        return Trained(corpus, model_dir)

    monkeypatch.setattr(mernlib.pipeline, "train_pipeline", fake_train)
    args = ["train", "best", "--corpus", "all", "--model-dir", str(tmp_path / "m")]
    main([*args, "--results-dir", str(tmp_path / "r"), "--no-progress"])
    assert calls == [(c, "best", f"best-{c}-full", "") for c in ALL_TRAIN_CORPORA]
    assert sorted(p.name for p in (tmp_path / "r" / "models").iterdir()) == [
        f"best-{c}-full.json" for c in sorted(ALL_TRAIN_CORPORA)
    ]
    # a run that differs from the defaults says how in its folder's name and, through `variant`, its card's
    calls.clear()
    changed = ["--epochs", "7", "--set", "lr=5e-5", "--pretrain", "on", "--seed", "14"]
    main([*args, *changed, "--results-dir", str(tmp_path / "r"), "--no-progress"])
    assert [c[2:] for c in calls] == [
        (f"best-{c}-full-seed14-e7-lr5e-05-pretrain", "-e7-lr5e-05-pretrain") for c in ALL_TRAIN_CORPORA
    ]


def test_compare_cards_puts_dev_before_test():
    import json

    from mernlib.paths import REPO_ROOT
    from mernlib.pipeline import compare_cards

    card = json.loads((REPO_ROOT / "results" / "models" / "pipeline-ncbi-disease-full.json").read_text())
    (row,) = compare_cards([card])
    assert row["auxiliary datasets"] == "—" and row["fine-tuning kept"] == "—"
    keys = list(row)
    assert keys.index("dev NER F1") < keys.index("test NER F1")
    assert row["test men-document F1"] == round(card["scores"]["test"]["protocols"]["men-document"]["f1"], 4)


def test_a_system_with_an_mlm_encoder_says_so_in_the_readme_row_and_the_comparison():
    """Two `train best` cards of one corpus, with and without `--pretrain on`, must not read alike."""
    import json

    from mernlib.paths import REPO_ROOT
    from mernlib.pipeline import compare_cards, headline

    card = json.loads((REPO_ROOT / "results" / "models" / "best-ncbi-disease-full.json").read_text())
    plain_row, plain_summary = compare_cards([card])[0], headline(card)["model"]
    card["pretraining"] = {"steps": 849, "encoder": "all-MiniLM-L6-v2"}
    assert compare_cards([card])[0]["encoder pretraining"] == "MLM, 849 steps"
    assert plain_row["encoder pretraining"] == "—"
    assert headline(card)["model"].startswith("MiniLM-L6-v2 + MLM + CRF") and "MLM" not in plain_summary


def _doc(pmid, *mentions):
    text = "aaaa bbbb cccc dddd"
    doc = Document(pmid, text, "")
    for start, concept, score in mentions:
        attrs = {} if score is None else {"retrieval_score": score}
        doc.mentions.append(Mention(start, start + 4, text[start : start + 4], "Disease", concept, attrs))
    return doc


def test_a_floor_drops_only_weak_retrieval_mentions_and_dev_chooses_it():
    named = [_doc("1", (0, "D1", None), (5, "D2", 0.62), (10, "D3", 0.91))]
    kept = lambda docs: [m.concept for d in docs for m in d.mentions]  # noqa: E731
    assert kept(drop_weak_mentions(named, None)) == ["D1", "D2", "D3"]
    assert kept(drop_weak_mentions(named, 0.7)) == ["D1", "D3"]  # a lookup's mention is never dropped
    assert kept(drop_weak_mentions(named, 0.95)) == ["D1"]
    assert kept(named) == ["D1", "D2", "D3"]  # copies: the input keeps its mentions
    # D2 is a spurious concept: the lowest floor that drops it and keeps D3 wins
    gold = [_doc("1", (0, "D1", None), (10, "D3", None))]
    floor, record = choose_retrieval_floor(named, gold)
    assert floor == 0.65 and record["value"] == 0.65
    assert record["dev_men_document_f1"]["None"] == 0.8 and record["dev_men_document_f1"]["0.65"] == 1.0
    # nothing to gain: no floor (a floor must earn its place)
    assert choose_retrieval_floor(gold, gold)[0] is None


def test_a_saved_pipeline_gets_its_floor_without_training_again(tmp_path, sample_documents):
    import json

    import torch

    torch.set_num_threads(1)
    folder = tmp_path / "plain"
    config = quick_config(13, epochs=1)
    config.retrieval_floor = None  # as the cards made before the floor existed
    plain = train_pipeline("sample", config=config, model_dir=folder, progress=False)
    assert plain.retrieval_floor is None and "retrieval_floor" not in plain.card
    floored = add_retrieval_floor(folder)
    card = json.loads((folder / "card.json").read_text())
    assert card["scores_without_floor"] == json.loads(json.dumps(plain.card["scores"]))
    assert card["retrieval_floor"]["value"] == floored.retrieval_floor == load_model(folder).retrieval_floor
    assert card["retrieval_floor"]["provenance"]["git_commit"]
    if floored.retrieval_floor is None:  # the same protocol, the same normalizers: the same numbers
        assert card["scores"] == card["scores_without_floor"]


def test_set_overrides_tagger_fields_and_names_the_folder(tmp_path, monkeypatch, capsys):
    """``train --set NAME=VALUE``: typed overrides of the tagger's config, in the folder's name, card to
    the scratch results; unknown names and wrong kinds stop with a message naming them."""
    import mernlib.pipeline
    from mernlib.cli import main

    seen = []

    class Trained:
        card = {"scores": {"test": {"protocols": {"men-document": {"f1": 0.5}}}}}

    def fake_train(corpus, data_dir, config, *, model_dir, progress, variant, log):
        seen.append((config.tagger.lr, config.tagger.lr_schedule, config.tagger.epochs, model_dir.name))
        return Trained()

    monkeypatch.setattr(mernlib.pipeline, "train_pipeline", fake_train)
    monkeypatch.chdir(tmp_path)
    args = ["train", "best", "--corpus", "ncbi-disease", "--no-progress"]
    main([*args, "--set", "lr=5e-5", "--set", "lr_schedule=linear", "--set", "epochs=2"])
    name = "best-ncbi-disease-full-lr5e-05-lr_schedulelinear-epochs2"
    assert seen == [(5e-5, "linear", 2, name)]
    assert (tmp_path / "runs" / "results" / "models" / f"{name}.json").exists()  # not results/
    (tmp_path / "encoders" / "minilm-mlm").mkdir(parents=True)
    main([*args, "--set", f"encoder={tmp_path / 'encoders' / 'minilm-mlm'}"])  # a folder: its last part
    assert seen[-1][3] == "best-ncbi-disease-full-encoderminilm-mlm"
    main([*args, "--set", "encoder=dmis-lab/biobert-v1.1"])  # a hub name: as E2EMERN's files name it
    assert seen.pop()[3] == "best-ncbi-disease-full-encoderdmis-lab-biobert-v1.1"
    assert (tmp_path / "runs" / "results" / "models" / f"{seen[-1][3]}.json").exists()
    seen.pop()
    main([*args, "--pretrain", "on" if mernlib.pipeline.best_config().pretraining is None else "off"])
    assert seen.pop()[3].endswith("pretrain")  # a change from the system's default is in the name
    for setting, message in [
        ("no_such_field=1", "expected NAME=VALUE with NAME one of"),
        ("lr=fast", "lr takes a float, not 'fast'"),
        ("lr_schedule=cosine", "lr_schedule must be one of None|linear, not 'cosine'"),
    ]:
        assert main([*args, "--set", setting]) == 2
        assert message in capsys.readouterr().err
    assert len(seen) == 1


def test_soup_keeps_only_what_dev_approves_and_scores_by_the_protocol(quick_best, tmp_path, capsys):
    """``soup``: the quick system and a copy with noise on its tagger's weights; the soup starts from
    the better on dev, the other is averaged in only if dev does not fall, and the card says so."""
    import json
    import shutil

    import torch

    from mernlib.cli import main

    best, folder = quick_best
    noisy = load_model(folder)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in noisy.tagger.parameters():
            p.add_(0.5 * p.std().nan_to_num() * torch.randn(p.shape, generator=generator))
    shutil.copytree(folder, tmp_path / "noisy")
    noisy.save(tmp_path / "noisy")
    out = tmp_path / "soup"
    args = ["soup", "--model", str(tmp_path / "noisy"), "--model", str(folder), "--model-dir", str(out)]
    assert main([*args, "--results-dir", str(tmp_path / "r")]) == 0
    card = json.loads((out / "card.json").read_text())
    soup = card["tagger"]["soup"]
    alone = [i["dev_tag_f1"] for i in soup["ingredients"]]
    assert alone == sorted(alone, reverse=True) and len(alone) == 2
    step = soup["steps"][0]
    assert step["kept"] == (step["dev_tag_f1"] >= alone[0])
    assert soup["dev_tag_f1"] == max(alone[0], step["dev_tag_f1"]) and len(soup["kept"]) == 1 + step["kept"]
    assert card["name"] == "soup-sample-quick" and set(card["scores"]) == {"dev", "test"}
    assert (tmp_path / "r" / "models" / "soup-sample-quick.json").exists()
    assert "kept [" in capsys.readouterr().out
    assert main(["soup", "--model", str(folder)]) == 2  # one folder is not a soup
    assert "at least two" in capsys.readouterr().err
