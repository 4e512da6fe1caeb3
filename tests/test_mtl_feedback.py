"""The multi-task feedback tagger: shapes, the uniform first feedback, the unpacked Bi-LSTM against the
packed one, the CRF heads, overfitting, save/load, seeds."""

import pytest
import torch
from torch import nn

from mernlib.models import BiLSTMEncoder, Feedback, MultiTaskTagger, get_default_config
from mernlib.models.crf import CRF, FactorisedCRF
from mernlib.train import fit

SENTENCES = [
    ["Ataxia", "telangiectasia", "is", "a", "recessive", "disease", "."],
    ["Patients", "with", "ataxia", "telangiectasia", "develop", "cancer", "."],
    ["Hereditary", "breast", "cancer", "is", "common", "."],
    ["Ocular", "and", "auditory", "toxicity", "was", "seen", "."],
    ["No", "disease", "here", "."],
    ["Breast", "cancer", "and", "ataxia", "."],
]
MER = [
    ["B-Disease", "I-Disease", "O", "O", "O", "O", "O"],
    ["O", "O", "B-Disease", "I-Disease", "O", "B-Disease", "O"],
    ["O", "B-Disease", "I-Disease", "O", "O", "O"],
    ["B-Disease", "I-Disease", "I-Disease", "I-Disease", "O", "O", "O"],
    ["O", "O", "O", "O"],
    ["B-Disease", "I-Disease", "O", "B-Disease", "O"],
]
MEN = [
    ["B-D001260", "I-D001260", "O", "O", "O", "O", "O"],
    ["O", "O", "B-D001260", "I-D001260", "O", "B-D009369", "O"],
    ["O", "B-D001943", "I-D001943", "O", "O", "O"],
    ["B-D014786|D006311", "I-D014786|D006311", "I-D014786|D006311", "I-D014786|D006311", "O", "O", "O"],
    ["O", "O", "O", "O"],
    ["B-D001943", "I-D001943", "O", "B-D001259", "O"],
]
TAGS = {"mer": MER, "men": MEN}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a shared CPU does not thrash OpenMP workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = dict(word_dim=16, char_dim=8, char_filters=8, hidden_size=16, num_layers=1, batch_size=3)


def _model(**kw):
    return MultiTaskTagger.build(get_default_config(**{**SMALL, **kw}), SENTENCES, TAGS)


def _accuracy(model):
    pred = model.predict_tags(SENTENCES)
    scores = {}
    for task, gold in TAGS.items():
        if task in pred:
            pairs = [
                (p, g) for ps, gs in zip(pred[task], gold, strict=True) for p, g in zip(ps, gs, strict=True)
            ]
            scores[task] = sum(p == g for p, g in pairs) / len(pairs)
    return scores


def test_config_names_and_feedback_direction():
    cfg = get_default_config()
    assert cfg.name == "MTL-MEN&MER_feedback + Bi-LSTM-CNNs-CRF"
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.epochs, cfg.num_layers, cfg.dropout, cfg.char_dim) == (
        "sgd",
        0.001,
        0.9,
        20,
        3,
        0.5,
        30,
    )
    men_fb = get_default_config(feedback="men")  # MTL-MEN_feedback: MEN's output is fed to MER
    assert men_fb.receives_feedback("mer") and not men_fb.receives_feedback("men")
    assert (
        get_default_config(tasks=("men",), feedback="none", decoder="softmax", use_chars=False).name
        == "Bi-LSTM (MEN only)"
    )
    with pytest.raises(ValueError):
        get_default_config(tasks=("mer",))  # feedback needs both tasks


def test_feedback_shapes_and_uniform_first_feedback():
    fb = Feedback(dim=6, num_other_tags=4)
    v = torch.randn(2, 5, 6)
    y0 = fb.uniform(v)
    assert y0.shape == (2, 5, 4) and torch.allclose(y0, torch.full_like(y0, 0.25))
    out = fb(v, torch.randn(2, 5, 4))
    assert out.shape == (2, 5, 12)
    assert torch.equal(out[..., :6], v)  # v ∘ (v + yU): first half is v itself
    assert torch.equal(out[..., 6:], v)  # U starts at zero
    with torch.no_grad():
        fb.U.normal_()
    assert torch.allclose(fb(v, None), fb(v, y0), atol=1e-6)  # the uniform shortcut is exact
    # the heads' emissions are computed as v (W1 + W2)^T + y (U W2^T) + b: the same as W applied to v_task
    head = torch.nn.Linear(12, 9)
    y = torch.rand(2, 5, 4)
    for y_other, explicit in ((y, fb(v, y)), (None, fb(v, y0))):
        assert torch.allclose(fb.emissions(v, y_other, head), head(explicit), atol=1e-5)
        # given the shared product (as forward passes it to every round), the very same numbers
        assert torch.equal(fb.emissions(v, y_other, head, fb.shared(v, head)), fb.emissions(v, y_other, head))

    model = _model()
    batch = model.make_batch(SENTENCES[:3], {t: s[:3] for t, s in TAGS.items()})
    em, used = model(batch, return_feedback=True)
    n_mer, n_men = len(model.tag_vocabs["mer"]), len(model.tag_vocabs["men"])
    assert em["mer"].shape == (3, 7, n_mer) and em["men"].shape == (3, 7, n_men)
    # round 0 reads the uniform 1/|L_other|; round 1 reads the other head's probabilities (the default)
    assert torch.allclose(used[("mer", 0)], torch.full((3, 7, n_men), 1 / n_men))
    assert torch.allclose(used[("men", 0)], torch.full((3, 7, n_mer), 1 / n_mer))
    assert torch.allclose(used[("mer", 1)].sum(-1), torch.ones(3, 7), atol=1e-5)
    assert not torch.allclose(used[("mer", 1)], used[("mer", 0)])  # round 1 is token-specific
    # one-directional feedback needs no uniform round
    _, used = _model(feedback="men")(batch, return_feedback=True)
    assert list(used) == [("mer", 1)]


@pytest.mark.parametrize("num_layers", [1, 3])
def test_unpacked_encoder_equals_the_packed_bidirectional_lstm(num_layers):
    """Same weights, same numbers: the per-direction LSTMs over the padded batch (each sentence reversed
    within its length for the backward direction) against nn.LSTM(bidirectional=True) over packed
    sequences, outputs and gradients, with garbage in the padding that must not leak."""
    torch.manual_seed(0)
    encoder = BiLSTMEncoder(7, hidden_size=5, num_layers=num_layers, dropout=0.0)
    packed_lstm = nn.LSTM(7, 5, num_layers=num_layers, bidirectional=True, batch_first=True)
    encoder.load_bidirectional_lstm_(packed_lstm)
    lengths = torch.tensor([6, 2, 5, 1, 6])
    mask = torch.arange(6)[None, :] < lengths[:, None]
    x = torch.randn(5, 6, 7)
    x[~mask] = 100.0  # padding content must not reach any real token
    x.requires_grad_(True)
    upstream = torch.randn(5, 6, 10)

    def packed(x):
        seq = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = packed_lstm(seq)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=6)[0]

    results = []
    for module, fn in ((packed_lstm, packed), (encoder, lambda x: encoder(x, mask))):
        x.grad = None
        out = fn(x)
        (out * upstream).sum().backward()
        results.append(
            (out.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in module.named_parameters()})
        )
        module.zero_grad()
    (out_p, gx_p, gw_p), (out_u, gx_u, gw_u) = results
    assert torch.allclose(out_u, out_p, atol=1e-6)
    assert torch.all(out_u[~mask] == 0)
    assert torch.allclose(gx_u[mask], gx_p[mask], atol=1e-6)
    for name, grad in gw_p.items():  # e.g. weight_hh_l1_reverse -> backward_lstms.1.weight_hh_l0
        kind, layer = name.split("_l")
        direction = "backward" if layer.endswith("_reverse") else "forward"
        ours = gw_u[f"{direction}_lstms.{layer.removesuffix('_reverse')}.{kind}_l0"]
        assert torch.allclose(ours, grad, atol=1e-5), name


def test_crf_heads_are_bio_constrained_and_choose_their_structure():
    model = _model()
    assert type(model.heads["mer"].crf) is CRF and model.heads["mer"].crf.constrained
    assert type(model.heads["men"].crf) is CRF  # 9 MEN tags here: at most 64 -> dense
    assert model.config.crf_top_k is None
    fact = _model(crf_structure="factorised")
    assert all(isinstance(h.crf, FactorisedCRF) for h in fact.heads.values())
    assert not _model(crf_constraints=False).heads["men"].crf.constrained
    with pytest.raises(ValueError):
        _model(crf_structure="factorised", crf_top_k=4)  # nothing to prune
    with pytest.raises(ValueError):
        get_default_config(crf_structure="factorised", crf_constraints=False)
    with pytest.raises(ValueError):
        get_default_config(crf_structure="sparse")


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(crf_structure="factorised"),
        dict(tasks=("mer",), feedback="none", decoder="softmax", use_chars=False),
    ],
)
def test_overfits_a_handful_of_sentences(kw):
    model = _model(dropout=0.0, **kw)
    data = {t: model.make_batches(SENTENCES, TAGS) for t in model.config.tasks}
    fit(model, data, model.config, optimizer="adam", lr=0.02, epochs=60, progress=False)
    assert all(acc == 1.0 for acc in _accuracy(model).values()), _accuracy(model)


@pytest.mark.parametrize("structure", ["auto", "factorised"])
def test_save_load_gives_identical_predictions(tmp_path, structure):
    model = _model(feedback="mer", crf_structure=structure)
    fit(
        model,
        {t: model.make_batches(SENTENCES, TAGS) for t in ("mer", "men")},
        model.config,
        optimizer="adam",
        lr=0.01,
        epochs=3,
        progress=False,
    )
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = MultiTaskTagger.load(path)
    assert loaded.config == model.config
    assert loaded.predict_tags(SENTENCES) == model.predict_tags(SENTENCES)
    batch = model.make_batch(SENTENCES, TAGS)
    model.eval()
    for task in ("mer", "men"):
        assert torch.equal(model(batch)[task], loaded(batch)[task])
    # checkpoints of the model before #12 (dense unconstrained CRF, packed LSTM) are refused by name
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "format": "mernlib.mtl_feedback/1"}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="retrain"):
        MultiTaskTagger.load(tmp_path / "old.pt")


def test_same_seed_same_losses_and_predictions():
    runs = []
    for _ in range(2):
        model = _model()
        data = {
            t: (lambda g, m=model: m.make_batches(SENTENCES, TAGS, batch_size=2, shuffle=True, generator=g))
            for t in ("mer", "men")
        }
        res = fit(model, data, model.config, optimizer="sgd", lr=0.05, epochs=2, progress=False)
        runs.append(([h["loss"] for h in res.history], model.predict_tags(SENTENCES)))
    assert runs[0] == runs[1]


def test_predictions_do_not_depend_on_batching():
    """predict_tags groups sentences by length under a token budget; padding must not change any tag."""
    model = _model(crf_structure="factorised")
    fit(
        model,
        {t: model.make_batches(SENTENCES, TAGS) for t in ("mer", "men")},
        model.config,
        optimizer="adam",
        lr=0.01,
        epochs=3,
        progress=False,
    )
    reference = model.predict_tags(SENTENCES, batch_size=1, workers=1)
    assert model.predict_tags(SENTENCES, workers=1) == reference
    assert model.predict_tags(SENTENCES, max_tokens=12, workers=1) == reference
    # batches tagged side by side by worker threads: the same tags, and the thread count and the
    # model's training mode are given back
    threads = torch.get_num_threads()
    model.train()
    assert model.predict_tags(SENTENCES, batch_size=2, workers=3) == reference
    assert torch.get_num_threads() == threads and model.training


def test_char_features_of_each_distinct_word_once_at_inference():
    """In eval mode the char CNN computes each distinct word once per batch (unknown words each on their
    own): the features are exactly those of one computation per token. Training mode, whose dropout
    differs per token, and a lowercasing vocabulary (one id, several spellings) keep one per token."""
    model = _model()
    unseen = [["Ataxia", "ATAXIA", "xq", "xr", "ataxia", "Ataxia"]]  # two unknown words of one id (UNK)
    batch = model.make_batch(SENTENCES + unseen, train=False)
    wr = model.word_repr.eval()
    assert wr.ids_name_spellings
    spelling = wr._spelling(batch.words)
    assert spelling.unique().numel() < batch.words.numel()  # something is shared ...
    assert spelling[-1, 2] != spelling[-1, 3]  # ... but not between two unknown words
    with torch.no_grad():
        shared = wr(batch.words, batch.chars)
        per_token = wr.char_cnn.word_features(batch.chars.flatten(0, 1)).view(*batch.words.shape, -1)
    assert torch.equal(shared[..., -per_token.shape[-1] :], per_token)
    assert not _model(lowercase=True).word_repr.ids_name_spellings


def test_emission_prior_init_sets_each_heads_bias_to_the_log_tag_frequency():
    """``emission_prior_init``: b = log p(tag) with add-one counts; every other parameter is untouched."""
    plain, prior = _model(), _model(emission_prior_init=True)
    for task, gold in TAGS.items():
        vocab = prior.tag_vocabs[task]
        counts = torch.tensor([sum(seq.count(t) for seq in gold) + 1.0 for t in vocab.itos])
        bias = prior.heads[task].linear.bias
        assert torch.allclose(bias, (counts / counts.sum()).log())
        assert bias.argmax() == vocab.stoi["O"]  # the untrained head leans to the commonest tag
        assert not torch.allclose(plain.heads[task].linear.bias, bias)
    differing = [
        name
        for (name, a), (_, b) in zip(plain.named_parameters(), prior.named_parameters(), strict=True)
        if not torch.equal(a, b)
    ]
    assert sorted(differing) == ["heads.men.linear.bias", "heads.mer.linear.bias"]


def test_shared_concept_rows_start_as_the_plain_head_and_share_through_descriptors(tmp_path):
    """``concept_descriptor_dim``: W = W_free + D A. With A = 0 the model is the plain one, weight for
    weight; D holds each concept's unit descriptor in its B or I half (a composite: the mean of its parts;
    no descriptor: a zero row); a gradient step on one concept moves another concept's row through A;
    save/load keeps D."""
    from mernlib.models.mtl_feedback import ConceptSharedLinear

    vectors = {
        "D001260": torch.tensor([1.0, 0.0, 0.0, 0.0]),
        "D009369": torch.tensor([0.0, 2.0, 0.0, 0.0]),
        "D001943": torch.tensor([0.0, 1.0, 1.0, 0.0]),
        "D014786": torch.tensor([0.0, 0.0, 0.0, 3.0]),
        "D006311": torch.tensor([0.0, 0.0, 3.0, 0.0]),
    }  # D001259 has none
    plain = _model(feedback="both")
    shared = MultiTaskTagger.build(
        get_default_config(**SMALL, feedback="both", concept_descriptor_dim=4),
        SENTENCES,
        TAGS,
        concept_descriptors=vectors,
    )
    head = shared.heads["men"].linear
    assert isinstance(head, ConceptSharedLinear) and isinstance(shared.heads["mer"].linear, nn.Linear)
    assert torch.equal(head.weight, plain.heads["men"].linear.weight)  # A = 0: the paper's model
    batch = plain.make_batch(SENTENCES, TAGS)
    plain.eval(), shared.eval()
    assert torch.equal(plain(batch)["men"], shared(batch)["men"])
    itos = shared.tag_vocabs["men"].itos
    row = {t: head.descriptors[i] for i, t in enumerate(itos)}
    assert torch.equal(row["B-D009369"], torch.tensor([0.0, 1.0, 0, 0, 0, 0, 0, 0]))  # unit length, B half
    assert torch.equal(row["I-D001260"], torch.tensor([0.0, 0, 0, 0, 1.0, 0, 0, 0]))  # I half
    composite = torch.tensor([0.0, 0, 1.5, 1.5]) / torch.tensor([0.0, 0, 1.5, 1.5]).norm()
    assert torch.allclose(row["B-D014786|D006311"][:4], composite)
    assert not row["B-D001259"].any() and not row["O"].any()
    with pytest.raises(ValueError, match="concept_descriptors"):
        MultiTaskTagger.build(get_default_config(**SMALL, concept_descriptor_dim=4), SENTENCES, TAGS)
    # one step on a sentence about D001943 moves the row of D009369 (a related descriptor), not only its own
    shared.train()
    before = head.weight.detach().clone()
    optimizer = torch.optim.SGD(shared.parameters(), lr=0.1)
    one = shared.make_batch(SENTENCES[2:3], {t: TAGS[t][2:3] for t in TAGS})
    shared.loss(one, "men").backward()
    assert head.A.grad is not None and head.A.grad.abs().sum() > 0
    optimizer.step()
    b_cancer = itos.index("B-D009369")
    assert not torch.allclose(
        head.weight[b_cancer] - head.free.weight[b_cancer], before[b_cancer] - before[b_cancer]
    )
    path = tmp_path / "shared.pt"
    shared.save(path)
    loaded = MultiTaskTagger.load(path)
    assert torch.equal(loaded.heads["men"].linear.descriptors, head.descriptors)
    shared.eval()
    assert loaded.predict_tags(SENTENCES) == shared.predict_tags(SENTENCES)
