"""IOB NER datasets by name, with their coarse entity type, capped reproducibly.

The hierarchical shared transfer experiment (:mod:`mernlib.experiments.hst`) trains over many IOB
datasets at once -- the Crichton et al. (2017) collection (``crichton-2017-ner/``), or the bundled
sample IOB datasets (:data:`mernlib.sample.IOB_DATASETS`). This module reads them:

* a **selection** names several datasets at once (:func:`expand_selection`): ``"sample"`` (the five
  sample datasets), ``"crichton"`` (every IOB dataset of the registry), an entity type (``"disease"``),
  a dataset name (``"NCBI-disease"``, ``"sample-chem"``), or a list of these;
* each dataset is an :class:`IOBDataset`: its sentences per split, its coarse entity type (the registry's
  groups: chemical, disease, gene-protein, species) and its tag set;
* a **cap** keeps a seeded random subset of a split, in file order (:func:`cap_sentences`), so that a
  reduced run trains on the same sentences every time;
* a dataset whose files are absent is **skipped and returned as data** -- ``{"dataset", "reason"}`` in
  :attr:`IOBSelection.skipped`, the reason being the registry's message (which file, where to get it,
  where to put it) -- never silently and never only as warning text.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .conll import TaggedSentence, read_iob

ENTITY_TYPES = ("chemical", "disease", "gene-protein", "species")
SPLITS = ("train", "devel", "test")


def normalize_entity_type(entity_type: str) -> str:
    """``"gene/protein"``, ``"Gene_Protein"``, ``"gene"`` ... -> ``"gene-protein"`` (one of
    :data:`ENTITY_TYPES`)."""
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


def dataset_tag_set(sentences: Iterable[TaggedSentence]) -> list[str]:
    """``["O"]`` + ``B-X``/``I-X`` for every type ``X`` tagged in ``sentences`` (both, even if only one is
    seen, so a tagger can always close what it opens), sorted."""
    kinds = {tag[2:] for s in sentences for tag in s.tags if tag != "O"}
    return ["O"] + sorted(f"{p}-{k}" for k in kinds for p in ("B", "I"))


@dataclass
class IOBDataset:
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

    def describe(self) -> dict:
        """What a results file records about the dataset: type, sizes before and after the caps, tags."""
        return {
            "entity_type": self.entity_type,
            "sizes": dict(self.sizes),
            "used": {s: len(self.split(s)) for s in SPLITS},
            "tags": list(self.tags),
        }

    def __repr__(self) -> str:
        n = "/".join(str(len(self.split(s))) for s in SPLITS)
        return f"IOBDataset({self.name!r}, {self.entity_type}, {n} sentences, {len(self.tags)} tags)"


@dataclass
class IOBSelection:
    """What :func:`load_iob_datasets` read: the datasets by name (in the order asked), the datasets it
    had to skip (``[{"dataset", "reason"}]``), and the caps and seed that chose the subsets."""

    name: str
    datasets: dict[str, IOBDataset]
    skipped: list[dict] = field(default_factory=list)
    caps: dict[str, int | None] = field(default_factory=dict)
    seed: int = 13

    def __repr__(self) -> str:
        skipped = f", skipped {[s['dataset'] for s in self.skipped]}" if self.skipped else ""
        return f"IOBSelection({self.name!r}: {list(self.datasets)}{skipped})"


def expand_selection(names: str | Sequence[str]) -> list[str]:
    """Dataset names of a selection, in order, without repeats: ``"sample"`` -> the five sample datasets,
    ``"crichton"`` (or ``"all"``) -> every IOB dataset of the registry, an entity type -> its datasets;
    any other name is kept as is (checked when it is loaded)."""
    from . import registry
    from .sample import IOB_DATASETS

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


def cap_sentences(
    sentences: list[TaggedSentence], cap: int | None, seed: int, key: str
) -> list[TaggedSentence]:
    """At most ``cap`` sentences: a random subset fixed by ``seed`` and ``key`` (``"<dataset>:<split>"``),
    in file order; all of them when ``cap`` is ``None`` or not smaller."""
    if cap is None or len(sentences) <= cap:
        return sentences
    keep = sorted(random.Random(f"{seed}:{key}").sample(range(len(sentences)), cap))
    return [sentences[i] for i in keep]


def load_iob_datasets(
    selection: str | Sequence[str] = "sample",
    *,
    data_dir: str | Path | None = None,
    caps: dict[str, int | None] | None = None,
    seed: int = 13,
    download: bool = True,
) -> IOBSelection:
    """The datasets of ``selection`` (see :func:`expand_selection`), each split capped by ``caps``
    (``{"train": n, "devel": n, "test": n}``, a missing or ``None`` cap keeps every sentence).

    Registry datasets are found through :func:`mernlib.registry.locate` (``data_dir``, ``$MERNLIB_DATA``,
    the cache, a checked download); one whose files cannot be found is listed in
    :attr:`IOBSelection.skipped` with the registry's message. A registry dataset that is not an IOB
    dataset with an entity type raises ``ValueError``.
    """
    from . import registry
    from .data import sample_dir
    from .errors import DataNotFoundError
    from .sample import IOB_DATASETS

    caps = {s: (caps or {}).get(s) for s in SPLITS}
    name = selection if isinstance(selection, str) else "+".join(selection)
    out = IOBSelection(name, {}, [], caps, seed)
    for requested in expand_selection(selection):
        if requested in IOB_DATASETS:
            folder = sample_dir() / "iob" / requested
            paths = {s: folder / f"{s}.tsv" for s in SPLITS}
            key, entity_type = requested, IOB_DATASETS[requested]["entity_type"]
        else:
            dataset = registry.get(requested)
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
                out.skipped.append({"dataset": dataset.name, "reason": str(err).strip()})
                continue
        splits = {s: read_iob(p) for s, p in paths.items()}
        capped = {s: cap_sentences(v, caps[s], seed, f"{key}:{s}") for s, v in splits.items()}
        out.datasets[key] = IOBDataset(
            key,
            entity_type,
            capped["train"],
            capped["devel"],
            capped["test"],
            sizes={s: len(v) for s, v in splits.items()},
            source=str(paths["train"].parent),
        )
    return out


__all__ = [
    "ENTITY_TYPES",
    "SPLITS",
    "IOBDataset",
    "IOBSelection",
    "cap_sentences",
    "dataset_tag_set",
    "expand_selection",
    "load_iob_datasets",
    "normalize_entity_type",
]
