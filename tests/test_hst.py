"""Hierarchical shared transfer (mernlib.models.hst, its training stages in mernlib.experiments.hst, its
data in mernlib.datasets): tag mapping, sampler, freezing, routing, save/load, learning on the bundled
sample IOB datasets.

Speed: a tiny randomly initialised BERT (1 layer, hidden 32) with the MiniLM's tokenizer, one thread;
the whole module trains one model for 3 epochs on 5 x 60 sentences (a few seconds).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import dataclasses
import random
from collections import Counter

import pytest
import torch

from mernlib.conll import read_iob
from mernlib.datasets import load_iob_datasets, normalize_entity_type
from mernlib.encoders import encoder_for, load_encoder, tiny_random_encoder
from mernlib.experiments.hst import (
    VARIANTS,
    evaluate,
    fine_tune,
    fine_tune_parts,
    freeze,
    mean_dev_f1,
    score,
    train_multitask,
    train_variant,
    trainable_parts,
    unfreeze,
)
from mernlib.models.hst import (
    HSTConfig,
    HSTTagger,
    average_weights,
    get_default_config,
    type_level_tags,
    type_tag_set,
)
from mernlib.registry import DATASETS, ENTITY_TYPE_GROUPS
from mernlib.sample import IOB_DATASETS
from mernlib.train import task_sampler

# Measured: after 3 epochs the mean test F1 over the 5 sample datasets is ~0.72 (min ~0.5 per
# dataset); the untrained model scores ~0.0. The thresholds leave a wide margin.
MIN_MEAN_F1 = 0.45
MIN_DATASET_F1 = 0.2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return load_encoder()[1]


def tiny_encoder(tokenizer):
    return tiny_random_encoder(tokenizer)


def tiny_config(**overrides) -> HSTConfig:
    base = dict(
        lr=3e-3,
        head_lr=3e-3,
        epochs=3,
        batch_size=8,
        dropout=0.0,
        progress=False,
        select_on_dev=False,
        seed=1,
        fine_tune_epochs=1,
    )
    return get_default_config(**(base | overrides))


@pytest.fixture(scope="module")
def datasets():
    return load_iob_datasets("sample").datasets


@pytest.fixture(scope="module")
def trained(tokenizer, datasets):
    model = HSTTagger(tiny_config(), datasets, tiny_encoder(tokenizer))
    untrained = {name: evaluate(model, d).f1 for name, d in datasets.items()}
    train_multitask(model, datasets)
    return model, untrained


# -- configuration and tag sets -------------------------------------------------------------------


def test_default_config():
    c = get_default_config()
    assert c.use_type_level and c.fusion == "gate" and c.type_head == "crf" and c.type_layer == "linear"
    assert c.task_sampler == "proportional" and c.encoder is None
    assert get_default_config(fusion="concat").fusion == "concat"
    with pytest.raises(ValueError):
        get_default_config(fusion="sum")
    with pytest.raises(TypeError):
        get_default_config(no_such_option=1)


def test_type_level_tags_per_dataset(datasets):
    # the sample datasets: each one's tags map to B/I/O of its group
    expected = {
        "sample-chem": "chemical",
        "sample-disease-a": "disease",
        "sample-disease-b": "disease",
        "sample-gene": "gene-protein",
        "sample-species": "species",
    }
    assert {n: d.entity_type for n, d in datasets.items()} == expected
    for name, d in datasets.items():
        kind = IOB_DATASETS[name]["tag"]
        assert d.tags == ["O", f"B-{kind}", f"I-{kind}"]
        assert type_level_tags(d.tags, d.entity_type) == type_tag_set(d.entity_type)
        for s in d.train[:10]:
            mapped = type_level_tags(s.tags, d.entity_type)
            assert len(mapped) == len(s.tags)
            assert [t[:1] for t in mapped] == [t[:1] for t in s.tags]
    # the Crichton datasets' own type names, as the registry records them
    for group, names in ENTITY_TYPE_GROUPS.items():
        for name in names:
            for kind in DATASETS[name].entity_types:
                assert type_level_tags(["O", f"B-{kind}", f"I-{kind}"], group) == type_tag_set(group)
    assert type_level_tags(["B-GENE", "I-GENE", "O"], "gene/protein") == [
        "B-gene-protein",
        "I-gene-protein",
        "O",
    ]
    assert type_level_tags(["B-cell_type", "B-protein"], "gene-protein") == ["B-gene-protein"] * 2
    assert type_level_tags(["S-Species", "B-Species", "E-Species"], "species") == [
        "B-species",
        "B-species",
        "I-species",
    ]
    assert normalize_entity_type("Gene_Protein") == "gene-protein"
    with pytest.raises(ValueError):
        type_level_tags(["X-Chemical"], "chemical")
    with pytest.raises(KeyError):
        type_level_tags(["O"], "cell line")


# -- data -----------------------------------------------------------------------------------------


def test_load_caps_are_seeded(datasets):
    caps = {"train": 10, "devel": 5, "test": 5}
    a = load_iob_datasets(["sample-chem", "sample-gene"], caps=caps, seed=3)
    b = load_iob_datasets(["sample-chem", "sample-gene"], caps=caps, seed=3)
    c = load_iob_datasets(["sample-chem"], caps={"train": 10}, seed=4)
    assert list(a.datasets) == ["sample-chem", "sample-gene"] and a.skipped == []
    assert a.caps == caps and c.caps == {"train": 10, "devel": None, "test": None}
    chem = a.datasets["sample-chem"]
    assert (len(chem.train), len(chem.devel), len(chem.test)) == (10, 5, 5)
    assert chem.sizes == {"train": 60, "devel": 20, "test": 20}
    assert chem.describe()["used"] == {"train": 10, "devel": 5, "test": 5}
    assert [s.line for s in chem.train] == [s.line for s in b.datasets["sample-chem"].train]
    assert [s.line for s in chem.train] != [s.line for s in c.datasets["sample-chem"].train]
    assert [s.line for s in chem.train] == sorted(s.line for s in chem.train)  # file order kept
    assert len(c.datasets["sample-chem"].test) == 20  # no cap: every sentence
    assert len(datasets["sample-chem"].train) == 60


def test_absent_dataset_is_returned_as_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("MERNLIB_OFFLINE", "1")
    monkeypatch.setenv("MERNLIB_CACHE", str(tmp_path / "cache"))
    got = load_iob_datasets(["BC4CHEMD", "JNLPBA", "sample-chem"], data_dir=tmp_path / "data")
    assert list(got.datasets) == ["sample-chem"]
    assert [s["dataset"] for s in got.skipped] == ["BC4CHEMD", "JNLPBA"]
    chem, jnlpba = (s["reason"] for s in got.skipped)
    assert "absent: BC4CHEMD train" in chem and "get it from" in chem
    assert "absent: JNLPBA train" in jnlpba
    assert got.name == "BC4CHEMD+JNLPBA+sample-chem"


# -- sampler --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,expected", [("proportional", 0.9), ("uniform", 0.5)])
def test_sampler_proportions(kind, expected):
    """The samplers the multi-task stage uses (mernlib.train.task_sampler, named by config.task_sampler);
    fit passes only the datasets with batches left this epoch."""
    sampler = task_sampler(kind)
    left = {"big": 90, "small": 10}
    rng = random.Random(0)
    counts = Counter(sampler(left, rng) for _ in range(20000))
    assert abs(counts["big"] / 20000 - expected) < 0.015
    rng_a, rng_b = random.Random(7), random.Random(7)  # seeded: the same draws
    assert [sampler(left, rng_a) for _ in range(50)] == [sampler(left, rng_b) for _ in range(50)]
    with pytest.raises(ValueError):
        task_sampler("temperature")
    with pytest.raises(ValueError):
        get_default_config(task_sampler="temperature")


def test_a_given_encoder_is_recorded_in_the_config(tokenizer, datasets):
    """The encoder's windowing is written into the model's config (save/load rebuild it), never into the
    caller's; encoder_for(record=False) refuses a config that disagrees with the encoder."""
    config = tiny_config()
    encoder = tiny_random_encoder(tokenizer, max_length=48)
    model = HSTTagger(config, {"sample-chem": datasets["sample-chem"]}, encoder)
    assert (model.config.max_length, model.config.stride) == (48, encoder.aligner.stride)
    assert (config.max_length, config.stride) == (128, None)  # the caller's config is untouched
    with pytest.raises(ValueError, match="max_length=128"):
        encoder_for(config, encoder, record=False)
    assert encoder_for(model.config, encoder, record=False) is encoder


# -- heads and routing ----------------------------------------------------------------------------


def test_each_head_has_its_own_tags_and_sees_only_its_batches(tokenizer, datasets):
    model = HSTTagger(tiny_config(), datasets, tiny_encoder(tokenizer))
    assert sorted(model.type_heads) == ["chemical", "disease", "gene-protein", "species"]
    for name, d in datasets.items():
        assert model.tags_of(name) == d.tags
        assert model.heads[name].crf.num_tags == len(d.tags)
    assert model.tags_of("sample-chem") != model.tags_of("sample-gene")

    seen: dict[str, list] = {name: [] for name in model.heads}
    type_seen: dict[str, list] = {t: [] for t in model.type_heads}
    for name, head in model.heads.items():
        original = head.crf.neg_log_likelihood

        def record(emissions, tags, mask, *args, _name=name, _original=original, **kwargs):
            seen[_name].append(tags[mask].tolist())
            return _original(emissions, tags, mask, *args, **kwargs)

        head.crf.neg_log_likelihood = record
    for etype, head in model.type_heads.items():
        original = head.loss

        def record_type(t, tags, mask, _etype=etype, _original=original):
            type_seen[_etype].append(tags[mask].tolist())
            return _original(t, tags, mask)

        head.loss = record_type

    for name, d in datasets.items():
        batch = model.make_batches(d, d.train[:4])[0]
        before = {n: len(v) for n, v in seen.items()}
        model.loss(batch, name)
        after = {n: len(v) for n, v in seen.items()}
        assert [n for n in seen if after[n] != before[n]] == [name]  # only its own head
        ids = seen[name][-1]
        gold = [t for s in d.train[:4] for t in s.tags]
        assert sorted(model.heads[name].vocab.decode(ids)) == sorted(gold)
        assert max(ids) < len(d.tags)
        assert sorted(type_seen[d.entity_type][-1]) == sorted(
            type_tag_set(d.entity_type).index(t) for t in type_level_tags(gold, d.entity_type)
        )
        other = next(n for n in datasets if n != name)
        with pytest.raises(ValueError):
            model.loss(batch, other)
    # two disease datasets share one type level; every other type saw one dataset
    assert len(type_seen["disease"]) == 2 and all(len(type_seen[t]) == 1 for t in ("chemical", "species"))
    # predictions stay in the dataset's own tag set
    for name, d in datasets.items():
        for tags in model.predict(d.test[:3], name):
            assert set(tags) <= set(d.tags)


@pytest.mark.parametrize(
    "overrides",
    [dict(use_type_level=False), dict(type_layer="bilstm", type_head="softmax", fusion="concat")],
)
def test_variants_of_the_layers_train(tokenizer, datasets, overrides):
    two = {k: datasets[k] for k in ("sample-chem", "sample-gene")}
    model = HSTTagger(tiny_config(**overrides), two, tiny_encoder(tokenizer))
    assert bool(model.type_layers) == model.config.use_type_level
    batch = model.make_batches(two["sample-chem"], two["sample-chem"].train[:4])[0]
    loss = model.loss(batch, "sample-chem")
    loss.backward()
    assert torch.isfinite(loss)
    assert model.heads["sample-chem"].emit.weight.grad is not None
    assert model.heads["sample-gene"].emit.weight.grad is None


# -- freezing and fine-tuning ----------------------------------------------------------------------


def test_freeze_unfreeze(tokenizer, datasets):
    model = HSTTagger(tiny_config(), datasets, tiny_encoder(tokenizer))
    parts = model.parts()
    assert set(parts) == {"encoder", "type:chemical", "type:disease", "type:gene-protein", "type:species"} | {
        f"head:{n}" for n in datasets
    }
    assert sum(len(v) for v in parts.values()) == len(list(model.parameters()))
    freeze(model)
    assert not any(p.requires_grad for p in model.parameters()) and trainable_parts(model) == []
    unfreeze(model, ["head:sample-chem", "type:chemical"])
    assert trainable_parts(model) == ["type:chemical", "head:sample-chem"]
    frozen_names = freeze(model, "type:chemical")
    assert frozen_names and all(
        n.startswith(("type_layers.chemical", "type_heads.chemical")) for n in frozen_names
    )
    unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(KeyError):
        freeze(model, "head:nope")
    assert fine_tune_parts(model, "sample-disease-b") == ["encoder", "type:disease", "head:sample-disease-b"]
    c = dataclasses.replace(model.config, fine_tune_encoder=False, fine_tune_type_layer=False)
    assert fine_tune_parts(model, "sample-disease-b", c) == ["head:sample-disease-b"]
    flat = HSTTagger(tiny_config(use_type_level=False), datasets, tiny_encoder(tokenizer))
    assert fine_tune_parts(flat, "sample-gene") == ["encoder", "head:sample-gene"]


def test_fine_tune_moves_only_unfrozen_parameters(trained, datasets):
    model, _ = trained
    target = dataclasses.replace(datasets["sample-disease-a"], train=datasets["sample-disease-a"].train[:8])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tuned = fine_tune(model, target)  # one epoch of one batch of 8 sentences: one step
    assert tuned is not model and tuned.history[-1]["stage"] == "fine-tune:sample-disease-a"
    assert tuned.history[-1]["result"].history[0]["steps"] == {"sample-disease-a": 1}
    trainable = set(fine_tune_parts(tuned, target))
    assert set(trainable_parts(tuned)) == trainable
    params = dict(tuned.named_parameters())
    for part, names in tuned.parts().items():
        changed = [not torch.equal(params[n], before[n]) for n in names]
        if part in trainable:
            assert any(changed), part
            assert all(params[n].requires_grad for n in names)
        else:
            assert not any(changed), part
            assert not any(params[n].requires_grad for n in names)
    # the multi-task model itself is untouched and still trainable
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert all(p.requires_grad for p in model.parameters())


# -- learning, evaluation, persistence ------------------------------------------------------------


def test_tiny_model_learns_the_sample(trained, datasets, tmp_path):
    model, untrained = trained
    scores = {name: evaluate(model, d, "test").f1 for name, d in datasets.items()}
    mean = sum(scores.values()) / len(scores)
    assert mean > MIN_MEAN_F1, scores
    assert min(scores.values()) > MIN_DATASET_F1, scores
    assert mean > sum(untrained.values()) / len(untrained) + 0.3
    assert 0.0 < mean_dev_f1(model, datasets.values()) <= 1.0
    # predictions written as token, gold, predicted
    d = datasets["sample-gene"]
    prf = evaluate(model, d, "devel", output=tmp_path / "pred.tsv")
    back = read_iob(tmp_path / "pred.tsv")
    assert [s.tokens for s in back] == [s.tokens for s in d.devel]
    assert [s.tags for s in back] == [s.tags for s in d.devel]
    assert [s.predicted for s in back] == model.predict(d.devel, d.name)
    assert prf.tp + prf.fn == sum(t.startswith("B-") for s in d.devel for t in s.tags)
    types = model.predict_types(d.devel[:2], "gene/protein")
    assert all(set(t) <= set(type_tag_set("gene-protein")) for t in types)
    # strict and lenient F1 from one prediction; the lenient one is what evaluate (and dev selection) use
    both = score(model, d, "devel")
    assert both["lenient"] == prf and both["strict"] == evaluate(model, d, "devel", strict=True)


def test_save_load_identical_predictions(trained, datasets, tmp_path):
    model, _ = trained
    model.save(tmp_path / "hst")
    loaded = HSTTagger.load(tmp_path / "hst")
    assert loaded.config == model.config
    assert {n: loaded.tags_of(n) for n in loaded.heads} == {n: model.tags_of(n) for n in model.heads}
    assert loaded.entity_type_of == model.entity_type_of
    for name, d in datasets.items():
        assert loaded.predict(d.test, name) == model.predict(d.test, name)
    a = model.state_dict()
    assert all(torch.equal(a[k], v) for k, v in loaded.state_dict().items())


def test_train_variant_hierarchical(tokenizer, datasets):
    small = {
        k: dataclasses.replace(datasets[k], train=datasets[k].train[:8], test=datasets[k].test[:4])
        for k in ("sample-disease-a", "sample-disease-b")
    }
    assert list(VARIANTS) == ["single-task", "multi-task", "multi-task+fine-tune", "hierarchical"]
    trained = train_variant(
        "hierarchical",
        small,
        tiny_config(epochs=1),
        new_encoder=lambda: tiny_encoder(tokenizer),
        keep_models=True,
    )
    assert trained.variant == "hierarchical" and trained.config.use_type_level
    assert set(trained.scores) == set(small)
    for name, s in trained.scores.items():
        assert set(s) == {"strict", "lenient"} and all(0.0 <= p.f1 <= 1.0 for p in s.values())
        tuned = trained.models[name]
        assert tuned.history[-1]["stage"] == f"fine-tune:{name}"
        assert trained.fits[name] is tuned.history[-1]["result"]
    assert trained.multitask_fit is not None and trained.multitask_fit.best_epoch == 1
    with pytest.raises(ValueError, match="unknown variant"):
        train_variant("nope", small)


def test_average_weights_is_the_mean_and_checks_the_models(trained, tokenizer, datasets):
    model, _ = trained
    untrained = HSTTagger(tiny_config(), datasets, tiny_encoder(tokenizer))  # the same seed: the same start
    soup = average_weights([model, untrained], weights=[0.75, 0.25])
    mine, theirs, mixed = model.state_dict(), untrained.state_dict(), soup.state_dict()
    for key, value in mixed.items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * mine[key] + 0.25 * theirs[key]), key
        else:
            assert torch.equal(value, mine[key]), key
    assert all(torch.equal(v, mine[k]) for k, v in model.state_dict().items())  # inputs untouched
    d = datasets["sample-gene"]
    assert average_weights([model, model]).predict(d.test, d.name) == model.predict(d.test, d.name)
    other = {"sample-gene": datasets["sample-gene"]}
    with pytest.raises(ValueError, match="other datasets or tags"):
        average_weights([model, HSTTagger(tiny_config(), other, tiny_encoder(tokenizer))])
    with pytest.raises(ValueError, match="one weight per model"):
        average_weights([model, untrained], weights=[0.5, 0.6])
