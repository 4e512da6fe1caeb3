"""E2EMERN: the three levels, the sample builder, both evaluation protocols, save/load.

Speed: the overfitting and save/load tests use a *tiny randomly initialised* BERT (2 layers,
hidden 32) built locally with the MiniLM's tokenizer; one test runs the real MiniLM through a
training step and annotation to check the plumbing on the default encoder.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import math
import random

import pytest
import torch

from mernlib.candidates import CandidateGenerator
from mernlib.encoders import load_encoder, tiny_random_encoder
from mernlib.experiments.e2emern import paper_protocol, paper_protocol_pairs, train_model
from mernlib.metrics import binary_prf, weighted_f1
from mernlib.models.e2emern import E2EMERN, build_samples, get_default_config
from mernlib.tags import SpannedSentence

NAMES = {
    "D009325": "Naloxone",
    "D003000": "Clonidine",
    "D006973": "Hypertension",
    "D007022": "Hypotension",
    "D014786": "Vision Disorders",
    "D006311": "Hearing Disorders",
}

TRAIN = [
    SpannedSentence(
        "naloxone reverses the effect of clonidine".split(),
        [(0, 1, "Chemical", "D009325"), (5, 6, "Chemical", "D003000")],
    ),
    SpannedSentence(
        "clonidine caused hypotension in rats".split(),
        [(0, 1, "Chemical", "D003000"), (2, 3, "Disease", "D007022")],
    ),
    SpannedSentence(
        "patients showed ocular and auditory toxicity".split(), [(2, 6, "Disease", "D014786|D006311")]
    ),
    SpannedSentence("the rats were treated daily".split(), []),
    SpannedSentence("hypertension was not observed".split(), [(0, 1, "Disease", "D006973")]),
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_encoder()[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_encoder(tokenizer, max_length=32):
    return tiny_random_encoder(tokenizer, num_layers=2, max_length=max_length, max_positions=64)


def tiny_model(tokenizer, **overrides):
    defaults = dict(lr=3e-3, epochs=1, batch_size=8, n_negatives=1, dropout=0.0, seed=1)
    config = get_default_config(**(defaults | overrides))
    return E2EMERN(config, ["Chemical", "Disease"], tiny_encoder(tokenizer), NAMES)


def test_default_config():
    c = get_default_config()
    assert (c.lambda_mid, c.mu_high, c.lr, c.encoder) == (0.125, 0.1, 1e-5, None)
    assert c.use_mid and c.use_high and c.use_gate and c.use_attention
    with pytest.raises(TypeError):
        get_default_config(no_such_option=1)


def test_build_samples():
    samples = build_samples(TRAIN, NAMES, n_negatives=2, rng=random.Random(0))
    by_sentence = {}
    for s in samples:
        by_sentence.setdefault(s.sentence, []).append(s)
    # sentence 0 mentions naloxone and clonidine: 2 positives, 4 negatives, none of them mentioned
    pos = [s for s in by_sentence[0] if s.label == 1]
    neg = [s for s in by_sentence[0] if s.label == 0]
    assert [p.concept for p in pos] == ["D009325", "D003000"]
    assert pos[0].high_tags == [1, 0, 0, 0, 0, 0] and pos[1].high_tags == [0, 0, 0, 0, 0, 1]
    assert len(neg) == 4 and len({n.concept for n in neg}) == 4
    assert not {n.concept for n in neg} & {"D009325", "D003000"}
    assert all(n.high_tags == [0] * 6 for n in neg)
    # composite mention: one positive per ID, each marking the whole mention
    comp = [s for s in by_sentence[2] if s.label == 1]
    assert [c.concept for c in comp] == ["D014786", "D006311"]
    assert all(c.high_tags == [0, 0, 1, 2, 2, 2] for c in comp)
    # no mention: low level only
    assert [(s.concept, s.high_tags) for s in by_sentence[3]] == [(None, None)]
    # the negatives are redrawn with the rng
    again = build_samples(TRAIN, NAMES, 2, random.Random(1))
    assert [s.concept for s in again if s.label == 0] != [s.concept for s in samples if s.label == 0]


def test_attention_and_gate(tokenizer):
    model = tiny_model(tokenizer).eval()
    H, mask = model.encode_sentences([TRAIN[0].words, TRAIN[3].words[:2]])
    h_e = model.encode_entities(["Naloxone", "Clonidine"])
    out = model.pair_heads(H, mask, h_e)
    alpha = out["alpha"]
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2))
    assert (alpha[1, 2:] == 0).all() and (alpha[1, :2] > 0).all()
    G = out["gate"]
    assert G.shape == H.shape and (G > 0).all() and (G < 1).all()
    assert out["high_logits"].shape == (2, H.size(1), 3) and out["mid_logit"].shape == (2,)
    # the paper's linear score cancels h_e in the softmax; the additive form does not
    other = model.pair_heads(H, mask, h_e.flip(0))["alpha"]
    torch.testing.assert_close(other, alpha)
    additive = tiny_model(tokenizer, attention_score="additive").eval()
    a1 = additive.pair_heads(H, mask, h_e)["alpha"]
    a2 = additive.pair_heads(H, mask, h_e.flip(0))["alpha"]
    assert not torch.allclose(a1, a2)
    torch.testing.assert_close(a1.sum(-1), torch.ones(2))


def test_names_are_encoded_in_groups_of_similar_length(tokenizer):
    """encode_names pads each group of names only to its own longest: the vectors are those of one padded
    batch, in the order asked, and the gradient reaches the encoder through every group."""
    model = tiny_model(tokenizer).eval()
    names = [
        "Naloxone",
        "acute renal failure after cardiac surgery in adults",
        "Clonidine",
        "pain",
        "Hypotension",
    ]
    one_batch = model.encode_names(names, max_pieces=10**6)
    grouped = model.encode_names(names, max_pieces=12)  # a group per name or two
    torch.testing.assert_close(grouped, one_batch, rtol=1e-5, atol=1e-5)
    grouped.sum().backward()
    assert model.encoder.transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_ablation_switches(tokenizer):
    model = tiny_model(tokenizer, use_gate=False, use_attention=False).eval()
    H, mask = model.encode_sentences([TRAIN[0].words, TRAIN[3].words[:2]])
    out = model.pair_heads(H, mask, model.encode_entities(["Naloxone", "Clonidine"]))
    assert out["gate"] is None
    torch.testing.assert_close(out["alpha"][1, :2], torch.full((2,), 0.5))  # mean pooling
    losses = model.batch_loss(TRAIN[:2], build_samples(TRAIN[:2], NAMES, 1, random.Random(0)))
    assert {"low", "mid", "high", "total"} <= set(losses)
    low_only = tiny_model(tokenizer, use_mid=False, use_high=False)
    parts = low_only.batch_loss(TRAIN[:2], build_samples(TRAIN[:2], NAMES, 1, random.Random(0)))
    assert "mid" not in parts and "high" not in parts


def test_overfits_tiny_data_then_annotates_and_round_trips(tokenizer, tmp_path):
    # n_negatives=6 > the base: every sentence sees every non-mentioned concept as a negative each epoch,
    # so "the training labels" are well defined. The additive attention is needed for the mid level to
    # fit them: with the paper's linear form y_m is additive in e and X (see the next test).
    model = tiny_model(
        tokenizer, epochs=120, n_negatives=6, lambda_mid=1.0, mu_high=1.0, attention_score="additive"
    )
    result = train_model(model, TRAIN, progress=False)
    history = result.history
    assert history[-1]["parts"]["total"] < 0.05 * history[0]["parts"]["total"]
    assert history[-1]["loss"]["e2emern"] == pytest.approx(history[-1]["parts"]["total"])
    # low level: the training tags come back
    tags = model.predict_tags([s.words for s in TRAIN])
    assert tags[1] == ["B-Chemical", "O", "B-Disease", "O", "O"]
    assert tags[2] == ["O", "O", "B-Disease", "I-Disease", "I-Disease", "I-Disease"]
    # mid level: the training labels come back (all 30 sentence x concept pairs, paper protocol)
    pairs = [(s.words, c, int(any(c in sp[3].split("|") for sp in s.spans))) for s in TRAIN for c in NAMES]
    scores = paper_protocol(model, pairs)
    assert scores["weighted_f1"] == 1.0 and scores["n_pairs"] == 30
    # end to end: mention found by the low level, concept chosen among candidates by mid x high
    gen = CandidateGenerator.from_entity_base(NAMES)
    result = model.annotate([TRAIN[1].words], gen, k=6)
    (found,) = result
    assert [(m.start, m.end, m.type) for m in found] == [(0, 1, "Chemical"), (2, 3, "Disease")]
    assert found[1].concept == "D007022"
    assert len(found[1].candidates) == 6 and 0 <= found[1].score <= 1
    # save / load: identical predictions
    model.save(tmp_path / "m")
    loaded = E2EMERN.load(tmp_path / "m")
    assert loaded.predict_tags([s.words for s in TRAIN]) == tags
    again = loaded.annotate([TRAIN[1].words], gen, k=6)
    assert [(m.concept, round(m.score, 5)) for m in again[0]] == [
        (m.concept, round(m.score, 5)) for m in found
    ]
    torch.testing.assert_close(
        loaded.score_pairs([TRAIN[0].words], ["D009325"])["mid"],
        model.score_pairs([TRAIN[0].words], ["D009325"])["mid"],
    )


def test_low_crf_trains_decodes_valid_bio_and_round_trips(tokenizer, tmp_path):
    model = tiny_model(tokenizer, epochs=60, low_crf=True, use_mid=False, use_high=False)
    # the CRF's loss is per word, on the softmax's scale: at init both are near log(5 tags)
    first = model.batch_loss(TRAIN, [])["low"]
    assert 0.5 * math.log(5) < first < 3 * math.log(5)
    train_model(model, TRAIN, progress=False)
    tags = model.predict_tags([s.words for s in TRAIN] + [[]])
    assert tags[1] == ["B-Chemical", "O", "B-Disease", "O", "O"]
    assert tags[2] == ["O", "O", "B-Disease", "I-Disease", "I-Disease", "I-Disease"]
    assert tags[-1] == []  # an empty sentence stays empty
    # decoding is constrained: from an untrained model too, never I-X after O or after another type
    fresh = tiny_model(tokenizer, low_crf=True)
    for row in fresh.predict_tags([s.words for s in TRAIN]):
        for before, tag in zip(["O", *row[:-1]], row, strict=True):
            if tag.startswith("I-"):
                assert before in ("B-" + tag[2:], tag), row
    model.save(tmp_path / "m")
    assert E2EMERN.load(tmp_path / "m").predict_tags([s.words for s in TRAIN]) == tags[:-1]


def test_training_goes_through_the_kit_trainer(tokenizer):
    """make_batches redraws negatives per epoch (seeded by the trainer's generator), keeps every
    sentence exactly once, and loss(batch, task) is what mernlib.train.fit minimises."""
    from mernlib import train
    from mernlib.models.e2emern import TASK

    model = tiny_model(tokenizer, batch_size=2, n_negatives=2)
    g = torch.Generator().manual_seed(0)
    first, second = model.make_batches(TRAIN, g), model.make_batches(TRAIN, g)
    for batches in (first, second):
        seen = sorted(tuple(s.words) for b in batches for s in b.sentences)
        assert seen == sorted(tuple(s.words) for s in TRAIN) and all(len(b) <= 2 for b in batches)
    negatives = [
        lambda bs: sorted(
            (tuple(b.sentences[s.sentence].words), s.concept) for b in bs for s in b.samples if s.label == 0
        )
    ][0]
    assert negatives(first) != negatives(second)
    with pytest.raises(ValueError):
        model.loss(first[0], "ner")
    result = train.fit(model, model.train_data(TRAIN), model.config, epochs=2, progress=False)
    assert [h["steps"][TASK] for h in result.history] == [3, 3]
    # selection: the paper's rule (lowest training loss) and dev selection
    res = train_model(model, TRAIN, epochs=3, selection="train-loss", progress=False)
    best = min(range(3), key=lambda e: res.history[e]["parts"]["total"])
    assert res.best_epoch == best + 1
    assert res.history[best]["loss"]["e2emern"] == pytest.approx(res.history[best]["parts"]["total"])
    calls = []
    res = train_model(
        model, TRAIN, epochs=2, dev_eval_fn=lambda m: calls.append(1) or -len(calls), progress=False
    )
    assert res.best_epoch == 1 and len(calls) == 2
    with pytest.raises(ValueError):
        train.fit(model, model.train_data(TRAIN), model.config, epochs=1, selection="dev")


def test_paper_attention_makes_mid_level_additive(tokenizer):
    """With alpha independent of e, logit(X, e) = f(e) + g(X): the mid level alone cannot say which
    entity goes with which sentence (it can only rank entities and sentences). An exchange check shows it."""
    model = tiny_model(tokenizer).eval()
    sentences = [TRAIN[0].words, TRAIN[1].words]
    with torch.no_grad():
        H, mask = model.encode_sentences(sentences)
        h = model.encode_entities(["Naloxone", "Hypotension"])
        same = model.pair_heads(H, mask, h)["mid_logit"]  # (X1, e1), (X2, e2)
        swapped = model.pair_heads(H, mask, h.flip(0))["mid_logit"]  # (X1, e2), (X2, e1)
    torch.testing.assert_close(same.sum(), swapped.sum())


def test_annotate_with_callable_candidates(tokenizer):
    model = tiny_model(tokenizer).eval()
    out = model.annotate([TRAIN[1].words, []], lambda text: ["D007022|D006973", ("D999999", 0.5)], k=5)
    assert len(out) == 2 and out[1] == []
    for m in out[0]:
        assert {c for c, _ in m.candidates} == {"D007022", "D006973"}  # split, unknown ID skipped
        assert m.concept == m.candidates[0][0]


def test_weighted_f1_by_hand():
    y_true = [1, 1, 1, 0, 0, 0, 0, 0]
    y_pred = [1, 1, 0, 0, 0, 0, 1, 1]
    # class 1: p = 2/4, r = 2/3, f1 = 4/7 ; class 0: p = 3/4, r = 3/5, f1 = 2/3
    expected = (3 * 4 / 7 + 5 * 2 / 3) / 8
    assert weighted_f1(y_true, y_pred) == pytest.approx(expected)
    prf = binary_prf(y_true, y_pred)
    assert prf[1]["support"] == 3 and prf["accuracy"] == pytest.approx(5 / 8)
    assert weighted_f1([0, 0], [1, 1]) == 0.0
    assert weighted_f1([1, 1], [1, 1]) == 1.0
    sklearn = pytest.importorskip("sklearn.metrics")
    for yt, yp in [(y_true, y_pred), ([0, 0, 1], [0, 0, 0]), ([1, 0, 1, 1], [1, 1, 1, 0])]:
        assert weighted_f1(yt, yp) == pytest.approx(
            sklearn.f1_score(yt, yp, average="weighted", zero_division=0)
        )


def test_paper_protocol_pairs_and_scores():
    pairs = paper_protocol_pairs(TRAIN, NAMES, n_negatives=1, seed=0)
    positives = [(tuple(w), c) for w, c, y in pairs if y == 1]
    assert (
        len(positives) == 7 and len(pairs) == 14
    )  # 2 + 2 + 2 (composite) + 0 + 1 gold IDs, one negative each
    assert (tuple(TRAIN[2].words), "D006311") in positives

    class Oracle:  # a stand-in model that knows the answers: weighted F1 must be 1
        config = get_default_config()

        def score_pairs(self, words, concepts):
            gold = {(tuple(w), c) for w, c, y in pairs if y == 1}
            return {
                "mid": torch.tensor(
                    [float((tuple(w), c) in gold) for w, c in zip(words, concepts, strict=True)]
                )
            }

    assert paper_protocol(Oracle(), pairs)["weighted_f1"] == 1.0


@pytest.mark.parametrize("max_length", [24])
def test_real_minilm_step_and_annotate(max_length):
    """One training step and an annotation with the real default encoder (windowed: max_length 24)."""
    torch.manual_seed(0)
    model = E2EMERN(
        get_default_config(max_length=max_length, epochs=1, batch_size=4), ["Chemical", "Disease"]
    )
    long_sentence = SpannedSentence(TRAIN[0].words * 4, [(0, 1, "Chemical", "D009325")])
    model.entity_names.update(NAMES)
    result = train_model(model, TRAIN[:2] + [long_sentence], progress=False)
    assert result.history[0]["loss"]["e2emern"] > 0
    out = model.annotate([long_sentence.words], CandidateGenerator.from_entity_base(NAMES), k=3)
    assert len(out) == 1
    tags = model.predict_tags([long_sentence.words])
    assert len(tags[0]) == len(long_sentence.words)


def test_sentences_from_documents():
    from mernlib.corpus import Document, Mention
    from mernlib.tags import spanned_sentences as sentences_from_documents

    text = "Clonidine caused hypotension."
    doc = Document(
        "1",
        text,
        "",
        [
            Mention(0, 9, "Clonidine", "Chemical", "D003000"),
            Mention(17, 28, "hypotension", "Disease", "D007022"),
        ],
    )
    (s,) = sentences_from_documents([doc])
    assert s.words[:3] == ["Clonidine", "caused", "hypotension"]
    assert s.spans == [(0, 1, "Chemical", "D003000"), (2, 3, "Disease", "D007022")]
