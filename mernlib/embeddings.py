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
    """Train word2vec (CBOW by default, ``sg=1`` for skip-gram) and return its ``KeyedVectors``.

    ``sentences`` are token lists (re-iterable; a list is fine). Extra ``kwargs`` go to
    ``gensim.models.Word2Vec``. See the module docstring for determinism.
    """
    from gensim.models import Word2Vec

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
    of its lowercase form, else random (:func:`random_embeddings`). ``PAD`` is zero, ``UNK`` random.

    ``dim`` defaults to the vectors' size and must match it.
    """
    kv_dim = int(keyed_vectors.vector_size)
    dim = kv_dim if dim is None else dim
    if dim != kv_dim:
        raise ValueError(f"dim={dim} but the pretrained vectors have {kv_dim} dimensions")
    matrix = random_embeddings(len(vocab), dim, seed)
    exact = lower = rand = 0
    for idx, word in enumerate(vocab.itos):
        if idx in (PAD, UNK):
            continue
        if word in keyed_vectors.key_to_index:
            matrix[idx] = torch.tensor(np.asarray(keyed_vectors[word], dtype=np.float32))
            exact += 1
        elif word.lower() in keyed_vectors.key_to_index:
            matrix[idx] = torch.tensor(np.asarray(keyed_vectors[word.lower()], dtype=np.float32))
            lower += 1
        else:
            rand += 1
    return matrix, Coverage(exact, lower, rand)


def nearest_neighbours(keyed_vectors, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` words with the highest cosine similarity to ``word`` (``KeyError`` if absent)."""
    if word not in keyed_vectors.key_to_index:
        raise KeyError(f"{word!r} has no vector")
    return [(w, float(s)) for w, s in keyed_vectors.most_similar(word, topn=k)]
