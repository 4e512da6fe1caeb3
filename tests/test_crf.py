"""The CRFs against brute-force enumeration of all L^T tag sequences on tiny inputs, BIO constraints
included; the factorised CRF's hand-written gradient against autograd through a dense version."""

import itertools

import pytest
import torch

from mernlib.models.crf import CRF, FactorisedCRF, bio_constraints, parse_bio


def _enumerate(crf, emissions: torch.Tensor, length: int):
    """Scores of every tag sequence of one sentence (``[L^n]``, -inf if forbidden) and the sequences."""
    L = emissions.shape[1]
    paths = torch.tensor(list(itertools.product(range(L), repeat=length)))  # [L^n, n]
    A, start, end = crf.transition_matrix(), crf.start_scores(), crf.end_scores()
    s = start[paths[:, 0]] + end[paths[:, -1]] + emissions[torch.arange(length), paths].sum(1)
    if length > 1:
        s = s + A[paths[:, :-1], paths[:, 1:]].sum(1)
    return s, paths


def _brute_force(crf, emissions: torch.Tensor, length: int):
    """log Z, the best path and a {path: score} function of one sentence, by scoring every sequence."""
    scores, paths = _enumerate(crf, emissions, length)
    best = paths[scores.argmax()].tolist()
    index = {tuple(p): i for i, p in enumerate(paths.tolist())}
    return torch.logsumexp(scores, 0), best, lambda path: scores[index[tuple(path)]]


def _random_(crf, scale=1.0):
    with torch.no_grad():  # larger than the init range, so paths differ clearly
        for p in crf.parameters():
            p.normal_(0, scale)
    return crf


def _setup(seed=0, L=3, lengths=(4, 2, 1, 3)):
    torch.manual_seed(seed)
    crf = _random_(CRF(L))
    B, T = len(lengths), max(lengths)
    emissions = torch.randn(B, T, L) * 2
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return crf, emissions, mask, lengths


# Tag sets for the constrained CRFs: composite concepts (| and +), NIL (-1), a B- tag without I- (a
# one-token concept), tags not in class order (O, B-, I-), and a set without any I- tag.
TAG_SETS = {
    "class-order": ["O", "B-D1", "B-D2|D3", "B--1", "I-D1", "I-D2|D3", "I--1"],
    "shuffled": ["I-C1+D2", "B-X", "O", "B-C1+D2", "I-X", "B-Y"],
    "no-inside": ["O", "B-X", "B-Y"],
}
KINDS = ["full-logsumexp", "full-matmul", "factorised"]


def _constrained(kind, tags):
    if kind == "factorised":
        return FactorisedCRF(tags)
    return CRF(len(tags), impl=kind.split("-")[1], constraints=bio_constraints(tags))


def _allowed_path(crf, length, generator):
    """A random tag sequence the constraints allow (rejection sampling over uniform sequences)."""
    while True:
        path = torch.randint(0, crf.num_tags, (length,), generator=generator)
        if crf.start_allowed()[path[0]] and bool(crf.pair_allowed(path[:-1], path[1:]).all()):
            return path


# -- the dense CRF without constraints (the plain CRF other models use) ----------------------------


@pytest.mark.parametrize("impl", ["logsumexp", "matmul"])
def test_partition_and_likelihood_match_brute_force(impl):
    crf, emissions, mask, lengths = _setup()
    crf.impl = impl
    log_z = crf.log_partition(emissions, mask)
    tags = torch.randint(0, 3, mask.shape)
    nll = crf.neg_log_likelihood(emissions, tags, mask, reduction="none")
    for b, n in enumerate(lengths):
        ref_z, _, score = _brute_force(crf, emissions[b, :n], n)
        assert torch.allclose(log_z[b], ref_z, atol=1e-5)
        assert torch.allclose(nll[b], ref_z - score(tags[b, :n].tolist()), atol=1e-5)
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
    # opt-in pruning to every tag is exact; pruning to the top-k keeps the right answer when the best
    # path only uses top-k tags, and always returns well-formed paths
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


# -- BIO constraints ---------------------------------------------------------------------------------


def test_bio_constraints_from_tag_names():
    tags = ["O", "B-D2|D3", "B--1", "I--1", "I-D2|D3", "B-C1+D2"]
    assert parse_bio(tags)[2:4] == [("B", "-1"), ("I", "-1")]  # NIL: the label is "-1"
    c = bio_constraints(tags)
    allowed = {(tags[i], tags[j]) for i, j in c.transitions.nonzero().tolist()}
    into_inside = {pair for pair in allowed if pair[1].startswith("I-")}
    assert into_inside == {
        ("B--1", "I--1"),
        ("I--1", "I--1"),
        ("B-D2|D3", "I-D2|D3"),
        ("I-D2|D3", "I-D2|D3"),
    }
    assert all((a, b) in allowed for a in tags for b in tags if not b.startswith("I-"))
    assert [t for t, ok in zip(tags, c.start.tolist(), strict=True) if not ok] == ["I--1", "I-D2|D3"]
    assert bool(c.end.all())
    for bad in (["O", "S-X"], ["O", "<pad>"], ["O", "B-X", "I-Y"], ["O", "B-X", "B-X"]):
        with pytest.raises(ValueError):
            bio_constraints(bad)


@pytest.mark.parametrize("tag_set", sorted(TAG_SETS))
def test_factorised_transition_matrix_forbids_exactly_the_bio_violations(tag_set):
    tags = TAG_SETS[tag_set]
    crf = _random_(FactorisedCRF(tags))
    c = bio_constraints(tags)
    A = crf.transition_matrix()
    assert torch.equal(torch.isfinite(A), c.transitions)
    assert torch.equal(torch.isfinite(crf.start_scores()), c.start)
    # the class-level part: every transition into O (or into any B-) from a B- tag has the same score
    kinds = [t[0] for t in tags]
    into_o = {round(A[i, kinds.index("O")].item(), 6) for i, k in enumerate(kinds) if k == "B"}
    assert len(into_o) == 1


def test_for_tags_chooses_the_structure():
    small = CRF.for_tags(["O", "B-Disease", "I-Disease"])
    assert type(small) is CRF and small.constrained
    many = ["O"] + [f"B-D{i}" for i in range(40)] + [f"I-D{i}" for i in range(40)]
    assert isinstance(CRF.for_tags(many), FactorisedCRF)
    assert type(CRF.for_tags(many, structure="full")) is CRF
    assert isinstance(CRF.for_tags(small_tags := ["O", "B-X"], structure="factorised"), FactorisedCRF)
    assert CRF.for_tags(small_tags, structure="factorised").num_tags == 2
    with pytest.raises(ValueError):
        CRF.for_tags(many, structure="sparse")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tag_set", sorted(TAG_SETS))
def test_constrained_crfs_match_brute_force(kind, tag_set):
    """log Z, the gold-path score (NLL) and the Viterbi path of every constrained CRF, by enumeration
    of all L^T sequences (forbidden ones scored -inf), on a padded batch."""
    tags = TAG_SETS[tag_set]
    torch.manual_seed(4)
    crf = _random_(_constrained(kind, tags))
    lengths = (4, 2, 1, 3)
    B, T, L = len(lengths), max(lengths), len(tags)
    emissions = torch.randn(B, T, L) * 2
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    g = torch.Generator().manual_seed(0)
    gold = torch.zeros(B, T, dtype=torch.long)  # padding positions hold 0 (= whatever tag 0 is)
    for b, n in enumerate(lengths):
        gold[b, :n] = _allowed_path(crf, n, g)
    log_z = crf.log_partition(emissions, mask)
    nll = crf.neg_log_likelihood(emissions, gold, mask, reduction="none")
    paths = crf.decode(emissions, mask)
    for b, n in enumerate(lengths):
        ref_z, best, score = _brute_force(crf, emissions[b, :n], n)
        assert torch.allclose(log_z[b], ref_z, atol=1e-5)
        assert torch.allclose(crf.score(emissions, gold, mask)[b], score(gold[b, :n].tolist()), atol=1e-5)
        assert torch.allclose(nll[b], ref_z - score(gold[b, :n].tolist()), atol=1e-5)
        assert paths[b] == best


@pytest.mark.parametrize("tag_set", sorted(TAG_SETS))
@pytest.mark.parametrize("lengths", [(6, 3, 5, 1), (1, 1), (2,)])
def test_factorised_gradients_match_autograd_through_a_dense_crf(tag_set, lengths):
    """The factorised forward algorithm has a hand-written backward; compare it with autograd through
    the textbook dense recursion over ``transition_matrix()`` (same parameters, so same gradients)."""
    tags = TAG_SETS[tag_set]
    torch.manual_seed(5)
    crf = _random_(FactorisedCRF(tags))
    B, T, L = len(lengths), max(lengths), len(tags)
    emissions = (torch.randn(B, T, L) * 2).requires_grad_(True)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    weights = torch.rand(B)

    def dense_log_z():
        A, start, end = crf.transition_matrix(), crf.start_scores(), crf.end_scores()
        alpha = start + emissions[:, 0]
        for t in range(1, T):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + A, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    results = []
    for fn in (dense_log_z, lambda: crf.log_partition(emissions, mask)):
        emissions.grad = None
        crf.zero_grad()
        z = fn()
        (z * weights).sum().backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in crf.parameters()]
        results.append([z.detach(), emissions.grad.clone(), *grads])
    for name, a, b in zip(["log_z", "emissions", *dict(crf.named_parameters())], *results, strict=True):
        assert torch.isfinite(b).all(), name
        assert torch.allclose(a, b, atol=1e-5), (name, a, b)


def test_factorised_equals_the_dense_crf_of_its_matrix_at_men_size():
    """With ~1,200 concept tags (the NCBI MEN size) the factorised CRF gives the same log Z and the same
    Viterbi paths as a dense constrained CRF holding its transition matrix (exact dense Viterbi is
    affordable for a few short sentences)."""
    concepts = [f"D{i:06d}" for i in range(600)]
    tags = ["O"] + [f"B-{c}" for c in concepts] + [f"I-{c}" for c in concepts[:500]]
    torch.manual_seed(6)
    fact = _random_(FactorisedCRF(tags), scale=2.0)
    dense = CRF(len(tags), constraints=bio_constraints(tags))
    with torch.no_grad():
        dense.transitions.copy_(fact.transition_matrix().clamp_min(-1e4))  # forbidden: masked anyway
        dense.start.copy_(fact.start)
        dense.end.copy_(fact.end)
    lengths = (7, 3, 5)
    B, T, L = len(lengths), max(lengths), len(tags)
    emissions = torch.randn(B, T, L) * 3
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    assert torch.allclose(
        fact.log_partition(emissions, mask), dense.log_partition(emissions, mask), atol=1e-4
    )
    assert fact.decode(emissions, mask) == dense.decode(emissions, mask)


@pytest.mark.parametrize("kind", KINDS)
def test_constrained_decoding_never_outputs_an_ill_formed_sequence(kind):
    """Emissions that shout I- everywhere (and an untrained CRF): the output is still valid BIO."""
    tags = TAG_SETS["shuffled"]
    crf = _constrained(kind, tags)
    inside = [i for i, t in enumerate(tags) if t.startswith("I-")]
    emissions = torch.randn(3, 6, len(tags))
    emissions[:, :, inside] += 20.0
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    allowed = bio_constraints(tags)
    for path in crf.decode(emissions, mask):
        assert allowed.start[path[0]]
        assert all(allowed.transitions[a, b] for a, b in itertools.pairwise(path))


@pytest.mark.parametrize("kind", KINDS)
def test_a_gold_path_breaking_the_constraints_is_an_error(kind):
    tags = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    crf = _constrained(kind, tags)
    emissions, mask = torch.randn(2, 3, 5), torch.ones(2, 3, dtype=torch.bool)
    for bad in ([0, 2, 2], [1, 4, 0], [2, 2, 0]):  # O -> I-X, B-X -> I-Y, starts with I-X
        gold = torch.tensor([[1, 2, 0], bad])
        with pytest.raises(ValueError, match="BIO"):
            crf.neg_log_likelihood(emissions, gold, mask)
    mask[1, 1:] = False  # ... but what follows a sentence's end is padding, never checked
    assert torch.isfinite(crf.neg_log_likelihood(emissions, torch.tensor([[1, 2, 0], [1, 4, 0]]), mask))


def test_factorised_padding_and_top_k():
    torch.manual_seed(7)
    crf = _random_(FactorisedCRF(TAG_SETS["class-order"]))
    emissions = torch.randn(2, 5, 7)
    mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    alone = crf.log_partition(emissions[1:2, :2], mask[1:2, :2])
    assert torch.allclose(alone[0], crf.log_partition(emissions, mask)[1], atol=1e-6)
    assert crf.decode(emissions[1:2, :2], mask[1:2, :2])[0] == crf.decode(emissions, mask)[1]
    with pytest.raises(ValueError):
        crf.decode(emissions, mask, top_k=3)  # exact already: nothing to prune


def test_factorised_forward_is_stable_with_large_emissions():
    """The scaled probability-space recursion with emission gaps of hundreds of nats (far beyond
    float32's exp range) still matches the log-space dense CRF of the same matrix, gradients included."""
    tags = TAG_SETS["class-order"]
    torch.manual_seed(8)
    fact = _random_(FactorisedCRF(tags), scale=3.0)
    dense = CRF(len(tags), impl="logsumexp", constraints=bio_constraints(tags))
    with torch.no_grad():
        dense.transitions.copy_(fact.transition_matrix().clamp_min(-1e4))
        dense.start.copy_(fact.start)
        dense.end.copy_(fact.end)
    lengths = (9, 4, 1)
    emissions = (torch.randn(3, 9, len(tags)) * 100).requires_grad_(True)
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]
    grads = []
    for crf in (dense, fact):
        emissions.grad = None
        z = crf.log_partition(emissions, mask)
        z.sum().backward()
        grads.append((z.detach(), emissions.grad.clone()))
    (z_d, g_d), (z_f, g_f) = grads
    assert torch.isfinite(z_f).all() and torch.isfinite(g_f).all()
    assert torch.allclose(z_f, z_d, rtol=1e-6, atol=1e-3)
    assert torch.allclose(g_f, g_d, atol=1e-4)
    assert fact.decode(emissions, mask) == dense.decode(emissions, mask)
