"""E2EMERN (Zhou et al., ACL 2021) on the real corpora, evaluated two ways.

    MERNLIB_DATA=../shared/corpora python -m mernlib reproduce e2emern --corpus ncbi-disease [--only e2emern]

For each corpus and each variant (:data:`VARIANTS`: the model as published, the additive-attention fix,
and the paper's Table 2 ablations) this trains :class:`~mernlib.models.e2emern.E2EMERN` through the kit's
one trainer (:func:`mernlib.train.fit`) on the training split, and reports:

* **paper protocol** -- the authors' released code's evaluation: (sentence, concept) pairs built from
  the *test set's own gold IDs* plus one sampled negative each, scored with a weighted binary F1
  (:func:`~mernlib.models.e2emern.paper_protocol_scores`), beside the NER F1. The paper's numbers
  (:mod:`mernlib.reference`, ``zhou2021``) sit beside ours. This protocol never asks the model to find
  mentions or to choose a concept among many.
* **standard protocol** -- real end-to-end use: the low level finds mentions, a
  :class:`~mernlib.candidates.CandidateGenerator` (entity base names and synonyms + training mention
  texts; its recall@k on dev is reported) proposes k concepts per mention, the mid and high levels choose
  one. Scored on documents with :func:`mernlib.metrics.evaluate_documents` (``ner-mention-strict``,
  ``men-mention``, ``men-document``). The epoch is selected on dev (end-to-end ``men-mention`` F1 at
  ``k_select``), k is chosen on dev among :data:`K_CHOICES`; the test set is annotated once.
* **baseline** -- :class:`~mernlib.candidates.DictionaryNormalizer` (exact match on training mentions and
  entity names, then TF-IDF top-1) on the gold mentions and on the model's predicted mentions.

Written: ``results/e2emern/<corpus>.json`` (variants accumulate across runs with ``--only``; each
variant records its own config, epochs, scale and provenance, while the top-level ``scale`` and
``settings`` are those of the last invocation), a CSV beside it, and ``results/e2emern/<corpus>/<variant>.pubtator`` -- the test predictions, which
``python -m mernlib evaluate --gold <test file> --pred <that file>`` re-scores to the same numbers.

What is reduced versus the paper (so that a full run fits a shared 2-core CPU) is listed in
:data:`REDUCED_VS_PAPER` and stored in every result.
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from ..report import locked, run_record, short_commit, write_csv, write_json

VARIANTS: dict[str, dict] = {
    "e2emern": {},  # the model as published (attention_score="paper", the kit's default)
    "additive-attention": {"attention_score": "additive"},  # the fix: attention that depends on e
    "no-mid": {"use_mid": False},  # Table 2 ablations: switches of one config
    "no-high": {"use_high": False},
    "no-gate": {"use_gate": False},
    "no-attention": {"use_attention": False},
    "paper-training": {},  # the model as published, trained the way the authors' code trains it (below)
}
# Variants trained by the paper's released code's rule: on train + dev, keeping the epoch with the lowest
# training loss (E2EMERN.fit(selection="train-loss")). Dev is then seen in training, so nothing can be
# chosen on it: k is fixed in advance at PAPER_TRAINING_K, the k that dev chose for the train-only model.
PAPER_TRAINING_VARIANTS = {"paper-training"}
PAPER_TRAINING_K = 1
DESCRIPTIONS = {
    "e2emern": "E2EMERN as published: linear attention score W_a[x_i; h_e] + b_a (h_e cancels in the softmax)",
    "additive-attention": "E2EMERN with the additive score v^T tanh(W_a[x_i; h_e] + b_a), so the attention depends on e",
    "no-mid": "ablation: without the mid level (L_mid off; annotation uses the high level only)",
    "no-high": "ablation: without the high level (L_high off; annotation uses the mid level only)",
    "no-gate": "ablation: without the gate (high level on the concatenation [h_i; h_e])",
    "no-attention": "ablation: without entity attention (h_a = mean of the word vectors)",
    "paper-training": "E2EMERN as published, trained as the authors' code does: on train + dev, keeping the "
    "epoch with the lowest training loss (for the paper protocol; k fixed at 1 for the standard one)",
}

# Settings per scale. "full" was sized with benchmarks/bench_e2emern.py and a timed run on NCBI
# (about 9 training sentences/s on one lightly shared core, ~10 min per epoch over 5,635 sentences;
# with three other jobs on the 2 cores about half that): 2 epochs fit the time box.
SCALES: dict[str, dict] = {
    "full": {"epochs": 2, "batch_size": 16, "lr": 1e-4, "head_lr": 1e-3, "n_negatives": 1, "max_length": 128},
    # the ablations when time is short: the full settings with one epoch (recorded per variant)
    "full-1epoch": {
        "epochs": 1,
        "batch_size": 16,
        "lr": 1e-4,
        "head_lr": 1e-3,
        "n_negatives": 1,
        "max_length": 128,
    },
    "quick": {"epochs": 1, "batch_size": 8, "lr": 3e-4, "head_lr": 3e-3, "n_negatives": 1, "max_length": 64},
}
K_CHOICES = (1, 5, 10, 20)  # candidates per mention, chosen on dev
K_SELECT = 10  # k used for the per-epoch dev score
RECALL_KS = (1, 5, 10, 20, 50)
PAPER_PROTOCOL_NEGATIVES = 1

REDUCED_VS_PAPER = {
    "encoder": "all-MiniLM-L6-v2 (BERT architecture, 6 layers, hidden 384, 22M parameters, general-domain, "
    "uncased) instead of BioBERT-Large (24 layers, hidden 1024, 340M parameters, biomedical)",
    "epochs": "a few epochs (see 'epochs') instead of the paper's training schedule",
    "learning rate": "Adam, encoder lr 1e-4 and task-head lr 1e-3 instead of 1e-5 for everything (two "
    "epochs of a small encoder need a larger step)",
    "training data and selection": "trained on train only, epoch chosen on dev (standard protocol); the "
    "paper's code trains on train + dev and keeps the lowest-training-loss epoch, which the variant "
    "'paper-training' does (E2EMERN.fit(selection='train-loss'))",
    "negatives": "1 sampled negative concept per positive, redrawn every epoch",
    "hardware": "CPU, one shared core, PyTorch; the paper: GPU, TensorFlow 1",
}


def _corpus_parts(corpus: str, data_dir, max_documents: int | None = None):
    """Documents, labeled sentences and tagged sentences of every split, the entity base and names."""
    import warnings

    from .. import data
    from ..models.e2emern import tagged_sentence
    from ..tags import labeled_sentences

    splits = data.load_corpus(corpus, None, data_dir)
    if max_documents is not None:
        splits = {s: docs[:max_documents] for s, docs in splits.items()}
    labeled = {s: labeled_sentences(docs) for s, docs in splits.items()}
    tagged = {s: [tagged_sentence(item) for item in items] for s, items in labeled.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base = data.load_corpus_entity_base(corpus, data_dir)
    base_warnings = [str(w.message).splitlines()[0] for w in caught]
    for message in base_warnings:
        print(f"warning: {message}")
    return splits, labeled, tagged, base, base_warnings


def entity_tables(base, train_docs) -> tuple[dict[str, str], dict[str, list[str]], list[tuple[str, str]]]:
    """``names`` {ID: name} (entity base names; an ID that only training mentions carry is named by its
    most frequent training mention text), ``synonyms`` {ID: [names]}, and the ``(text, concept)`` pairs
    of the training mentions."""
    from ..corpus import split_concept

    names = {cid: c.name for cid, c in base.items() if c.name}
    synonyms = {cid: list(c.synonyms) for cid, c in base.items() if c.synonyms}
    mentions = [(m.text, m.concept) for d in train_docs for m in d.mentions if split_concept(m.concept)]
    texts: dict[str, Counter] = {}
    for text, concept in mentions:
        for cid in split_concept(concept):
            texts.setdefault(cid, Counter())[text] += 1
    for cid, counter in texts.items():
        if cid not in names:
            names[cid] = counter.most_common(1)[0][0]
    return names, synonyms, mentions


def predictions_to_documents(labeled, predictions, k: int | None = None):
    """Predicted documents (:func:`mernlib.tags.predicted_documents`) from :meth:`E2EMERN.annotate`
    output; with ``k``, each mention takes its best candidate among the top ``k`` retrieved."""
    from ..models.e2emern import predicted_mentions
    from ..tags import predicted_documents

    per_sentence = []
    for item, row in zip(labeled, predictions, strict=True):
        if k is not None:
            row = [copy.copy(p) for p in row]
            for p in row:
                p.concept, p.score = p.best_within(k)
        per_sentence.append(predicted_mentions(item, row))
    return predicted_documents(labeled, per_sentence)


def _f1s(evaluation: dict) -> dict:
    return {name: round(entry["f1"], 4) for name, entry in evaluation["protocols"].items()}


def run_variant(
    variant: str,
    corpus: str,
    parts,
    settings: dict,
    seed: int,
    out_dir: Path,
    progress: bool = True,
    scale: str | None = None,
) -> dict:
    """Train one variant, evaluate both protocols and the baseline on its mentions; write its PubTator."""
    import torch

    from ..candidates import DictionaryNormalizer
    from ..encoders import encoder_name
    from ..metrics import evaluate_documents
    from ..models.e2emern import E2EMERN, get_default_config, paper_protocol_pairs, paper_protocol_scores
    from ..pubtator import read_pubtator, write_pubtator

    started = time.time()
    splits, labeled, tagged, generator, names, synonyms, train_mentions = parts
    config = get_default_config(**(settings | VARIANTS[variant] | {"seed": seed, "progress": progress}))
    types = sorted({t for s in tagged["train"] for _, _, t, _ in s.spans})
    model = E2EMERN(config, types, entity_names=names)
    dev_words = [s.words for s in tagged["dev"]]

    def dev_score(m) -> float:  # standard protocol: end-to-end men-mention F1 on dev
        pred = m.annotate(dev_words, generator, k=K_SELECT, progress=progress)
        return evaluate_documents(splits["dev"], predictions_to_documents(labeled["dev"], pred))["protocols"][
            "men-mention"
        ]["f1"]

    paper_training = variant in PAPER_TRAINING_VARIANTS
    if paper_training:  # the authors' rule: train + dev, lowest training loss; dev is no longer held out
        fit = model.fit(tagged["train"] + tagged["dev"], selection="train-loss", progress=progress)
    else:
        fit = model.fit(tagged["train"], dev_eval_fn=dev_score, progress=progress)
    train_seconds = time.time() - started

    if paper_training:
        dev_by_k, best_k = None, PAPER_TRAINING_K
    else:  # k on dev: one annotation at the largest k, the smaller ones read from its retrieval ranks
        dev_pred = model.annotate(dev_words, generator, k=max(K_CHOICES), progress=progress)
        dev_by_k = {
            k: _f1s(evaluate_documents(splits["dev"], predictions_to_documents(labeled["dev"], dev_pred, k)))
            for k in K_CHOICES
        }
        best_k = max(K_CHOICES, key=lambda k: (dev_by_k[k]["men-mention"], -k))

    # test, once: standard protocol at the k chosen on dev (and, declared in advance rather than
    # selected, at K_SELECT: the model's own re-ranking of 10 candidates, read from the same annotation)
    t0 = time.time()
    test_pred = model.annotate(
        [s.words for s in tagged["test"]], generator, k=max(best_k, K_SELECT), progress=progress
    )
    annotate_seconds = time.time() - t0
    test_docs = predictions_to_documents(labeled["test"], test_pred, best_k)
    standard = evaluate_documents(splits["test"], test_docs)
    at_k_select = evaluate_documents(
        splits["test"], predictions_to_documents(labeled["test"], test_pred, K_SELECT)
    )
    pubtator_path = write_pubtator(test_docs, out_dir / corpus / f"{variant}.pubtator")
    rescored = evaluate_documents(splits["test"], read_pubtator(pubtator_path))
    # paper protocol: pairs from the test set's gold IDs + sampled negatives, weighted binary F1
    pairs = paper_protocol_pairs(tagged["test"], model.entity_names, PAPER_PROTOCOL_NEGATIVES, seed)
    paper = paper_protocol_scores(model, pairs)
    paper = {
        "mer_f1": standard["protocols"]["ner-mention-strict"]["f1"],
        "men_f1": paper["weighted_f1"],
        "detail": {str(k): v for k, v in paper.items()},
    }
    # the dictionary baseline on this variant's predicted mentions
    normalizer = DictionaryNormalizer(names, train_mentions, synonyms)
    baseline_pred = evaluate_documents(splits["test"], normalizer.normalize_documents(test_docs))

    return {
        "variant": variant,
        "description": DESCRIPTIONS[variant],
        "encoder": encoder_name(config.encoder),
        "config": asdict(config),
        "epochs": config.epochs,
        "best_epoch": fit.best_epoch,
        "history": [
            {
                "epoch": h["epoch"],
                "loss": h["loss"],
                "parts": h.get("parts"),
                "dev_men_mention_f1": h["dev"],
                "seconds": round(h["seconds"], 1),
            }
            for h in fit.history
        ],
        "trained_on": "train + dev (the paper's code), epoch with the lowest training loss"
        if paper_training
        else "train, epoch chosen on dev",
        "train_sentences": len(tagged["train"]) + (len(tagged["dev"]) if paper_training else 0),
        "train_seconds": round(train_seconds, 1),
        "test_annotation_sentences_per_s": round(len(tagged["test"]) / max(annotate_seconds, 1e-9), 1),
        "standard_protocol": {
            "label": "standard protocol (end-to-end: NER -> candidates -> mid/high choice; test used once)",
            "k_chosen_on_dev": None if paper_training else best_k,
            "k": best_k,
            "dev_f1_by_k": None if dev_by_k is None else {str(k): v for k, v in dev_by_k.items()},
            "test": standard,
            f"test_f1_at_k{K_SELECT}_not_selected": _f1s(at_k_select),
            "predictions": str(pubtator_path),
            "rescored_from_pubtator_equal": rescored["protocols"] == standard["protocols"],
        },
        "paper_protocol": {
            "label": "paper protocol (pairs from test gold IDs + sampled negatives, weighted binary F1)",
            **paper,
        },
        "baseline_on_predicted_mentions": baseline_pred,
        "provenance": run_record(
            seed=seed,
            scale=scale,
            encoder=encoder_name(config.encoder),
            started=started,
            threads=torch.get_num_threads(),
        ),
    }


def _table(result: dict, reference: dict) -> list[dict]:
    ref = reference["results"].get(result["corpus"], {}).get("E2EMERN", {})
    rows = []
    for name, v in result["variants"].items():
        std = v["standard_protocol"]["test"]["protocols"]
        rows.append(
            {
                "corpus": result["corpus"],
                "variant": name,
                "encoder": v["encoder"],
                "epochs": v["epochs"],
                "scale": v["provenance"]["scale"],
                "paper_protocol_mer_f1": round(v["paper_protocol"]["mer_f1"], 4),
                "paper_protocol_men_f1": round(v["paper_protocol"]["men_f1"], 4),
                "paper_mer_f1": ref.get("mer_f1"),
                "paper_men_f1": ref.get("men_f1"),
                "gap_mer": round(v["paper_protocol"]["mer_f1"] - ref["mer_f1"], 4) if ref else None,
                "gap_men": round(v["paper_protocol"]["men_f1"] - ref["men_f1"], 4) if ref else None,
                "standard_ner_f1": round(std["ner-mention-strict"]["f1"], 4),
                "standard_men_mention_f1": round(std["men-mention"]["f1"], 4),
                "standard_men_document_f1": round(std["men-document"]["f1"], 4),
                "k": v["standard_protocol"].get("k", v["standard_protocol"]["k_chosen_on_dev"]),
                "baseline_on_its_mentions_men_mention_f1": round(
                    v["baseline_on_predicted_mentions"]["protocols"]["men-mention"]["f1"], 4
                ),
                "train_seconds": v["train_seconds"],
                "commit": short_commit(v["provenance"]["git_commit"]),
            }
        )
    return rows


def _earlier_variants(path: Path, corpus: str, scale: str) -> dict:
    """The variants already stored in ``path`` for the same corpus (quick-scale and full-scale runs are
    never mixed; each variant records its own scale and epochs)."""
    import json

    previous = json.loads(path.read_text()) if path.exists() else {}
    same = previous.get("corpus") == corpus and (previous.get("scale") == "quick") == (scale == "quick")
    return previous.get("variants", {}) if same else {}


def _store_variant(path: Path, result: dict, variant: str, finished: dict, reference: dict, provenance: dict):
    """Add one finished variant to ``path`` (and its CSV table) after every variant, so a stopped run keeps
    what it finished. Under a lock, the variants stored in the file are re-read and only ``variant`` is
    replaced: variants trained in parallel processes all stay (what ``result`` held in memory may be older
    than what another process wrote since)."""
    with locked(path):
        stored = _earlier_variants(path, result["corpus"], result["scale"]) | {variant: finished}
        result["variants"] = {v: stored[v] for v in VARIANTS if v in stored}
        result["table"] = _table(result, reference)
        result["provenance"] = provenance
        write_json(result, path)
        write_csv(result["table"], path.with_suffix(".csv"))


def reproduce(
    corpora=None,
    data_dir=None,
    seed=13,
    results_dir=Path("results"),
    scale="full",
    only=None,
    config: dict | None = None,
    progress: bool = True,
    max_documents: int | None = None,
) -> list[Path]:
    """Train and evaluate the :data:`VARIANTS` (all, or those in ``only``) on each corpus (default
    ``["ncbi-disease"]``); returns the written paths. ``config`` overrides the scale's settings and
    ``max_documents`` keeps only the first documents of each split (both for tiny test runs; recorded).
    Results of variants run earlier for the same corpus are kept in the JSON (re-read under a lock before
    each write, so runs of different variants may go in parallel processes: :func:`_store_variant`)."""

    from tqdm.auto import tqdm

    from .. import reference as references
    from ..candidates import CandidateGenerator, DictionaryNormalizer, recall_at_k
    from ..metrics import evaluate_documents

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    variants = list(only) if only else list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}: choose among {list(VARIANTS)}")
    settings = SCALES[scale] | (config or {})
    reference = references.load("zhou2021")
    out_dir = Path(results_dir) / "e2emern"
    written: list[Path] = []
    for corpus in corpora or ["ncbi-disease"]:
        started = time.time()
        splits, labeled, tagged, base, base_warnings = _corpus_parts(corpus, data_dir, max_documents)
        names, synonyms, train_mentions = entity_tables(base, splits["train"])
        generator = CandidateGenerator.from_entity_base(names, synonyms, train_mentions)
        dev_mentions = [(m.text, m.concept) for d in splits["dev"] for m in d.mentions]
        recall = recall_at_k(generator, dev_mentions, RECALL_KS)
        normalizer = DictionaryNormalizer(names, train_mentions, synonyms)
        baseline_gold = evaluate_documents(splits["test"], normalizer.normalize_documents(splits["test"]))
        parts = (splits, labeled, tagged, generator, names, synonyms, train_mentions)

        path = out_dir / f"{corpus}.json"

        result = {
            "experiment": "e2emern",
            "corpus": corpus,
            "paper": {
                "citation": reference["citation"],
                "encoder": reference["encoder"],
                "protocol": reference["protocol"],
                "numbers": reference["results"].get(corpus),
            },
            "protocols": {
                "paper protocol": "pairs (sentence, concept) from the test set's gold IDs plus "
                f"{PAPER_PROTOCOL_NEGATIVES} sampled negative per positive, weighted binary F1 (MEN); "
                "mention-level NER F1 (MER)",
                "standard protocol": "end-to-end on documents: mernlib.metrics.evaluate_documents "
                "(ner-mention-strict, men-mention, men-document); epoch and k chosen on dev, test used once",
            },
            "scale": scale,
            "settings": settings,
            "max_documents_per_split": max_documents,
            "reduced_vs_paper": REDUCED_VS_PAPER,
            "entity_base": {
                "concepts": len(base),
                "named_ids_for_the_model": len(names),
                "warnings": base_warnings,
            },
            "candidates": {
                "generator": "exact match, then character 3-gram TF-IDF over entity-base names, synonyms and "
                "training mention texts",
                "dev_recall_at_k": {str(k): v for k, v in recall.items()},
            },
            "baseline": {
                "name": "DictionaryNormalizer (training-mention exact match, entity-name exact match, TF-IDF top-1)",
                "on_gold_mentions": baseline_gold,
            },
            "variants": {},
        }
        for variant in tqdm(variants, desc=f"e2emern {corpus}", disable=not progress):
            finished = run_variant(variant, corpus, parts, settings, seed, out_dir, progress, scale)
            provenance = run_record(seed=seed, scale=scale, encoder=finished["encoder"], started=started)
            _store_variant(path, result, variant, finished, reference, provenance)
        written.extend([path, path.with_suffix(".csv")])
        written.extend(out_dir / corpus / f"{v}.pubtator" for v in variants)
    return written


def summary(result: dict) -> str:
    """A plain-text line per variant: our numbers beside the paper's, with the gap."""
    lines = []
    for row in result.get("table", []):
        gap = "" if row["gap_men"] is None or math.isnan(row["gap_men"]) else f" (gap {row['gap_men']:+.4f})"
        lines.append(
            f"{row['variant']}: paper protocol MER {row['paper_protocol_mer_f1']:.4f} / MEN {row['paper_protocol_men_f1']:.4f}"
            f" vs paper {row['paper_mer_f1']} / {row['paper_men_f1']}{gap}; standard men-mention "
            f"{row['standard_men_mention_f1']:.4f}, men-document {row['standard_men_document_f1']:.4f}"
        )
    return "\n".join(lines)
