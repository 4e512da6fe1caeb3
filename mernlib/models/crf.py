"""A linear-chain conditional random field (CRF) output layer.

Given emission scores :math:`P \\in \\mathbb{R}^{T \\times L}` from the Bi-LSTM (``P[t, j]``: how
much token ``t`` looks like tag ``j``) and learned transition scores ``A[i, j]`` (tag ``i`` followed by
tag ``j``), plus start/end scores, a tag sequence ``y`` scores

.. math::  s(x, y) = \\text{start}_{y_1} + \\sum_{t=1}^{T} P_{t, y_t}
                      + \\sum_{t=2}^{T} A_{y_{t-1}, y_t} + \\text{end}_{y_T}

and the CRF defines :math:`p(y \\mid x) = \\exp s(x, y) / Z(x)` with the partition function
:math:`Z(x) = \\sum_{y'} \\exp s(x, y')` over all :math:`L^T` sequences. Training minimises
:math:`-\\log p(y \\mid x) = \\log Z(x) - s(x, y)`; decoding takes :math:`\\arg\\max_y s(x, y)`.

Both sums over :math:`L^T` sequences are done by dynamic programming, vectorised over the batch
and the tags, looping only over time. Sentences in a batch have different lengths: ``mask[b, t]`` is
True for real tokens, and must be left-aligned (a prefix of True values, at least one per sentence).

Speed with many tags (MEN has ~1,500 BIO labels on NCBI): one forward step costs ``B * L^2``. The
textbook step ``logsumexp(alpha[:, :, None] + A, dim=1)`` materialises a ``[B, L, L]`` tensor (for
L = 1,500 and B = 32 that is 72M floats per time step, plus as much again kept for backward). For
large ``L`` we instead rewrite the step as a matrix product (``impl="matmul"``)::

    log sum_i exp(alpha_i + A_ij) = m + c_j + log sum_i exp(alpha_i - m) * exp(A_ij - c_j)

with ``m = max_i alpha_i`` (per sentence) and ``c_j = max_i A_ij`` (per column), which is a
``[B, L] @ [L, L]`` BLAS call and needs no ``[B, L, L]`` buffer. Both implementations are tested
against brute-force enumeration. Viterbi has no such trick (max does not distribute over a product),
so :meth:`CRF.decode` accepts ``top_k``: each position only considers its ``top_k`` tags by
emission score, making a step ``B * k^2``. That is exact whenever the best path uses only such tags
(almost always for a trained tagger), but it *is* an approximation; ``top_k=None`` is exact.
"""

from __future__ import annotations

import torch
from torch import nn

_TINY = 1e-30  # clamp for log() in the matmul forward step; never reached unless every path underflows


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags with start and end transitions.

    ``impl``: ``"logsumexp"`` (textbook), ``"matmul"`` (BLAS, for many tags) or ``"auto"``
    (``matmul`` when ``num_tags > 64``).
    """

    def __init__(self, num_tags: int, impl: str = "auto"):
        super().__init__()
        if impl not in ("auto", "logsumexp", "matmul"):
            raise ValueError(f"impl must be auto|logsumexp|matmul, not {impl!r}")
        self.num_tags = num_tags
        self.impl = impl
        # A[i, j]: score of tag i followed by tag j; small random init as in most CRF taggers.
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, impl={self.impl!r}"

    # -- s(x, y): score of the gold path -----------------------------------------------------------
    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:math:`s(x, y)` for each sentence, ``[B]``."""
        maskf = mask.to(emissions.dtype)
        # sum_t P[t, y_t] over real tokens
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        total = (emit * maskf).sum(1)
        # sum_{t>=2} A[y_{t-1}, y_t]: a transition counts when its *target* token is real
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]
        total = total + (trans * maskf[:, 1:]).sum(1)
        # start_{y_1} + end_{y_T}, with T the true length of each sentence
        last = mask.long().sum(1) - 1
        last_tags = tags.gather(1, last.unsqueeze(1)).squeeze(1)
        return total + self.start[tags[:, 0]] + self.end[last_tags]

    # -- log Z(x): forward algorithm ----------------------------------------------------------------
    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:math:`\\log Z(x)` for each sentence, ``[B]``.

        alpha_1(j) = start_j + P[1, j];
        alpha_t(j) = P[t, j] + log sum_i exp(alpha_{t-1}(i) + A[i, j]);
        log Z = log sum_j exp(alpha_T(j) + end_j).
        """
        _check(emissions, mask)
        if self.impl == "matmul" or (self.impl == "auto" and self.num_tags > 64):
            return _MatmulForwardAlgorithm.apply(emissions, mask, self.transitions, self.start, self.end)
        # unbind once: indexing emissions[:, t] inside the loop would make autograd allocate a full
        # [B, T, L] zero gradient per time step (quadratic in T)
        steps = emissions.unbind(1)
        alpha = self.start + steps[0]  # [B, L]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + steps[t]
            # padded positions keep alpha unchanged, so alpha ends as alpha_{T_b} for each sentence
            alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def neg_log_likelihood(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """:math:`\\log Z(x) - s(x, y)`; ``reduction`` ``"mean"`` (over sentences), ``"sum"`` or ``"none"``."""
        nll = self.log_partition(emissions, mask) - self.score(emissions, tags, mask)
        if reduction == "mean":
            return nll.mean()
        if reduction == "sum":
            return nll.sum()
        if reduction == "none":
            return nll
        raise ValueError(f"reduction must be mean|sum|none, not {reduction!r}")

    # -- argmax_y s(x, y): Viterbi ----------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor, top_k: int | None = None
    ) -> list[list[int]]:
        """Best tag sequence of each sentence (lists of the sentence's true length).

        delta_1(j) = start_j + P[1, j];  delta_t(j) = P[t, j] + max_i (delta_{t-1}(i) + A[i, j]),
        remembering the argmax i as a back-pointer; then follow back-pointers from
        argmax_j (delta_T(j) + end_j). With ``top_k < num_tags`` see the module docstring.
        """
        _check(emissions, mask)
        if top_k is not None and top_k < self.num_tags:
            return self._decode_pruned(emissions, mask, top_k)
        B, T, _ = emissions.shape
        delta = self.start + emissions[:, 0]
        backpointers = []
        for t in range(1, T):
            best, arg = (delta.unsqueeze(2) + self.transitions).max(1)  # over the previous tag i
            delta = torch.where(mask[:, t : t + 1], best + emissions[:, t], delta)
            backpointers.append(arg)
        return _backtrack((delta + self.end).argmax(1), backpointers, mask, None)

    def _decode_pruned(self, emissions: torch.Tensor, mask: torch.Tensor, k: int) -> list[list[int]]:
        B, T, _ = emissions.shape
        cand = emissions.topk(k, dim=2).indices  # [B, T, k] candidate tags per position
        # after the end of a sentence keep the last real position's candidates (delta is carried over)
        lengths = mask.long().sum(1)
        for t in range(1, T):
            cand[:, t] = torch.where(mask[:, t : t + 1], cand[:, t], cand[:, t - 1])
        em = emissions.gather(2, cand)  # [B, T, k]
        delta = self.start[cand[:, 0]] + em[:, 0]
        backpointers = []
        for t in range(1, T):
            trans = self.transitions[cand[:, t - 1].unsqueeze(2), cand[:, t].unsqueeze(1)]  # [B, k, k]
            best, arg = (delta.unsqueeze(2) + trans).max(1)
            delta = torch.where(mask[:, t : t + 1], best + em[:, t], delta)
            backpointers.append(arg)
        last_cand = cand.gather(1, (lengths - 1).view(B, 1, 1).expand(B, 1, k)).squeeze(1)
        return _backtrack((delta + self.end[last_cand]).argmax(1), backpointers, mask, cand)


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
    Checked against autograd through the textbook recursion in tests/test_crf.py.
    """

    @staticmethod
    def forward(ctx, emissions, mask, transitions, start, end):
        B, T, L = emissions.shape
        col_max = transitions.max(0).values  # c_j = max_i A[i, j]
        exp_trans = (transitions - col_max).exp()  # in (0, 1]
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
