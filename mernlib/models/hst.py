"""Hierarchical shared transfer (HST) for biomedical NER (Chai, Jin, Shi, Zhan, Zhuo & Yang, BMC
Bioinformatics 23:8, 2022) -- the kit's *reading* of it.

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
* **Stages.** :func:`train_multitask` trains on all datasets with :func:`mernlib.train.fit`, one task
  per dataset; the loss of a batch is its dataset's CRF loss plus ``type_loss_weight`` times its
  type's CRF loss. Datasets are drawn **proportionally to their batches left** (default;
  ``"uniform"`` also available, see :func:`dataset_sampler`): every batch is seen once per epoch
  either way, but proportional drawing interleaves datasets evenly over the whole epoch, whereas
  uniform drawing exhausts the small datasets early and ends each epoch on the large ones only.
  :func:`fine_tune` then trains a *copy* per target dataset on that dataset alone. Trainable: the
  encoder, the target's type layer + type head (still trained with the type loss on the target's
  batches) and the target's head; frozen: every other head and type layer (:func:`freeze` /
  :func:`unfreeze`). The encoder is fine-tuned because adapting the shared representation to the
  target is what the paper's fine-tuning stage is for; ``fine_tune_encoder=False`` and
  ``fine_tune_type_layer=False`` freeze those too.
* **Baselines** (:data:`VARIANTS`, :func:`run_variant`): single-task encoder-CRF per dataset (= the
  model on one dataset, no type level), plain multi-task, multi-task + fine-tuning without the type
  level, and the hierarchical model (type level + fine-tuning).
* **JNLPBA** has five types (DNA, RNA, cell_line, cell_type, protein); the registry puts the dataset
  in gene-protein, so all five map to ``B/I-gene-protein`` at the type level (its dataset head keeps
  the five). Its training split (and BC4CHEMD) is absent from the project's data: skipped with the
  registry's message saying where to get it.
* **Optimisation** (not given by the paper we could read): AdamW, lr 3e-5 for the encoder and 1e-3
  for the new layers (randomly initialised CRFs learn too slowly at a transformer's lr), batch 16,
  gradient clipping at 1.0, 3 multi-task epochs + 2 fine-tuning epochs, best epoch on the dev sets
  (mean F1 over datasets for multi-task, the target's F1 for fine-tuning). No warm-up schedule:
  :func:`mernlib.train.fit` has none.

Data: :func:`load_hst_datasets` reads the Crichton et al. (2017) IOB datasets through
:func:`mernlib.registry.locate` (or the bundled sample IOB datasets), caps them (``scale``), and
warns -- naming the dataset and where to get it -- for every dataset it has to skip.
Evaluation: :func:`evaluate` (mention-level P/R/F1, :func:`mernlib.metrics.ner_prf_from_tags`), with
an optional ``token<TAB>gold<TAB>predicted`` file. Persistence: :meth:`HSTTagger.save` / :meth:`load`.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mernlib.conll import TaggedSentence, read_iob, write_iob
from mernlib.encoders import (
    WordBatch,
    WordEncoder,
    encoder_for,
    encoder_name,
    load_heads,
    read_encoder_model,
    save_encoder_model,
)
from mernlib.metrics import PRF, ner_prf_from_tags
from mernlib.models.crf import CRF
from mernlib.vocab import TagVocab, length_bucketed_batches

FORMAT = "mernlib.hst/1"
ENTITY_TYPES = ("chemical", "disease", "gene-protein", "species")
SPLITS = ("train", "devel", "test")

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
    epochs: int = 3  # multi-task stage
    grad_clip: float | None = 1.0
    seed: int = 13
    task_sampler: str = "proportional"  # "proportional" | "uniform" (see dataset_sampler)
    select_on_dev: bool = True  # keep the best epoch on devel (else the last)
    patience: int | None = None
    progress: bool = True
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
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {'|'.join(allowed)}, not {getattr(self, name)!r}")


def get_default_config(**overrides) -> HSTConfig:
    """The default configuration, with ``overrides`` applied (unknown names raise ``TypeError``)."""
    return HSTConfig(**overrides)


# --------------------------------------------------------------------------------------------------
# Tag sets: dataset level -> type level
# --------------------------------------------------------------------------------------------------


def normalize_entity_type(entity_type: str) -> str:
    """``"gene/protein"``, ``"Gene_Protein"``, ``"gene"`` ... -> ``"gene-protein"`` (one of :data:`ENTITY_TYPES`)."""
    key = entity_type.strip().lower().replace("/", "-").replace("_", "-").replace(" ", "-")
    key = {
        "gene": "gene-protein",
        "protein": "gene-protein",
        "genes": "gene-protein",
        "chemicals": "chemical",
        "diseases": "disease",
    }.get(key, key)
    if key not in ENTITY_TYPES:
        raise KeyError(f"unknown entity type {entity_type!r}; known: {', '.join(ENTITY_TYPES)}")
    return key


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


def dataset_tag_set(sentences: Iterable[TaggedSentence]) -> list[str]:
    """``["O"]`` + ``B-X``/``I-X`` for every type ``X`` tagged in ``sentences`` (both, even if only one is
    seen, so the head can always close what it opens), sorted."""
    kinds = {tag[2:] for s in sentences for tag in s.tags if tag != "O"}
    return ["O"] + sorted(f"{p}-{k}" for k in kinds for p in ("B", "I"))


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclass
class HSTDataset:
    """One dataset: its sentences per split, its coarse entity type and its tag set (from train).

    ``sizes`` are the split sizes before any cap; ``source`` where the files were read."""

    name: str
    entity_type: str
    train: list[TaggedSentence]
    devel: list[TaggedSentence]
    test: list[TaggedSentence]
    tags: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        self.entity_type = normalize_entity_type(self.entity_type)
        if not self.tags:
            self.tags = dataset_tag_set(self.train)

    def split(self, name: str) -> list[TaggedSentence]:
        name = {"dev": "devel", "validation": "devel"}.get(name, name)
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}: choose one of {SPLITS}")
        return getattr(self, name)

    def __repr__(self) -> str:
        n = "/".join(str(len(self.split(s))) for s in SPLITS)
        return f"HSTDataset({self.name!r}, {self.entity_type}, {n} sentences, {len(self.tags)} tags)"


SCALES: dict[str, tuple[int | None, int | None]] = {
    "tiny": (64, 32),  # (train sentences, devel/test sentences) per dataset
    "reduced": (2000, 1000),
    "full": (None, None),
}
"""``scale`` -> caps per dataset; a cap keeps a seeded random subset, in file order."""


class DatasetSkipped(UserWarning):
    """A requested dataset could not be read (absent file); the message says where to get it."""


def _expand(names) -> list[str]:
    from mernlib import registry
    from mernlib.sample import IOB_DATASETS

    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        if name == "sample":
            out.extend(IOB_DATASETS)
        elif name in ("crichton", "all"):
            out.extend(n for group in registry.ENTITY_TYPE_GROUPS.values() for n in group)
        elif name in ENTITY_TYPES or name in ("gene", "protein", "gene/protein"):
            out.extend(d.name for d in registry.datasets_of_type(name))
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def _cap(sentences: list[TaggedSentence], cap: int | None, seed: int, key: str) -> list[TaggedSentence]:
    if cap is None or len(sentences) <= cap:
        return sentences
    keep = sorted(random.Random(f"{seed}:{key}").sample(range(len(sentences)), cap))
    return [sentences[i] for i in keep]


def load_hst_datasets(
    names: str | Sequence[str] = "sample",
    data_dir: str | Path | None = None,
    scale: str = "reduced",
    max_train_sentences: int | None = None,
    max_eval_sentences: int | None = None,
    seed: int = 13,
    download: bool = True,
) -> dict[str, HSTDataset]:
    """Datasets by name, ready for :class:`HSTTagger`.

    ``names``: dataset names (registry names such as ``"BC5CDR-chem"``, or the sample's
    ``"sample-chem"``...), or the shortcuts ``"sample"`` (the five bundled sample IOB datasets),
    ``"crichton"`` (every IOB dataset of the registry) or an entity type (``"chemical"``).
    ``scale``: ``"tiny"``, ``"reduced"`` (default) or ``"full"`` (see :data:`SCALES`); explicit
    ``max_train_sentences`` / ``max_eval_sentences`` win over it. A cap keeps a random subset fixed
    by ``seed`` (and the dataset and split names), in file order. A dataset whose files cannot be
    found is skipped with a :class:`DatasetSkipped` warning carrying the registry's message (which
    file, where to get it, where to put it) -- never silently.
    """
    from mernlib import registry
    from mernlib.data import sample_dir
    from mernlib.errors import DataNotFoundError
    from mernlib.sample import IOB_DATASETS

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {'|'.join(SCALES)}, not {scale!r}")
    train_cap, eval_cap = SCALES[scale]
    train_cap = max_train_sentences if max_train_sentences is not None else train_cap
    eval_cap = max_eval_sentences if max_eval_sentences is not None else eval_cap
    out: dict[str, HSTDataset] = {}
    for name in _expand(names):
        if name in IOB_DATASETS:
            folder = sample_dir() / "iob" / name
            paths = {s: folder / f"{s}.tsv" for s in SPLITS}
            entity_type, key = IOB_DATASETS[name]["entity_type"], name
        else:
            dataset = registry.get(name)
            if dataset.task != "iob" or dataset.group is None:
                raise ValueError(
                    f"{dataset.name} is not an IOB dataset with an entity type (task {dataset.task})"
                )
            key, entity_type = dataset.name, dataset.group
            try:
                paths = {
                    s: Path(registry.locate(dataset, s, data_dir=data_dir, download=download)) for s in SPLITS
                }
            except DataNotFoundError as err:
                warnings.warn(f"HST: skipping dataset {dataset.name}:\n{err}", DatasetSkipped, stacklevel=2)
                continue
        splits = {s: read_iob(p) for s, p in paths.items()}
        sizes = {s: len(v) for s, v in splits.items()}
        caps = {"train": train_cap, "devel": eval_cap, "test": eval_cap}
        capped = {s: _cap(v, caps[s], seed, f"{key}:{s}") for s, v in splits.items()}
        out[key] = HSTDataset(
            key,
            entity_type,
            capped["train"],
            capped["devel"],
            capped["test"],
            sizes=sizes,
            source=str(paths["train"].parent),
        )
    return out


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

    ``datasets``: :class:`HSTDataset` objects, or ``{name: (entity_type, tags)}``."""

    def __init__(
        self,
        config: HSTConfig | None = None,
        datasets: Mapping[str, tuple[str, Sequence[str]]]
        | Iterable[HSTDataset]
        | Mapping[str, HSTDataset] = (),
        encoder: WordEncoder | None = None,
    ):
        super().__init__()
        self.config = dataclasses.replace(config) if config is not None else get_default_config()
        if isinstance(datasets, Mapping):
            datasets = (
                list(datasets.values())
                if all(isinstance(v, HSTDataset) for v in datasets.values())
                else [(k, v[0], list(v[1])) for k, v in datasets.items()]
            )
        specs = [(d.name, d.entity_type, d.tags) if isinstance(d, HSTDataset) else d for d in datasets]
        if not specs:
            raise ValueError("HSTTagger needs at least one dataset")
        self.entity_type_of = {name: normalize_entity_type(et) for name, et, _ in specs}
        encoder = encoder_for(self.config, encoder)
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

    def _name(self, dataset) -> str:
        name = dataset.name if isinstance(dataset, HSTDataset) else dataset
        if name not in self.heads:
            raise KeyError(f"the model has no head for dataset {name!r}; it has {self.dataset_names}")
        return name

    # -- batching -----------------------------------------------------------------------------------

    def make_batches(
        self,
        dataset: HSTDataset | str,
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
            if not isinstance(dataset, HSTDataset):
                raise ValueError("give the sentences, or the HSTDataset itself")
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
        self, sentences: Sequence, dataset: HSTDataset | str, batch_size: int | None = None
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


# --------------------------------------------------------------------------------------------------
# Freezing
# --------------------------------------------------------------------------------------------------


def model_parts(model: HSTTagger) -> dict[str, list[str]]:
    """Part name -> parameter names: ``"encoder"``, ``"type:<type>"`` (type layer + type head),
    ``"head:<dataset>"``."""
    parts: dict[str, list[str]] = {}
    for pname, _ in model.named_parameters():
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


def _set_trainable(model: HSTTagger, parts, value: bool) -> list[str]:
    known = model_parts(model)
    if parts is None or parts == "all":
        parts = list(known)
    elif isinstance(parts, str):
        parts = [parts]
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise KeyError(f"unknown parts {unknown}; the model has {list(known)}")
    params = dict(model.named_parameters())
    changed = [n for p in parts for n in known[p]]
    for n in changed:
        params[n].requires_grad_(value)
    return changed


def freeze(model: HSTTagger, parts: str | Iterable[str] | None = None) -> list[str]:
    """Stop training ``parts`` (names of :func:`model_parts`; ``None``/``"all"``: everything).
    Returns the names of the parameters frozen."""
    return _set_trainable(model, parts, False)


def unfreeze(model: HSTTagger, parts: str | Iterable[str] | None = None) -> list[str]:
    """Train ``parts`` again (``None``/``"all"``: everything). Returns the parameter names."""
    return _set_trainable(model, parts, True)


def trainable_parts(model: HSTTagger) -> list[str]:
    """Parts with at least one parameter that requires a gradient."""
    params = dict(model.named_parameters())
    return [p for p, names in model_parts(model).items() if any(params[n].requires_grad for n in names)]


def fine_tune_parts(
    model: HSTTagger, dataset: HSTDataset | str, config: HSTConfig | None = None
) -> list[str]:
    """What :func:`fine_tune` trains for ``dataset``: the encoder (``fine_tune_encoder``), the
    dataset's type layer + type head (``fine_tune_type_layer``, when there is a type level) and its head."""
    c = config or model.config
    name = model._name(dataset)
    parts = ["encoder"] if c.fine_tune_encoder else []
    etype = model.entity_type_of[name]
    if c.fine_tune_type_layer and model.config.use_type_level:
        parts.append(f"type:{etype}")
    return parts + [f"head:{name}"]


# --------------------------------------------------------------------------------------------------
# Training stages
# --------------------------------------------------------------------------------------------------


def dataset_sampler(kind: str = "proportional") -> Callable[[dict[str, int], random.Random], str]:
    """The task sampler passed to :func:`mernlib.train.fit`: ``(batches_left, rng) -> dataset``.

    ``"proportional"``: probability proportional to the dataset's batches left this epoch (so, at
    the start, to its size); ``"uniform"``: every dataset with batches left equally likely."""
    if kind == "proportional":

        def proportional(left: dict[str, int], rng: random.Random) -> str:
            names = sorted(n for n, k in left.items() if k > 0)
            return rng.choices(names, weights=[left[n] for n in names])[0]

        return proportional
    if kind == "uniform":

        def uniform(left: dict[str, int], rng: random.Random) -> str:
            return rng.choice(sorted(n for n, k in left.items() if k > 0))

        return uniform
    raise ValueError(f"sampler must be proportional|uniform, not {kind!r}")


def _as_list(datasets) -> list[HSTDataset]:
    if isinstance(datasets, HSTDataset):
        return [datasets]
    if isinstance(datasets, Mapping):
        return list(datasets.values())
    return list(datasets)


def _optimizer(model: HSTTagger, lr: float, head_lr: float | None, c: HSTConfig) -> torch.optim.Optimizer:
    enc = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    groups = [g for g in ({"params": enc, "lr": lr}, {"params": rest, "lr": head_lr or lr}) if g["params"]]
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    if c.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=c.momentum, weight_decay=c.weight_decay)
    cls = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, weight_decay=c.weight_decay)


def _train_data(model: HSTTagger, datasets: list[HSTDataset], batch_size: int) -> dict:
    data = {}
    for d in datasets:
        encoded = model.encoder.aligner.encode([s.tokens for s in d.train])  # once, not every epoch

        def epoch(generator, d=d, encoded=encoded):
            return model.make_batches(
                d, d.train, batch_size, shuffle=True, generator=generator, encoded=encoded
            )

        data[d.name] = epoch
    return data


def mean_dev_f1(model: HSTTagger, datasets: Iterable[HSTDataset], split: str = "devel") -> float:
    """Mean over datasets of the mention F1 on ``split`` (the multi-task stage's model selection)."""
    scores = [evaluate(model, d, split).f1 for d in datasets]
    return sum(scores) / len(scores)


def train_multitask(model: HSTTagger, datasets, config: HSTConfig | None = None, **overrides):
    """Multi-task stage: one :func:`mernlib.train.fit` task per dataset (returns its ``FitResult``).

    Each step draws a dataset with :func:`dataset_sampler` (``config.task_sampler``) and takes its
    next batch; the loss is the dataset head's CRF loss (+ the type-level loss with the type level).
    With ``select_on_dev`` the epoch with the best mean devel F1 is kept. With a single dataset
    this is ordinary single-task training."""
    from mernlib.train import fit

    c = dataclasses.replace(config or model.config, **overrides)
    datasets = _as_list(datasets)
    for d in datasets:
        model._name(d)
    dev = (lambda m: mean_dev_f1(m, datasets)) if c.select_on_dev else None
    result = fit(
        model,
        _train_data(model, datasets, c.batch_size),
        c,
        dev_eval_fn=dev,
        task_sampler=dataset_sampler(c.task_sampler),
        optimizer=_optimizer(model, c.lr, c.head_lr, c),
    )
    model.history = getattr(model, "history", []) + [{"stage": "multitask", "result": result}]
    return result


def fine_tune(
    model: HSTTagger, dataset: HSTDataset, config: HSTConfig | None = None, **overrides
) -> HSTTagger:
    """Fine-tuning stage: a *copy* of ``model`` trained on ``dataset`` alone, for
    ``fine_tune_epochs``; only :func:`fine_tune_parts` are trainable, everything else is frozen.
    The copy is returned (its ``history[-1]["result"]`` is the ``FitResult``); ``model`` is unchanged."""
    from mernlib.train import fit

    c = dataclasses.replace(config or model.config, **overrides)
    tuned = model.copy()
    freeze(tuned)
    unfreeze(tuned, fine_tune_parts(tuned, dataset, c))
    dev = (lambda m: evaluate(m, dataset, "devel").f1) if c.select_on_dev else None
    lr = c.fine_tune_lr or c.lr
    head_lr = c.fine_tune_head_lr or c.head_lr
    result = fit(
        tuned,
        _train_data(tuned, [dataset], c.batch_size),
        c,
        dev_eval_fn=dev,
        task_sampler=dataset_sampler(c.task_sampler),
        optimizer=_optimizer(tuned, lr, head_lr, c),
        epochs=c.fine_tune_epochs,
    )
    tuned.history = list(getattr(model, "history", [])) + [
        {"stage": f"fine-tune:{dataset.name}", "result": result}
    ]
    return tuned


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def evaluate(
    model: HSTTagger,
    dataset: HSTDataset,
    split: str = "test",
    output: str | Path | None = None,
    strict: bool = False,
) -> PRF:
    """Mention-level P/R/F1 of ``model``'s predictions on one split of ``dataset`` (gold = the file's
    tags). ``output``: also write ``token<TAB>gold<TAB>predicted`` (:func:`mernlib.conll.write_iob`)."""
    sentences = dataset.split(split)
    predicted = model.predict(sentences, dataset.name) if sentences else []
    if output is not None:
        write_iob(sentences, output, predicted)
    return ner_prf_from_tags([s.tags for s in sentences], predicted, strict=strict)


# --------------------------------------------------------------------------------------------------
# Baselines and the hierarchical model
# --------------------------------------------------------------------------------------------------

VARIANTS: dict[str, dict] = {
    "single-task": {"use_type_level": False, "multitask": False, "fine_tune": False},
    "multi-task": {"use_type_level": False, "multitask": True, "fine_tune": False},
    "multi-task+fine-tune": {"use_type_level": False, "multitask": True, "fine_tune": True},
    "hierarchical": {"use_type_level": True, "multitask": True, "fine_tune": True},
}
"""The paper's comparison in one table: single-task encoder-CRF per dataset, plain multi-task, multi-task
then fine-tuning (no type level), and HST (type level + fine-tuning)."""


def run_variant(
    variant: str,
    datasets,
    config: HSTConfig | None = None,
    encoder_fn: Callable[[], WordEncoder] | None = None,
    split: str = "test",
) -> dict[str, PRF]:
    """Train ``variant`` (a key of :data:`VARIANTS`) on ``datasets`` and score each dataset's ``split``.

    ``encoder_fn()`` gives a fresh encoder for every model trained (default: load ``config.encoder``)."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)}")
    v = VARIANTS[variant]
    c = dataclasses.replace(config or get_default_config(), use_type_level=v["use_type_level"])
    datasets = _as_list(datasets)
    scores: dict[str, PRF] = {}
    if not v["multitask"]:
        for d in datasets:
            model = HSTTagger(c, [d], encoder_fn() if encoder_fn else None)
            train_multitask(model, [d], c)
            scores[d.name] = evaluate(model, d, split)
        return scores
    model = HSTTagger(c, datasets, encoder_fn() if encoder_fn else None)
    train_multitask(model, datasets, c)
    for d in datasets:
        tuned = fine_tune(model, d, c) if v["fine_tune"] else model
        scores[d.name] = evaluate(tuned, d, split)
    return scores


__all__ = [
    "ENTITY_TYPES",
    "SCALES",
    "VARIANTS",
    "DatasetHead",
    "DatasetSkipped",
    "Fusion",
    "HSTBatch",
    "HSTConfig",
    "HSTDataset",
    "HSTTagger",
    "TypeHead",
    "TypeLayer",
    "dataset_sampler",
    "dataset_tag_set",
    "evaluate",
    "fine_tune",
    "fine_tune_parts",
    "freeze",
    "get_default_config",
    "load_hst_datasets",
    "mean_dev_f1",
    "model_parts",
    "normalize_entity_type",
    "run_variant",
    "train_multitask",
    "trainable_parts",
    "type_level_tags",
    "type_tag_set",
    "unfreeze",
]
