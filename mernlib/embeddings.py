"""Word embeddings: train word2vec with gensim, load pretrained vectors, build the embedding matrix.

Reproducibility: gensim's word2vec is bit-identical between runs only with ``workers=1`` (several
worker threads race on the shared weights) *and* a fixed ``PYTHONHASHSEED`` in the environment of
the Python process (gensim seeds each word's initial vector from ``hash(word + str(seed))``; the
hash of a ``str`` is randomised per process unless ``PYTHONHASHSEED`` is set before Python starts --
setting it inside a running notebook is too late). :func:`train_word2vec` therefore defaults to
``workers=1`` and uses a deterministic hash function, which removes the ``PYTHONHASHSEED``
requirement for the initial vectors; keep ``workers=1`` if you need identical vectors.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mernlib.vocab import PAD, UNK, Vocab

FORMATS = ("word2vec-binary", "word2vec-text", "glove")


def _stable_hash(text: str) -> int:
    """A process-independent replacement for ``hash()`` (gensim's ``hashfxn``)."""
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(
    sentences: Iterable[Sequence[str]],
    dim: int = 50,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 5,
    seed: int = 13,
    workers: int = 1,
    sg: int = 0,
    **kwargs,
):
    """Train word2vec and return its ``KeyedVectors``.

    The options a dev-set comparison would vary (defaults: the kit's vectors so far):

    * ``sg``: 0 = CBOW (predict a word from its context; the default), 1 = skip-gram (predict the
      context from the word; often better for rare words, slower);
    * ``dim``: vector size (the tagger's ``word_dim`` must match);
    * ``window``: context words on each side;
    * ``min_count``: words seen fewer times get no vector (they become random rows of
      :func:`embedding_matrix`);
    * ``epochs``: passes over the text.

    ``sentences`` are token lists (re-iterable; a list is fine). Extra ``kwargs`` go to
    ``gensim.models.Word2Vec`` (e.g. ``negative``, ``sample``). See the module docstring for determinism.
    """
    from gensim.models import Word2Vec

    if sg not in (0, 1):
        raise ValueError(f"sg must be 0 (CBOW) or 1 (skip-gram), not {sg!r}")
    for name, value in (("dim", dim), ("window", window), ("min_count", min_count), ("epochs", epochs)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    sentences = [list(s) for s in sentences]
    model = Word2Vec(
        sentences=sentences,
        vector_size=dim,
        window=window,
        min_count=min_count,
        epochs=epochs,
        seed=seed,
        workers=workers,
        sg=sg,
        hashfxn=_stable_hash,
        **kwargs,
    )
    return model.wv


def load_pretrained_vectors(path: str | Path, format: str = "word2vec-binary", limit: int | None = None):
    """Load vectors into gensim ``KeyedVectors``.

    ``format``: ``"word2vec-binary"`` (e.g. PubMed/PMC ``.bin``), ``"word2vec-text"`` (first line
    ``<count> <dim>``) or ``"glove"`` (text without that header line). ``limit`` reads the first N.
    """
    from gensim.models import KeyedVectors

    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such embeddings file")
    if format == "glove":
        return KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True, limit=limit)
    return KeyedVectors.load_word2vec_format(str(path), binary=format == "word2vec-binary", limit=limit)


def random_embeddings(vocab_size: int | Vocab, dim: int = 100, seed: int = 13) -> torch.Tensor:
    """``[V, dim]`` uniform in ±sqrt(3/dim) (variance 1/dim); row ``PAD`` is zero."""
    n = len(vocab_size) if isinstance(vocab_size, Vocab) else int(vocab_size)
    g = torch.Generator().manual_seed(seed)
    bound = math.sqrt(3.0 / dim)
    matrix = (torch.rand(n, dim, generator=g) * 2 - 1) * bound
    matrix[PAD] = 0.0
    return matrix


@dataclass
class Coverage:
    """How the rows of an embedding matrix were filled (``PAD``/``UNK`` are not counted)."""

    exact: int
    lowercase: int
    random: int

    @property
    def total(self) -> int:
        return self.exact + self.lowercase + self.random

    @property
    def found(self) -> float:
        """Share of the vocabulary that got a pretrained vector."""
        return (self.exact + self.lowercase) / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (
            f"{self.total} words: {self.exact} exact, {self.lowercase} lowercase, {self.random} random "
            f"({self.found:.1%} covered)"
        )


def embedding_matrix(
    vocab: Vocab, keyed_vectors, dim: int | None = None, seed: int = 13
) -> tuple[torch.Tensor, Coverage]:
    """An ``[len(vocab), dim]`` matrix: the pretrained vector of each word if found as written, else
    of its lowercase form, else a random row. ``PAD`` is zero, ``UNK`` random.

    Random rows are on the scale of the pretrained ones: drawn from a normal distribution with, per
    dimension, the mean and standard deviation of the rows that were found. word2vec vectors trained in
    the kit have a median norm around 0.34 and share a common offset; rows drawn uniformly in
    ±sqrt(3/dim) (:func:`random_embeddings`, norm ~1, centred at 0) would make "this word had no vector"
    readable from the norm alone and put those words far from every real one. Matching the moments keeps
    the pretrained rows exactly as given (a user's vectors are not rescaled) and gives the network one
    input scale. With fewer than two vectors found there are no moments to match and the rows come
    from :func:`random_embeddings`.

    ``dim`` defaults to the vectors' size and must match it.
    """
    kv_dim = int(keyed_vectors.vector_size)
    dim = kv_dim if dim is None else dim
    if dim != kv_dim:
        raise ValueError(f"dim={dim} but the pretrained vectors have {kv_dim} dimensions")
    matrix = random_embeddings(len(vocab), dim, seed)
    exact = lower = 0
    found = torch.zeros(len(vocab), dtype=torch.bool)
    for idx, word in enumerate(vocab.itos):
        if idx in (PAD, UNK):
            continue
        key = word if word in keyed_vectors.key_to_index else word.lower()
        if key not in keyed_vectors.key_to_index:
            continue
        matrix[idx] = torch.tensor(np.asarray(keyed_vectors[key], dtype=np.float32))
        found[idx] = True
        exact, lower = (exact + 1, lower) if key == word else (exact, lower + 1)
    missing = ~found
    missing[PAD] = False
    if int(found.sum()) >= 2:
        mean, std = matrix[found].mean(0), matrix[found].std(0)
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(int(missing.sum()), dim, generator=g)
        matrix[missing] = mean + std * noise
    rand = int(missing.sum()) - int(missing[UNK])
    return matrix, Coverage(exact, lower, rand)


def nearest_neighbours(keyed_vectors, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` words with the highest cosine similarity to ``word`` (``KeyError`` if absent)."""
    if word not in keyed_vectors.key_to_index:
        raise KeyError(f"{word!r} has no vector")
    return [(w, float(s)) for w, s in keyed_vectors.most_similar(word, topn=k)]
