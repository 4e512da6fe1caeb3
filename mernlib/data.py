"""Loading corpora by name: the bundled sample, the real PubTator corpora, and IOB collections.

``load_corpus("sample")`` is every notebook's default. The real corpora (``"ncbi-disease"``, ``"bc5cdr"``)
are found through :func:`mernlib.registry.locate`: under ``data_dir`` or ``$MERNLIB_DATA``, then the user
cache, else downloaded from the official source with a checksum check.
"""

from __future__ import annotations

from pathlib import Path

from .corpus import Document
from .paths import REPO_ROOT, cache_dir

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

    cache = cache_dir("sample")
    if not (cache / "train.pubtator").exists():
        write_sample(cache)
    return cache


def corpus_files(
    name: str, data_dir: str | Path | None = None, splits: tuple[str, ...] | list[str] = SPLITS
) -> dict[str, Path]:
    """Split name -> PubTator file of a corpus (the sample or a registered corpus), for ``splits`` only:
    a split that is not asked for is not located (offline, the test split alone is enough)."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r}: choose one of {SPLITS}")
    if name == "sample":
        root = sample_dir()
        return {split: root / f"{split}.pubtator" for split in splits}
    if name not in PUBTATOR_CORPORA:
        raise ValueError(f"unknown corpus {name!r}: choose one of {('sample',) + PUBTATOR_CORPORA}")
    from .registry import locate

    return {split: Path(locate(name, split, data_dir=data_dir)) for split in splits}


def load_corpus(
    name: str = "sample", split: str | None = None, data_dir: str | Path | None = None
) -> dict[str, list[Document]] | list[Document]:
    """The documents of one split (``split="train"``) or of all splits (a dict split -> documents)."""
    from .pubtator import read_pubtator

    if split is not None:
        return read_pubtator(corpus_files(name, data_dir or None, (split,))[split])
    return {s: read_pubtator(path) for s, path in corpus_files(name, data_dir or None).items()}


def load_corpus_entity_base(name: str = "sample", data_dir: str | Path | None = None):
    """The entity base that goes with a corpus: the sample's ``entities.tsv``, or MeSH + OMIM names.

    A file of the real base that cannot be had or fails its checksum is left out *with a warning* that
    says which and why (the notebooks still run on MeSH names alone); a malformed file is an error. A base
    that ends up with no concept at all (both files missing, or failing their checksum -- an empty or
    truncated copy does) raises :class:`~mernlib.errors.DataNotFoundError` saying what to put where:
    normalization against an empty base would run to the end and score 0, which looks like a result but
    is not one. (An empty ``entities.tsv`` of the sample is a :class:`~mernlib.errors.DataFormatError`.)
    """
    import warnings

    from .entity_base import EntityBase, load_entity_base
    from .errors import DataNotFoundError
    from .registry import locate

    if name == "sample":  # an empty entities.tsv is already a DataFormatError ("empty file")
        return load_entity_base(sample_dir() / "entities.tsv")
    base = EntityBase()
    problems = []
    for part in ("mesh", "omim"):
        try:
            base.update(load_entity_base(locate("entity-base", part, data_dir=data_dir)))
        except DataNotFoundError as error:
            problems.append(str(error))
            warnings.warn(f"entity base without {part} names: {str(error).splitlines()[0]}", stacklevel=2)
    if not len(base):
        raise DataNotFoundError(
            f"no entity base for {name}: normalization needs concept names (mesh.tsv, omim.tsv) and none "
            "could be loaded. Fix: put mesh.tsv and omim.tsv under $MERNLIB_DATA/entity-base/ (or pass "
            "data_dir=) and run again.\n" + "\n".join(problems)
        )
    return base


# Crichton et al.'s IOB versions of the two PubTator corpora hold the same abstracts (test splits included).
_SAME_TEXT_AS = {"ncbi-disease": ("NCBI-disease",), "bc5cdr": ("BC5CDR-chem", "BC5CDR-disease")}


def embedding_training_text(
    corpus: str = "sample", data_dir: str | Path | None = None, extra_iob: bool = True
) -> tuple[list[list[str]], list[str]]:
    """Tokenized sentences to train word vectors on, and a list saying where they came from.

    Never a test split of a corpus the kit evaluates on: for the sample, its train and dev splits; for the
    real corpora, the train and dev splits of *both* NCBI-disease and BC5CDR, plus (``extra_iob``) the
    train and devel splits of every other dataset of the Crichton et al. collection that is present
    (its NCBI-disease and BC5CDR files are the same abstracts, test included, so they are left out).
    This is far less text than the PubMed-scale corpora of published word vectors: expect weaker
    vectors and say so next to any result that uses them.
    """
    from .tokenize import tokenize_document

    def sentences_of(documents):
        return [[t.text for t in s.tokens] for d in documents for s in tokenize_document(d)]

    if corpus == "sample":
        by_split = load_corpus("sample")
        return sentences_of(by_split["train"] + by_split["dev"]), ["sample train", "sample dev"]
    from .conll import read_iob
    from .errors import DataNotFoundError
    from .registry import DATASETS, locate

    sentences, sources = [], []
    for name in PUBTATOR_CORPORA:
        for split in ("train", "dev"):
            sentences += sentences_of(load_corpus(name, split, data_dir))
            sources.append(f"{name} {split}")
    if extra_iob:
        excluded = {n for names in _SAME_TEXT_AS.values() for n in names}
        for dataset in DATASETS.values():
            if dataset.task != "iob" or dataset.name in excluded:
                continue
            for split in ("train", "devel"):
                if split not in dataset.files or dataset.files[split].sha256 is None:
                    continue  # absent here (BC4CHEMD, JNLPBA train): the registry says so elsewhere
                try:
                    path = locate(dataset.name, split, data_dir=data_dir, download=False)
                except DataNotFoundError:
                    continue
                sentences += [s.tokens for s in read_iob(path)]
                sources.append(f"{dataset.name} {split}")
    return sentences, sources


def corpus_statistics(name_or_path: str, split: str | None = None, data_dir: str | None = None) -> dict:
    """Documents, mentions (per type), unique concepts and mentions lost by tokenization, as a dict.

    ``name_or_path`` is a corpus name (``sample``, ``ncbi-disease``, ``bc5cdr``) or a PubTator file; with
    ``split`` only that split's file is located (offline, the test split alone is enough).
    """
    from .corpus import corpus_stats
    from .errors import DataFormatError
    from .pubtator import read_pubtator_with_notes
    from .tokenize import lost_mentions, tokenize_document

    names = ("sample",) + PUBTATOR_CORPORA
    path = Path(name_or_path)
    if path.is_file():
        if split:
            raise ValueError(f"--split {split} applies to a corpus name ({', '.join(names)}), not to a file")
        files = {"file": path}
    elif name_or_path in names:
        files = corpus_files(name_or_path, data_dir, (split,) if split else SPLITS)
    elif path.is_dir():
        raise DataFormatError(
            path, None, f"is a directory; give a PubTator file or one of {', '.join(names)}"
        )
    else:
        raise DataFormatError(path, None, f"no such file, and not a corpus name ({', '.join(names)})")
    documents, notes = [], []
    for path in files.values():
        docs, file_notes = read_pubtator_with_notes(path)
        documents.extend(docs)
        notes.extend(file_notes)
    stats = corpus_stats(documents)
    stats["lost_mentions"] = sum(len(lost_mentions(doc, tokenize_document(doc))) for doc in documents)
    stats["files"] = [str(p) for p in files.values()]
    stats["notes"] = notes
    return stats
