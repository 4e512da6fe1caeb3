"""The CRF against brute-force enumeration of all L^T tag sequences on tiny inputs."""

import itertools

import pytest
import torch

from mernlib.models.crf import CRF


def _brute_force(crf: CRF, emissions: torch.Tensor, length: int):
    """log Z and the best path of one sentence, by scoring every tag sequence explicitly."""
    L = emissions.shape[1]
    scores = {}
    for path in itertools.product(range(L), repeat=length):
        s = crf.start[path[0]] + crf.end[path[-1]]
        s = s + sum(emissions[t, y] for t, y in enumerate(path))
        s = s + sum(crf.transitions[a, b] for a, b in zip(path, path[1:], strict=False))
        scores[path] = s
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    best = max(scores, key=lambda p: scores[p].item())
    return log_z, list(best), scores


def _setup(seed=0, L=3, lengths=(4, 2, 1, 3)):
    torch.manual_seed(seed)
    crf = CRF(L)
    with torch.no_grad():  # larger than the init range, so paths differ clearly
        crf.transitions.normal_(0, 1.0)
        crf.start.normal_(0, 1.0)
        crf.end.normal_(0, 1.0)
    B, T = len(lengths), max(lengths)
    emissions = torch.randn(B, T, L) * 2
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return crf, emissions, mask, lengths


@pytest.mark.parametrize("impl", ["logsumexp", "matmul"])
def test_partition_and_likelihood_match_brute_force(impl):
    crf, emissions, mask, lengths = _setup()
    crf.impl = impl
    log_z = crf.log_partition(emissions, mask)
    tags = torch.randint(0, 3, mask.shape)
    nll = crf.neg_log_likelihood(emissions, tags, mask, reduction="none")
    for b, n in enumerate(lengths):
        ref_z, _, scores = _brute_force(crf, emissions[b, :n], n)
        assert torch.allclose(log_z[b], ref_z, atol=1e-5)
        gold = tuple(tags[b, :n].tolist())
        assert torch.allclose(nll[b], ref_z - scores[gold], atol=1e-5)
    # probabilities of all sequences sum to one: exp(-nll) summed over every path of sentence 1
    n = lengths[1]
    total = 0.0
    for path in itertools.product(range(3), repeat=n):
        t = torch.zeros_like(tags[1:2])
        t[0, :n] = torch.tensor(path)
        total += torch.exp(-crf.neg_log_likelihood(emissions[1:2], t, mask[1:2], reduction="sum")).item()
    assert abs(total - 1.0) < 1e-4


@pytest.mark.parametrize("lengths", [(6, 3, 5, 1), (1, 1)])
def test_matmul_and_logsumexp_agree_including_gradients(lengths):
    """The matmul path has a hand-written backward (forward-backward); autograd checks it."""
    crf, emissions, mask, _ = _setup(seed=1, L=5, lengths=lengths)
    emissions.requires_grad_(True)
    weights = torch.rand(len(lengths))  # a non-uniform upstream gradient
    results = []
    for impl in ("logsumexp", "matmul"):
        crf.impl = impl
        emissions.grad = None
        crf.zero_grad()
        z = crf.log_partition(emissions, mask)
        (z * weights).sum().backward()
        results.append(
            [z.detach(), emissions.grad.clone()]
            + [
                torch.zeros_like(p) if p.grad is None else p.grad.clone()
                for p in (crf.transitions, crf.start, crf.end)
            ]
        )
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a, b)


def test_viterbi_matches_brute_force_with_variable_lengths():
    crf, emissions, mask, lengths = _setup(seed=2, L=4, lengths=(5, 1, 3, 4))
    paths = crf.decode(emissions, mask)
    assert [len(p) for p in paths] == list(lengths)
    for b, n in enumerate(lengths):
        _, best, _ = _brute_force(crf, emissions[b, :n], n)
        assert paths[b] == best
    # pruning to every tag is exact; pruning to the top-k keeps the right answer when the best path
    # only uses top-k tags, and always returns well-formed paths
    assert crf.decode(emissions, mask, top_k=4) == paths
    pruned = crf.decode(emissions, mask, top_k=2)
    assert [len(p) for p in pruned] == list(lengths)
    top2 = emissions.topk(2, dim=2).indices
    for b, n in enumerate(lengths):
        if all(paths[b][t] in top2[b, t].tolist() for t in range(n)):
            assert pruned[b] == paths[b]


def test_padding_does_not_change_results():
    crf, emissions, mask, lengths = _setup(seed=3, L=3, lengths=(3, 2))
    alone = crf.log_partition(emissions[1:2, :2], mask[1:2, :2])
    batched = crf.log_partition(emissions, mask)[1]
    assert torch.allclose(alone[0], batched, atol=1e-6)
    assert crf.decode(emissions[1:2, :2], mask[1:2, :2])[0] == crf.decode(emissions, mask)[1]


def test_bad_mask_is_rejected():
    crf = CRF(3)
    with pytest.raises(ValueError):
        crf.log_partition(torch.zeros(1, 2, 3), torch.tensor([[False, True]]))
