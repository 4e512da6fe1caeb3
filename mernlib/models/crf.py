"""A linear-chain conditional random field (CRF) output layer, with BIO constraints.

Given emission scores :math:`P \\in \\mathbb{R}^{T \\times L}` from the Bi-LSTM (``P[t, j]``: how
much token ``t`` looks like tag ``j``) and transition scores ``A[i, j]`` (tag ``i`` followed by tag
``j``), plus start/end scores, a tag sequence ``y`` scores

.. math::  s(x, y) = \\text{start}_{y_1} + \\sum_{t=1}^{T} P_{t, y_t}
                      + \\sum_{t=2}^{T} A_{y_{t-1}, y_t} + \\text{end}_{y_T}

and the CRF defines :math:`p(y \\mid x) = \\exp s(x, y) / Z(x)` with the partition function
:math:`Z(x) = \\sum_{y'} \\exp s(x, y')` over all :math:`L^T` sequences. Training minimises
:math:`-\\log p(y \\mid x) = \\log Z(x) - s(x, y)`; decoding takes :math:`\\arg\\max_y s(x, y)`.

Both sums over :math:`L^T` sequences are done by dynamic programming, vectorised over the batch
and the tags, looping only over time. Sentences in a batch have different lengths: ``mask[b, t]`` is
True for real tokens, and must be left-aligned (a prefix of True values, at least one per sentence).

**BIO constraints.** With BIO tags not every tag sequence means something: ``I-X`` continues an ``X``
mention, so it may only follow ``B-X`` or ``I-X``, and never start a sentence (``O -> I-X`` and
``B-X -> I-Y`` are impossible). :func:`bio_constraints` reads these rules off the tag names, and a
forbidden transition (or start) scores :math:`-\\infty`. So the forbidden sequences are not in
:math:`Z(x)`, Viterbi never outputs one, and training and decoding use the same model. (Unconstrained,
the CRF must *learn* that ``O -> I-X`` is bad from the absence of examples, and a decoded ``O I-X`` is
read back by conlleval as a new mention.) A gold sequence that breaks the rules raises ``ValueError``:
the data are not BIO (IOB1 starts mentions with ``I-``; train those with ``constraints=None``).

**Two parameterisations of A.** :meth:`CRF.for_tags` picks one from the tag names:

* :class:`CRF` -- the textbook dense ``L x L`` matrix (masked by the constraints if given). Right for
  *type-level* tag sets such as MER's (``O``, ``B-Disease``, ``I-Disease`` on NCBI-disease; 5 tags on
  BC5CDR): every transition is seen many times in training, and a step costs ``B * L^2`` -- nothing.
  ``CRF(num_tags)`` without constraints is the plain CRF other models of the kit use.
* :class:`FactorisedCRF` -- for *concept* tag sets (MEN: 1,230 tags on NCBI-disease). Tags fall in
  three classes, ``O``, ``B`` (any ``B-X``) and ``I`` (any ``I-X``), and

  ================================  ============================================================
  transition                        score ``A[i, j]``
  ================================  ============================================================
  any ``i`` -> ``O`` or ``B-Y``     ``C[class(i), class(j)]``    (a 3 x 2 table of numbers)
  ``B-X`` -> ``I-X``                ``begin_to_inside[X]``       (one number per concept)
  ``I-X`` -> ``I-X``                ``inside_to_inside[X]``      (one number per concept)
  anything else -> ``I-X``          :math:`-\\infty`             (the BIO constraint)
  ================================  ============================================================

  *Why this form.* Expressive where the data speak: of a dense 1,230 x 1,230 matrix (1.5M scores)
  training observes a few thousand entries, and what a tagger needs from transitions is kept -- the
  preference for ``O`` after ``O`` (5.65 after two epochs with the dense CRF, far above any emission
  gap), how mentions start and end (class level), whether concept X tends to run over several tokens
  (per concept). What goes is a preference for concept Y right after concept X (two mentions back to
  back, rare) beyond the class level. Per-tag scores for *entering* tag j (or *leaving* tag i) are not
  lost either: a score added to every transition into j adds the same to every path through j as the
  emission bias of j does (with ``start_j`` adjusted), so the linear layer below already has it.
  *Why it is fast.* The best (or log-sum) over all predecessors of ``O`` or ``B-Y``,
  :math:`\\max_i [\\delta(i) + C_{c(i), c(j)}] = \\max_k [\\max_{i \\in k} \\delta(i) + C_{k, c(j)}]`,
  is one reduction over the L tags per class, *shared by all targets of a class*; the predecessors of
  ``I-X`` are two (``B-X``, ``I-X``: a gather). One step of the forward algorithm or of Viterbi costs
  ``O(B * L)`` instead of ``O(B * L^2)``, and both stay exact (the forward algorithm runs in rescaled
  probability space, where those reductions are plain sums: :class:`_FactorisedForward`; 1,230 tags, a
  batch of 32 sentences of 25 tokens: ~50 ms for log Z and its gradient on one CPU core, against ~400 ms
  for the dense matmul form). :meth:`FactorisedCRF.transition_matrix`
  writes the factorised A out as a dense matrix, i.e. it *is* an ordinary constrained CRF, and that is
  how the tests compare it with brute-force enumeration.

``CRF.for_tags(tag_names)`` (``structure="auto"``) chooses the dense CRF up to 64 tags and the
factorised one above (MER vs MEN in practice); ``structure="full"`` / ``"factorised"`` force one.

**The dense CRF with many tags** (``CRF(1230)``, no constraints): one forward step costs
``B * L^2``. The textbook step ``logsumexp(alpha[:, :, None] + A, dim=1)`` materialises a ``[B, L, L]``
tensor, so for large ``L`` we rewrite it as a matrix product (``impl="matmul"``)::

    log sum_i exp(alpha_i + A_ij) = m + c_j + log sum_i exp(alpha_i - m) * exp(A_ij - c_j)

with ``m = max_i alpha_i`` (per sentence) and ``c_j = max_i A_ij`` (per column), which is a
``[B, L] @ [L, L]`` BLAS call and needs no ``[B, L, L]`` buffer. Viterbi has no such trick (max does
not distribute over a product): exact dense Viterbi over 1,230 tags costs minutes for a dev set, and
:meth:`CRF.decode` offers ``top_k`` -- each position only considers its ``top_k`` tags by emission
score. That is an **approximation, off by default**: it ignores the transitions when pruning, and with
a CRF whose preference for ``O`` lives in the transitions it dropped the right path at a third of the
tokens inside mentions (issue #12). Use the factorised CRF instead; ``top_k`` stays as an opt-in for
the dense CRF only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

_TINY = 1e-30  # clamp for log() in the matmul forward step; never reached unless every path underflows
_TINY64 = 1e-300  # the same for the factorised CRF's float64 recursion
_NEG_INF = float("-inf")
AUTO_FACTORISE_ABOVE = 64  # CRF.for_tags(structure="auto"): dense up to this many tags, factorised above


# --------------------------------------------------------------------------------------------------
# BIO constraints from tag names


def parse_bio(tag_names: Sequence[str], outside: str = "O") -> list[tuple[str, str]]:
    """``["O", "B-D001", "I-D001"]`` -> ``[("O", ""), ("B", "D001"), ("I", "D001")]``.

    The label is everything after the first ``-``, so composite concepts (``B-D014786|D006311``,
    ``B-C538273+D001168``) and NIL (``B--1``: label ``-1``) are labels like any other. Raises
    ``ValueError`` for a name that is neither ``outside`` nor ``B-``/``I-`` + a label (e.g. IOBES
    ``S-X`` or a padding entry), for duplicates, and for an ``I-X`` without its ``B-X``.
    """
    parsed = []
    for name in tag_names:
        if name == outside:
            parsed.append(("O", ""))
        elif len(name) > 2 and name[:2] in ("B-", "I-"):
            parsed.append((name[0], name[2:]))
        else:
            raise ValueError(f"tag {name!r} is not BIO (expected {outside!r}, 'B-<label>' or 'I-<label>')")
    if len(set(tag_names)) != len(tag_names):
        raise ValueError("duplicate tag names")
    begins = {label for kind, label in parsed if kind == "B"}
    orphans = [f"I-{label}" for kind, label in parsed if kind == "I" and label not in begins]
    if orphans:
        raise ValueError(f"{orphans[:3]}: an I- tag without its B- tag can never be reached under BIO")
    return parsed


class Constraints(NamedTuple):
    """Which transitions, starts and ends are allowed (boolean masks)."""

    transitions: torch.Tensor  # [L, L]: tag i may be followed by tag j
    start: torch.Tensor  # [L]: tag j may start a sentence
    end: torch.Tensor  # [L]: tag j may end a sentence


def bio_constraints(tag_names: Sequence[str], outside: str = "O") -> Constraints:
    """The BIO rules as masks: ``I-X`` only after ``B-X`` or ``I-X``, never first; all else allowed.

    ``tag_names`` in tag-id order, e.g. ``TagVocab.itos`` (``O`` first; TagVocab has no padding or
    special entries -- padded positions are masked, never scored).
    """
    parsed = parse_bio(tag_names, outside)
    L = len(parsed)
    trans = torch.ones(L, L, dtype=torch.bool)
    start = torch.ones(L, dtype=torch.bool)
    for j, (kind, label) in enumerate(parsed):
        if kind == "I":
            start[j] = False
            trans[:, j] = False
            for i, (k, lab) in enumerate(parsed):
                if lab == label and k in ("B", "I"):
                    trans[i, j] = True
    return Constraints(trans, start, torch.ones(L, dtype=torch.bool))


# --------------------------------------------------------------------------------------------------
# What both CRFs share: the loss, the checks


class _ChainCRF(nn.Module):
    """``neg_log_likelihood`` from ``score`` and ``log_partition``; subclasses define those."""

    num_tags: int

    def neg_log_likelihood(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """:math:`\\log Z(x) - s(x, y)`; ``reduction`` ``"mean"`` (over sentences), ``"sum"`` or ``"none"``."""
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be mean|sum|none, not {reduction!r}")
        self.check_tags(tags, mask)
        nll = self.log_partition(emissions, mask) - self.score(emissions, tags, mask)
        if reduction == "mean":
            return nll.mean()
        return nll.sum() if reduction == "sum" else nll

    def check_tags(self, tags: torch.Tensor, mask: torch.Tensor) -> None:
        """Raise ``ValueError`` if a (gold) tag sequence uses a forbidden start or transition."""
        if not self.constrained:
            return
        bad_start = ~self.start_allowed()[tags[:, 0]]
        bad_pair = ~self.pair_allowed(tags[:, :-1], tags[:, 1:]) & mask[:, 1:]
        if bool(bad_start.any()) or bool(bad_pair.any()):
            if bool(bad_start.any()):
                b, t = int(bad_start.nonzero()[0, 0]), 0
                what = f"starts with tag {int(tags[b, 0])}"
            else:
                b, t = (int(v) for v in bad_pair.nonzero()[0])
                what = f"has tag {int(tags[b, t])} followed by tag {int(tags[b, t + 1])}"
                t += 1
            raise ValueError(
                f"sentence {b} of the batch {what} (position {t}), which the CRF's BIO constraints forbid: "
                "the tags are not BIO (IOB1?); build the CRF without constraints for such data"
            )


# --------------------------------------------------------------------------------------------------
# The dense CRF


class CRF(_ChainCRF):
    """Linear-chain CRF over ``num_tags`` tags with a dense transition matrix and start/end scores.

    ``constraints``: a :class:`Constraints` (e.g. ``bio_constraints(tag_names)``) or ``None`` (every
    sequence allowed). ``impl``: ``"logsumexp"`` (textbook), ``"matmul"`` (BLAS, for many tags) or
    ``"auto"`` (``matmul`` when ``num_tags > 64``). See :meth:`for_tags` to build the right CRF for a
    tag set.
    """

    def __init__(self, num_tags: int, impl: str = "auto", constraints: Constraints | None = None):
        super().__init__()
        if impl not in ("auto", "logsumexp", "matmul"):
            raise ValueError(f"impl must be auto|logsumexp|matmul, not {impl!r}")
        self.num_tags = num_tags
        self.impl = impl
        # A[i, j]: score of tag i followed by tag j; small random init as in most CRF taggers.
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.constrained = constraints is not None
        if constraints is not None:
            shapes = [tuple(m.shape) for m in constraints]
            if shapes != [(num_tags, num_tags), (num_tags,), (num_tags,)]:
                raise ValueError(f"constraints for {num_tags} tags expected, got masks of shapes {shapes}")
            # derived from the tag names, so not saved with the weights (persistent=False)
            self.register_buffer("allowed", constraints.transitions.clone(), persistent=False)
            self.register_buffer("allowed_start", constraints.start.clone(), persistent=False)
            self.register_buffer("allowed_end", constraints.end.clone(), persistent=False)

    @staticmethod
    def for_tags(
        tag_names: Sequence[str], structure: str = "auto", outside: str = "O", impl: str = "auto"
    ) -> CRF | FactorisedCRF:
        """A BIO-constrained CRF for these tags (in tag-id order): a dense :class:`CRF` for small tag
        sets, a :class:`FactorisedCRF` above ``AUTO_FACTORISE_ABOVE`` tags (see the module docstring).
        ``structure``: ``"auto"``, ``"full"`` or ``"factorised"``."""
        if structure not in ("auto", "full", "factorised"):
            raise ValueError(f"structure must be auto|full|factorised, not {structure!r}")
        if structure == "factorised" or (structure == "auto" and len(tag_names) > AUTO_FACTORISE_ABOVE):
            return FactorisedCRF(tag_names, outside=outside)
        return CRF(len(tag_names), impl=impl, constraints=bio_constraints(tag_names, outside))

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, impl={self.impl!r}, constrained={self.constrained}"

    # -- the scores in use: the parameters, -inf where the constraints forbid ----------------------
    def transition_matrix(self) -> torch.Tensor:
        """``A`` as used, ``[L, L]`` (-inf at forbidden transitions)."""
        if not self.constrained:
            return self.transitions
        return self.transitions.masked_fill(~self.allowed, _NEG_INF)

    def start_scores(self) -> torch.Tensor:
        return self.start.masked_fill(~self.allowed_start, _NEG_INF) if self.constrained else self.start

    def end_scores(self) -> torch.Tensor:
        return self.end.masked_fill(~self.allowed_end, _NEG_INF) if self.constrained else self.end

    def start_allowed(self) -> torch.Tensor:
        return self.allowed_start

    def pair_allowed(self, prev: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return self.allowed[prev, nxt]

    def check_tags(self, tags: torch.Tensor, mask: torch.Tensor) -> None:
        super().check_tags(tags, mask)
        if self.constrained:
            last = tags.gather(1, (mask.long().sum(1) - 1).unsqueeze(1)).squeeze(1)
            if not bool(self.allowed_end[last].all()):
                raise ValueError(
                    "a gold tag sequence ends with a tag the CRF's constraints forbid at the end"
                )

    # -- s(x, y): score of the gold path -----------------------------------------------------------
    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:math:`s(x, y)` for each sentence, ``[B]``."""
        maskf = mask.to(emissions.dtype)
        # sum_t P[t, y_t] over real tokens
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        total = (emit * maskf).sum(1)
        # sum_{t>=2} A[y_{t-1}, y_t]: a transition counts when its *target* token is real
        trans = self.transition_matrix()[tags[:, :-1], tags[:, 1:]]
        total = total + torch.where(mask[:, 1:], trans, 0.0).sum(1)
        # start_{y_1} + end_{y_T}, with T the true length of each sentence
        last = mask.long().sum(1) - 1
        last_tags = tags.gather(1, last.unsqueeze(1)).squeeze(1)
        return total + self.start_scores()[tags[:, 0]] + self.end_scores()[last_tags]

    # -- log Z(x): forward algorithm ----------------------------------------------------------------
    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:math:`\\log Z(x)` for each sentence, ``[B]``.

        alpha_1(j) = start_j + P[1, j];
        alpha_t(j) = P[t, j] + log sum_i exp(alpha_{t-1}(i) + A[i, j]);
        log Z = log sum_j exp(alpha_T(j) + end_j).
        """
        _check(emissions, mask)
        A, start, end = self.transition_matrix(), self.start_scores(), self.end_scores()
        if self.impl == "matmul" or (self.impl == "auto" and self.num_tags > 64):
            return _MatmulForwardAlgorithm.apply(emissions, mask, A, start, end)
        # unbind once: indexing emissions[:, t] inside the loop would make autograd allocate a full
        # [B, T, L] zero gradient per time step (quadratic in T)
        steps = emissions.unbind(1)
        alpha = start + steps[0]  # [B, L]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + A, dim=1) + steps[t]
            # padded positions keep alpha unchanged, so alpha ends as alpha_{T_b} for each sentence
            alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    # -- argmax_y s(x, y): Viterbi ----------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor, top_k: int | None = None
    ) -> list[list[int]]:
        """Best tag sequence of each sentence (lists of the sentence's true length).

        delta_1(j) = start_j + P[1, j];  delta_t(j) = P[t, j] + max_i (delta_{t-1}(i) + A[i, j]),
        remembering the argmax i as a back-pointer; then follow back-pointers from
        argmax_j (delta_T(j) + end_j). ``top_k < num_tags``: the approximate pruned search of the module
        docstring (opt-in; ``None`` is exact).
        """
        _check(emissions, mask)
        if top_k is not None and top_k < self.num_tags:
            return self._decode_pruned(emissions, mask, top_k)
        A = self.transition_matrix()
        T = emissions.shape[1]
        delta = self.start_scores() + emissions[:, 0]
        backpointers = []
        for t in range(1, T):
            best, arg = (delta.unsqueeze(2) + A).max(1)  # over the previous tag i
            delta = torch.where(mask[:, t : t + 1], best + emissions[:, t], delta)
            backpointers.append(arg)
        return _backtrack((delta + self.end_scores()).argmax(1), backpointers, mask, None)

    def _decode_pruned(self, emissions: torch.Tensor, mask: torch.Tensor, k: int) -> list[list[int]]:
        B, T, _ = emissions.shape
        A, start, end = self.transition_matrix(), self.start_scores(), self.end_scores()
        # candidates: the k best tags by emission (at the first token, among the tags allowed to start)
        first = emissions[:, :1].masked_fill(torch.isinf(start), _NEG_INF)
        cand = torch.cat([first, emissions[:, 1:]], 1).topk(k, dim=2).indices  # [B, T, k]
        # after the end of a sentence keep the last real position's candidates (delta is carried over)
        lengths = mask.long().sum(1)
        for t in range(1, T):
            cand[:, t] = torch.where(mask[:, t : t + 1], cand[:, t], cand[:, t - 1])
        em = emissions.gather(2, cand)  # [B, T, k]
        delta = start[cand[:, 0]] + em[:, 0]
        backpointers = []
        for t in range(1, T):
            trans = A[cand[:, t - 1].unsqueeze(2), cand[:, t].unsqueeze(1)]  # [B, k, k]
            best, arg = (delta.unsqueeze(2) + trans).max(1)
            delta = torch.where(mask[:, t : t + 1], best + em[:, t], delta)
            backpointers.append(arg)
        last_cand = cand.gather(1, (lengths - 1).view(B, 1, 1).expand(B, 1, k)).squeeze(1)
        return _backtrack((delta + end[last_cand]).argmax(1), backpointers, mask, cand)


def _log_matmul(log_x: torch.Tensor, exp_w: torch.Tensor, w_shift: torch.Tensor) -> torch.Tensor:
    """log(exp(log_x) @ W) for W = exp_w * exp(w_shift) (column shifts), stable: [B, L] @ [L, L]."""
    m = log_x.max(1, keepdim=True).values
    return m + w_shift + ((log_x - m).exp() @ exp_w).clamp_min(_TINY).log()


class _MatmulForwardAlgorithm(torch.autograd.Function):
    """log Z by matrix products, with a hand-written backward (forward-backward algorithm).

    Plain autograd through the matmul loop would form one ``[L, L]`` transition gradient per time
    step (a ``[L, B] @ [B, L]`` product writing L^2 floats, then an L^2 addition): for L = 1,500
    that dominated a training step. The gradient of log Z is the vector of expected counts, so:

    * d log Z / d P[t, j]   = mu_t(j) = exp(alpha_t(j) + beta_t(j) - log Z)    (tag marginals)
    * d log Z / d A[i, j]   = sum_t exp(alpha_{t-1}(i) + A[i, j] + P[t, j] + beta_t(j) - log Z),
      computed as ONE ``[L, B*T] @ [B*T, L]`` product over all positions;
    * d log Z / d start = mu_1, d log Z / d end = mu_T;

    with the backward recursion beta_T(i) = end_i, beta_{t-1}(i) = log sum_j exp(A[i, j] + P[t, j] + beta_t(j)).
    Forbidden transitions (-inf in A) are zeros of exp(A). Checked against autograd through the
    textbook recursion in tests/test_crf.py.
    """

    @staticmethod
    def forward(ctx, emissions, mask, transitions, start, end):
        B, T, L = emissions.shape
        col_max = transitions.max(0).values  # c_j = max_i A[i, j]
        exp_trans = (transitions - col_max).exp()  # in [0, 1]
        alphas = emissions.new_empty(T, B, L)
        alpha = alphas[0] = start + emissions[:, 0]
        for t in range(1, T):
            nxt = _log_matmul(alpha, exp_trans, col_max) + emissions[:, t]
            alpha = alphas[t] = torch.where(mask[:, t : t + 1], nxt, alpha)  # padding: carry alpha over
        log_z = torch.logsumexp(alpha + end, dim=1)
        ctx.save_for_backward(emissions, mask, transitions, end, alphas, log_z)
        return log_z

    @staticmethod
    def backward(ctx, grad):  # grad: [B]
        emissions, mask, transitions, end, alphas, log_z = ctx.saved_tensors
        B, T, L = emissions.shape
        row_max = transitions.max(1).values  # r_i = max_j A[i, j]
        exp_trans_t = (transitions - row_max[:, None]).exp().t().contiguous()  # for sum over j
        betas = emissions.new_empty(T, B, L)
        end_b = end.expand(B, L)
        beta = betas[T - 1] = end_b
        for t in range(T - 1, 0, -1):
            prev = _log_matmul(emissions[:, t] + beta, exp_trans_t, row_max)
            # beta_{t-1} = end where t-1 is a sentence's last token (or padding)
            beta = betas[t - 1] = torch.where(mask[:, t : t + 1], prev, end_b)
        real = mask.t().unsqueeze(2).to(emissions.dtype)  # [T, B, 1]
        weight = grad.view(1, B, 1) * real
        mu = (alphas + betas - log_z.view(1, B, 1)).exp() * weight  # grad-weighted marginals [T, B, L]
        grad_emissions = mu.transpose(0, 1)
        grad_start = mu[0].sum(0)
        last = mask.long().sum(1) - 1
        grad_end = mu[last, torch.arange(B)].sum(0)
        # pairwise terms for t >= 1: P_rows[i] = exp(alpha_{t-1}(i) - m), Q_rows[j] = the rest
        prev_alpha = alphas[:-1]  # [T-1, B, L]
        m = prev_alpha.max(2, keepdim=True).values
        col_max = transitions.max(0).values
        p_rows = (prev_alpha - m).exp().reshape(-1, L)
        log_q = m + col_max + emissions.transpose(0, 1)[1:] + betas[1:] - log_z.view(1, B, 1)
        q_rows = (log_q.clamp_max(80.0).exp() * weight[1:]).reshape(-1, L)
        grad_transitions = (p_rows.t() @ q_rows) * (transitions - col_max).exp()
        return grad_emissions, None, grad_transitions, grad_start, grad_end


# --------------------------------------------------------------------------------------------------
# The factorised BIO CRF


class FactorisedCRF(_ChainCRF):
    """BIO-constrained CRF whose transitions into ``O``/``B-Y`` depend on the previous tag's class only.

    ``A[i, j]`` is ``class_transitions[class(i), class(j)]`` for ``j`` = ``O`` or ``B-Y`` (classes
    ``O, B, I``), ``begin_to_inside[X]`` for ``B-X -> I-X``, ``inside_to_inside[X]`` for ``I-X -> I-X``
    and -inf for any other transition into ``I-X``; ``start`` (-inf for ``I-X``) and ``end`` are per
    tag. Why, and why exact decoding costs O(T * L): see the module docstring.

    Internally the tags are put in *class order* -- ``O``, the ``B-`` tags, the ``I-`` tags -- so a class
    is a slice (``TagVocab`` ids already are in that order, since it sorts ``B-`` before ``I-``). The
    ``r``-th parameter of ``begin_to_inside`` / ``inside_to_inside`` belongs to the ``r``-th ``I-`` tag
    in tag-id order (:attr:`inside_tags`).
    """

    def __init__(self, tag_names: Sequence[str], outside: str = "O"):
        super().__init__()
        parsed = parse_bio(tag_names, outside)
        L = self.num_tags = len(parsed)
        self.tag_names = list(tag_names)
        self.constrained = True
        outs = [i for i, (k, _) in enumerate(parsed) if k == "O"]
        if len(outs) != 1:
            raise ValueError(f"a factorised BIO CRF needs exactly one {outside!r} tag, got {len(outs)}")
        begins = [i for i, (k, _) in enumerate(parsed) if k == "B"]
        insides = [i for i, (k, _) in enumerate(parsed) if k == "I"]
        self.n_begin, self.n_inside = len(begins), len(insides)
        order = outs + begins + insides  # class order -> tag id
        position = {tag: p for p, tag in enumerate(order)}  # tag id -> class order
        begin_of = {label: i for i, (k, label) in enumerate(parsed) if k == "B"}
        partner = [position[begin_of[parsed[i][1]]] for i in insides]  # class-order index of B-X per I-X
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self.register_buffer("position", torch.tensor([position[i] for i in range(L)]), persistent=False)
        self.register_buffer("partner", torch.tensor(partner, dtype=torch.long), persistent=False)
        self.register_buffer("inside_tags", torch.tensor(insides, dtype=torch.long), persistent=False)
        self.in_class_order = order == list(range(L))
        self.class_transitions = nn.Parameter(torch.empty(3, 2).uniform_(-0.1, 0.1))  # from O/B/I to O/B
        self.begin_to_inside = nn.Parameter(torch.empty(self.n_inside).uniform_(-0.1, 0.1))
        self.inside_to_inside = nn.Parameter(torch.empty(self.n_inside).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(L).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(L).uniform_(-0.1, 0.1))
        kind = torch.tensor(["OBI".index(k) for k, _ in parsed])
        self.register_buffer("kind", kind, persistent=False)  # 0 = O, 1 = B, 2 = I per tag id

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, begin={self.n_begin}, inside={self.n_inside}"

    # -- the model as an ordinary CRF (for inspection and the tests) ------------------------------
    def start_scores(self) -> torch.Tensor:
        return self.start.masked_fill(self.kind == 2, _NEG_INF)

    def end_scores(self) -> torch.Tensor:
        return self.end

    def start_allowed(self) -> torch.Tensor:
        return self.kind != 2

    def transition_matrix(self) -> torch.Tensor:
        """The dense ``[L, L]`` matrix this CRF stands for (-inf at forbidden transitions)."""
        L = self.num_tags
        into_ob = self.class_transitions[self.kind][:, self.kind.clamp(max=1)]  # [L, L] class-level part
        A = torch.where((self.kind != 2).unsqueeze(0), into_ob, into_ob.new_full((L, L), _NEG_INF))
        inside = self.inside_tags
        begin = self.order[self.partner]
        A = A.index_put((begin, inside), self.begin_to_inside)
        return A.index_put((inside, inside), self.inside_to_inside)

    def pair_allowed(self, prev: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """Whether each ``prev -> nxt`` transition is allowed (elementwise over tag-id tensors)."""
        nxt_pos = self.position[nxt]
        r = (nxt_pos - 1 - self.n_begin).clamp(min=0)  # which I- tag nxt is (if it is one)
        begin = self.order[self.partner[r]] if self.n_inside else nxt
        return (self.kind[nxt] != 2) | (prev == nxt) | (prev == begin)

    # -- s(x, y) ---------------------------------------------------------------------------------
    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:math:`s(x, y)` for each sentence, ``[B]`` (-inf if the path is forbidden)."""
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        total = torch.where(mask, emit, 0.0).sum(1)
        prev, nxt = tags[:, :-1], tags[:, 1:]
        into_ob = self.class_transitions[self.kind[prev], self.kind[nxt].clamp(max=1)]
        if self.n_inside:
            r = (self.position[nxt] - 1 - self.n_begin).clamp(min=0)
            into_i = torch.where(prev == nxt, self.inside_to_inside[r], self.begin_to_inside[r])
            trans = torch.where(self.kind[nxt] == 2, into_i, into_ob)
        else:
            trans = into_ob
        trans = torch.where(self.pair_allowed(prev, nxt), trans, _NEG_INF)
        total = total + torch.where(mask[:, 1:], trans, 0.0).sum(1)
        last = tags.gather(1, (mask.long().sum(1) - 1).unsqueeze(1)).squeeze(1)
        return total + self.start_scores()[tags[:, 0]] + self.end[last]

    # -- class order -----------------------------------------------------------------------------
    def _in_class_order(self, emissions: torch.Tensor):
        """Emissions, start and end scores with the tags in class order (``O``, ``B-``, ``I-``)."""
        start, end = self.start_scores(), self.end
        if self.in_class_order:
            return emissions, start, end
        return emissions.index_select(2, self.order), start[self.order], end[self.order]

    # -- log Z(x) --------------------------------------------------------------------------------
    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:math:`\\log Z(x)`, ``[B]``: the forward algorithm in O(B * L) per token (:class:`_FactorisedForward`)."""
        _check(emissions, mask)
        em, start, end = self._in_class_order(emissions)
        return _FactorisedForward.apply(
            em,
            mask,
            start,
            end,
            self.class_transitions,
            self.begin_to_inside,
            self.inside_to_inside,
            self.n_begin,
            self.partner,
        )

    # -- Viterbi ---------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor, top_k: int | None = None
    ) -> list[list[int]]:
        """Best tag sequence of each sentence, exactly, in O(T * L) per sentence.

        The step of :meth:`CRF.decode` with A factorised: for ``O`` and every ``B-Y`` the best
        predecessor is the best tag of the best class, ``argmax_k [max_{i in k} delta(i) + C[k, .]]``,
        so one back-pointer per target *class* is stored; for ``I-X`` it is ``B-X`` or ``I-X``, one
        boolean per ``I-`` tag. ``top_k`` must be ``None`` (there is nothing to prune).
        """
        if top_k is not None:
            raise ValueError("the factorised CRF decodes exactly in O(T * L): top_k does not apply")
        _check(emissions, mask)
        em, start, end = self._in_class_order(emissions)
        B, T, L = em.shape
        nb, C = self.n_begin, self.class_transitions
        b_in, i_in = self.begin_to_inside, self.inside_to_inside
        partner = self.partner.expand(B, -1)  # [B, n_inside]: where each I-X's B-X is
        lengths = mask.long().sum(1)
        last = torch.zeros(B, dtype=torch.long)  # each sentence's best last tag
        class_pointers, inside_pointers = [], []
        for t, x in enumerate(_steps(em, mask, start, end)):  # x: emissions at t (+ start / end)
            if t == 0:
                delta = x
            else:
                best, src = _class_max(delta, nb)  # [B, 3]: best score and tag (class order) per class
                into, k = (best.unsqueeze(2) + C).max(1)  # [B, 2]: into O / into any B-Y, best class
                from_begin = delta.gather(1, partner) + b_in  # I-X after B-X ...
                stay = delta[:, 1 + nb :] + i_in  # ... or after I-X
                take_begin = from_begin >= stay
                inside = torch.where(take_begin, from_begin, stay)
                delta = torch.cat([into[:, :1], into[:, 1:].expand(B, nb), inside], 1) + x
                class_pointers.append(src.gather(1, k))  # [B, 2]: the predecessor of O, of any B-Y
                inside_pointers.append(take_begin)  # [B, n_inside]
            ends = lengths - 1 == t  # after its last token a sentence's delta is never read
            if bool(ends.any()):
                last = torch.where(ends, delta.argmax(1), last)  # end is in the last emissions
        path = torch.zeros(B, T, dtype=torch.long)
        cur = last
        for t in range(T - 1, -1, -1):
            cur = torch.where(lengths - 1 == t, last, cur)
            path[:, t] = cur
            if t == 0:
                break
            prev = class_pointers[t - 1].gather(1, (cur > 0).long().unsqueeze(1)).squeeze(1)
            if self.n_inside:
                r = (cur - 1 - nb).clamp(min=0).unsqueeze(1)
                from_b = inside_pointers[t - 1].gather(1, r).squeeze(1)
                prev = torch.where(cur > nb, torch.where(from_b, self.partner[r.squeeze(1)], cur), prev)
            cur = prev
        path = self.order[path]  # class order -> tag ids
        return [row[:n] for row, n in zip(path.tolist(), lengths.tolist(), strict=True)]


def _steps(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, dtype=None):
    """The emissions of each token, ``[B, L]`` (as ``dtype``), with ``start`` added at the first token
    and ``end`` at each sentence's last real token: then the recursions need no special first or last
    step. One token at a time, so the work stays in the cache. A step is a view of ``em`` where nothing
    is added (most of them): the callers only read it, and a copy per step was a tenth of decoding."""
    dtype = dtype or em.dtype
    last = mask.long().sum(1) - 1
    start, end = start.detach().to(dtype), end.detach().to(dtype)
    for t in range(em.shape[1]):
        x = em[:, t].detach().to(dtype)
        if t == 0:
            x = x + start
        ends = last == t
        if bool(ends.any()):
            x = x + end * ends.unsqueeze(1)
        yield x


def _class_max(x: torch.Tensor, nb: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class (O, B, I) of ``x`` ``[B, L]`` in class order: the max and its index, ``[B, 3]`` each."""
    B, L = x.shape
    vals, args = [x[:, 0]], [x.new_zeros(B, dtype=torch.long)]
    for lo, hi in ((1, 1 + nb), (1 + nb, L)):
        if hi > lo:
            v, a = x[:, lo:hi].max(1)
            vals.append(v)
            args.append(a + lo)
        else:  # an empty class (no B- or no I- tags): never the best
            vals.append(x.new_full((B,), _NEG_INF))
            args.append(x.new_zeros(B, dtype=torch.long))
    return torch.stack(vals, 1), torch.stack(args, 1)


def _class_sums(x: torch.Tensor, nb: int) -> torch.Tensor:
    """Per class (O, B, I): sums of ``x`` ``[B, L]`` in class order, ``[B, 3]``."""
    return torch.stack([x[:, 0], x[:, 1 : 1 + nb].sum(1), x[:, 1 + nb :].sum(1)], 1)


class _FactorisedForward(torch.autograd.Function):
    """log Z of the factorised BIO CRF, with its gradient by the forward-backward algorithm.

    Inputs: emissions, start and end scores in class order (``O``, ``B-``, ``I-``; start -inf for
    ``I-`` tags). The recursions run in *probability* space, rescaled at every token (Rabiner's
    scaling, in float64): there a step of the forward algorithm is a product with ``exp(A)``, and with
    the factorised A that product is three class sums, a 3 x 2 matrix product and, for the ``I-`` tags,
    two multiplications. With start and end added to the first and last emissions (:func:`_steps`) and
    ``E_t = exp(P_t - m_t)`` (``m_t`` the largest emission at t, so ``E_t`` is in [0, 1])::

        s_k       = sum_{i in class k} a_{t-1}(i)                     k in O, B, I      [3]
        next(O)   = (s exp C)_O * E_t(O);   next(B-Y) = (s exp C)_B * E_t(B-Y)
        next(I-X) = (a_{t-1}(B-X) exp b_X + a_{t-1}(I-X) exp i_X) * E_t(I-X)
        z_t = sum_j next(j);   a_t = next / z_t;   log Z = sum_t (m_t + log z_t)

    ``a_t(j)`` is ``exp(alpha_t(j))`` divided by its sum over the tags, so nothing overflows; an entry
    underflows only for a tag whose paths are ~700 nats below the best at that token (float64), whose
    share of Z is then below 1e-300 anyway. A forbidden start (-inf) is a zero of ``E_1``.

    Backward: the gradient of log Z is the expected counts. With the same constants, the scaled
    backward variables ``b_T = 1``, ``b_{t-1} = exp(A) (E_t * b_t) / z_t`` (factorised like the forward
    step) make the tag marginals ``mu_t(j) = a_t(j) b_t(j)`` (= d log Z / d P_t(j)), and the expected
    number of ``i -> j`` transitions into token t ``a_{t-1}(i) exp(A_ij) E_t(j) b_t(j) / z_t``, summed
    per parameter (for ``C``: class sums of ``a_{t-1}`` times class sums of ``E_t * b_t``). Everything is
    accumulated token by token in the backward loop, so no ``[B, T, L]`` pass is made but the gradient's.
    Checked against autograd through the textbook log-space recursion in tests/test_crf.py.
    """

    @staticmethod
    def forward(ctx, em, mask, start, end, C, b_in, i_in, nb, partner):
        B, T, L = em.shape
        f64 = torch.float64
        exp_c, exp_b, exp_i = (p.detach().to(f64).exp() for p in (C, b_in, i_in))
        partner = partner.expand(B, -1)
        E, ahat = em.new_empty(T, B, L, dtype=f64), em.new_empty(T, B, L, dtype=f64)
        sums, zs, log_scale = (em.new_empty(T, B, n, dtype=f64) for n in (3, 1, 1))
        for t, x in enumerate(_steps(em, mask, start, end, f64)):
            m = x.amax(1, keepdim=True)
            e = torch.exp(x - m, out=E[t])  # in [0, 1]
            if t == 0:
                nxt = e
            else:
                into = sums[t - 1] @ exp_c  # [B, 2]: into O, into any B-Y
                a = ahat[t - 1]
                inside = a.gather(1, partner) * exp_b + a[:, 1 + nb :] * exp_i  # I-X from B-X or I-X
                nxt = torch.cat([into[:, :1], into[:, 1:].expand(B, nb), inside], 1) * e
            z = torch.clamp_min(nxt.sum(1, keepdim=True), _TINY64, out=zs[t])
            a = torch.div(nxt, z, out=ahat[t])
            sums[t] = _class_sums(a, nb)
            log_scale[t] = m + z.log()
        # past a sentence's end the loop runs on over the padding; those tokens are not counted
        log_z = log_scale.squeeze(2).masked_fill(~mask.t(), 0.0).sum(0)
        ctx.nb = nb
        ctx.save_for_backward(mask, partner, E, ahat, sums, zs, exp_c, exp_b, exp_i)
        ctx.dtypes = (em.dtype, C.dtype)
        return log_z.to(em.dtype)

    @staticmethod
    def backward(ctx, grad):  # grad: [B]
        mask, partner, E, ahat, sums, zs, exp_c, exp_b, exp_i = ctx.saved_tensors
        nb, (em_dtype, p_dtype) = ctx.nb, ctx.dtypes
        T, B, L = E.shape
        real = mask.t().unsqueeze(2).to(E.dtype)  # [T, B, 1]
        w = grad.to(E.dtype).view(1, B, 1) * real  # the upstream gradient, on real tokens only
        last = mask.long().sum(1) - 1
        grad_em = E.new_empty(B, T, L, dtype=em_dtype)
        grad_end = E.new_zeros(L)
        grad_c, grad_b, grad_i = torch.zeros_like(exp_c), torch.zeros_like(exp_b), torch.zeros_like(exp_i)
        b = torch.ones_like(E[0])  # b_T = 1: end is in the emissions
        for t in range(T - 1, -1, -1):
            mu = ahat[t] * b * w[t]  # tag marginals: d log Z / d P_t, times the upstream gradient
            grad_em[:, t] = mu
            ends = last == t
            if bool(ends.any()):
                grad_end += (mu * ends.unsqueeze(1)).sum(0)
            if t == 0:
                grad_start = mu.sum(0)
                break
            g = E[t] * b  # [B, L]
            n = _class_sums(g, nb)[:, :2]  # [B, 2]: summed over O, over the B- tags
            # expected transitions into token t (zero weight where t is padding)
            coef = w[t] / zs[t]
            grad_c += sums[t - 1].t() @ (n * coef)
            g_in = g[:, 1 + nb :] * coef
            grad_b += (ahat[t - 1].gather(1, partner) * g_in).sum(0)
            grad_i += (ahat[t - 1, :, 1 + nb :] * g_in).sum(0)
            # b_{t-1} = exp(A) (E_t * b_t) / z_t, factorised
            leave = n @ exp_c.t()  # [B, 3]: from a tag of class O, B, I into O or any B-Y
            g_in = g[:, 1 + nb :]
            prev = torch.cat([leave[:, :1], leave[:, 1:2].expand(B, nb), leave[:, 2:] + g_in * exp_i], 1)
            prev.scatter_add_(1, partner, g_in * exp_b)  # B-X -> I-X
            # where t is padding, t-1 is the last token (or padding): b = 1 there, as at the end
            b = (prev / zs[t] - 1.0) * real[t] + 1.0
        return (
            grad_em,
            None,
            grad_start.to(p_dtype),
            grad_end.to(p_dtype),
            (grad_c * exp_c).to(p_dtype),
            (grad_b * exp_b).to(p_dtype),
            (grad_i * exp_i).to(p_dtype),
            None,
            None,
        )


# --------------------------------------------------------------------------------------------------
# helpers


def _check(emissions: torch.Tensor, mask: torch.Tensor) -> None:
    if emissions.dim() != 3 or mask.shape != emissions.shape[:2]:
        raise ValueError(
            f"emissions must be [B, T, L] and mask [B, T]; got {tuple(emissions.shape)}, {tuple(mask.shape)}"
        )
    if not bool(mask[:, 0].all()):
        raise ValueError("every sentence needs at least one token and mask must be left-aligned")


def _backtrack(
    last: torch.Tensor, backpointers: list[torch.Tensor], mask: torch.Tensor, cand
) -> list[list[int]]:
    """Follow back-pointers from the best final tag, vectorised over the batch.

    For sentence b the path starts at position ``len_b - 1``; positions after it hold garbage that is
    overwritten when the loop reaches ``len_b - 1``. ``cand`` maps pruned indices back to tag ids.
    """
    B, T = mask.shape
    lengths = mask.long().sum(1)
    path = torch.zeros(B, T, dtype=torch.long)
    cur = last
    for t in range(T - 1, -1, -1):
        cur = torch.where(lengths - 1 == t, last, cur)
        path[:, t] = cur
        if t > 0:
            cur = backpointers[t - 1].gather(1, cur.unsqueeze(1)).squeeze(1)
    if cand is not None:
        path = cand.gather(2, path.unsqueeze(2)).squeeze(2)
    return [row[:n] for row, n in zip(path.tolist(), lengths.tolist(), strict=True)]
