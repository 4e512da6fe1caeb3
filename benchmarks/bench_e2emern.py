"""Throughput of E2EMERN on the CPU with the default encoder (bundled MiniLM), on synthetic sentences.

Prints training samples/second (a sample is one (sentence, entity) pair, plus the low-level pass of
its sentence) and annotation sentences/second (low-level tagging + candidate scoring with k candidates).
Training goes through the kit's one trainer (``mernlib.experiments.e2emern.train_model`` calls ``mernlib.train.fit``) with
length-bucketed batches; annotation runs under ``torch.no_grad`` with entity vectors cached.
Figures depend on what else runs on the machine: report the load average with them.

    python benchmarks/bench_e2emern.py [--sentences 32] [--words 25] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from mernlib.candidates import CandidateGenerator
from mernlib.encoders import encoder_name
from mernlib.experiments.e2emern import train_model
from mernlib.models.e2emern import E2EMERN, build_samples, get_default_config
from mernlib.report import machine
from mernlib.tags import SpannedSentence

FILLER = "the patients were treated with high doses for several weeks and showed marked signs of".split()


def synthetic(n_sentences: int, n_words: int, n_concepts: int, rng: random.Random):
    names = {
        f"D{100000 + k}": f"{rng.choice(['acute', 'chronic', 'renal', 'cardiac'])} disorder {k}"
        for k in range(n_concepts)
    }
    ids = sorted(names)
    sentences = []
    for _ in range(n_sentences):
        words = [rng.choice(FILLER) for _ in range(n_words)]
        spans = []
        for start in rng.sample(range(0, n_words - 3, 4), 2):
            cid = rng.choice(ids)
            mention = names[cid].split()
            words[start : start + len(mention)] = mention
            spans.append((start, start + len(mention), "Disease", cid))
        sentences.append(SpannedSentence(words[:n_words], [s for s in spans if s[1] <= n_words]))
    return sentences, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=32)
    parser.add_argument("--words", type=int, default=25)
    parser.add_argument("--concepts", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")  # readings from two machines are not comparable
    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    sentences, names = synthetic(args.sentences, args.words, args.concepts, rng)
    config = get_default_config(epochs=1, batch_size=args.batch_size, max_length=128)
    t0 = time.perf_counter()
    model = E2EMERN(config, ["Disease"])
    load_s = time.perf_counter() - t0
    n_samples = len(
        [s for s in build_samples(sentences, names, config.n_negatives, random.Random(0)) if s.concept]
    )

    t0 = time.perf_counter()
    model.entity_names.update(names)
    train_model(model, sentences, epochs=1, progress=False)  # through mernlib.train.fit
    train_s = time.perf_counter() - t0

    generator = CandidateGenerator.from_entity_base(names)
    words = [s.words for s in sentences]
    model.annotate(words[:2], generator, k=args.k)  # warm-up (entity cache)
    model._entity_cache.clear()
    t0 = time.perf_counter()
    out = model.annotate(words, generator, k=args.k)
    annotate_s = time.perf_counter() - t0
    n_mentions = sum(len(o) for o in out)

    print(f"encoder              {encoder_name(config.encoder)}  (load {load_s:.1f} s)")
    print(f"torch threads        {torch.get_num_threads()}   (load average {os.getloadavg()[0]:.1f})")
    print(f"data                 {len(sentences)} sentences x {args.words} words, {len(names)} concepts")
    print(
        f"training             {n_samples} samples in {train_s:.2f} s -> {n_samples / train_s:.1f} samples/s "
        f"({len(sentences) / train_s:.1f} sentences/s, batch {args.batch_size} sentences)"
    )
    print(
        f"annotation           {len(sentences)} sentences in {annotate_s:.2f} s -> "
        f"{len(sentences) / annotate_s:.1f} sentences/s ({n_mentions} mentions found, k={args.k}, "
        "untrained tagger, entity names encoded from an empty cache)"
    )


if __name__ == "__main__":
    main()
