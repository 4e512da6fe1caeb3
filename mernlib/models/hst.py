"""Hierarchical shared transfer (HST) for biomedical NER (Chai, Jin, Shi, Zhan, Zhuo & Yang, BMC
Bioinformatics 23:8, 2022) -- the kit's *reading* of it: configuration, modules, model, save/load.

What the paper says: an XLNet-CRF tagger; "hierarchical shared transfer combines multi-task learning
and fine-tuning, and realizes the multi-level information fusion between the underlying entity
features and the upper data features"; 14 datasets of 4 entity types (chemical, disease,
gene/protein, species). No code was published, so the layers below are our reading, stated here and
switchable in :class:`HSTConfig` so that every choice can be ablated in a notebook::

    words ──> WordEncoder (shared by every dataset)        h_i          bottom: one encoder
          ──> TypeLayer[type of the dataset]               t_i          middle: "entity features"
                 └─> TypeHead: CRF over O/B-type/I-type                 (trained on the union of
                                                                         all datasets of the type)
          ──> DatasetHead[dataset]:  d_i = tanh(W_d h_i)                top: "data features"
                 fusion: gate  f_i = g_i * d_i + (1 - g_i) * t_i,  g_i = sigmoid(W_g [d_i; t_i] + b_g)
                         concat f_i = [d_i; t_i]
                 emissions W_e f_i + b_e ──> CRF over *this dataset's* tags

Readings and choices (each with its reason):

* **Bottom.** One :class:`~mernlib.encoders.WordEncoder` for all datasets; a word's vector is its
  first piece (the kit's alignment, windowing for long sentences). Default encoder: the offline
  MiniLM; any local ``AutoModel`` folder (BioBERT, an XLNet checkpoint...) via ``config.encoder``.
  An encoder object may be given instead; its windowing is then recorded in the model's config.
* **Middle = entity-type level.** One :class:`TypeLayer` per coarse type (the registry's groups:
  chemical, disease, gene-protein, species). Every dataset's tags are mapped to the type-level set
  ``O / B-<type> / I-<type>`` (:func:`type_level_tags`) and a :class:`TypeHead` is trained on *every*
  batch of *every* dataset of that type, so the type layer sees the union of those datasets. The
  layer is ``linear + tanh`` by default (``type_layer="bilstm"`` for a small BiLSTM): the transformer
  already contextualises each word, and this layer runs on every batch, so a cheap per-word map is
  enough to carve type-specific features; the BiLSTM is there for readers who want sequential
  type features. The type head is a **CRF** by default (``type_head="softmax"`` also available): with
  three tags it costs almost nothing, and it keeps the XLNet-CRF design at every output.
* **Top = dataset level.** One :class:`DatasetHead` per dataset: its own feature layer ``d`` (the
  "data features": annotation guidelines differ between datasets of one type, e.g. BC2GM ``GENE``
  vs BioNLP ``Protein``), fusion with the type features, and a CRF whose tag vocabulary is exactly
  the dataset's own tags. A batch of dataset A only ever reaches A's head (:meth:`HSTTagger.loss`
  refuses a batch under another dataset's name).
* **Fusion.** ``fusion="gate"`` (default) or ``"concat"``. The gate learns, per dimension and per
  word, how much to trust the shared type features against the dataset's own; it keeps the
  emission layer's input size equal to the hidden size with or without the type level, and it can
  shut the type features off for a dataset whose guidelines disagree with its group (JNLPBA's
  cell types in gene-protein). ``"concat"`` is the simplest fusion, kept for ablation.
* **Switches.** ``use_type_level=False`` removes the middle level: shared encoder + one CRF head per
  dataset (plain multi-task). The dataset head keeps its feature layer ``d`` in both cases, so the
  comparison isolates the type level.
* **Loss.** The loss of a batch is its dataset's CRF loss plus ``type_loss_weight`` times its type's
  CRF loss (:meth:`HSTTagger.loss`, the one method :func:`mernlib.train.fit` needs).
* **Parts.** :meth:`HSTTagger.parts` names the pieces a training stage may freeze: ``encoder``,
  ``type:<type>`` (type layer + type head), ``head:<dataset>``.
* **JNLPBA** has five types (DNA, RNA, cell_line, cell_type, protein); the registry puts the dataset
  in gene-protein, so all five map to ``B/I-gene-protein`` at the type level (its dataset head keeps
  the five).

The two training stages (multi-task over all datasets, then fine-tuning a copy per target), the
baselines and the scoring live in :mod:`mernlib.experiments.hst`; the datasets in
:mod:`mernlib.datasets`. The optimisation settings below are in the config because one config is what a
notebook overrides (not given by the paper we could read): AdamW, lr 3e-5 for the encoder and 1e-3 for
the new layers (randomly initialised CRFs learn too slowly at a transformer's lr), batch 16, gradient
clipping at 1.0, 3 multi-task epochs + 2 fine-tuning epochs, best epoch on the dev sets. No warm-up
schedule by default (constant rates, as in the runs stored in ``results/hst``); ``lr_schedule="linear"``
warms up over the first ``warmup`` of each stage's steps and decays to 0 (:func:`mernlib.train.linear_schedule`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mernlib.conll import TaggedSentence
from mernlib.datasets import IOBDataset, normalize_entity_type
from mernlib.encoders import (
    WordBatch,
    WordEncoder,
    encoder_for,
    encoder_name,
    load_heads,
    read_encoder_model,
    save_encoder_model,
)
from mernlib.models.crf import CRF
from mernlib.train import LR_SCHEDULES
from mernlib.vocab import TagVocab, length_bucketed_batches

FORMAT = "mernlib.hst/1"

# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class HSTConfig:
    """Model switches, sizes and both training stages (override field by field in a notebook)."""

    # model
    encoder: str | None = None  # None: the bundled MiniLM; a local folder (BioBERT, XLNet...) otherwise
    max_length: int = 128  # pieces per transformer window (longer sentences are windowed)
    stride: int | None = None  # window stride in pieces (None: half a window)
    dropout: float = 0.1
    use_type_level: bool = True  # False: plain multi-task (shared encoder, one CRF per dataset)
    type_layer: str = "linear"  # "linear" (linear + tanh) | "bilstm"
    type_head: str = "crf"  # "crf" | "softmax"
    feature_dim: int | None = None  # size of type and data features (None: the encoder's hidden size)
    fusion: str = "gate"  # "gate" | "concat"
    type_loss_weight: float = 1.0  # weight of the type-level loss added to each batch's dataset loss
    crf_top_k: int | None = None  # Viterbi pruning (None: exact)
    # training (names shared with mernlib.train.TrainConfig)
    optimizer: str = "adamw"  # "adamw" | "adam" | "sgd"
    lr: float = 3e-5  # encoder learning rate
    head_lr: float | None = 1e-3  # new layers (type layers, heads, CRFs); None: same as lr
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.01
    batch_size: int = 16
    epochs: int = 3  # multi-task stage (and single-task training)
    grad_clip: float | None = 1.0
    seed: int = 13
    task_sampler: str = "proportional"  # "proportional" | "uniform" (mernlib.train.task_sampler)
    select_on_dev: bool = True  # keep the best epoch on devel (else the last)
    patience: int | None = None
    progress: bool = True
    lr_schedule: str | None = None  # None: constant rates | "linear": warm-up, then linear decay to 0
    warmup: float = 0.1  # fraction of a stage's steps spent warming up (linear schedule only)
    # fine-tuning stage
    fine_tune_epochs: int = 2
    fine_tune_lr: float | None = None  # None: lr
    fine_tune_head_lr: float | None = None  # None: head_lr
    fine_tune_encoder: bool = True  # False: the encoder stays frozen while fine-tuning
    fine_tune_type_layer: bool = True  # False: the target's type layer + type head stay frozen

    def __post_init__(self):
        choices = {
            "type_layer": ("linear", "bilstm"),
            "type_head": ("crf", "softmax"),
            "fusion": ("gate", "concat"),
            "task_sampler": ("proportional", "uniform"),
            "optimizer": ("adamw", "adam", "sgd"),
            "lr_schedule": LR_SCHEDULES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {'|'.join(map(str, allowed))}, not {getattr(self, name)!r}"
                )


def get_default_config(**overrides) -> HSTConfig:
    """The default configuration, with ``overrides`` applied (unknown names raise ``TypeError``)."""
    return HSTConfig(**overrides)


# --------------------------------------------------------------------------------------------------
# Tag sets: dataset level -> type level
# --------------------------------------------------------------------------------------------------


def type_tag_set(entity_type: str) -> list[str]:
    """The type-level tag set: ``["O", "B-<type>", "I-<type>"]``."""
    t = normalize_entity_type(entity_type)
    return ["O", f"B-{t}", f"I-{t}"]


def type_level_tags(dataset_tags: Sequence[str], entity_type: str) -> list[str]:
    """Map a dataset's tags (a sentence's tags or a tag vocabulary) to the type level.

    Every entity tag of a dataset maps to its group's type (whatever the dataset calls it):
    ``B-GENE`` -> ``B-gene-protein``, ``I-Chemical`` -> ``I-chemical``; ``O`` stays ``O``. IOBES tags
    become BIO (``S-`` -> ``B-``, ``E-`` -> ``I-``).

    >>> type_level_tags(["O", "B-GENE", "I-GENE"], "gene/protein")
    ['O', 'B-gene-protein', 'I-gene-protein']
    """
    t = normalize_entity_type(entity_type)
    out = []
    for tag in dataset_tags:
        if tag == "O":
            out.append("O")
            continue
        prefix = tag[:1]
        if prefix not in "BISE" or (len(tag) > 1 and tag[1] != "-"):
            raise ValueError(f"not an IOB tag: {tag!r}")
        out.append(f"{'B' if prefix in 'BS' else 'I'}-{t}")
    return out


# --------------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------------


@dataclass
class HSTBatch:
    """A batch of one dataset. ``pieces`` feed the encoder; ``tags`` ``[B, N]`` are ids in the
    dataset's vocabulary and ``type_tags`` in its type's (both ``None`` for prediction); ``index``:
    positions of these sentences in the list they came from."""

    dataset: str
    pieces: WordBatch
    mask: torch.Tensor
    tags: torch.Tensor | None
    type_tags: torch.Tensor | None
    index: list[int]

    def __len__(self) -> int:
        return len(self.index)


# --------------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------------


class TypeLayer(nn.Module):
    """Entity-type features ``t_i``: ``tanh(W h_i + b)`` (``"linear"``) or a one-layer BiLSTM."""

    def __init__(self, in_dim: int, out_dim: int, kind: str = "linear"):
        super().__init__()
        self.kind = kind
        if kind == "linear":
            self.proj = nn.Linear(in_dim, out_dim)
        elif kind == "bilstm":
            if out_dim % 2:
                raise ValueError(f"a BiLSTM type layer needs an even feature_dim, not {out_dim}")
            self.lstm = nn.LSTM(in_dim, out_dim // 2, batch_first=True, bidirectional=True)
        else:
            raise ValueError(f"type_layer must be linear|bilstm, not {kind!r}")

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return torch.tanh(self.proj(h))
        lengths = mask.long().sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.size(1))
        return out


class TypeHead(nn.Module):
    """``O / B-type / I-type`` over the type features: a 3-tag CRF, or a softmax."""

    def __init__(self, dim: int, kind: str = "crf"):
        super().__init__()
        self.kind = kind
        self.emit = nn.Linear(dim, 3)
        self.crf = CRF(3) if kind == "crf" else None

    def loss(self, t: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        emissions = self.emit(t)
        if self.crf is not None:
            return self.crf.neg_log_likelihood(emissions, tags, mask)
        return F.cross_entropy(emissions[mask], tags[mask])

    def decode(self, t: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        emissions = self.emit(t)
        if self.crf is not None:
            return self.crf.decode(emissions, mask)
        best = emissions.argmax(-1)
        return [row[: int(n)] for row, n in zip(best.tolist(), mask.sum(1).tolist(), strict=True)]


class Fusion(nn.Module):
    """Type features ``t`` + data features ``d``: ``"gate"`` ``g*d + (1-g)*t`` or ``"concat"`` ``[d; t]``."""

    def __init__(self, dim: int, kind: str = "gate"):
        super().__init__()
        self.kind = kind
        self.gate = nn.Linear(2 * dim, dim) if kind == "gate" else None
        self.out_dim = dim if kind == "gate" else 2 * dim

    def forward(self, d: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return torch.cat([d, t], dim=-1)
        g = torch.sigmoid(self.gate(torch.cat([d, t], dim=-1)))
        return g * d + (1 - g) * t


class DatasetHead(nn.Module):
    """One dataset's layer: data features, optional fusion with its type's features, emissions, CRF.

    ``tags`` is the dataset's own tag vocabulary (``O`` first); the CRF has exactly that many tags."""

    def __init__(self, in_dim: int, dim: int, tags: Sequence[str], fusion: str | None = "gate"):
        super().__init__()
        self.tags = list(tags)
        self.vocab = TagVocab(self.tags[1:])
        if self.vocab.itos != self.tags:
            raise ValueError(f"a tag set starts with 'O' and has no duplicates: {self.tags}")
        self.data = nn.Linear(in_dim, dim)
        self.fusion = Fusion(dim, fusion) if fusion is not None else None
        self.emit = nn.Linear(self.fusion.out_dim if self.fusion is not None else dim, len(self.tags))
        self.crf = CRF(len(self.tags))

    def extra_repr(self) -> str:
        return f"tags={self.tags}"

    def emissions(self, h: torch.Tensor, t: torch.Tensor | None, dropout: nn.Module) -> torch.Tensor:
        d = torch.tanh(self.data(h))
        f = self.fusion(d, t) if self.fusion is not None else d
        return self.emit(dropout(f))


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class HSTTagger(nn.Module):
    """Shared encoder, one type layer per entity type, one head per dataset.

    ``datasets``: :class:`IOBDataset` objects, or ``{name: (entity_type, tags)}``."""

    def __init__(
        self,
        config: HSTConfig | None = None,
        datasets: Mapping[str, tuple[str, Sequence[str]]]
        | Iterable[IOBDataset]
        | Mapping[str, IOBDataset] = (),
        encoder: WordEncoder | None = None,
    ):
        super().__init__()
        self.config = dataclasses.replace(config) if config is not None else get_default_config()
        if isinstance(datasets, Mapping):
            datasets = (
                list(datasets.values())
                if all(isinstance(v, IOBDataset) for v in datasets.values())
                else [(k, v[0], list(v[1])) for k, v in datasets.items()]
            )
        specs = [(d.name, d.entity_type, d.tags) if isinstance(d, IOBDataset) else d for d in datasets]
        if not specs:
            raise ValueError("HSTTagger needs at least one dataset")
        self.entity_type_of = {name: normalize_entity_type(et) for name, et, _ in specs}
        if encoder is not None:  # a given encoder brings its windowing: the config records it, so that
            # save/load rebuild the same encoder (config.max_length and config.stride say what was used)
            self.config = dataclasses.replace(
                self.config, max_length=encoder.aligner.max_length, stride=encoder.aligner.stride
            )
        encoder = encoder_for(self.config, encoder, record=False)
        self.encoder = encoder
        c = self.config
        hidden = encoder.hidden_size
        dim = c.feature_dim or hidden
        with torch.random.fork_rng(devices=[]):  # reproducible heads, global RNG untouched
            torch.manual_seed(c.seed)
            self.dropout = nn.Dropout(c.dropout)
            types = sorted(set(self.entity_type_of.values()))
            self.type_layers = nn.ModuleDict(
                {t: TypeLayer(hidden, dim, c.type_layer) for t in types} if c.use_type_level else {}
            )
            self.type_heads = nn.ModuleDict(
                {t: TypeHead(dim, c.type_head) for t in types} if c.use_type_level else {}
            )
            self.heads = nn.ModuleDict(
                {
                    name: DatasetHead(hidden, dim, tags, c.fusion if c.use_type_level else None)
                    for name, _, tags in specs
                }
            )

    # -- what the model knows -----------------------------------------------------------------------

    @property
    def dataset_names(self) -> list[str]:
        return list(self.heads)

    def tags_of(self, dataset: str) -> list[str]:
        """The dataset head's tag vocabulary."""
        return list(self.heads[dataset].tags)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def parts(self) -> dict[str, list[str]]:
        """Part name -> parameter names: ``"encoder"``, ``"type:<type>"`` (type layer + type head),
        ``"head:<dataset>"`` -- the units a training stage freezes or trains."""
        parts: dict[str, list[str]] = {}
        for pname, _ in self.named_parameters():
            top, _, rest = pname.partition(".")
            if top == "encoder":
                key = "encoder"
            elif top in ("type_layers", "type_heads"):
                key = "type:" + rest.split(".", 1)[0]
            elif top == "heads":
                key = "head:" + rest.split(".", 1)[0]
            else:  # pragma: no cover - every parameter belongs to one of the above
                key = top
            parts.setdefault(key, []).append(pname)
        return parts

    def _name(self, dataset) -> str:
        name = dataset.name if isinstance(dataset, IOBDataset) else dataset
        if name not in self.heads:
            raise KeyError(f"the model has no head for dataset {name!r}; it has {self.dataset_names}")
        return name

    # -- batching -----------------------------------------------------------------------------------

    def make_batches(
        self,
        dataset: IOBDataset | str,
        sentences: Sequence[TaggedSentence] | Sequence[Sequence[str]] | None = None,
        batch_size: int | None = None,
        shuffle: bool = False,
        generator: torch.Generator | int | None = None,
        with_tags: bool = True,
        encoded=None,
    ) -> list[HSTBatch]:
        """Length-bucketed (by pieces), dynamically padded batches of one dataset.

        ``sentences`` default to the dataset's train split; plain token lists make prediction batches.
        ``encoded`` (from ``encoder.aligner.encode``) skips re-tokenising across epochs.
        """
        name = self._name(dataset)
        if sentences is None:
            if not isinstance(dataset, IOBDataset):
                raise ValueError("give the sentences, or the IOBDataset itself")
            sentences = dataset.train
        tokens = [s.tokens if isinstance(s, TaggedSentence) else list(s) for s in sentences]
        if any(not t for t in tokens):
            raise ValueError("empty sentence: every sentence needs at least one token")
        with_tags = with_tags and all(isinstance(s, TaggedSentence) for s in sentences)
        encoded = encoded if encoded is not None else self.encoder.aligner.encode(tokens)
        lengths = [len(e.piece_ids) for e in encoded]
        order = length_bucketed_batches(lengths, batch_size or self.config.batch_size, shuffle, generator)
        head = self.heads[name]
        etype = self.entity_type_of[name]
        type_vocab = TagVocab(type_tag_set(etype)[1:])
        batches = []
        for idx in order:
            B, N = len(idx), max(len(tokens[i]) for i in idx)
            mask = torch.zeros(B, N, dtype=torch.bool)
            tags = type_tags = None
            if with_tags:
                tags = torch.zeros(B, N, dtype=torch.long)
                type_tags = torch.zeros(B, N, dtype=torch.long)
            for b, i in enumerate(idx):
                n = len(tokens[i])
                mask[b, :n] = True
                if with_tags:
                    gold = sentences[i].tags
                    tags[b, :n] = torch.tensor(head.vocab.encode(gold), dtype=torch.long)
                    type_tags[b, :n] = torch.tensor(type_vocab.encode(type_level_tags(gold, etype)))
            pieces = self.encoder.aligner.collate([encoded[i] for i in idx])
            batches.append(HSTBatch(name, pieces, mask, tags, type_tags, list(idx)))
        return batches

    # -- forward ------------------------------------------------------------------------------------

    def _features(self, batch: HSTBatch):
        enc = self.encoder(batch.pieces)
        mask = batch.mask.to(enc.words.device)
        h = self.dropout(enc.words)
        etype = self.entity_type_of[batch.dataset]
        t = self.type_layers[etype](h, mask) if self.config.use_type_level else None
        return h, t, mask, etype

    def loss(self, batch: HSTBatch, task: str) -> torch.Tensor:
        """Dataset ``task``'s CRF loss on ``batch`` (+ ``type_loss_weight`` x its type's loss).

        ``task`` must be the batch's own dataset: a batch never reaches another dataset's head."""
        if task != batch.dataset:
            raise ValueError(f"a batch of {batch.dataset!r} cannot train the head of {task!r}")
        if batch.tags is None:
            raise ValueError("this batch has no gold tags (made for prediction)")
        h, t, mask, etype = self._features(batch)
        head = self.heads[task]
        emissions = head.emissions(h, t, self.dropout)
        loss = head.crf.neg_log_likelihood(emissions, batch.tags.to(mask.device), mask)
        if t is not None and self.config.type_loss_weight:
            type_loss = self.type_heads[etype].loss(self.dropout(t), batch.type_tags.to(mask.device), mask)
            loss = loss + self.config.type_loss_weight * type_loss
        return loss

    @torch.no_grad()
    def predict(
        self, sentences: Sequence, dataset: IOBDataset | str, batch_size: int | None = None
    ) -> list[list[str]]:
        """Tags of ``sentences`` (TaggedSentence or token lists) in ``dataset``'s tag set."""
        name = self._name(dataset)
        was_training = self.training
        self.eval()
        out: list[list[str] | None] = [None] * len(sentences)
        head = self.heads[name]
        for batch in self.make_batches(name, sentences, batch_size, shuffle=False, with_tags=False):
            h, t, mask, _ = self._features(batch)
            paths = head.crf.decode(head.emissions(h, t, self.dropout), mask, top_k=self.config.crf_top_k)
            for i, path in zip(batch.index, paths, strict=True):
                out[i] = head.vocab.decode(path)
        self.train(was_training)
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def predict_types(
        self, sentences: Sequence, entity_type: str, batch_size: int | None = None
    ) -> list[list[str]]:
        """Type-level tags (``O/B-type/I-type``) of ``sentences`` from the type layer of ``entity_type``."""
        if not self.config.use_type_level:
            raise ValueError("this model has no type level (use_type_level=False)")
        etype = normalize_entity_type(entity_type)
        name = next((n for n, t in self.entity_type_of.items() if t == etype), None)
        if name is None or etype not in self.type_heads:
            raise KeyError(f"no type layer for {etype!r}; the model has {list(self.type_heads)}")
        was_training = self.training
        self.eval()
        tag_set = type_tag_set(etype)
        out: list[list[str] | None] = [None] * len(sentences)
        for batch in self.make_batches(name, sentences, batch_size, shuffle=False, with_tags=False):
            _, t, mask, _ = self._features(batch)
            for i, path in zip(batch.index, self.type_heads[etype].decode(t, mask), strict=True):
                out[i] = [tag_set[k] for k in path]
        self.train(was_training)
        return out  # type: ignore[return-value]

    # -- persistence --------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """``config.json`` (config, datasets with their types and tag vocabularies), ``encoder/``
        (transformer + tokenizer) and ``heads.pt`` (every other parameter)."""
        meta = {
            "format": FORMAT,
            "config": asdict(self.config),
            "encoder_name": encoder_name(self.config.encoder),
            "datasets": {
                n: {"entity_type": self.entity_type_of[n], "tags": self.tags_of(n)} for n in self.heads
            },
        }
        return save_encoder_model(self, directory, meta)

    @classmethod
    def load(cls, directory: str | Path, map_location="cpu") -> HSTTagger:
        """The model written by :meth:`save` (local files only), in eval mode."""
        meta, config, build_encoder = read_encoder_model(directory, HSTConfig, expected_format=FORMAT)
        specs = {n: (d["entity_type"], d["tags"]) for n, d in meta["datasets"].items()}
        return load_heads(cls(config, specs, build_encoder()), directory, map_location)

    def copy(self) -> HSTTagger:
        """A deep copy sharing the (stateless) tokenizer and aligner."""
        memo = {
            id(self.encoder.tokenizer): self.encoder.tokenizer,
            id(self.encoder.aligner): self.encoder.aligner,
        }
        return copy.deepcopy(self, memo)


def average_weights(models: Sequence[HSTTagger], weights: Sequence[float] | None = None) -> HSTTagger:
    """A copy of ``models[0]`` whose every floating-point parameter and buffer is the (``weights``-)
    weighted mean of the models' -- a "model soup" (Wortsman et al., ICML 2022). It makes sense for
    models fine-tuned from the same starting point (the same pre-trained encoder and the same seed for
    the new layers), which stay in one basin of the loss: then the mean tags about as well as the best
    of them, or better, at the cost of one model. Integer buffers (position ids) must be equal. Models of
    other datasets, tag sets or sizes are a ``ValueError``."""
    if not models:
        raise ValueError("average_weights needs at least one model")
    weights = [1.0 / len(models)] * len(models) if weights is None else [float(w) for w in weights]
    if len(weights) != len(models) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"need one weight per model, summing to 1; got {weights}")
    first = models[0]
    states = [m.state_dict() for m in models]
    for i, (model, state) in enumerate(zip(models, states, strict=True)):
        if model.dataset_names != first.dataset_names or any(
            model.tags_of(n) != first.tags_of(n) for n in first.dataset_names
        ):
            raise ValueError(f"model {i} has other datasets or tags than model 0: it cannot be averaged")
        if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in states[0].items()}:
            raise ValueError(f"model {i} has other parameters or sizes than model 0")
    mean = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            mean[key] = sum(w * s[key] for w, s in zip(weights, states, strict=True))
        elif any(not torch.equal(s[key], value) for s in states):
            raise ValueError(f"{key} (not floating point) differs between the models")
        else:
            mean[key] = value
    soup = first.copy()
    soup.load_state_dict(mean)
    return soup


__all__ = [
    "FORMAT",
    "DatasetHead",
    "Fusion",
    "HSTBatch",
    "HSTConfig",
    "HSTTagger",
    "TypeHead",
    "TypeLayer",
    "average_weights",
    "get_default_config",
    "type_level_tags",
    "type_tag_set",
]
