"""E2EMERN: an annotated implementation of the end-to-end progressive multi-task model of

    Zhou, Cai, Zhang, Yuan. "An End-to-End Progressive Multi-Task Learning Framework for Medical
    Named Entity Recognition and Normalization". ACL 2021.

One shared transformer encoder feeds three task levels of increasing difficulty:

* **low** (NER): tag every word of the sentence X with BIO tags;
* **mid** (MEN as classification): given X and a *standard entity* e (a concept of the entity base,
  represented by its name), decide whether X mentions e -- ``y_m in {0, 1}``;
* **high** (MEN as tagging): tag only the words of X that mention e, fusing the word vectors with e
  through a gate driven by an entity-aware reading of the sentence.

Loss (paper eq. for the total loss): ``L = L_low + lambda * L_mid + mu * L_high``.

Notation below: ``H = [x_1 .. x_n]`` the word vectors of X (one per word, read at its first piece,
see :mod:`mernlib.encoders`), ``d`` the hidden size, ``h_e`` the vector of entity e.

Decisions this implementation takes where the paper leaves room (each is a config switch or
documented at its place):

* **Low-level tags carry the mention type** (``B-Disease``, ``I-Chemical``) so one model serves
  corpora with several types; the high level uses type-free ``B/I/O`` since e fixes the type.
* **Composite mentions** (concept ``D014786|D006311``): one positive sample *per individual ID*, and in
  each the high-level tags mark the whole composite mention (it does mention that ID). NIL (``-1``) and
  empty concepts produce no mid/high sample but keep their low-level tags.
* **Negatives**: ``n_negatives`` concepts per positive, drawn uniformly from the entity base minus the
  concepts the sentence mentions (``negatives="random"``, the paper's); redrawn every epoch. Random
  concepts are mostly trivially wrong (on NCBI, ~45% of the MeSH base are BC5CDR chemicals), so a model
  trained on them learns to reject the unrelated, not to choose among the near-synonyms a retriever
  proposes at test time. ``negatives="retrieved"`` draws them instead from each mention's *retrieved
  candidates* (the concepts a retriever ranks highest for the mention's text, minus the gold ones:
  ``negative_pools`` of :func:`build_samples`), falling back to random ones when a pool runs short --
  the model trains on the choice it is tested on. A sentence without linkable mentions still
  trains the low level (it gets no mid/high sample).
* **Batches are sentences**: a step takes ``batch_size`` sentences and *all* their samples. ``H``
  does not depend on e, so each sentence is encoded once per step, and each distinct entity name once
  per step; ``L_low`` is averaged over the words of the step's sentences (once per sentence per epoch,
  where the paper's per-sample formulation repeats it for every sample of the sentence).
* **Low level** (``low_crf``): the paper tags each word with a softmax; ``low_crf=True`` puts a
  BIO-constrained CRF (:func:`mernlib.models.crf.CRF.for_tags`) on the same emissions, trained with its
  negative log-likelihood per word (the softmax's scale, so lambda and mu keep their meaning) and decoded
  exactly: no ``O I-X`` fragments, and the tag sequence is chosen as a whole.
* **Training goes through the kit's one trainer**, :func:`mernlib.train.fit`: the model exposes
  ``loss(batch, "e2emern")`` (one trainer task; the three levels share every step) and
  :meth:`E2EMERN.train_data` gives the trainer a callable ``generator -> batches`` that redraws the
  negatives every epoch and buckets sentences by length (little padding). The experiment
  (:func:`mernlib.experiments.e2emern.train_model`) selects the epoch on dev (the standard protocol) or
  by the paper's rule -- the lowest training loss -- which its released code applies after training on
  train + dev. This file holds the model only: the protocols live in :mod:`mernlib.experiments.e2emern`.
* **Entity attention as written** (``attention_score="paper"``) is ``alpha_i = softmax_i(W_a [x_i; h_e]
  + b_a)``. With a linear ``W_a`` the ``h_e`` term is the same for every i and cancels in the softmax,
  so the weights do not depend on e (the tests show it). Then ``h_a`` does not depend on e either and
  the mid logit ``W_m [h_e; h_a] + b_m`` is a sum ``f(e) + g(X)``: it cannot model *which* entity goes
  with *which* sentence (on the test's 5 sentences x 6 concepts it plateaus at weighted F1 ~0.77
  where the additive form reaches 1.0). ``attention_score="additive"`` uses
  ``v^T tanh(W_a [x_i; h_e] + b_a)``, which restores the interaction.
  **Decision: the default stays the paper's form.** The kit's E2EMERN row is a reproduction, and a
  reproduction implements the equations as published, flaw included; the additive form is a
  documented fix, run beside it as the variant ``"additive-attention"`` of
  :mod:`mernlib.experiments.e2emern` so that both numbers are shown. Note that the high level
  still sees e through the gate fusion ``H_e * G`` in both forms, so annotation (which multiplies
  mid and high scores) can tell entities apart even with the paper's attention.
* **Annotation** (no gold mentions): the low level finds mentions; each mention's candidate concepts
  (from :mod:`mernlib.candidates`) are scored over the sentence by
  ``score(m, c) = p_mid(X, c) * s_high(m, c)`` where ``s_high`` is the mean, over the mention's words,
  of the high-level probability of the tag that exactly marks the mention (``B`` on its first word,
  ``I`` on the others). The product asks both "does X mention c?" and "is *this* span the mention of
  c?"; with ``use_mid=False`` (``use_high=False``) only the other factor is used. The best candidate
  wins; a composite mention therefore gets one ID.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..corpus import split_concept
from ..encoders import (
    WordEncoder,
    encoder_for,
    encoder_name,
    load_heads,
    read_encoder_model,
    save_encoder_model,
)
from ..tags import SpannedSentence, spans_to_tags, tags_to_spans
from .crf import CRF

HIGH_TAGS = ("O", "B", "I")
TASK = "e2emern"  # the single task name E2EMERN trains under in mernlib.train.fit
NAME_GROUP_PIECES = 256  # padded pieces per encoder call when encoding entity names (encode_names)
_NAME_TOKEN = re.compile(r"\w+|[^\w\s]")
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class E2EMERNConfig:
    """Hyper-parameters (paper values where the paper gives them) and ablation switches."""

    encoder: str | None = None  # None: the bundled MiniLM; a local folder or a hub name otherwise
    max_length: int = 128  # pieces per transformer window (longer sentences are windowed)
    stride: int | None = None  # window stride in pieces (None: half a window)
    dropout: float = 0.1
    lambda_mid: float = 0.125  # lambda, weight of L_mid
    mu_high: float = 0.1  # mu, weight of L_high
    optimizer: str = "adam"
    lr: float = 1e-5  # the encoder's learning rate (the paper's, for every parameter)
    head_lr: float | None = None  # the task layers' (None: same as lr)
    epochs: int = 10
    batch_size: int = 16  # sentences per step (with all their samples)
    n_negatives: int = 1  # negative entities per positive sample
    negatives: str = "random"  # "random": the paper's; "retrieved": from the retriever's top-k (below)
    low_crf: bool = False  # the paper's low level is a softmax per word; True: a BIO-constrained CRF on top
    grad_clip: float | None = 1.0
    seed: int = 13
    # ablations: one class, switches instead of copies
    use_mid: bool = True  # train the mid level (L_mid); off: lambda is ignored
    use_high: bool = True  # train the high level (L_high); off: mu is ignored
    use_gate: bool = True  # high-level fusion by the gate; off: concatenation [h_i; h_e]
    use_attention: bool = True  # entity attention for h_a; off: mean pooling of H
    attention_score: str = "paper"  # "paper": W_a[x;h_e]+b_a ; "additive": v^T tanh(W_a[x;h_e]+b_a)
    progress: bool = True  # tqdm bars in mernlib.train.fit

    def __post_init__(self):
        if self.attention_score not in ("paper", "additive"):
            raise ValueError(f"attention_score must be 'paper' or 'additive', not {self.attention_score!r}")
        if self.negatives not in ("random", "retrieved"):
            raise ValueError(f"negatives must be 'random' or 'retrieved', not {self.negatives!r}")


def get_default_config(**overrides) -> E2EMERNConfig:
    """The default configuration, with ``overrides`` applied (unknown names raise ``TypeError``)."""
    return E2EMERNConfig(**overrides)


# --------------------------------------------------------------------------------------------------
# Data: sentences and (sentence, entity, label) samples
# --------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One training pair: sentence ``sentence`` (an index), entity ``concept`` and mid label ``label``;
    ``high_tags`` marks the mentions of the entity (indices into :data:`HIGH_TAGS`).
    ``concept is None``: the sentence only trains the low level."""

    sentence: int
    concept: str | None
    label: int
    high_tags: list[int] | None


@dataclass
class E2EBatch:
    """What :meth:`E2EMERN.loss` takes: sentences and their samples (``sample.sentence`` indexes
    ``sentences``). Built by :meth:`E2EMERN.make_batches`."""

    sentences: list[SpannedSentence]
    samples: list[Sample]

    def __len__(self) -> int:
        return len(self.sentences)


def _as_spanned(sentence) -> SpannedSentence:
    if isinstance(sentence, SpannedSentence):
        return sentence
    words, spans = sentence
    return SpannedSentence(list(words), [tuple(s) for s in spans])


def low_tags(sentence: SpannedSentence) -> list[str]:
    """BIO tags with types for the low level (overlapping mentions raise ``ValueError``)."""
    return spans_to_tags(len(sentence.words), [(i, j, typ) for i, j, typ, _ in sentence.spans])


def high_tags(sentence: SpannedSentence, concept_id: str) -> list[int]:
    """High-level B/I/O tags: the mentions whose concept string contains ``concept_id``."""
    tags = [0] * len(sentence.words)
    for i, j, _, concept in sentence.spans:
        if concept_id in split_concept(concept):
            tags[i] = 1
            for k in range(i + 1, j):
                tags[k] = 2
    return tags


def build_samples(
    sentences_with_mentions: Sequence,
    entity_names: dict[str, str],
    n_negatives: int,
    rng: random.Random,
    negative_pools: Sequence[dict[tuple[int, int], list[str]]] | None = None,
) -> list[Sample]:
    """Samples for one epoch (call again each epoch to redraw the negatives).

    * one positive ``(X, e, 1)`` per distinct individual ID ``e`` mentioned in X and present in
      ``entity_names`` (a composite mention gives one positive per ID, each marking that mention);
    * ``n_negatives`` negatives ``(X, e', 0)`` per positive, ``e'`` drawn without replacement from
      the entity base minus the IDs X mentions (fewer if the base is too small), all-``O`` high tags;
    * a sentence with no positive gives one low-level-only sample (``concept=None``).

    ``sentences_with_mentions``: :class:`SpannedSentence` objects or ``(words, spans)`` pairs.
    ``negative_pools[s][(i, j)]``: the retrieved candidates of sentence ``s``'s mention ``[i, j)``; when
    given, a positive's negatives are drawn first from its mentions' pools (``negatives="retrieved"``).
    """
    all_ids = sorted(entity_names)
    samples: list[Sample] = []
    for index, raw in enumerate(sentences_with_mentions):
        sentence = _as_spanned(raw)
        mentioned: list[str] = []
        for _, _, _, concept in sorted(sentence.spans):
            for cid in split_concept(concept):
                if cid not in mentioned:
                    mentioned.append(cid)
        positives = [c for c in mentioned if c in entity_names]
        if not positives:
            samples.append(Sample(index, None, 0, None))
            continue
        for cid in positives:
            samples.append(Sample(index, cid, 1, high_tags(sentence, cid)))
        excluded = set(mentioned)
        wanted = n_negatives * len(positives)
        negatives: list[str] = []
        if negative_pools is not None:
            pool = [
                c
                for i, j, _, concept in sorted(sentence.spans)
                for c in negative_pools[index].get((i, j), ())
                if c in entity_names and c not in excluded
            ]
            pool = list(dict.fromkeys(pool))
            negatives = rng.sample(pool, min(wanted, len(pool)))
        negatives += _sample_excluding(all_ids, excluded | set(negatives), wanted - len(negatives), rng)
        for cid in negatives:
            samples.append(Sample(index, cid, 0, [0] * len(sentence.words)))
    return samples


def _sample_excluding(ids: list[str], excluded: set, n: int, rng: random.Random) -> list[str]:
    """``n`` distinct items of ``ids`` not in ``excluded`` (rejection sampling; exact when the pool is small)."""
    if n <= 0:
        return []
    if len(ids) > 4 * (n + len(excluded)):  # large base: rejection sampling, no copy of the base
        chosen: list[str] = []
        seen = set(excluded)
        while len(chosen) < n:
            c = ids[rng.randrange(len(ids))]
            if c not in seen:
                seen.add(c)
                chosen.append(c)
        return chosen
    pool = [c for c in ids if c not in excluded]
    return rng.sample(pool, min(n, len(pool)))


def _name_words(name: str) -> list[str]:
    words = _NAME_TOKEN.findall(name)
    return words or [name]


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


@dataclass
class PredictedMention:
    """A mention found by :meth:`E2EMERN.annotate`: word span ``[start, end)``, type, concept, score,
    and the scores of all candidates (best first)."""

    start: int
    end: int
    type: str
    concept: str
    score: float
    candidates: list[tuple[str, float]] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)  # ID -> rank of the retrieved candidate it came from

    def best_within(self, k: int) -> tuple[str, float]:
        """The best-scored candidate among those retrieved in the top ``k`` (``("", 0.0)`` if none):
        what :meth:`E2EMERN.annotate` with ``k`` would have chosen, read from one run with a larger k."""
        for cid, score in self.candidates:  # best first
            if self.ranks.get(cid, 0) < k:
                return cid, score
        return "", 0.0


class E2EMERN(nn.Module):
    """The three-level model. ``entity_types`` fixes the low-level tag set; ``entity_names`` maps
    concept IDs to the names that represent them (set by :meth:`fit`, needed for inference)."""

    def __init__(
        self,
        config: E2EMERNConfig | None = None,
        entity_types: Iterable[str] = ("Disease",),
        encoder: WordEncoder | None = None,
        entity_names: dict[str, str] | None = None,
    ):
        super().__init__()
        config = config if config is not None else get_default_config()
        if encoder is not None:  # a given encoder brings its windowing: the config records it (save/load)
            config = dataclasses.replace(
                config, max_length=encoder.aligner.max_length, stride=encoder.aligner.stride
            )
        self.config = dataclasses.replace(config)  # the model's own copy
        self.entity_types = sorted(set(entity_types))
        self.low_tags = ["O"] + [f"{p}-{t}" for t in self.entity_types for p in ("B", "I")]
        self.low_index = {t: i for i, t in enumerate(self.low_tags)}
        self.entity_names: dict[str, str] = dict(entity_names or {})
        self._entity_cache: dict[str, torch.Tensor] = {}
        self.loss_meter: dict[str, float] = {}  # sums of the loss parts since the last epoch end
        # parameters come from config.seed alone, never from (nor moving) the global RNG state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self._build(encoder_for(self.config, encoder, record=False))

    def _build(self, encoder: WordEncoder) -> None:
        self.encoder = encoder
        d = encoder.hidden_size
        self.dropout = nn.Dropout(self.config.dropout)
        # low:  P(t_i | X) = softmax(W_l h_i + b_l)
        self.low = nn.Linear(d, len(self.low_tags))
        # mid:  alpha_i = softmax_i(W_a [x_i; h_e] + b_a)      ("paper")
        #       alpha_i = softmax_i(v^T tanh(W_a [x_i; h_e] + b_a))   ("additive")
        if self.config.attention_score == "paper":
            self.att = nn.Linear(2 * d, 1)
        else:
            self.att = nn.Sequential(nn.Linear(2 * d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        #       y_m = sigmoid(W_m [h_e; h_a] + b_m)
        self.mid = nn.Linear(2 * d, 1)
        # high: G = sigmoid(W_g [H; H_a] + b_g);  H_f = H * (1 - G) + H_e * G
        self.gate = nn.Linear(2 * d, d)
        #       P(t_i | X, e) = softmax(W_h h_f_i + b_h)   (h_f = [h_i; h_e] without the gate)
        self.high = nn.Linear(d if self.config.use_gate else 2 * d, len(HIGH_TAGS))
        # low level, optionally: a CRF over the BIO tags (created last: the other layers keep their init)
        self.low_crf = CRF.for_tags(self.low_tags) if self.config.low_crf else None

    # -- encoding -----------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.low.weight.device

    def encode_sentences(self, sentences: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``H`` ``[S, N, d]`` and the word mask ``[S, N]`` (shared encoder, word level)."""
        out = self.encoder(sentences)
        return out.words, out.word_mask.to(self.device)

    def encode_names(self, names: list[str], max_pieces: int | None = None) -> torch.Tensor:
        """``h_e`` ``[E, d]``: mean of the encoder's piece vectors of each entity name (with gradient).

        The names are encoded in groups of similar length (sorted by pieces, at most ``max_pieces``
        padded pieces a group), not as one batch padded to the longest: entity names are 8 pieces long
        at the median and up to 57 (NCBI's entity base), so one padded batch of a training step's ~60
        names was two thirds padding, and encoding them cost more than encoding the sentences."""
        max_pieces = max_pieces or NAME_GROUP_PIECES
        aligner = self.encoder.aligner
        encoded = aligner.encode([_name_words(n) for n in names])
        order = sorted(range(len(names)), key=lambda i: len(encoded[i].piece_ids))
        special = len(aligner.prefix_ids) + len(aligner.suffix_ids)
        groups: list[list[int]] = []
        for i in order:
            width = len(encoded[i].piece_ids) + special
            if groups and (len(groups[-1]) + 1) * width <= max_pieces:
                groups[-1].append(i)
            else:
                groups.append([i])
        if len(groups) <= 1:
            return self.encoder(aligner.collate(encoded)).mean_pieces()
        vectors = torch.cat(
            [self.encoder(aligner.collate([encoded[i] for i in g])).mean_pieces() for g in groups]
        )
        position = torch.empty(len(names), dtype=torch.long)
        position[[i for g in groups for i in g]] = torch.arange(len(names))
        return vectors[position.to(vectors.device)]

    @torch.no_grad()
    def encode_entities(self, names: list[str]) -> torch.Tensor:
        """:meth:`encode_names` for inference: no gradient, eval mode, cached by name (cleared by fit)."""
        was_training = self.training
        self.eval()
        try:
            todo = sorted({n for n in names if n not in self._entity_cache})
            if todo:  # encode_names groups them by length
                for n, vec in zip(todo, self.encode_names(todo), strict=True):
                    self._entity_cache[n] = vec.detach()
        finally:
            self.train(was_training)
        if not names:
            return torch.zeros(0, self.encoder.hidden_size, device=self.device)
        return torch.stack([self._entity_cache[n] for n in names])

    # -- the three levels ---------------------------------------------------------------------------

    def low_logits(self, H: torch.Tensor) -> torch.Tensor:
        """Low level: ``W_l h_i + b_l`` ``[S, N, n_low_tags]``."""
        return self.low(self.dropout(H))

    def entity_attention(self, X: torch.Tensor, mask: torch.Tensor, h_e: torch.Tensor) -> torch.Tensor:
        """``alpha`` ``[M, N]``: softmax over the real words of each sentence; padding gets exactly 0.

        ``use_attention=False`` gives uniform weights over the real words (mean pooling)."""
        if not self.config.use_attention:
            w = mask.to(X.dtype)
            return w / w.sum(1, keepdim=True).clamp(min=1.0)
        E = h_e.unsqueeze(1).expand(-1, X.size(1), -1)  # h_e broadcast over the words
        scores = self.att(torch.cat([X, E], dim=-1)).squeeze(-1)  # W_a [x_i; h_e] + b_a
        scores = scores.masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(scores, dim=-1)
        return torch.nan_to_num(alpha, nan=0.0) * mask.to(alpha.dtype)  # an empty sentence: all 0

    def pair_heads(self, X: torch.Tensor, mask: torch.Tensor, h_e: torch.Tensor) -> dict:
        """Mid and high levels for ``M`` (sentence, entity) pairs: ``X`` ``[M, N, d]``, ``h_e`` ``[M, d]``.

        Returns ``alpha`` ``[M, N]``, ``h_a`` ``[M, d]``, ``mid_logit`` ``[M]``, ``gate`` ``[M, N, d]``
        (``None`` without the gate) and ``high_logits`` ``[M, N, 3]``."""
        X = self.dropout(X)
        alpha = self.entity_attention(X, mask, h_e)
        h_a = torch.einsum("mn,mnd->md", alpha, X)  # h_a = sum_i alpha_i x_i
        mid_logit = self.mid(torch.cat([h_e, h_a], dim=-1)).squeeze(-1)  # y_m = sigmoid(W_m [h_e; h_a] + b_m)
        H_a = h_a.unsqueeze(1).expand_as(X)  # "document reading" broadcast over the words
        H_e = h_e.unsqueeze(1).expand_as(X)
        if self.config.use_gate:
            G = torch.sigmoid(self.gate(torch.cat([X, H_a], dim=-1)))  # G = sigmoid(W_g [H; H_a] + b_g)
            H_f = X * (1 - G) + H_e * G  # H_f = H (.) (1 - G) + H_e (.) G
        else:
            G = None
            H_f = torch.cat([X, H_e], dim=-1)  # ablation: concatenation
        high_logits = self.high(H_f)  # softmax(W_h h_f + b_h)
        return {"alpha": alpha, "h_a": h_a, "mid_logit": mid_logit, "gate": G, "high_logits": high_logits}

    # -- training -----------------------------------------------------------------------------------

    def batch_loss(self, sentences: list[SpannedSentence], samples: list[Sample]) -> dict:
        """``L = L_low + lambda L_mid + mu L_high`` for sentences and their samples (``sample.sentence``
        indexes ``sentences``). Returns the total and the parts (detached floats)."""
        H, mask = self.encode_sentences([s.words for s in sentences])
        S, N = mask.shape
        # L_low: cross-entropy of the BIO tags over the real words
        gold_low = torch.zeros(S, N, dtype=torch.long, device=self.device)
        for k, s in enumerate(sentences):
            tags = low_tags(s)
            if tags:
                gold_low[k, : len(tags)] = torch.tensor([self.low_index[t] for t in tags], device=self.device)
        logits = self.low_logits(H)
        if not mask.any():
            loss_low = logits.sum() * 0
        elif self.low_crf is not None:  # per-word negative log-likelihood, on the scale of the softmax's
            real = mask.any(1)
            nll = self.low_crf.neg_log_likelihood(logits[real], gold_low[real], mask[real], reduction="sum")
            loss_low = nll / mask.sum()
        else:
            loss_low = F.cross_entropy(logits[mask], gold_low[mask])
        total = loss_low
        parts = {"low": float(loss_low.detach())}
        pairs = [s for s in samples if s.concept is not None]
        if pairs and (self.config.use_mid or self.config.use_high):
            names = sorted({self.entity_names[s.concept] for s in pairs})  # each name encoded once per step
            name_index = {n: i for i, n in enumerate(names)}
            h_names = self.encode_names(names)
            sent_idx = torch.tensor([s.sentence for s in pairs], device=self.device)
            ent_idx = torch.tensor(
                [name_index[self.entity_names[s.concept]] for s in pairs], device=self.device
            )
            X, Xmask = H[sent_idx], mask[sent_idx]
            out = self.pair_heads(X, Xmask, h_names[ent_idx])
            if self.config.use_mid:  # L_mid: binary cross-entropy of y_m
                y = torch.tensor([float(s.label) for s in pairs], device=self.device)
                loss_mid = F.binary_cross_entropy_with_logits(out["mid_logit"], y)
                total = total + self.config.lambda_mid * loss_mid
                parts["mid"] = float(loss_mid.detach())
            if self.config.use_high:  # L_high: cross-entropy of the entity's B/I/O tags
                gold_high = torch.zeros(len(pairs), N, dtype=torch.long, device=self.device)
                for k, s in enumerate(pairs):
                    gold_high[k, : len(s.high_tags)] = torch.tensor(s.high_tags, device=self.device)
                loss_high = F.cross_entropy(out["high_logits"][Xmask], gold_high[Xmask])
                total = total + self.config.mu_high * loss_high
                parts["high"] = float(loss_high.detach())
        parts["total"] = float(total.detach())
        return {"loss": total, **parts}

    # -- training through the kit's one trainer (mernlib.train.fit) ---------------------------------

    def loss(self, batch: E2EBatch, task: str = TASK) -> torch.Tensor:
        """The scalar loss :func:`mernlib.train.fit` minimises: ``L = L_low + lambda L_mid + mu L_high``
        of one :class:`E2EBatch`. E2EMERN is a single trainer task (:data:`TASK`): the three levels
        share every step. The parts are accumulated in :attr:`loss_meter` for logging."""
        if task != TASK:
            raise ValueError(f"E2EMERN trains one task, {TASK!r}, not {task!r}")
        self._entity_cache.clear()  # the encoder is about to move: inference-time entity vectors go stale
        out = self.batch_loss(batch.sentences, batch.samples)
        for k, v in out.items():
            if k != "loss":
                self.loss_meter[k] = self.loss_meter.get(k, 0.0) + v
        self.loss_meter["steps"] = self.loss_meter.get("steps", 0) + 1
        return out["loss"]

    def make_batches(
        self,
        sentences: Sequence[SpannedSentence],
        generator: torch.Generator | None = None,
        shuffle: bool = True,
        negative_pools: Sequence[dict] | None = None,
    ) -> list[E2EBatch]:
        """One epoch of batches: samples rebuilt (negatives redrawn, seeded by ``generator``), then
        ``batch_size`` sentences per batch with *all* their samples.

        Length bucketing: sentences are shuffled, cut into pools of 50 batches, sorted by length
        inside each pool and cut into batches, and the batches shuffled -- little padding, yet a
        different grouping every epoch."""
        seed = (
            int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            if generator is not None
            else self.config.seed
        )
        rng = random.Random(seed)
        pools = negative_pools if self.config.negatives == "retrieved" else None
        samples = build_samples(sentences, self.entity_names, self.config.n_negatives, rng, pools)
        by_sentence: dict[int, list[Sample]] = {}
        for s in samples:
            by_sentence.setdefault(s.sentence, []).append(s)
        order = list(by_sentence)
        if shuffle:
            rng.shuffle(order)
        size = self.config.batch_size
        groups: list[list[int]] = []
        pool = size * 50
        for lo in range(0, len(order), pool):
            chunk = order[lo : lo + pool]
            if shuffle:
                chunk = sorted(chunk, key=lambda g: len(sentences[g].words))
            groups.extend(chunk[k : k + size] for k in range(0, len(chunk), size))
        if shuffle:
            rng.shuffle(groups)
        batches = []
        for chosen in groups:
            local = {g: k for k, g in enumerate(chosen)}
            batch_samples = [
                Sample(local[s.sentence], s.concept, s.label, s.high_tags)
                for g in chosen
                for s in by_sentence[g]
            ]
            batches.append(E2EBatch([sentences[g] for g in chosen], batch_samples))
        return batches

    def train_data(self, sentences: Sequence, negative_pools: Sequence[dict] | None = None) -> dict:
        """``{TASK: generator -> batches}`` for :func:`mernlib.train.fit` (negatives redrawn every epoch;
        with ``negatives="retrieved"`` from ``negative_pools``, one dict per sentence)."""
        tagged = [_as_spanned(s) for s in sentences]
        self._check_types(tagged)
        if self.config.negatives == "retrieved" and negative_pools is None:
            raise ValueError(
                "negatives='retrieved' needs negative_pools (the retrieved candidates per mention)"
            )
        return {TASK: lambda generator: self.make_batches(tagged, generator, negative_pools=negative_pools)}

    def _check_types(self, sentences: list[SpannedSentence]) -> None:
        types = {t for s in sentences for _, _, t, _ in s.spans}
        unknown = types - set(self.entity_types)
        if unknown:
            raise ValueError(
                f"mention types {sorted(unknown)} are not in the model's entity_types {self.entity_types}"
            )

    def epoch_loss_parts(self) -> dict[str, float]:
        """The mean of each loss part (low, mid, high, total) over the steps since the last call, which
        starts the next count; the encoder has moved, so cached entity vectors are dropped too."""
        steps = max(self.loss_meter.pop("steps", 0), 1)
        parts = {k: v / steps for k, v in self.loss_meter.items()}
        self.loss_meter.clear()
        self._entity_cache.clear()
        return parts

    # -- inference ----------------------------------------------------------------------------------

    @torch.no_grad()
    def predict_tags(
        self, sentences: list[list[str]], batch_size: int = 32, progress: bool = False
    ) -> list[list[str]]:
        """Low-level BIO tags (with types) of each sentence (batched by length: little padding)."""
        self.eval()
        order = sorted(range(len(sentences)), key=lambda n: len(sentences[n]))
        out: list[list[str]] = [[] for _ in sentences]
        starts = range(0, len(order), batch_size)
        for lo in tqdm(starts, desc="tagging", disable=not progress, leave=False):
            chosen = order[lo : lo + batch_size]
            part = [sentences[n] for n in chosen]
            H, mask = self.encode_sentences(part)
            logits = self.low_logits(H)
            if self.low_crf is not None:
                real = [k for k, words in enumerate(part) if words]  # the CRF needs a word per sentence
                paths = self.low_crf.decode(logits[real], mask[real]) if real else []
                best = dict(zip(real, paths, strict=True))
                for k, n in enumerate(chosen):
                    out[n] = [self.low_tags[t] for t in best.get(k, [])]
                continue
            best = logits.argmax(-1)
            for k, n in enumerate(chosen):
                out[n] = [self.low_tags[t] for t in best[k, : len(part[k])].tolist()]
        return out

    @torch.no_grad()
    def score_pairs(
        self, words_list: list[list[str]], concepts: list[str], batch_size: int = 32, progress: bool = False
    ) -> dict:
        """Mid probability ``[M]`` and high-level tag probabilities (list of ``[n_words, 3]``) for
        (sentence, concept) pairs; each distinct sentence of a batch is encoded once (give the pairs
        grouped by sentence), entity vectors come from the cache."""
        self.eval()
        names = [self._name_of(c) for c in concepts]
        mids, highs = [], []
        starts = range(0, len(words_list), batch_size)
        for lo in tqdm(starts, desc="scoring pairs", disable=not progress, leave=False):
            part = words_list[lo : lo + batch_size]
            keys = [tuple(w) for w in part]
            distinct = list(dict.fromkeys(keys))
            H, mask = self.encode_sentences([list(k) for k in distinct])
            where = {k: i for i, k in enumerate(distinct)}
            idx = torch.tensor([where[k] for k in keys], device=self.device)
            out = self.pair_heads(H[idx], mask[idx], self.encode_entities(names[lo : lo + batch_size]))
            mids.append(torch.sigmoid(out["mid_logit"]).cpu())
            probs = torch.softmax(out["high_logits"], -1).cpu()
            highs.extend(probs[k, : len(w)] for k, w in enumerate(part))
        mid = torch.cat(mids) if mids else torch.zeros(0)
        return {"mid": mid, "high": highs}

    def _name_of(self, concept: str) -> str:
        try:
            return self.entity_names[concept]
        except KeyError:
            raise KeyError(f"concept {concept!r} has no name in model.entity_names") from None

    @torch.no_grad()
    def find_mentions(
        self, sentences: list[list[str]], batch_size: int = 32, progress: bool = False
    ) -> list[list[tuple[int, int, str]]]:
        """The low level's mentions of each sentence: word spans ``(i, j, type)`` (conlleval decoding: a
        stray ``I-`` starts a mention)."""
        return [tags_to_spans(ts) for ts in self.predict_tags(sentences, batch_size, progress)]

    @torch.no_grad()
    def rank(
        self,
        sentences: list[list[str]],
        mentions: list[list[tuple[int, int, str]]],
        candidate_lists: list[list],
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[list[PredictedMention]]:
        """Score each mention's candidates with the mid and high levels (see the module docstring) and
        order them, best first. ``candidate_lists`` holds, for every mention in sentence order, its
        retrieved candidates (concept IDs or ``(ID, score)``; concept strings are split into IDs; IDs
        without a name in ``entity_names`` are skipped); every (sentence, candidate) pair is scored once.
        Each mention keeps its candidates' retrieval ranks (:meth:`PredictedMention.best_within`)."""
        cand_lists, rank_lists = [], []
        for cands in candidate_lists:
            ids: list[str] = []
            ranks: dict[str, int] = {}
            for rank, c in enumerate(cands):
                cid = c[0] if isinstance(c, tuple) else c
                for one in split_concept(cid):
                    if one in self.entity_names and one not in ranks:
                        ids.append(one)
                        ranks[one] = rank
            cand_lists.append(ids)
            rank_lists.append(ranks)
        pair_keys: list[tuple[int, str]] = []
        flat = 0
        for s, spans in enumerate(mentions):
            for _ in spans:
                pair_keys.extend((s, cid) for cid in cand_lists[flat])
                flat += 1
        if flat != len(candidate_lists):
            raise ValueError(f"{len(candidate_lists)} candidate lists for {flat} mentions")
        pair_keys = list(dict.fromkeys(pair_keys))
        scored = self.score_pairs(
            [sentences[s] for s, _ in pair_keys], [c for _, c in pair_keys], batch_size, progress
        )
        pair_pos = {key: n for n, key in enumerate(pair_keys)}
        results: list[list[PredictedMention]] = []
        flat = 0
        for s, spans in enumerate(mentions):
            row = []
            for i, j, typ in spans:
                ids, ranks = cand_lists[flat], rank_lists[flat]
                flat += 1
                scores = []
                for cid in ids:
                    n = pair_pos[(s, cid)]
                    scores.append((cid, self._combine(float(scored["mid"][n]), scored["high"][n], i, j)))
                scores.sort(key=lambda cs: -cs[1])  # stable: ties keep the candidate order
                best = scores[0] if scores else ("", 0.0)
                row.append(PredictedMention(i, j, typ, best[0], best[1], scores, ranks))
            results.append(row)
        return results

    @torch.no_grad()
    def annotate(
        self,
        sentences: list[list[str]],
        candidates_per_mention,
        k: int = 10,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[list[PredictedMention]]:
        """Find and normalize the mentions of raw word sequences: :meth:`find_mentions`, then each
        mention's top ``k`` candidates by its text, then :meth:`rank`.

        ``candidates_per_mention``: anything with ``top_k_batch(texts, k)`` (a
        :class:`~mernlib.candidates.CandidateGenerator`, a fitted :class:`~mernlib.normalize.Normalizer`),
        or a callable ``mention_text -> [concept_id | (concept_id, score), ...]``. A mention without
        candidates gets concept ``''``.
        """
        found = self.find_mentions(sentences, batch_size, progress)
        texts = [" ".join(sentences[s][i:j]) for s, spans in enumerate(found) for i, j, _ in spans]
        if hasattr(candidates_per_mention, "top_k_batch"):
            raw = candidates_per_mention.top_k_batch(texts, k)
        else:
            raw = [list(candidates_per_mention(t))[:k] for t in texts]
        return self.rank(sentences, found, raw, batch_size, progress)

    def _combine(self, p_mid: float, high_probs: torch.Tensor, i: int, j: int) -> float:
        """``score = p_mid * s_high`` with ``s_high = mean_k P_high(gold tag_k)`` over the span ``[i, j)``."""
        tag = torch.full((j - i,), HIGH_TAGS.index("I"), dtype=torch.long)
        tag[0] = HIGH_TAGS.index("B")
        s_high = float(high_probs[i:j].gather(1, tag.unsqueeze(1)).mean())
        if not self.config.use_high:
            return p_mid
        if not self.config.use_mid:
            return s_high
        return p_mid * s_high

    # -- persistence --------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` (config, types, entity names), ``encoder/`` (transformer + tokenizer,
        fine-tuned) and ``heads.pt`` (the task layers) to ``directory``."""
        meta = {
            "format": FORMAT_VERSION,
            "model": "E2EMERN",
            "config": asdict(self.config),
            "encoder_name": encoder_name(self.config.encoder),
            "entity_types": self.entity_types,
            "entity_names": self.entity_names,
        }
        return save_encoder_model(self, directory, meta)

    @classmethod
    def load(cls, directory: str | Path, map_location="cpu") -> E2EMERN:
        """The model written by :meth:`save` (local files only), in eval mode."""
        meta, config, build_encoder = read_encoder_model(directory, E2EMERNConfig)
        model = cls(config, meta["entity_types"], build_encoder(), meta["entity_names"])
        return load_heads(model, directory, map_location)
