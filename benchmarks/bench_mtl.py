"""Speed of the headline model: MTL-MEN&MER_feedback + Bi-LSTM-CNNs-CRF with the default config.

Synthetic data with NCBI-disease-like sizes by default: ~5,400 training sentences of ~25 tokens on
average, a ~10k word vocabulary, ~750 concepts so the MEN tag set has ~1,500 BIO labels (every concept
occurs as B- and I-) -- the size that makes the MEN CRF's 1,500 x 1,500 transition matrix the cost
that matters. Prints training sentences/second, one epoch's wall time and inference sentences/second.

    python benchmarks/bench_mtl.py                       # defaults
    python benchmarks/bench_mtl.py --decoder softmax     # compare the softmax decoder
    python benchmarks/bench_mtl.py --crf-top-k 0         # exact Viterbi (slow with 1,500 tags)
    MERNLIB_DATA=../shared/corpora python benchmarks/bench_mtl.py --corpus ncbi-disease   # the real data

Targets on a 2-core CPU: one training epoch under 60 s, inference above 1,000 sentences/s.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from mernlib.models import MultiTaskTagger, get_default_config
from mernlib.train import fit


def synthetic_corpus(n_sentences: int, mean_len: int, n_concepts: int, vocab_size: int, seed: int):
    """Sentences, MER tags and MEN tags with NCBI-like sizes (token ids drawn Zipf-like)."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab_size)]
    weights = [1.0 / (i + 1) for i in range(vocab_size)]
    concepts = [f"D{100000 + i:06d}" for i in range(n_concepts)]
    sentences, mer, men = [], [], []
    for i in range(n_sentences):
        n = max(3, min(4 * mean_len, int(rng.gauss(mean_len, mean_len / 2.5))))
        toks = rng.choices(words, weights=weights, k=n)
        t_mer, t_men = ["O"] * n, ["O"] * n
        pos = 0
        while True:  # ~1 mention of 1-3 tokens per sentence
            pos += rng.randint(3, 2 * mean_len)
            span = rng.randint(1, 3)
            if pos + span > n:
                break
            # cycle through the concepts first so every concept is seen with B- and I- tags
            c = concepts[i % n_concepts] if i < 2 * n_concepts else rng.choice(concepts)
            if i < 2 * n_concepts:
                span = max(span, 2)
                if pos + span > n:
                    break
            for k in range(span):
                t_mer[pos + k] = ("B-" if k == 0 else "I-") + "Disease"
                t_men[pos + k] = ("B-" if k == 0 else "I-") + c
            pos += span
        sentences.append(toks)
        mer.append(t_mer)
        men.append(t_men)
    return sentences, {"mer": mer, "men": men}


def load_real(corpus: str, data_dir: str | None):
    """The training split of a real corpus, tagged for both tasks by the kit's data layer."""
    from mernlib.experiments.mtl import prepare

    data = prepare(corpus, data_dir)
    return data.words["train"], {t: data.tags["train"][t] for t in ("mer", "men")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--corpus", help="train on a real corpus's training split (e.g. ncbi-disease; needs $MERNLIB_DATA)"
    )
    ap.add_argument("--data-dir", help="folder holding the real corpora (default: $MERNLIB_DATA)")
    ap.add_argument("--sentences", type=int, default=5400)
    ap.add_argument("--mean-len", type=int, default=25)
    ap.add_argument("--concepts", type=int, default=750)
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--infer-sentences", type=int, default=2000)
    ap.add_argument("--decoder", choices=["crf", "softmax"], default="crf")
    ap.add_argument("--feedback", choices=["none", "men", "mer", "both"], default="both")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    ap.add_argument(
        "--crf-top-k", type=int, default=None, help="Viterbi pruning (0 = exact); default: the config's"
    )
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's choice); 1 avoids OpenMP thrashing on a busy machine",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.corpus:
        sentences, tags = load_real(args.corpus, args.data_dir)
    else:
        sentences, tags = synthetic_corpus(
            args.sentences, args.mean_len, args.concepts, args.vocab, args.seed
        )
    overrides = dict(decoder=args.decoder, feedback=args.feedback, seed=args.seed)
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.crf_top_k is not None:
        overrides["crf_top_k"] = args.crf_top_k or None
    config = get_default_config(**overrides)
    model = MultiTaskTagger.build(config, sentences, tags)
    n_tokens = sum(map(len, sentences))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {config.name}; {n_params / 1e6:.2f}M parameters; torch threads {torch.get_num_threads()}")
    print(
        f"data: {len(sentences)} sentences, {n_tokens / len(sentences):.1f} tokens/sentence, "
        f"{len(model.vocab)} words, MER tags {len(model.tag_vocabs['mer'])}, MEN tags {len(model.tag_vocabs['men'])}"
    )

    t0, c0 = time.perf_counter(), time.process_time()
    data = {
        t: (lambda g: model.make_batches(sentences, tags, shuffle=True, generator=g)) for t in config.tasks
    }
    res = fit(model, data, config, epochs=1, progress=False)
    epoch_s, epoch_cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = res.history[0]["steps"]
    print(
        f"train: one epoch {epoch_s:.1f}s (batching included; {sum(steps.values())} steps {steps}, "
        f"batch size {config.batch_size}); {len(sentences) / epoch_s:.0f} sentences/s "
        f"({len(sentences) * len(config.tasks) / epoch_s:.0f} sentence-task updates/s); "
        f"process CPU time {epoch_cpu:.1f}s (all threads; wall > CPU/threads means the machine is shared)"
    )

    infer = (sentences * (args.infer_sentences // len(sentences) + 1))[: args.infer_sentences]
    t0, c0 = time.perf_counter(), time.process_time()
    model.predict_tags(infer)
    infer_s, infer_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"inference: {len(infer)} sentences, both tasks, in {infer_s:.2f}s = {len(infer) / infer_s:.0f} sentences/s "
        f"(crf_top_k={config.crf_top_k}); process CPU time {infer_cpu:.2f}s"
    )


if __name__ == "__main__":
    main()
