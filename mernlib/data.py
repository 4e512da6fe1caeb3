"""Loading corpora by name: the bundled sample, the real PubTator corpora, and IOB collections.

``load_corpus("sample")`` is every notebook's default. The real corpora (``"ncbi-disease"``, ``"bc5cdr"``)
are found through :func:`mernlib.registry.locate`: under ``data_dir`` or ``$MERNLIB_DATA``, then the user
cache, else downloaded from the official source with a checksum check.
"""

from __future__ import annotations

import os
from pathlib import Path

from .corpus import Document
from .report import REPO_ROOT

SPLITS = ("train", "dev", "test")
PUBTATOR_CORPORA = ("ncbi-disease", "bc5cdr")


def sample_dir() -> Path:
    """The bundled sample corpus: ``data/sample`` of the checkout, else regenerated into the user cache.

    A pip-installed kit (e.g. on Colab) has no ``data/`` folder; the sample is written by the kit itself
    (:mod:`mernlib.sample`), so it is rebuilt, byte-identical, on first use.
    """
    bundled = REPO_ROOT / "data" / "sample"
    if (bundled / "train.pubtator").exists():
        return bundled
    from .sample import write_sample

    cache = Path(os.environ.get("MERNLIB_CACHE", Path.home() / ".cache" / "mernlib")) / "sample"
    if not (cache / "train.pubtator").exists():
        write_sample(cache)
    return cache


def corpus_files(name: str, data_dir: str | Path | None = None) -> dict[str, Path]:
    """Split name -> PubTator file of a corpus (the sample or a registered corpus)."""
    if name == "sample":
        root = sample_dir()
        return {split: root / f"{split}.pubtator" for split in SPLITS}
    if name not in PUBTATOR_CORPORA:
        raise ValueError(f"unknown corpus {name!r}: choose one of {('sample',) + PUBTATOR_CORPORA}")
    from .registry import locate

    return {split: Path(locate(name, split, data_dir=data_dir)) for split in SPLITS}


def load_corpus(name: str = "sample", split: str | None = None,
                data_dir: str | Path | None = None) -> dict[str, list[Document]] | list[Document]:
    """The documents of one split (``split="train"``) or of all splits (a dict split -> documents)."""
    from .pubtator import read_pubtator

    files = corpus_files(name, data_dir or None)
    if split is not None:
        if split not in files:
            raise ValueError(f"unknown split {split!r}: choose one of {tuple(files)}")
        return read_pubtator(files[split])
    return {s: read_pubtator(path) for s, path in files.items()}


def load_corpus_entity_base(name: str = "sample", data_dir: str | Path | None = None):
    """The entity base that goes with a corpus: the sample's ``entities.tsv``, or MeSH + OMIM names.

    A file of the real base that cannot be had or fails its checksum is left out *with a warning* that
    says which and why (the notebooks still run on MeSH names alone); a malformed file is an error.
    """
    import warnings

    from .entity_base import EntityBase, load_entity_base
    from .errors import DataNotFoundError
    from .registry import locate

    if name == "sample":
        return load_entity_base(sample_dir() / "entities.tsv")
    base = EntityBase()
    for part in ("mesh", "omim"):
        try:
            base.update(load_entity_base(locate("entity-base", part, data_dir=data_dir)))
        except DataNotFoundError as error:
            warnings.warn(f"entity base without {part} names: {str(error).splitlines()[0]}", stacklevel=2)
    return base
