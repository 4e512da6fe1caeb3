"""Word-level transformer encoding: loading offline, word-piece alignment, windowing."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from mernlib.encoders import (
    WordEncoder,
    WordPieceAligner,
    default_encoder_path,
    encoder_name,
    load_encoder,
)

SENTENCE = "Naloxone reverses the antihypertensive effect of clonidine in normotensive rats .".split()


@pytest.fixture(scope="module")
def minilm():
    model, tokenizer = load_encoder()  # no argument: the bundled MiniLM, local files only
    model.eval()
    return model, tokenizer


def test_default_encoder_is_local_minilm(minilm):
    path = default_encoder_path()
    assert (path / "config.json").is_file()
    model, tokenizer = minilm
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    assert tokenizer.is_fast
    assert "MiniLM" in encoder_name()
    assert encoder_name(path).startswith(path.name)
    assert encoder_name("dmis-lab/biobert-v1.1") == "dmis-lab/biobert-v1.1"


def test_alignment_maps_back_to_words(minilm):
    _, tokenizer = minilm
    aligner = WordPieceAligner(tokenizer, max_length=64)
    (enc,) = aligner.encode([SENTENCE])
    spans = enc.word_spans()
    assert len(spans) == len(SENTENCE)
    assert spans[0][0] == 0 and spans[-1][1] == len(enc.piece_ids)
    for word, (s, e) in zip(SENTENCE, spans, strict=True):
        assert e > s
        pieces = tokenizer.convert_ids_to_tokens(enc.piece_ids[s:e])
        assert tokenizer.convert_tokens_to_string(pieces).replace(" ", "") == word.lower()
    assert enc.unk_words == []


def test_words_without_pieces_become_unk(minilm):
    _, tokenizer = minilm
    aligner = WordPieceAligner(tokenizer, max_length=64)
    words = ["aspirin", "\ufeff", "induced", "\x7f", "\u00ad", "asthma"]
    (enc,) = aligner.encode([words])
    assert enc.unk_words == [1, 3, 4]
    assert len(enc.word_starts) == len(words)
    for w in enc.unk_words:
        s, e = enc.word_spans()[w]
        assert enc.piece_ids[s:e] == [tokenizer.unk_token_id]
    # a mention on such a word still has a vector
    batch = aligner([words])
    assert batch.word_mask.sum().item() == len(words)


def test_collate_pads_dynamically(minilm):
    _, tokenizer = minilm
    aligner = WordPieceAligner(tokenizer, max_length=64)
    batch = aligner([SENTENCE, ["short"], []])
    n_pieces = len(aligner.encode([SENTENCE])[0].piece_ids)
    assert batch.input_ids.shape == (3, n_pieces + 2)  # [CLS] ... [SEP], padded to the longest
    assert batch.word_mask.tolist()[1][:2] == [True, False]
    assert not batch.word_mask[2].any()
    assert batch.input_ids[0, 0].item() == tokenizer.cls_token_id


def test_encoder_matches_plain_transformer_when_sentence_fits(minilm):
    model, tokenizer = minilm
    encoder = WordEncoder(model, tokenizer, max_length=128).eval()
    with torch.no_grad():
        out = encoder([SENTENCE])
        enc = tokenizer(SENTENCE, is_split_into_words=True, return_tensors="pt")
        ref = model(**enc).last_hidden_state[0]
    word_ids = enc.word_ids()
    first = [word_ids.index(w) for w in range(len(SENTENCE))]
    assert out.words.shape == (1, len(SENTENCE), 384)
    torch.testing.assert_close(out.words[0], ref[first], atol=1e-5, rtol=1e-4)


def test_windowing_long_sentence(minilm):
    model, tokenizer = minilm
    long_sentence = (SENTENCE * 4)[:40]
    full = WordEncoder(model, tokenizer, max_length=128).eval()
    windowed = WordEncoder(model, tokenizer, max_length=16, stride=7).eval()
    with torch.no_grad():
        a = full([long_sentence, SENTENCE[:3]])
        batch = windowed.aligner([long_sentence, SENTENCE[:3]])
        b = windowed(batch)
    assert len(batch.windows[0]) > 1, "the long sentence must be windowed"
    assert batch.input_ids.size(1) <= 16
    # every word has a (non-zero) vector, nothing truncated
    assert b.word_mask[0].sum().item() == len(long_sentence)
    assert (b.words[0].norm(dim=-1) > 0).all()
    # the short sentence fits in one window: same result as the unwindowed encoder
    torch.testing.assert_close(b.words[1, :3], a.words[1, :3], atol=1e-5, rtol=1e-4)
    # the long one is close to the full-context encoding (less context, same words)
    cos = torch.nn.functional.cosine_similarity(a.words[0], b.words[0], dim=-1)
    assert cos.mean().item() > 0.8
    # each piece comes from the window where it is most central
    n = int(batch.piece_mask[0].sum())
    best = WordPieceAligner.best_window(n, batch.windows[0])
    for p in range(n):
        s, e = batch.windows[0][best[p]]
        for s2, e2 in batch.windows[0]:
            if s2 <= p < e2:
                assert min(p - s, e - 1 - p) >= min(p - s2, e2 - 1 - p)


def test_window_cover():
    aligner = WordPieceAligner.__new__(WordPieceAligner)  # windows() needs no tokenizer
    aligner.window, aligner.stride = 10, 4
    wins = aligner.windows(23)
    assert wins[0] == (0, 10) and wins[-1] == (13, 23)
    covered = set()
    for s, e in wins:
        assert e - s == 10
        covered.update(range(s, e))
    assert covered == set(range(23))
    assert aligner.windows(7) == [(0, 7)]
