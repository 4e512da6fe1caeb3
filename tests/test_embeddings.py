"""Word2vec training, pretrained vector loading and the embedding matrix, on tiny corpora."""

import math

import numpy as np
import pytest
import torch

from mernlib.embeddings import (
    embedding_matrix,
    load_pretrained_vectors,
    nearest_neighbours,
    random_embeddings,
    train_word2vec,
)
from mernlib.vocab import PAD, UNK, Vocab

CORPUS = [
    ["breast", "cancer", "is", "a", "tumour"],
    ["ovarian", "cancer", "is", "a", "tumour"],
    ["ataxia", "is", "a", "disease"],
] * 20


def test_word2vec_is_deterministic_with_one_worker():
    a = train_word2vec(CORPUS, dim=12, epochs=3, seed=5)
    b = train_word2vec(CORPUS, dim=12, epochs=3, seed=5)
    assert a.vector_size == 12 and "cancer" in a.key_to_index
    assert np.array_equal(a["cancer"], b["cancer"])
    c = train_word2vec(CORPUS, dim=12, epochs=3, seed=6)
    assert not np.array_equal(a["cancer"], c["cancer"])
    neighbours = nearest_neighbours(a, "cancer", k=3)
    assert len(neighbours) == 3 and all(w != "cancer" for w, _ in neighbours)
    with pytest.raises(KeyError):
        nearest_neighbours(a, "unseen-word")


def _write_vectors(path, header: bool):
    rows = {"Cancer": [1.0, 0.0, 0.0], "tumour": [0.9, 0.1, 0.0], "is": [0.0, 0.0, 1.0]}
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write(f"{len(rows)} 3\n")
        for w, vec in rows.items():
            f.write(w + " " + " ".join(str(x) for x in vec) + "\n")


@pytest.mark.parametrize("fmt", ["glove", "word2vec-text", "word2vec-binary"])
def test_load_formats_and_coverage(tmp_path, fmt):
    path = tmp_path / "vectors.txt"
    _write_vectors(path, header=fmt != "glove")
    if fmt == "word2vec-binary":  # round-trip through gensim's binary writer
        load_pretrained_vectors(path, "word2vec-text").save_word2vec_format(
            str(tmp_path / "v.bin"), binary=True
        )
        path = tmp_path / "v.bin"
    kv = load_pretrained_vectors(path, format=fmt)
    assert kv.vector_size == 3 and set(kv.key_to_index) == {"Cancer", "tumour", "is"}

    vocab = Vocab.build([["Cancer", "cancer", "Tumour", "is", "rare"]])
    matrix, cov = embedding_matrix(vocab, kv, dim=3, seed=1)
    assert matrix.shape == (len(vocab), 3)
    assert (cov.exact, cov.lowercase, cov.random) == (2, 1, 2)  # Cancer, is | Tumour | cancer, rare
    assert torch.equal(matrix[vocab["Tumour"]], torch.tensor([0.9, 0.1, 0.0]))
    assert torch.all(matrix[PAD] == 0) and not torch.all(matrix[UNK] == 0)
    assert "covered" in str(cov)
    with pytest.raises(ValueError):
        embedding_matrix(vocab, kv, dim=4)


def test_random_embeddings_range_and_seed():
    m = random_embeddings(50, dim=12, seed=3)
    bound = math.sqrt(3 / 12)
    assert m.shape == (50, 12) and m.abs().max() <= bound and torch.all(m[PAD] == 0)
    assert torch.equal(m, random_embeddings(50, dim=12, seed=3))
    assert not torch.equal(m, random_embeddings(50, dim=12, seed=4))


def test_missing_file_and_bad_format(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_pretrained_vectors(tmp_path / "nope.txt", "glove")
    with pytest.raises(ValueError):
        load_pretrained_vectors(tmp_path / "nope.txt", "fasttext")


def test_word2vec_options_take_effect():
    base = dict(dim=12, epochs=3, seed=5)
    cbow = train_word2vec(CORPUS, **base)
    for option in (dict(sg=1), dict(window=1), dict(epochs=6), dict(dim=8)):
        other = train_word2vec(CORPUS, **{**base, **option})
        assert other.vector_size == option.get("dim", 12)
        assert option.get("dim") or not np.array_equal(cbow["cancer"], other["cancer"]), option
    # min_count: "breast" occurs 20 times, "cancer" 40
    frequent = train_word2vec(CORPUS, min_count=30, **base)
    assert "cancer" in frequent.key_to_index and "breast" not in frequent.key_to_index
    for bad in (dict(sg=2), dict(dim=0), dict(window=0), dict(min_count=0), dict(epochs=1.5)):
        with pytest.raises(ValueError):
            train_word2vec(CORPUS, **{**base, **bad})


def _keyed_vectors(words, vectors):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(list(words), vectors.numpy())
    return kv


def test_random_rows_match_the_scale_of_the_pretrained_rows():
    """Words without a vector get rows drawn with the found rows' mean and std per dimension: the same
    norms as the pretrained rows (word2vec's are ~0.3, not the ~1 of a ±sqrt(3/dim) uniform draw)."""
    g = torch.Generator().manual_seed(0)
    dim = 20
    mean = torch.linspace(-0.1, 0.1, dim)
    std = torch.linspace(0.02, 0.08, dim)
    known = [f"w{i}" for i in range(2000)]
    kv = _keyed_vectors(known, mean + std * torch.randn(len(known), dim, generator=g))
    unknown = [f"u{i}" for i in range(2000)]
    vocab = Vocab.build([known + unknown])
    matrix, cov = embedding_matrix(vocab, kv, seed=3)
    assert (cov.exact, cov.lowercase, cov.random) == (2000, 0, 2000)
    rows = torch.tensor([vocab[w] for w in unknown] + [UNK])
    found = torch.tensor([vocab[w] for w in known])
    assert torch.equal(matrix[found], torch.tensor(kv.vectors))  # pretrained rows untouched
    assert torch.allclose(matrix[rows].mean(0), mean, atol=0.01)
    assert torch.allclose(matrix[rows].std(0), std, rtol=0.1)
    ratio = matrix[rows].norm(dim=1).median() / matrix[found].norm(dim=1).median()
    assert 0.9 < ratio < 1.1
    assert torch.all(matrix[PAD] == 0)
    assert torch.equal(matrix, embedding_matrix(vocab, kv, seed=3)[0])  # deterministic given the seed


def test_random_rows_of_trained_word2vec_are_on_its_scale():
    kv = train_word2vec(CORPUS, dim=12, epochs=3, seed=5)
    vocab = Vocab.build([list(kv.key_to_index) + [f"oov{i}" for i in range(200)]])
    matrix, cov = embedding_matrix(vocab, kv)
    assert cov.random == 200
    norms = matrix.norm(dim=1)
    found = torch.tensor([vocab[w] for w in kv.key_to_index])
    oov = torch.tensor([vocab[f"oov{i}"] for i in range(200)])
    ratio = norms[oov].median() / norms[found].median()
    assert 0.5 < ratio < 2.0, (norms[oov].median(), norms[found].median())
