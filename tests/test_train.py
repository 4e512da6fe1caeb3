"""The generic trainer: task sampling, best-epoch selection, history."""

import random

import pytest
import torch
from torch import nn

from mernlib.train import TrainConfig, fit


class Toy(nn.Module):
    """Two linear 'heads' over a shared scalar: loss(batch, task) is all the trainer needs."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Parameter(torch.tensor(1.0))
        self.heads = nn.ParameterDict(
            {"a": nn.Parameter(torch.tensor(0.0)), "b": nn.Parameter(torch.tensor(0.0))}
        )
        self.seen = []

    def loss(self, batch, task):
        self.seen.append((task, batch))
        target = 3.0 if task == "a" else -2.0
        return (self.shared * self.heads[task] - target) ** 2


def test_every_batch_once_per_epoch_and_seeded_task_order():
    orders = []
    for _ in range(2):
        model = Toy()
        res = fit(model, {"a": [0, 1, 2], "b": [10, 11]}, epochs=2, progress=False, lr=0.01)
        assert [h["steps"] for h in res.history] == [{"a": 3, "b": 2}] * 2
        epoch1 = [b for _, b in model.seen[:5]]
        assert sorted(epoch1) == [0, 1, 2, 10, 11]
        assert [b for b in epoch1 if b < 10] == [0, 1, 2]  # each task's batches in order
        orders.append(model.seen)
    assert orders[0] == orders[1]


def test_only_the_sampled_head_moves_even_with_momentum():
    model = Toy()
    fit(model, {"a": [0] * 5}, epochs=1, progress=False, lr=0.01, momentum=0.9)
    assert model.heads["b"].item() == 0.0 and model.heads["a"].item() != 0.0


def test_best_dev_epoch_is_restored_and_history_is_complete():
    model = Toy()
    scores = iter([0.1, 0.9, 0.3, 0.2])
    snapshots = []

    def dev(m):
        snapshots.append(m.heads["a"].item())
        return next(scores)

    res = fit(model, {"a": [0, 1], "b": [0]}, epochs=4, dev_eval_fn=dev, progress=False, lr=0.01)
    assert res.best_epoch == 2 and res.best_score == 0.9
    assert model.heads["a"].item() == snapshots[1]
    assert [h["best"] for h in res.history] == [True, True, False, False]
    assert set(res.history[0]) == {"epoch", "loss", "steps", "dev", "seconds", "best"}


def test_patience_callable_data_and_custom_sampler():
    model = Toy()
    calls = []

    def batches(generator):
        calls.append(torch.randint(0, 1000, (1,), generator=generator).item())
        return [0, 1]

    res = fit(
        model,
        {"a": batches, "b": [5]},
        epochs=10,
        dev_eval_fn=lambda m: 0.0,
        patience=2,
        progress=False,
        task_sampler=lambda left, rng: sorted(left)[0],
    )
    assert len(res.history) == 3 and len(calls) == 3 and len(set(calls)) > 1
    assert [t for t, _ in model.seen[:3]] == ["a", "a", "b"]


def test_config_from_any_object():
    class Cfg:
        lr, epochs, batch_size = 0.5, 3, 99

    cfg = TrainConfig.from_any(Cfg(), momentum=0.0)
    assert (cfg.lr, cfg.epochs, cfg.momentum, cfg.optimizer) == (0.5, 3, 0.0, "sgd")
    assert random.Random(0).random() == random.Random(0).random()


# -- vocabularies and batching (what the models feed the trainer) ----------------------------------


def test_vocab_normalisation_and_roundtrip():
    from mernlib.vocab import PAD, UNK, CharVocab, Vocab

    v = Vocab.build([["IL-2", "il-2", "Gene"], ["gene"]], min_freq=2, lower=True, normalize_digits=True)
    assert v.itos == ["<pad>", "<unk>", "gene", "il-0"] and (PAD, UNK) == (0, 1)
    assert v.encode(["GENE", "IL-7", "other"]) == [2, 3, UNK]
    assert Vocab.from_dict(v.to_dict()).itos == v.itos
    c = CharVocab.build([["Ab"]])
    assert c.encode_word("Abz") == [c.stoi["A"], c.stoi["b"], UNK]


def test_tag_vocab_unseen_tags():
    import pytest

    from mernlib.vocab import TagVocab, UnknownTagError

    tv = TagVocab.build([["B-D1", "I-D1", "O"], ["B-D2|D3", "O"]])
    assert tv.itos[0] == "O" and tv.encode(["B-D2|D3"]) == [tv.stoi["B-D2|D3"]]
    with pytest.raises(UnknownTagError, match="B-D9"):
        tv.encode(["B-D9"])
    assert tv.encode(["B-D9", "B-D1"], train=False) == [0, tv.stoi["B-D1"]]
    assert tv.unseen["B-D9"] == 1


def test_encode_batch_and_buckets():
    from mernlib.vocab import CharVocab, TagVocab, Vocab, encode_batch, length_bucketed_batches

    sents = [["a", "bcd"], ["e"], ["f", "g", "h"]]
    v, c = Vocab.build(sents), CharVocab.build(sents)
    tv = TagVocab.build([["O", "B-X"], ["O"], ["B-X", "I-X", "O"]])
    b = encode_batch(sents, v, c, {"mer": [["O", "B-X"], ["O"], ["B-X", "I-X", "O"]]}, {"mer": tv})
    assert b.words.shape == (3, 3) and b.chars.shape == (3, 3, 3) and b.tags["mer"].shape == (3, 3)
    assert b.mask.tolist() == [[True, True, False], [True, False, False], [True, True, True]]
    assert b.chars[0, 1].tolist() == c.encode_word("bcd") and b.chars[1, 1].tolist() == [0, 0, 0]
    # the flat scatter puts every id where the one-token-at-a-time definition puts it
    sents = [["Ab", "unseen-ü", "x"], ["longestword"], ["q", "r"]]
    tags = [["B-X", "I-X", "O"], ["O"], ["O", "B-X"]]
    b = encode_batch(sents, v, c, {"mer": tags}, {"mer": tv}, train=False, max_word_len=5)
    for i, sent in enumerate(sents):
        assert b.lengths[i] == len(sent) and b.mask[i].sum() == len(sent)
        assert b.words[i, : len(sent)].tolist() == v.encode(sent) and not b.words[i, len(sent) :].any()
        assert b.tags["mer"][i, : len(sent)].tolist() == tv.encode(tags[i])
        for t, tok in enumerate(sent):
            ids = c.encode_word(tok[:5])
            assert b.chars[i, t].tolist() == ids + [0] * (5 - len(ids))
        assert not b.chars[i, len(sent) :].any()
    # a character added to the vocabulary after a word was memoised changes that word's ids
    before = c.encode_word("Az")
    c.add("z")
    assert c.encode_word("Az") == [before[0], c.stoi["z"]] != before

    lengths = [5, 1, 9, 3, 3, 7, 2, 8, 4, 6] * 3
    one = length_bucketed_batches(lengths, 4, shuffle=True, generator=7)
    assert one == length_bucketed_batches(lengths, 4, shuffle=True, generator=7)
    assert sorted(i for batch in one for i in batch) == list(range(30))
    g = torch.Generator().manual_seed(7)
    assert length_bucketed_batches(lengths, 4, True, g) != length_bucketed_batches(lengths, 4, True, g)
    ordered = length_bucketed_batches(lengths, 4, shuffle=False)
    flat = [lengths[i] for batch in ordered for i in batch]
    assert flat == sorted(flat)


def test_linear_schedule_warms_up_then_decays_to_zero():
    from mernlib.train import linear_schedule

    param = nn.Parameter(torch.tensor(1.0))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = linear_schedule(optimizer, total_steps=10, warmup=0.2)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:3] == [0.5, 1.0, 1.0 * 8 / 8]  # two warm-up steps, then the peak
    assert rates[3:] == [pytest.approx((10 - s) / 8) for s in range(3, 10)]
    assert optimizer.param_groups[0]["lr"] == 0.0  # after the last step


def test_fit_with_a_linear_schedule_ends_at_rate_zero_and_keeps_group_ratios():
    model = Toy()
    optimizer = torch.optim.SGD(
        [{"params": [model.shared], "lr": 0.01}, {"params": list(model.heads.values()), "lr": 0.1}]
    )
    starts = []
    fit(
        model,
        {"a": [0, 1, 2], "b": [0]},
        epochs=3,
        progress=False,
        optimizer=optimizer,
        lr_schedule="linear",
        on_epoch_end=lambda m, r: starts.append([g["lr"] for g in optimizer.param_groups]),
    )
    assert [g["lr"] for g in optimizer.param_groups] == [0.0, 0.0]
    assert starts[0][1] == pytest.approx(10 * starts[0][0])  # each group scaled by the same factor
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")
