"""Continued masked-language-model pretraining: packing keeps every piece, BERT's masking, a saved
encoder that the kit loads, the same seed giving the same weights, the CLI."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from mernlib.encoders import load_encoder, tiny_random_encoder
from mernlib.pretrain import (
    PretrainConfig,
    continue_pretraining,
    mask_pieces,
    pack_sequences,
    pretraining_text,
)

SENTENCES = [
    "Naloxone reverses the antihypertensive effect of clonidine .",
    "Mutations in the BRCA1 gene cause hereditary breast and ovarian cancer .",
    "Cirrhosis was seen in 12 of 40 patients .",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return load_encoder()[1]


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory, tokenizer):
    """A 1-layer BERT over MiniLM's vocabulary, saved as a folder: pretraining it takes a second."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    encoder = tiny_random_encoder(tokenizer, max_positions=64)
    encoder.transformer.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_packing_keeps_every_piece_in_order(tokenizer):
    ids, mask = pack_sequences(tokenizer, SENTENCES, max_length=16)
    assert ids.shape[1] == 16 and (ids[:, 0] == tokenizer.cls_token_id).all()
    kept = [int(i) for row, m in zip(ids, mask, strict=True) for i in row[1:][m[1:].bool()]]
    expected = [
        p
        for s in SENTENCES
        for p in (*tokenizer(s, add_special_tokens=False)["input_ids"], tokenizer.sep_token_id)
    ]
    assert kept == expected  # nothing dropped, nothing reordered
    assert mask[:-1].all() and not mask[-1].all()  # only the last sequence is padded
    with pytest.raises(ValueError, match="max_length"):
        pack_sequences(tokenizer, SENTENCES, max_length=2)


def test_masking_follows_bert(tokenizer):
    ids, mask = pack_sequences(tokenizer, SENTENCES * 40, max_length=64)
    corrupted, labels = mask_pieces(ids, mask, tokenizer, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != -100
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    assert not (chosen & special).any() and not (chosen & ~mask.bool()).any()
    assert (labels[chosen] == ids[chosen]).all()
    assert (corrupted[~chosen] == ids[~chosen]).all()  # only chosen pieces change
    share = chosen.sum() / (mask.bool() & ~special).sum()
    assert 0.13 < share < 0.17
    masked = (corrupted[chosen] == tokenizer.mask_token_id).float().mean()
    kept = (corrupted[chosen] == ids[chosen]).float().mean()
    assert 0.75 < masked < 0.85 and 0.05 < kept < 0.16  # 80% [MASK]; 10% kept (+ random hits of itself)


def test_pretraining_writes_a_loadable_encoder_deterministically(tmp_path, tiny_encoder_dir):
    config = PretrainConfig(
        encoder=str(tiny_encoder_dir), max_length=32, batch_size=2, max_steps=4, save_at=(2,), progress=False
    )
    card = continue_pretraining(tmp_path / "a", config, sentences=SENTENCES)
    assert card["steps"] == 4 and card["history"][-1]["step"] == 4
    assert card["text"]["unique_sentences"] == len(SENTENCES)  # as given; pretraining_text deduplicates
    assert json.loads((tmp_path / "a" / "pretraining.json").read_text())["format"] == "mernlib.pretrain/1"
    assert (tmp_path / "a" / "step-2" / "config.json").is_file()
    trained, _ = load_encoder(tmp_path / "a")
    original, _ = load_encoder(tiny_encoder_dir)
    before, after = original.state_dict(), trained.state_dict()
    assert set(before) == set(after)  # a plain encoder, pooler included
    assert not torch.equal(
        before["encoder.layer.0.attention.self.query.weight"],
        after["encoder.layer.0.attention.self.query.weight"],
    )
    assert torch.equal(before["pooler.dense.weight"], after["pooler.dense.weight"])  # MLM leaves it alone
    continue_pretraining(tmp_path / "b", config, sentences=SENTENCES)
    again, _ = load_encoder(tmp_path / "b")
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in after.items())
    with pytest.raises(FileExistsError, match="not empty"):
        continue_pretraining(tmp_path / "a", config, sentences=SENTENCES)


def test_pretraining_text_is_unique_and_test_free():
    sentences, sources = pretraining_text("sample")
    assert sources == ["sample train", "sample dev"]
    assert len(sentences) == len(set(sentences)) > 100


def test_cli_pretrain(tmp_path, tiny_encoder_dir, capsys):
    from mernlib.cli import main

    out = tmp_path / "enc"
    args = [
        "pretrain",
        "--output",
        str(out),
        "--encoder",
        str(tiny_encoder_dir),
        "--max-steps",
        "2",
        "--no-progress",
    ]
    assert main(args) == 2  # 128 pieces do not fit the tiny encoder's 64 positions: said, not a traceback
    assert "64 positions" in capsys.readouterr().err
    args += ["--max-length", "32"]
    assert main(args) == 0
    assert "saved" in capsys.readouterr().out and (out / "pretraining.json").is_file()
    assert main(args) == 2  # the folder exists now: a clear error, not a traceback
    assert "not empty" in capsys.readouterr().err
    assert main(["pretrain", "--output", str(tmp_path / "x"), "--epochs", "0"]) == 2


def test_pretrained_encoder_is_made_once_and_keyed_by_its_settings(tmp_path, tiny_encoder_dir, monkeypatch):
    from mernlib import pretrain

    monkeypatch.setenv("MERNLIB_CACHE", str(tmp_path / "cache"))
    settings = {"max_length": 32, "batch_size": 8, "max_steps": 1, "progress": False}
    folder, card = pretrain.pretrained_encoder(str(tiny_encoder_dir), settings, "sample")
    assert (folder / "pretraining.json").is_file() and card["steps"] == 1
    assert card["text"]["sources"] == ["sample train", "sample dev"]
    assert not list(folder.parent.glob("*.partial-*"))

    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached encoder is trained again")

    monkeypatch.setattr(pretrain, "continue_pretraining", must_not_train)
    again, _ = pretrain.pretrained_encoder(str(tiny_encoder_dir), settings, "sample")
    assert again == folder
    with pytest.raises(AssertionError, match="trained again"):  # other settings: another encoder
        pretrain.pretrained_encoder(str(tiny_encoder_dir), settings | {"lr": 1e-4}, "sample")


def test_a_pipeline_with_pretraining_says_so_on_its_card(tmp_path, tiny_encoder_dir, monkeypatch):
    from mernlib.pipeline import quick_config, train_pipeline

    monkeypatch.setenv("MERNLIB_CACHE", str(tmp_path / "cache"))
    config = quick_config(13, epochs=1, encoder=str(tiny_encoder_dir), max_length=32)
    config.tiny_encoder = None  # the tagger starts from the (pretrained) tiny encoder folder
    config.pretraining = {"max_length": 32, "batch_size": 8, "max_steps": 2, "progress": False}
    pipeline = train_pipeline("sample", config=config, progress=False)
    card = pipeline.card
    assert card["pretraining"]["steps"] == 2 and "MLM" in card["tagger"]["encoder"]
    assert card["provenance"]["encoder"] == card["tagger"]["encoder"]
    assert str(tmp_path / "cache") in card["config"]["tagger"]["encoder"]  # the encoder it really loaded


def test_pretraining_a_tiny_random_encoder_is_refused():
    """Quick pipelines use a tiny random BERT instead of the encoder: asking for pretraining there is an
    error, not a request silently dropped."""
    from mernlib.pipeline import quick_config, train_pipeline

    config = quick_config(13, epochs=1)
    config.pretraining = {}
    with pytest.raises(ValueError, match="tiny random encoder"):
        train_pipeline("sample", config=config, progress=False)
