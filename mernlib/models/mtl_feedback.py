"""Multi-task MER + MEN tagging with explicit feedback (Zhao, Liu, Zhao & Wang, AAAI 2019).

Both tasks are cast as sequence labelling over the same tokens: MER predicts BIO entity tags
(``B-Disease``), MEN predicts BIO *concept* tags (``B-D003924``; a composite concept
``B-D014786|D006311`` is one label). The network, bottom to top (one small module each)::

    words + chars ──> WordRepresentation  x_i = [w_i ; CNN(c_i)]               (word ⊕ char CNN)
                 ──> BiLSTMEncoder       v_i = [h→_i ; h←_i]                  (k layers, shared)
                 ──> Feedback (optional) v_task = v ∘ (v + y_other U)           (∘ = concatenation)
                 ──> TaskHead            P = v_task W + b;  softmax or CRF     (one per task)

Paper variants (``config.feedback``), read from the equations: ``v_MER = v ∘ (v + y_MEN U)`` feeds
*MEN's output* into the *MER* head, so

==============  =========================  ==========================================
``feedback``    paper row                  who receives what
==============  =========================  ==========================================
``"none"``      MTL                        no feedback, heads read v directly
``"men"``       MTL-MEN_feedback           MER reads v ∘ (v + y_MEN U)  (MEN -> MER)
``"mer"``       MTL-MER_feedback           MEN reads v ∘ (v + y_MER U') (MER -> MEN)
``"both"``      MTL-MEN&MER_feedback       both of the above
==============  =========================  ==========================================

i.e. the name says whose output is fed back. With one task (``tasks=("mer",)`` or ``("men",)``) the
same class is the pipeline baseline: ``use_chars`` and ``decoder`` give Bi-LSTM, Bi-LSTM-CRF,
Bi-LSTM-CNNs and Bi-LSTM-CNNs-CRF (``config.name`` prints the row).

The feedback loop ("both") is circular -- MER needs MEN's output and vice versa -- and the paper
starts it with a uniform feedback. We implement it as rounds: in round 0 a receiving head reads
``y = 1/|L_other|`` for every tag; in round r > 0 it reads the other head's round r-1 output.
Losses and predictions use round ``config.feedback_rounds`` (default 1). A head that receives no
feedback is computed once and its output is used directly (so "men" needs no uniform round).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mernlib.models.crf import CRF, FactorisedCRF
from mernlib.vocab import PAD, UNK, Batch, CharVocab, TagVocab, Vocab, encode_batch, length_bucketed_batches

VARIANTS = {
    "none": "MTL",
    "men": "MTL-MEN_feedback",
    "mer": "MTL-MER_feedback",
    "both": "MTL-MEN&MER_feedback",
}
FORMAT = "mernlib.mtl_feedback/2"  # /2: BIO-constrained (factorised) CRFs, per-direction LSTMs (issue #12)


@dataclass
class MTLConfig:
    """Hyper-parameters of :class:`MultiTaskTagger` and of its training run.

    From the paper: char embeddings of 30 dimensions, a character CNN, k = 3 Bi-LSTM layers, dropout
    0.5 on the Bi-LSTM input and output, SGD with lr 0.001 and momentum 0.9, 20 epochs, a random
    task per step. Where the paper is silent we chose (and say why):

    * ``word_dim=100``, ``hidden_size=100`` per direction (so v has 200 dims): the usual sizes of
      the Bi-LSTM-CNNs-CRF taggers the paper builds on (Lample et al. 2016; Ma & Hovy 2016).
    * ``char_filters=30``, ``char_width=3``, no non-linearity after the convolution (max-pooling is
      the non-linearity), as in Ma & Hovy 2016.
    * ``lstm_layer_dropout=0.0``: the paper's figure puts dropout only on the Bi-LSTM's input and
      output, not between the stacked layers.
    * ``batch_size=32``: not stated; 32 keeps a CPU epoch on NCBI-sized data under a minute.
    * ``loss_reduction="sum"``, ``grad_clip=200``: the loss of a batch is the *sum* of its sentences'
      negative log-likelihoods. With SGD at lr 0.001 this makes one batch step as large as the
      per-sentence steps of the Bi-LSTM-CRF codebases the paper builds on. Measured on NCBI (1,500
      training sentences, Bi-LSTM-CNNs-CRF for MER): with the mean and a clip at norm 5, dev F1 stayed
      0.00 after 3 epochs; with the sum and no clip it reached 0.28 after 2 epochs (Adam with the mean:
      0.26). The paper mentions no clipping, but the feedback models then diverged in their first
      epoch (gradient norms jumping from ~10^2 to 10^5: U and the head feed each other); a clip at
      global norm 200 leaves ordinary steps (norms ~40-500) nearly untouched and stops that.
    * Feedback signal ``y``: ``feedback_signal="prob"`` reads y as the other head's per-token
      probability vector, ``softmax`` of its emissions (for a CRF head too: exact CRF marginals would
      need a forward-backward pass over ~1,500 MEN tags per step). The paper calls y log-probability
      vectors, and ``"logprob"`` does that; but its first feedback, 1/|L| per tag, is a probability
      vector, and with log-probabilities (entries near -7 over 1,444 MEN tags) the paper's unclipped
      SGD diverged on NCBI in the first epoch (MEN loss NaN, measured 2026-11-22), while a probability
      vector keeps ``y U`` a convex combination of U's rows. So probabilities are the default. The first feedback is the uniform vector ``1/|L_other|`` exactly as the
      paper says, whatever the signal: note that any constant y makes ``y U`` the same vector at
      every token (a learned bias), so round 0 carries no token-specific information either way.
    * ``feedback_detach=True``: y is computed in the same forward pass but treated as an input (no
      gradient into the other head). The paper's protocol updates the shared layers and *the
      sampled task's* head at each step; without detaching, the MER loss would also move the MEN
      head. It is also cheaper.
    * ``U`` starts at zero, so a feedback model starts as plain MTL (``v + yU = v``): with the
      log-probability signal (entries around -log 1500 = -7.3) a random U would add a large random
      offset to v at initialisation.
    * CRF heads are **BIO-constrained** (``crf_constraints=True``): ``I-X`` only after ``B-X`` or
      ``I-X`` and never first, in training and in decoding alike (the paper does not say; the
      constraints only remove tag sequences that mean nothing in BIO). ``crf_structure="auto"`` gives a
      dense transition matrix to a head with at most 64 tags (MER's type-level tags: 3 on NCBI-disease)
      and the factorised transitions of :class:`~mernlib.models.crf.FactorisedCRF` above (MEN's concept
      tags: 1,230), whose forward algorithm and Viterbi cost O(T * L) instead of O(T * L^2); see
      :mod:`mernlib.models.crf` for what the factorisation keeps and drops. ``"full"`` /
      ``"factorised"`` force one structure; ``crf_constraints=False`` is the unconstrained dense CRF.
    * ``crf_top_k=None``: decoding is **exact**, and the same at dev selection and at test. An integer
      opts into the old pruned Viterbi of the dense CRF (each token keeps its k best tags by emission;
      not allowed with the factorised CRF, which has nothing to prune). It is an approximation that
      ignores the transitions: with k = 32 on a 2-epoch MEN model, NCBI dev, it dropped the gold I- tag
      at 37.5% of gold I- positions, and MEN F1 went from 0.109 (exact) to 0.066 (issue #12).
    * ``emission_prior_init=False``: each head's emission bias starts as PyTorch's default (small,
      uniform at random), as the paper implies. ``True`` sets it to the log of each tag's training
      frequency (add-one smoothed), so an untrained head already predicts the tag prior -- ``O`` almost
      everywhere -- instead of a near-uniform guess over ~1,200 MEN tags (the "init well" habit). The
      men-convergence study (:func:`mernlib.experiments.mtl.men_convergence`, notebook 03) measures it.
    * ``concept_descriptor_dim=0``: each MEN tag has its own emission row, trained only by the mentions of
      its concept, as in the paper. The MEN convergence study found that concepts seen 1-5 times in
      training get dev recall 0 that way. A positive value is a kit deviation (off by default): the MEN
      head's rows share what their concepts have in common, ``W = W_free + D A``, with ``D`` a fixed
      descriptor of each tag's concept of this size (:class:`ConceptSharedLinear`; the descriptors are
      given to :meth:`MultiTaskTagger.build`).
    * ``softmax`` decoder loss: token cross-entropy summed over a sentence, on the same scale as the
      CRF's per-sentence negative log-likelihood, and reduced over the batch like it.
    """

    tasks: tuple[str, ...] = ("mer", "men")
    feedback: str = "both"
    feedback_rounds: int = 1
    feedback_signal: str = "prob"
    feedback_detach: bool = True
    decoder: str = "crf"
    crf_constraints: bool = True
    crf_structure: str = "auto"
    crf_top_k: int | None = None
    use_chars: bool = True
    word_dim: int = 100
    char_dim: int = 30
    char_filters: int = 30
    char_width: int = 3
    hidden_size: int = 100
    num_layers: int = 3
    dropout: float = 0.5
    lstm_layer_dropout: float = 0.0
    word_min_freq: int = 1
    lowercase: bool = False
    normalize_digits: bool = False
    # training (read by mernlib.train.fit)
    optimizer: str = "sgd"
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 20
    patience: int | None = None  # stop after this many epochs without a better dev score (None: never)
    batch_size: int = 32
    loss_reduction: str = "sum"
    grad_clip: float | None = 200.0
    emission_prior_init: bool = False
    concept_descriptor_dim: int = 0
    seed: int = 13

    def __post_init__(self):
        self.tasks = tuple(self.tasks)
        if not self.tasks or not set(self.tasks) <= {"mer", "men"} or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks must be a non-empty subset of ('mer', 'men'), not {self.tasks}")
        if self.feedback not in VARIANTS:
            raise ValueError(f"feedback must be one of {sorted(VARIANTS)}, not {self.feedback!r}")
        if self.feedback != "none" and len(self.tasks) != 2:
            raise ValueError("feedback needs both tasks; use feedback='none' for a single-task tagger")
        if self.decoder not in ("crf", "softmax"):
            raise ValueError(f"decoder must be 'crf' or 'softmax', not {self.decoder!r}")
        if self.feedback_signal not in ("logprob", "prob"):
            raise ValueError(f"feedback_signal must be 'logprob' or 'prob', not {self.feedback_signal!r}")
        if self.loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', not {self.loss_reduction!r}")
        if self.feedback_rounds < 1:
            raise ValueError("feedback_rounds must be >= 1")
        if self.crf_structure not in ("auto", "full", "factorised"):
            raise ValueError(f"crf_structure must be auto|full|factorised, not {self.crf_structure!r}")
        if self.concept_descriptor_dim < 0:
            raise ValueError(f"concept_descriptor_dim must be >= 0, not {self.concept_descriptor_dim}")
        if self.crf_structure == "factorised" and not self.crf_constraints:
            raise ValueError("the factorised CRF is built on the BIO constraints: crf_constraints=True")

    @property
    def name(self) -> str:
        """The paper's row name, e.g. ``MTL-MEN&MER_feedback + Bi-LSTM-CNNs-CRF``."""
        base = "Bi-LSTM" + ("-CNNs" if self.use_chars else "") + ("-CRF" if self.decoder == "crf" else "")
        if len(self.tasks) == 1:
            return f"{base} ({self.tasks[0].upper()} only)"
        return f"{VARIANTS[self.feedback]} + {base}"

    def receives_feedback(self, task: str) -> bool:
        """True if ``task``'s head reads the other task's output (see the table in the module docstring)."""
        giver = {"mer": "men", "men": "mer"}[task]
        return self.feedback == "both" or self.feedback == giver


def get_default_config(**overrides) -> MTLConfig:
    """The headline model (MTL-MEN&MER_feedback + Bi-LSTM-CNNs-CRF), with ``overrides`` applied."""
    return MTLConfig(**overrides)


def _uniform_init_(weight: torch.Tensor) -> torch.Tensor:
    """Embedding init uniform in ±sqrt(3/dim) (variance 1/dim), as for the char embeddings in the paper."""
    bound = math.sqrt(3.0 / weight.shape[1])
    with torch.no_grad():
        weight.uniform_(-bound, bound)
    return weight


class CharCNN(nn.Module):
    """Character-level word features: c_ij = char embedding; r_i = max_j (Conv(dropout(c_i)))_j.

    Padded character slots are excluded from the max; a padding *token* (no characters) gets zeros.
    """

    def __init__(
        self, num_chars: int, char_dim: int = 30, filters: int = 30, width: int = 3, dropout: float = 0.5
    ):
        super().__init__()
        self.embed = nn.Embedding(num_chars, char_dim, padding_idx=PAD)
        _uniform_init_(self.embed.weight)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(char_dim, filters, kernel_size=width, padding=width // 2)
        self.out_dim = filters

    def forward(self, chars: torch.Tensor, spelling: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, W]`` -> ``[B, T, filters]``. ``spelling`` (``[B, T]``, optional): ids such that two
        tokens with the same id have the same characters. In eval mode (no dropout) a token's features
        depend on its characters alone, so then each distinct spelling is computed once and copied: an
        inference batch of NCBI text has about 2.5 tokens per distinct word."""
        B, T, W = chars.shape
        flat = chars.reshape(B * T, W)
        if spelling is None or self.training:
            return self.word_features(flat).reshape(B, T, -1)
        distinct, inverse = torch.unique(spelling.reshape(-1), return_inverse=True)
        first = torch.empty(len(distinct), dtype=torch.long).scatter_(0, inverse, torch.arange(B * T))
        return self.word_features(flat[first])[inverse].reshape(B, T, -1)

    def word_features(self, chars: torch.Tensor) -> torch.Tensor:  # [N, W] -> [N, filters]
        W = chars.shape[1]
        x = self.dropout(self.embed(chars)).transpose(1, 2)  # [N, char_dim, W]
        h = self.conv(x)[:, :, :W]  # [N, filters, W] (even widths give one extra column)
        pad = (chars == PAD).unsqueeze(1)
        h = h.masked_fill(pad, float("-inf")).max(2).values
        return h.masked_fill(torch.isinf(h), 0.0)  # tokens without any character


class WordRepresentation(nn.Module):
    """x_i = w_i ∘ r_i: word embedding concatenated with the char-CNN features (if ``char_cnn``)."""

    def __init__(
        self,
        num_words: int,
        word_dim: int,
        char_cnn: CharCNN | None = None,
        pretrained: torch.Tensor | None = None,
        ids_name_spellings: bool = False,
    ):
        super().__init__()
        # True when a known word's id stands for one spelling (a vocabulary that neither lowercases nor
        # maps digits): then the char CNN may compute each word once per batch at inference
        self.ids_name_spellings = ids_name_spellings
        self.embed = nn.Embedding(num_words, word_dim, padding_idx=PAD)
        if pretrained is not None:
            if tuple(pretrained.shape) != (num_words, word_dim):
                raise ValueError(
                    f"pretrained matrix is {tuple(pretrained.shape)}, expected {(num_words, word_dim)}"
                )
            with torch.no_grad():
                self.embed.weight.copy_(pretrained)
        else:
            _uniform_init_(self.embed.weight)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.char_cnn = char_cnn
        self.out_dim = word_dim + (char_cnn.out_dim if char_cnn is not None else 0)

    def forward(self, words: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(words)
        if self.char_cnn is not None:
            if chars is None:
                raise ValueError("this model uses characters: build batches with a char vocab")
            x = torch.cat([x, self.char_cnn(chars, self._spelling(words))], dim=-1)
        return x

    def _spelling(self, words: torch.Tensor) -> torch.Tensor | None:
        """Ids that name each token's characters: the word id, except that every unknown word (UNK) is
        its own spelling; ``None`` if word ids do not name spellings."""
        if not self.ids_name_spellings:
            return None
        own = self.embed.num_embeddings + torch.arange(words.numel()).view_as(words)
        return torch.where(words == UNK, own, words)


class BiLSTMEncoder(nn.Module):
    """v_i = h→_i ∘ h←_i: a k-layer Bi-LSTM, dropout on its input and on its output.

    The paper writes ∘ for the joining of the two directions; as in every Bi-LSTM tagger it is the
    concatenation of the forward and backward states, so ``out_dim = 2 * hidden_size``; layer l + 1
    reads the concatenation of layer l's two directions. These are the equations of
    ``nn.LSTM(bidirectional=True, num_layers=k)`` over packed sequences (the backward direction starts
    at each sentence's last real token, never at the padding) -- tests/test_mtl_feedback.py checks that
    this module gives the same numbers with the same weights.

    How, and why not packed: each layer is two one-direction ``nn.LSTM`` s run over the *padded*
    batch. The forward one reads the tokens left to right, so padding (always at the end) comes after
    every real token and cannot change them. For the backward one each sentence is reversed *within its
    own length* (``[a, b, c, pad]`` -> ``[c, b, a, pad]``), run left to right, and reversed back: again
    padding comes last. On the CPU a packed LSTM runs one matrix product per time step on a shrinking
    batch, and its backward pass turned every per-step slice into a zero-filled full-size gradient
    (``SliceBackward``, a quarter of an NCBI training epoch); batches from
    :func:`mernlib.vocab.length_bucketed_batches` have nearly equal lengths, so the padded steps cost
    little. Outputs at padding positions are set to 0, as ``pad_packed_sequence`` gives.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int = 100,
        num_layers: int = 3,
        dropout: float = 0.5,
        layer_dropout: float = 0.0,
    ):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.layer_dropout = nn.Dropout(layer_dropout if num_layers > 1 else 0.0)  # between layers
        dims = [input_dim] + [2 * hidden_size] * (num_layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(d, hidden_size, batch_first=True) for d in dims)
        self.backward_lstms = nn.ModuleList(nn.LSTM(d, hidden_size, batch_first=True) for d in dims)
        self.out_dim = 2 * hidden_size

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        reverse = _reverse_within_length(mask)
        h = self.dropout(x)
        for layer, (fwd, bwd) in enumerate(zip(self.forward_lstms, self.backward_lstms, strict=True)):
            if layer > 0:
                h = self.layer_dropout(h)
            h_fwd, _ = fwd(h)
            h_bwd, _ = bwd(_take_time(h, reverse))
            h = torch.cat([h_fwd, _take_time(h_bwd, reverse)], dim=-1)
        return self.dropout(h * mask.unsqueeze(-1).to(h.dtype))

    def load_bidirectional_lstm_(self, lstm: nn.LSTM) -> BiLSTMEncoder:
        """Copy the weights of an ``nn.LSTM(bidirectional=True, batch_first=True)`` with the same sizes
        (layer l's ``*_l{l}`` weights -> ``forward_lstms[l]``, ``*_l{l}_reverse`` -> ``backward_lstms[l]``)."""
        with torch.no_grad():
            for layer, (fwd, bwd) in enumerate(zip(self.forward_lstms, self.backward_lstms, strict=True)):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(fwd, f"{name}_l0").copy_(getattr(lstm, f"{name}_l{layer}"))
                    getattr(bwd, f"{name}_l0").copy_(getattr(lstm, f"{name}_l{layer}_reverse"))
        return self


def _reverse_within_length(mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` time indices that reverse each sentence within its length and leave padding in place."""
    T = mask.shape[1]
    t = torch.arange(T, device=mask.device).unsqueeze(0)
    lengths = mask.long().sum(1, keepdim=True)
    return torch.where(t < lengths, lengths - 1 - t, t)


def _take_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b, t]]`` for ``x`` ``[B, T, D]``."""
    return x.gather(1, index.unsqueeze(2).expand_as(x))


class Feedback(nn.Module):
    """v_task = v ∘ (v + y_other U), with U a learned ``|L_other| x dim`` matrix (zero-initialised).

    ``y_other`` is ``[B, T, |L_other|]``: the other task's per-token log-probabilities (or
    probabilities), or :meth:`uniform` for the first round.
    """

    def __init__(self, dim: int, num_other_tags: int):
        super().__init__()
        self.num_other_tags = num_other_tags
        self.U = nn.Parameter(torch.zeros(num_other_tags, dim))
        self.out_dim = 2 * dim

    def uniform(self, v: torch.Tensor) -> torch.Tensor:
        """The first feedback: 1/|L_other| for every tag of every token."""
        return v.new_full((*v.shape[:2], self.num_other_tags), 1.0 / self.num_other_tags)

    def forward(self, v: torch.Tensor, y_other: torch.Tensor | None) -> torch.Tensor:
        """``y_other=None`` means the uniform first feedback; then ``y U = (1/|L|) sum_l U_l`` is the
        same vector at every token, computed as ``U.mean(0)`` instead of a ``[B*T, |L|]`` product."""
        yU = self.U.mean(0) if y_other is None else y_other @ self.U
        return torch.cat([v, v + yU], dim=-1)

    def shared(self, v: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """``v (W_1 + W_2)^T + b``: the part of :meth:`emissions` that does not depend on ``y_other``, and
        the costly one for MEN (``[B*T, 200] @ [200, 1230]``). Every feedback round of a head adds its
        own ``y`` term to this one product, so inference, which needs MEN in two rounds, computes it once."""
        d = v.shape[-1]
        return F.linear(v, linear.weight[:, :d] + linear.weight[:, d:], linear.bias)

    def emissions(
        self,
        v: torch.Tensor,
        y_other: torch.Tensor | None,
        linear: nn.Linear,
        shared: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``linear(self(v, y_other))`` -- the receiving head's emissions P = (v ∘ (v + yU)) W^T + b --
        computed without forming v_task. Splitting W = [W_1, W_2] by the two halves of v_task,

            P = v W_1^T + (v + yU) W_2^T + b = v (W_1 + W_2)^T + y (U W_2^T) + b,

        the same number by associativity. For MEN (1,230 tags, 3 MER tags fed back) that halves the
        product with the 1,230 x 400 matrix; for MER (3 tags, 1,230 MEN tags fed back) it replaces the
        ``[B*T, 1230] @ [1230, 200]`` product yU by a ``[B*T, 1230] @ [1230, 3]`` one.
        ``shared``: :meth:`shared` of ``v``, if already computed. tests/test_mtl_feedback.py checks it
        against the explicit form."""
        w2 = linear.weight[:, v.shape[-1] :]
        out = self.shared(v, linear) if shared is None else shared
        if y_other is None:  # uniform: yU = mean of U's rows, the same at every token -> a bias
            return out + self.U.mean(0) @ w2.t()
        return torch.addmm(out.flatten(0, -2), y_other.flatten(0, -2), self.U @ w2.t()).view_as(out)


class ConceptSharedLinear(nn.Module):
    """The MEN head's emission layer with rows that share what their concepts have in common:

        W = W_free + D A,        P = v W^T + b

    ``W_free`` and ``b`` are the plain layer's (initialised as ``nn.Linear``), ``D`` is a fixed
    ``|L| x 2e`` matrix -- the row of ``B-c`` is ``[d_c, 0]``, of ``I-c`` ``[0, d_c]``, of ``O`` zeros, with
    ``d_c`` a unit-length descriptor of concept ``c`` (in the MTL experiment: the mean word vector of its
    training mentions) -- and ``A`` a learned ``2e x in`` matrix, zero at the start so that the model
    starts as the paper's. Why: a plain row learns only from its own concept's mentions, so a concept
    seen a few times is never predicted; through ``A`` every mention moves the rows of all concepts whose
    descriptors resemble its own. ``weight`` and ``bias`` behave as ``nn.Linear``'s, so the feedback
    algebra (:class:`Feedback`) and the CRF take this layer unchanged.
    """

    def __init__(self, in_dim: int, num_tags: int, descriptor_dim: int):
        super().__init__()
        self.free = nn.Linear(in_dim, num_tags)
        self.register_buffer("descriptors", torch.zeros(num_tags, 2 * descriptor_dim))
        self.A = nn.Parameter(torch.zeros(2 * descriptor_dim, in_dim))

    @property
    def weight(self) -> torch.Tensor:
        return torch.addmm(self.free.weight, self.descriptors, self.A)

    @property
    def bias(self) -> torch.Tensor:
        return self.free.bias

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return F.linear(v, self.weight, self.bias)

    def set_descriptors(self, tags: Sequence[str], vectors: Mapping[str, torch.Tensor]) -> int:
        """Fill ``D`` from ``vectors`` (concept label -> descriptor) for the tags ``tags`` (in id order,
        BIO); a composite label ``a|b`` takes the mean of its parts. Returns how many concept tags got none
        (their rows stay free alone)."""
        e = self.descriptors.shape[1] // 2
        table = torch.zeros_like(self.descriptors)
        missing = 0
        for i, tag in enumerate(tags):
            prefix, _, label = tag.partition("-")
            if prefix not in ("B", "I") or not label:
                continue
            parts = [torch.as_tensor(vectors[p], dtype=table.dtype) for p in label.split("|") if p in vectors]
            if not parts:
                missing += 1
                continue
            d = torch.stack(parts).mean(0)
            d = d / d.norm().clamp_min(1e-8)
            table[i, (0 if prefix == "B" else e) : (e if prefix == "B" else 2 * e)] = d
        self.descriptors.copy_(table)
        return missing


class TaskHead(nn.Module):
    """Emissions P = v_task W + b, decoded by a softmax per token or by a CRF over the sentence.

    With ``tag_names`` (the head's tags in id order) and ``crf_constraints`` the CRF is BIO-constrained
    and its structure follows ``crf_structure`` (:meth:`mernlib.models.crf.CRF.for_tags`); without, it
    is the plain dense CRF.
    """

    def __init__(
        self,
        in_dim: int,
        num_tags: int,
        decoder: str = "crf",
        crf_top_k: int | None = None,
        reduction: str = "sum",
        tag_names: Sequence[str] | None = None,
        crf_constraints: bool = True,
        crf_structure: str = "auto",
        outside: str = "O",
        descriptor_dim: int = 0,
    ):
        super().__init__()
        self.reduction = reduction
        self.linear = (
            ConceptSharedLinear(in_dim, num_tags, descriptor_dim)
            if descriptor_dim
            else nn.Linear(in_dim, num_tags)
        )
        self.crf = None
        if decoder == "crf":
            if tag_names is not None and crf_constraints:
                if len(tag_names) != num_tags:
                    raise ValueError(f"{len(tag_names)} tag names for {num_tags} tags")
                self.crf = CRF.for_tags(tag_names, structure=crf_structure, outside=outside)
            elif crf_structure == "factorised":
                raise ValueError("the factorised CRF needs the tag names and crf_constraints=True")
            else:
                self.crf = CRF(num_tags)
        if crf_top_k is not None and isinstance(self.crf, FactorisedCRF):
            raise ValueError(
                "crf_top_k prunes the dense CRF only; the factorised CRF decodes exactly in O(T * L)"
            )
        self.crf_top_k = crf_top_k

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.linear(v)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sentence negative log-likelihood, summed (or averaged, ``reduction="mean"``) over the batch."""
        if self.crf is not None:
            return self.crf.neg_log_likelihood(emissions, tags, mask, reduction=self.reduction)
        nll = F.cross_entropy(emissions[mask], tags[mask], reduction="sum")
        return nll / emissions.shape[0] if self.reduction == "mean" else nll

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        if self.crf is not None:
            return self.crf.decode(emissions, mask, top_k=self.crf_top_k)
        best = emissions.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, mask.sum(1).tolist(), strict=True)]


class MultiTaskTagger(nn.Module):
    """Shared word representation + Bi-LSTM, one :class:`TaskHead` per task, optional feedback.

    Build it from training data with :meth:`build`; train with :func:`mernlib.train.fit`
    (which calls :meth:`loss`); tag with :meth:`predict` / :meth:`predict_tags`.
    """

    def __init__(
        self,
        config: MTLConfig,
        vocab: Vocab,
        tag_vocabs: Mapping[str, TagVocab],
        char_vocab: CharVocab | None = None,
        pretrained: torch.Tensor | None = None,
    ):
        super().__init__()
        missing = [t for t in config.tasks if t not in tag_vocabs]
        if missing:
            raise ValueError(f"no TagVocab for task(s) {missing}")
        if config.use_chars and char_vocab is None:
            raise ValueError("use_chars=True needs a char_vocab")
        self.config = config
        self.vocab = vocab
        self.char_vocab = char_vocab if config.use_chars else None
        self.tag_vocabs = {t: tag_vocabs[t] for t in config.tasks}
        c = config
        # Parameters are initialised from config.seed alone (not from the global RNG state).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            char_cnn = (
                CharCNN(len(char_vocab), c.char_dim, c.char_filters, c.char_width, c.dropout)
                if c.use_chars
                else None
            )
            self.word_repr = WordRepresentation(
                len(vocab), c.word_dim, char_cnn, pretrained, not (vocab.lower or vocab.normalize_digits)
            )
            self.encoder = BiLSTMEncoder(
                self.word_repr.out_dim, c.hidden_size, c.num_layers, c.dropout, c.lstm_layer_dropout
            )
            dim = self.encoder.out_dim
            self.feedback = nn.ModuleDict()
            self.heads = nn.ModuleDict()
            for task in c.tasks:
                in_dim = dim
                if c.receives_feedback(task):
                    self.feedback[task] = Feedback(dim, len(self.tag_vocabs[self.other(task)]))
                    in_dim = self.feedback[task].out_dim
                tag_vocab = self.tag_vocabs[task]
                self.heads[task] = TaskHead(
                    in_dim,
                    len(tag_vocab),
                    c.decoder,
                    c.crf_top_k,
                    c.loss_reduction,
                    tag_names=tag_vocab.itos,
                    crf_constraints=c.crf_constraints,
                    crf_structure=c.crf_structure,
                    outside=tag_vocab.outside,
                    descriptor_dim=c.concept_descriptor_dim if task == "men" else 0,
                )

    # -- construction from data ---------------------------------------------------------------
    @classmethod
    def build(
        cls,
        config: MTLConfig,
        sentences: Sequence[Sequence[str]],
        tags: Mapping[str, Sequence[Sequence[str]]],
        keyed_vectors=None,
        extra_words: Sequence[str] = (),
        concept_descriptors: Mapping[str, torch.Tensor] | None = None,
    ) -> MultiTaskTagger:
        """Vocabularies from the training ``sentences`` and ``tags`` (task -> tag lists), word
        embeddings from gensim ``keyed_vectors`` when given (see :func:`mernlib.embeddings.embedding_matrix`).

        ``extra_words`` join the word vocabulary without being training words: pass the words of unseen
        text that have a pretrained vector, so they are looked up instead of becoming UNK.

        ``concept_descriptors`` (concept label -> vector of ``config.concept_descriptor_dim``) fill the MEN
        head's ``D`` when ``config.concept_descriptor_dim`` is set (:class:`ConceptSharedLinear`).
        """
        if config.concept_descriptor_dim and "men" in config.tasks and concept_descriptors is None:
            raise ValueError(
                "config.concept_descriptor_dim is set: give concept_descriptors for the MEN head"
            )
        vocab = Vocab.build(
            sentences,
            min_freq=config.word_min_freq,
            lower=config.lowercase,
            normalize_digits=config.normalize_digits,
        )
        for word in extra_words:
            vocab.add(word)
        char_vocab = CharVocab.build(sentences) if config.use_chars else None
        tag_vocabs = {t: TagVocab.build(tags[t]) for t in config.tasks}
        pretrained = None
        if keyed_vectors is not None:
            from mernlib.embeddings import embedding_matrix

            pretrained, _ = embedding_matrix(vocab, keyed_vectors, dim=config.word_dim, seed=config.seed)
        model = cls(config, vocab, tag_vocabs, char_vocab, pretrained)
        if config.concept_descriptor_dim and "men" in config.tasks:
            with torch.no_grad():
                model.heads["men"].linear.set_descriptors(tag_vocabs["men"].itos, concept_descriptors)
        if config.emission_prior_init:
            model.init_emission_prior(tags)
        return model

    @torch.no_grad()
    def init_emission_prior(self, tags: Mapping[str, Sequence[Sequence[str]]]) -> None:
        """Set each head's emission bias b to log p(tag), the tag frequencies of ``tags`` (task -> tag
        lists) with one added to every count; see ``MTLConfig.emission_prior_init``."""
        for task in self.config.tasks:
            vocab = self.tag_vocabs[task]
            counts = Counter(t for seq in tags[task] for t in seq)
            freq = torch.tensor([counts[t] + 1.0 for t in vocab.itos])
            self.heads[task].linear.bias.copy_((freq / freq.sum()).log())

    @staticmethod
    def other(task: str) -> str:
        return {"mer": "men", "men": "mer"}[task]

    def make_batch(
        self,
        sentences: Sequence[Sequence[str]],
        tags: Mapping[str, Sequence[Sequence[str]]] | None = None,
        train: bool = True,
        index: list[int] | None = None,
    ) -> Batch:
        tags = {t: s for t, s in (tags or {}).items() if t in self.tag_vocabs}
        return encode_batch(
            sentences, self.vocab, self.char_vocab, tags, self.tag_vocabs, train=train, index=index
        )

    def make_batches(
        self,
        sentences: Sequence[Sequence[str]],
        tags: Mapping[str, Sequence[Sequence[str]]] | None = None,
        batch_size: int | None = None,
        shuffle: bool = False,
        generator: torch.Generator | int | None = None,
        train: bool = True,
    ) -> list[Batch]:
        """Length-bucketed batches (see :func:`mernlib.vocab.length_bucketed_batches`)."""
        groups = length_bucketed_batches(
            [len(s) for s in sentences], batch_size or self.config.batch_size, shuffle, generator
        )
        tags = tags or {}
        return [
            self.make_batch(
                [sentences[i] for i in g],
                {t: [seqs[i] for i in g] for t, seqs in tags.items()},
                train,
                index=g,
            )
            for g in groups
        ]

    # -- forward ------------------------------------------------------------------------------
    def encode(self, batch: Batch) -> torch.Tensor:
        """v: the shared ``[B, T, 2 * hidden_size]`` token representations."""
        return self.encoder(self.word_repr(batch.words, batch.chars), batch.mask)

    def forward(self, batch: Batch, tasks: Sequence[str] | None = None, return_feedback: bool = False):
        """Emissions ``{task: [B, T, |L_task|]}`` of the final feedback round.

        With ``return_feedback`` also ``{(task, round): y}``, the feedback vectors each receiving head read.
        """
        v = self.encode(batch)
        memo: dict[tuple[str, int], torch.Tensor] = {}
        used: dict[tuple[str, int], torch.Tensor] = {}
        shared: dict[str, torch.Tensor] = {}  # task -> Feedback.shared(v): one product for every round

        def emissions(task: str, rnd: int) -> torch.Tensor:
            if task not in self.feedback:  # no feedback in: the same output in every round
                rnd = 0
            if (task, rnd) in memo:
                return memo[(task, rnd)]
            if task not in self.feedback:
                out = self.heads[task](v)
            else:
                fb = self.feedback[task]
                other = self.other(task)
                if rnd == 0 and other in self.feedback:
                    y = None  # the first feedback is uniform: 1/|L_other| per tag (see Feedback.forward)
                    if return_feedback:
                        used[(task, rnd)] = fb.uniform(v)
                else:
                    y = self._signal(emissions(other, rnd - 1 if other in self.feedback else 0))
                    used[(task, rnd)] = y
                linear = self.heads[task].linear
                if task not in shared:
                    shared[task] = fb.shared(v, linear)
                out = fb.emissions(v, y, linear, shared[task])  # P = (v ∘ (v + y_other U)) W^T + b
            memo[(task, rnd)] = out
            return out

        final = self.config.feedback_rounds
        out = {t: emissions(t, final) for t in (tasks or self.config.tasks)}
        return (out, used) if return_feedback else out

    def _signal(self, other_emissions: torch.Tensor) -> torch.Tensor:
        y = other_emissions.detach() if self.config.feedback_detach else other_emissions
        return F.softmax(y, dim=-1) if self.config.feedback_signal == "prob" else F.log_softmax(y, dim=-1)

    def loss(self, batch: Batch, task: str) -> torch.Tensor:
        """The ``task`` head's negative log-likelihood (mean over sentences) on ``batch``."""
        emissions = self(batch, tasks=(task,))[task]
        return self.heads[task].loss(emissions, batch.tags[task], batch.mask)

    @torch.no_grad()
    def predict(self, batch: Batch, tasks: Sequence[str] | None = None) -> dict[str, list[list[int]]]:
        """Best tag ids per task (eval mode, the previous train/eval mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            em = self(batch, tasks=tasks)
            return {t: self.heads[t].decode(e, batch.mask) for t, e in em.items()}
        finally:
            self.train(was_training)

    def predict_tags(
        self,
        sentences: Sequence[Sequence[str]],
        batch_size: int = 256,
        max_tokens: int = 8192,
        workers: int | None = None,
    ) -> dict[str, list[list[str]]]:
        """Tag strings per task for every sentence, in the input order.

        Sentences are tagged in order of length, at most ``batch_size`` per batch and at most
        ``max_tokens`` padded tokens (sentences x longest) per batch, so the few long sentences do not
        pad a whole batch of 256 to their length (that left half of an inference batch's slots padding
        on NCBI). Batching does not change any output.

        ``workers`` (default: torch's thread count) batches are tagged at once, each by a thread of its
        own with one torch thread. Why: this model's operations are small (a 100-unit LSTM step, a Viterbi
        step over 1,230 tags), and two torch threads inside each use two cores poorly: on 2,000 NCBI
        sentences, 545 sentences/s that way against 719 with two batches side by side (benchmarks/README.md).
        Each batch is computed alone, so the tags are the same for any ``workers``.
        """
        out: dict[str, list] = {t: [None] * len(sentences) for t in self.config.tasks}
        groups = _inference_groups([len(s) for s in sentences], batch_size, max_tokens)

        def tag(group: list[int]) -> None:
            batch = self.make_batch([sentences[i] for i in group], train=False, index=group)
            for task, paths in self.predict(batch).items():
                for i, path in zip(batch.index, paths, strict=True):
                    out[task][i] = self.tag_vocabs[task].decode(path)

        workers = min(workers or torch.get_num_threads(), len(groups))
        if workers <= 1:
            for group in groups:
                tag(group)
            return out
        was_training = self.training
        self.eval()  # set once here: predict() switching modes from several threads at once would race
        threads_before = torch.get_num_threads()
        try:
            with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                list(pool.map(tag, groups))  # list(): a worker's exception is raised here
        finally:
            torch.set_num_threads(threads_before)
            self.train(was_training)
        return out

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Config, vocabularies and weights in one ``torch.save`` file of plain Python + tensors."""
        torch.save(
            {
                "format": FORMAT,
                "config": asdict(self.config),
                "vocab": self.vocab.to_dict(),
                "char_vocab": None if self.char_vocab is None else self.char_vocab.to_dict(),
                "tag_vocabs": {t: v.to_dict() for t, v in self.tag_vocabs.items()},
                "state_dict": self.state_dict(),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> MultiTaskTagger:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        if ckpt.get("format") == "mernlib.mtl_feedback/1":
            raise ValueError(
                f"{path}: a checkpoint from before the BIO-constrained CRF and the per-direction Bi-LSTM "
                "(format mernlib.mtl_feedback/1); its parameters do not fit this model: retrain it"
            )
        if ckpt.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} checkpoint (format={ckpt.get('format')!r})")
        known = {f.name for f in fields(MTLConfig)}
        config = MTLConfig(**{k: v for k, v in ckpt["config"].items() if k in known})
        char_vocab = CharVocab.from_dict(ckpt["char_vocab"]) if ckpt["char_vocab"] is not None else None
        model = cls(
            config,
            Vocab.from_dict(ckpt["vocab"]),
            {t: TagVocab.from_dict(d) for t, d in ckpt["tag_vocabs"].items()},
            char_vocab,
        )
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
        return model


def _inference_groups(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices sorted by length (stable), cut into groups of at most ``batch_size`` sentences and at most
    ``max_tokens`` padded tokens (a longer sentence alone is still a group)."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if groups and len(groups[-1]) < batch_size and (len(groups[-1]) + 1) * lengths[i] <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
