"""``mernlib.train.fit`` past one process: two CPU processes (started with the environment torchrun gives
its workers; gloo on 127.0.0.1) train the MTL tagger on the bundled sample through the experiment's own
``train_row`` and must match one process; the shares of every batch type of the kit add up to the whole
batch; ``reproduce --encoder``.

Run by hand, this file is also the worker torchrun starts: ``torchrun --nproc_per_node 2
tests/test_distributed.py OUT`` writes each rank's history and weights to ``OUT/rank<r>.pt``.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ROW = "mtl-both-feedback"  # both tasks drawn at random, feedback between the heads: the hard case
TINY = dict(
    epochs=3,
    dropout=0.0,  # dropout masks are drawn per rank: only without dropout can the runs agree exactly
    hidden_size=16,
    word_dim=16,
    char_dim=8,
    char_filters=8,
    batch_size=16,
    optimizer="sgd",  # the paper's momentum SGD: a wrong gradient size shows in the weights (Adam hides it)
    lr=0.002,
    momentum=0.9,
    seed=7,
)
"""The quick scale's MTL tagger (1 Bi-LSTM layer), smaller, 3 epochs of momentum SGD, no dropout."""
MAX_SENTENCES = 160  # per split (whole documents): 165 training sentences, 11 batches per task, 66 steps

LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-4
"""Tolerances. Two processes compute each step's loss and gradient as the sum of two half-batches, i.e.
the same float32 sums in another order: one step's gradients agree to ~5e-7 relative. Training carries
such differences along (the char CNN's max-pooling can even switch), so a gentle learning rate is used;
measured over the 66 steps: losses ~1e-6 relative, weights ~6e-6 absolute (|w| ~ 1), dev F1 identical.
The tolerances leave a margin of 15-70x and stay far below a real mistake: gradients averaged instead of
summed (a half-size step) move the epoch losses by ~6e-2 relative and the weights by ~0.8."""


def train_mtl() -> dict:
    """The run both sides make: ``train_row`` (dev selection included) as ``reproduce mtl`` calls it."""
    from mernlib.experiments import mtl

    data = mtl.prepare("sample", max_sentences=MAX_SENTENCES)
    config = mtl.scale_config(ROW, "quick", **TINY)
    trained = mtl.train_row(ROW, data, config, progress=False)
    (model,) = {id(m): m for m in trained.models.values()}.values()
    (history,) = trained.histories.values()
    return {
        "history": [{k: h[k] for k in ("loss", "steps", "dev", "best")} for h in history],
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


# -- two processes against one --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world_size: int, out: Path, timeout: float = 240) -> None:
    """Start this file as ``world_size`` workers with the environment torchrun gives its workers
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` on 127.0.0.1) and wait for all of them;
    a failing worker stops the others (as torchrun does), so nothing waits for the group's timeout.
    Without torchrun's own process the test saves one torch import (seconds on a loaded machine)."""
    base = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size),
        "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo"),  # no network: loopback only
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    started = time.time()
    workers = []
    for rank in range(world_size):
        env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        log = open(out / f"rank{rank}.log", "w")  # closed below
        workers.append(
            (
                subprocess.Popen(
                    [sys.executable, __file__, str(out)],
                    env=env,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )
    try:
        while any(w.poll() is None for w, _ in workers):
            failed = [w for w, _ in workers if w.poll() not in (None, 0)]
            if failed or time.time() - started > timeout:
                break
            time.sleep(0.2)
    finally:
        for w, log in workers:
            if w.poll() is None:
                w.kill()
            w.wait()
            log.close()
    codes = [w.returncode for w, _ in workers]
    if codes != [0] * world_size:
        logs = "\n".join((out / f"rank{r}.log").read_text()[-2000:] for r in range(world_size))
        pytest.fail(f"workers exited with {codes} after {time.time() - started:.0f} s:\n{logs}")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    out = tmp_path_factory.mktemp("ddp")
    launch(2, out)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def one_process(one_torch_thread):
    return train_mtl()


def test_two_processes_match_one(two_processes, one_process):
    rank0, rank1 = two_processes
    one = one_process
    assert [h["steps"] for h in rank0["history"]] == [h["steps"] for h in one["history"]]
    for two_epoch, one_epoch in zip(rank0["history"], one["history"], strict=True):
        for task, loss in one_epoch["loss"].items():
            assert two_epoch["loss"][task] == pytest.approx(loss, rel=LOSS_RTOL), (task, two_epoch, one_epoch)
    assert rank0["state"].keys() == one["state"].keys()
    for name, tensor in one["state"].items():
        torch.testing.assert_close(rank0["state"][name], tensor, atol=WEIGHT_ATOL, rtol=0, msg=name)


def test_ranks_agree_exactly(two_processes):
    """Rank 0 decides (dev, selection) and its weights are broadcast: the ranks end identical."""
    rank0, rank1 = two_processes
    assert rank0["history"] == rank1["history"]
    for name, tensor in rank0["state"].items():
        assert torch.equal(rank1["state"][name], tensor), name


def test_dev_selection_matches_one_process(two_processes, one_process):
    rank0, _ = two_processes
    assert [h["best"] for h in rank0["history"]] == [h["best"] for h in one_process["history"]]
    for two_epoch, one_epoch in zip(rank0["history"], one_process["history"], strict=True):
        assert two_epoch["dev"] == pytest.approx(one_epoch["dev"], abs=1e-3)


# -- shares of a batch (no process group needed) ----------------------------------------------------------


def _tagger(reduction: str):
    from mernlib.experiments import mtl
    from mernlib.models.mtl_feedback import MultiTaskTagger

    data = mtl.prepare("sample", max_sentences=40)
    config = mtl.scale_config(ROW, "quick", **TINY, loss_reduction=reduction)
    words, tags = data.words["train"][:7], {t: data.tags["train"][t][:7] for t in ("mer", "men")}
    return MultiTaskTagger.build(config, words, tags).eval(), words, tags


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_tagger_shares_add_up_to_the_batch(reduction, one_torch_thread):
    from mernlib.distributed import shard

    model, words, tags = _tagger(reduction)
    (batch,) = model.make_batches(words, tags, batch_size=len(words))
    for task in ("mer", "men"):
        whole = model.loss(batch, task)
        parts = [shard(model, batch, r, 3) for r in range(3)]
        assert sorted(i for p, _ in parts for i in p.index) == sorted(batch.index)
        total = sum(w * model.loss(p, task) for p, w in parts)
        torch.testing.assert_close(total, whole, rtol=1e-6, atol=1e-5)
    assert shard(model, batch, 7, 8) == (None, 0.0)  # 7 sentences, 8 ranks: the last has none


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from mernlib.encoders import load_encoder

    return load_encoder()[1]  # the bundled MiniLM's


def test_hst_shares_keep_their_windows(tokenizer, one_torch_thread):
    """HST batches hold transformer windows: a long sentence spans several rows, which a share must
    re-point; the shares' losses add up to the batch's."""
    from mernlib.distributed import shard
    from mernlib.encoders import tiny_random_encoder
    from mernlib.models.hst import HSTTagger, get_default_config

    encoder = tiny_random_encoder(tokenizer, max_length=12, max_positions=64)
    datasets = _hst_datasets()
    config = get_default_config(dropout=0.0, max_length=12, stride=encoder.aligner.stride, seed=3)
    model = HSTTagger(config, datasets[:1], encoder).eval()
    d = datasets[0]
    (batch,) = model.make_batches(d, d.train[:6], batch_size=6)
    assert len(batch.pieces.input_ids) > len(batch)  # some sentence is windowed
    whole = model.loss(batch, d.name)
    parts = [shard(model, batch, r, 2) for r in range(2)]
    torch.testing.assert_close(sum(w * model.loss(p, d.name) for p, w in parts), whole, rtol=1e-5, atol=1e-5)


def _hst_datasets():
    from mernlib.experiments import hst

    return list(hst.load_selection("sample", scale="quick").datasets.values())


def test_e2emern_shares_carry_their_samples():
    from mernlib.distributed import shard
    from mernlib.models.e2emern import E2EBatch, Sample, SpannedSentence

    sentences = [SpannedSentence([f"w{i}"], []) for i in range(5)]
    samples = [Sample(i, f"C{i}", 1, [1]) for i in range(5)] + [Sample(3, "X", 0, [0])]
    batch = E2EBatch(sentences, samples)
    share, weight = shard(None, batch, 1, 2)  # sentences 1 and 3
    assert weight == 2 / 5 and [s.words for s in share.sentences] == [["w1"], ["w3"]]
    assert [(s.sentence, s.concept) for s in share.samples] == [(0, "C1"), (1, "C3"), (1, "X")]


def test_unknown_batches_and_lonely_processes(monkeypatch):
    from torch import nn

    from mernlib.distributed import shard
    from mernlib.train import fit

    with pytest.raises(TypeError, match="shard_batch"):
        shard(nn.Linear(1, 1), [1, 2], 0, 2)

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(1.0))

        def loss(self, batch, task):
            return (self.w - batch) ** 2

    with pytest.raises(ValueError, match="torchrun"):
        fit(Toy(), {"a": [1.0]}, epochs=1, progress=False, distributed=True)
    monkeypatch.setenv("WORLD_SIZE", "2")  # distributed=False: train alone even under torchrun
    assert fit(Toy(), {"a": [1.0]}, epochs=1, progress=False, distributed=False).best_epoch == 1


# -- reproduce --encoder -----------------------------------------------------------------------------------


def test_cli_passes_the_encoder_and_refuses_it_for_mtl(monkeypatch, capsys):
    from mernlib import cli, experiments

    calls = []
    monkeypatch.setattr(experiments, "reproduce", lambda *a, **kw: calls.append((a, kw)) or [])
    for name in ("hst", "e2emern"):
        assert cli.main(["reproduce", name, "--scale", "quick", "--encoder", "/models/biobert-large"]) == 0
        assert calls[-1][0] == (name,) and calls[-1][1]["encoder"] == "/models/biobert-large"
    assert cli.main(["reproduce", "e2emern", "--scale", "quick"]) == 0
    assert "encoder" not in calls[-1][1]  # no option, no override: the experiment's default encoder
    for name in ("mtl", "all", "data"):
        calls.clear()
        assert cli.main(["reproduce", name, "--encoder", "x"]) == 2
        assert not calls and "--encoder" in capsys.readouterr().err


def test_cli_reproduce_hst_with_a_local_encoder(tokenizer, tmp_path, one_torch_thread, capsys):
    """``reproduce hst --encoder <folder>``: the run is trained on that encoder and records its name
    (a tiny random BERT saved as a folder stands for a BioBERT or PubMedBERT checkpoint)."""
    from mernlib import cli
    from mernlib.encoders import tiny_random_encoder

    folder = tmp_path / "tiny-bert"
    encoder = tiny_random_encoder(tokenizer, max_positions=512)  # windows of the default 128 pieces fit
    encoder.transformer.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    argv = ["reproduce", "hst", "--corpus", "sample", "--scale", "quick", "--epochs", "1"]
    argv += ["--only", "multi-task", "--encoder", str(folder), "--results-dir", str(tmp_path)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "hst" / "sample.json").read_text())
    assert [r["encoder"] for r in result["runs"].values()] == ["tiny-bert"]


# -- the worker torchrun starts ----------------------------------------------------------------------------


def _worker(out: str) -> None:
    torch.set_num_threads(1)
    result = train_mtl()
    rank = int(os.environ["RANK"])
    torch.save(result, Path(out) / f"rank{rank}.pt")
    if rank == 0:
        print(json.dumps(result["history"]))


if __name__ == "__main__":
    _worker(sys.argv[1])
