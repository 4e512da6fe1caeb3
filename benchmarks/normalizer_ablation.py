"""Normalizer ablation: what each stage of mernlib.normalize.Normalizer adds, on gold mentions.

For each corpus (NCBI-disease; BC5CDR with Disease and Chemical on separate lines) it fits the kit's
baseline (mernlib.candidates.DictionaryNormalizer) and then the Normalizer with its stages switched on
one after another, and prints for each: mention accuracy (gold mentions with a concept whose predicted
ID set equals the gold one; NIL gold mentions left out, as men-mention does), document-level concept F1
(mernlib.metrics.men_document_prf, the BioCreative V CDR measure) and wall time (fit + normalize; a
tuned encoder found in $MERNLIB_CACHE costs nothing: point MERNLIB_CACHE at an empty folder to time tuning). It also
prints recall@k of the retrievers alone (TF-IDF, MiniLM, tuned MiniLM) on the same mentions.

Protocol: --split dev fits on train; --split test fits on train + dev. Choose on dev; run test once.

    PYTHONPATH=. MERNLIB_DATA=/work/shared/corpora python benchmarks/normalizer_ablation.py --split dev
    PYTHONPATH=. MERNLIB_DATA=/work/shared/corpora python benchmarks/normalizer_ablation.py --split test
    ... --errors 40     # also list error categories (and examples) of the full normalizer
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import Counter

STAGES = [
    ("baseline: DictionaryNormalizer", None),
    (
        "exact tables (training mentions, MeSH, OMIM) + TF-IDF",
        dict(abbreviations="off", string_rules=False, composite=False, retriever="tfidf"),
    ),
    ("+ string rules", dict(abbreviations="off", composite=False, retriever="tfidf")),
    ("+ abbreviations", dict(composite=False, retriever="tfidf")),
    ("+ composite mentions", dict(retriever="tfidf")),
    ("+ dense retrieval (MiniLM)", dict(retriever="dense", tune_encoder=False)),
    ("+ tuned encoder (full normalizer)", dict(retriever="dense", tune_encoder=True)),
]
TYPES = {"ncbi-disease": [None], "bc5cdr": ["Disease", "Chemical"]}
RECALL_KS = (1, 5, 10, 20)


def keep_type(documents, mention_type):
    """Copies of documents holding only mentions of one type (all when ``mention_type`` is None)."""
    import copy

    if mention_type is None:
        return documents
    out = []
    for d in documents:
        d = copy.copy(d)
        d.mentions = [m for m in d.mentions if m.type == mention_type]
        out.append(d)
    return out


def mention_accuracy(gold_docs, pred_docs) -> float:
    from mernlib.corpus import split_concept

    right = total = 0
    for g, p in zip(gold_docs, pred_docs, strict=True):
        for gm, pm in zip(g.mentions, p.mentions, strict=True):
            if not gm.ids:
                continue
            total += 1
            right += set(gm.ids) == set(split_concept(pm.concept))
    return right / total if total else 0.0


def score(gold, pred, mention_type):
    from mernlib.metrics import men_document_prf

    g, p = keep_type(gold, mention_type), keep_type(pred, mention_type)
    return {"accuracy": mention_accuracy(g, p), "doc_f1": men_document_prf(g, p).f1}


def error_category(normalizer, gold_mention, predicted, document, seen_ids) -> str:
    """Why a mention went wrong (first match): composite, abbreviation, unseen concept, wrong sibling..."""
    from mernlib.corpus import split_concept

    gold = set(gold_mention.ids)
    pred = set(split_concept(predicted.concept))
    queries, expanded = normalizer.queries(gold_mention.text, document)
    if len(gold) > 1 or len(pred) > 1:
        return "composite (gold or prediction has several IDs)"
    if expanded or (gold_mention.text.isupper() and len(gold_mention.text) <= 6):
        return "abbreviation"
    if not gold & seen_ids:
        return f"unseen concept ({predicted.stage})"
    if predicted.stage == "training":
        return "training dictionary says another concept (annotation ambiguity)"
    return f"wrong concept among known ones ({predicted.stage})"


def run(corpus: str, split: str, stages, errors: int, progress: bool, data_dir=None) -> list[dict]:
    from mernlib.candidates import DictionaryNormalizer, recall_at_k
    from mernlib.data import load_corpus, load_corpus_entity_base
    from mernlib.experiments.e2emern import entity_tables
    from mernlib.normalize import Normalizer, NormalizerConfig

    splits = load_corpus(corpus, data_dir=data_dir)
    base = load_corpus_entity_base(corpus, data_dir=data_dir)
    train = splits["train"] + (splits["dev"] if split == "test" else [])
    gold = splits[split]
    rows = []
    fitted = {}
    for label, overrides in stages:
        started = time.time()
        if overrides is None:
            names, synonyms, train_mentions = entity_tables(base, train)
            pred = DictionaryNormalizer(names, train_mentions, synonyms).normalize_documents(gold)
        else:
            normalizer = Normalizer(NormalizerConfig(progress=progress, **overrides)).fit(train, base)
            pred = normalizer.normalize(gold)
            fitted[label] = normalizer
        seconds = time.time() - started
        for mention_type in TYPES[corpus]:
            s = score(gold, pred, mention_type)
            rows.append(
                {
                    "corpus": corpus,
                    "type": mention_type or "Disease",
                    "split": split,
                    "stage": label,
                    **s,
                    "seconds": seconds,
                }
            )
            print(
                f"{corpus:13s} {mention_type or 'Disease':9s} {split:4s} {label:55s} acc {s['accuracy']:.4f}  doc-F1 {s['doc_f1']:.4f}  {seconds:7.1f} s",
                flush=True,
            )
    full = fitted[stages[-1][0]] if fitted else None
    # the retrievers alone: recall@k on the same gold mentions (bare mention texts, no abbreviation or type)
    retrievers = {}
    for normalizer in fitted.values():
        name = {
            "tfidf": "TF-IDF (char 3-grams)",
            "dense": "dense tuned MiniLM" if normalizer.config.tune_encoder else "dense MiniLM",
        }[normalizer.config.retriever]
        retrievers[name] = normalizer.retriever
    for mention_type in TYPES[corpus]:
        mentions = [(m.text, m.concept) for d in keep_type(gold, mention_type) for m in d.mentions]
        for name, retriever in retrievers.items():
            r = recall_at_k(retriever, mentions, RECALL_KS)
            line = "  ".join(f"R@{k} {r[k]:.4f}" for k in RECALL_KS)
            print(
                f"{corpus:13s} {mention_type or 'Disease':9s} {split:4s} recall of {name:45s} {line}",
                flush=True,
            )
            rows.append(
                {
                    "corpus": corpus,
                    "type": mention_type or "Disease",
                    "split": split,
                    "retriever": name,
                    **{f"R@{k}": r[k] for k in RECALL_KS},
                }
            )
    if errors and full is not None:
        seen_ids = {i for d in train for m in d.mentions for i in m.ids} | set(base)
        seen_train = {i for d in train for m in d.mentions for i in m.ids}
        items = [(m.text, m.type, d) for d in gold for m in d.mentions]
        resolutions = full.resolve_batch(items)
        categories: Counter = Counter()
        examples: dict[str, list[str]] = {}
        flat = [(d, m) for d in gold for m in d.mentions]
        for (doc, m), res in zip(flat, resolutions, strict=True):
            from mernlib.corpus import split_concept

            if not m.ids or set(m.ids) == set(split_concept(res.concept)):
                continue
            cat = error_category(full, m, res, doc, seen_train)
            if not set(m.ids) & seen_ids:
                cat = "gold concept not in the entity base nor in training"
            categories[(m.type, cat)] += 1
            examples.setdefault(f"{m.type}: {cat}", []).append(
                f"{m.text!r} gold {m.concept} -> {res.concept} ({res.stage}/{res.level}, query {res.query!r})"
            )
        print(f"\nerror categories, {corpus} {split} (full normalizer):")
        for (t, cat), n in categories.most_common():
            print(f"  {n:4d}  {t}: {cat}")
            for ex in examples[f"{t}: {cat}"][:errors]:
                print(f"          {ex}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--corpus", action="append", choices=tuple(TYPES), help="default: both")
    parser.add_argument("--stages", type=int, default=len(STAGES), help="run only the first N stages")
    parser.add_argument("--errors", type=int, default=0, help="list error categories with N examples each")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: shared 2-core machines)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter(
        "ignore"
    )  # the corpus reader's repair notices; they are documented in the data layer
    rows = []
    started = time.time()
    for corpus in args.corpus or list(TYPES):
        rows += run(corpus, args.split, STAGES[: args.stages], args.errors, not args.no_progress)
    print(f"total wall time {time.time() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
