"""Speed of the headline model: MTL-MEN&MER_feedback + Bi-LSTM-CNNs-CRF with the default config.

Synthetic data with NCBI-disease-like sizes by default: ~5,400 training sentences of ~25 tokens on
average, a ~10k word vocabulary, ~750 concepts so the MEN tag set has ~1,500 BIO labels (every concept
occurs as B- and I-). Prints one training epoch's wall time (batching included), inference
sentences/second (both tasks, exact decoding), and with ``--corpus`` the time to decode the dev split.

    python benchmarks/bench_mtl.py                       # defaults
    python benchmarks/bench_mtl.py --decoder softmax     # compare the softmax decoder
    python benchmarks/bench_mtl.py --crf-structure full --crf-top-k 32   # the old dense CRF, pruned Viterbi
    MERNLIB_DATA=../shared/corpora python benchmarks/bench_mtl.py --corpus ncbi-disease --threads 2
    ... --corpus ncbi-disease --threads 1 --max-sentences 800 --profile   # where the time goes

Targets on a 2-core CPU (issue #12): one training epoch of the real NCBI training set at most 40 s,
inference at least 1,000 sentences/s. Results and profiles: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from mernlib.models import MultiTaskTagger, get_default_config
from mernlib.report import machine
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
    """The training and dev splits of a real corpus, tagged for both tasks by the kit's data layer."""
    from mernlib.experiments.mtl import prepare

    data = prepare(corpus, data_dir)
    return data.words["train"], {t: data.tags["train"][t] for t in ("mer", "men")}, data.words.get("dev")


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
    ap.add_argument("--infer-repeats", type=int, default=5, help="inference passes; the median is reported")
    ap.add_argument("--decoder", choices=["crf", "softmax"], default="crf")
    ap.add_argument("--feedback", choices=["none", "men", "mer", "both"], default="both")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    ap.add_argument(
        "--crf-structure", choices=["auto", "full", "factorised"], default=None, help="default: the config's"
    )
    ap.add_argument("--no-crf-constraints", action="store_true", help="the unconstrained dense CRF")
    ap.add_argument(
        "--crf-top-k",
        type=int,
        default=None,
        help="opt-in pruned Viterbi of a dense CRF (0 = exact, the default)",
    )
    ap.add_argument("--max-sentences", type=int, default=None, help="train on the first N sentences only")
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of the training epoch")
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="inference batches tagged at once (predict_tags' workers; default: the torch thread count)",
    )
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's choice); 1 avoids OpenMP thrashing on a busy machine",
    )
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")  # readings from two machines are not comparable
    if args.threads:
        torch.set_num_threads(args.threads)

    dev = None
    if args.corpus:
        sentences, tags, dev = load_real(args.corpus, args.data_dir)
    else:
        sentences, tags = synthetic_corpus(
            args.sentences, args.mean_len, args.concepts, args.vocab, args.seed
        )
    if args.max_sentences:
        sentences = sentences[: args.max_sentences]
        tags = {t: seqs[: args.max_sentences] for t, seqs in tags.items()}
    overrides = dict(decoder=args.decoder, feedback=args.feedback, seed=args.seed)
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.crf_top_k is not None:
        overrides["crf_top_k"] = args.crf_top_k or None
    if args.crf_structure:
        overrides["crf_structure"] = args.crf_structure
    if args.no_crf_constraints:
        overrides["crf_constraints"] = False
    config = get_default_config(**overrides)
    model = MultiTaskTagger.build(config, sentences, tags)
    n_tokens = sum(map(len, sentences))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {config.name}; {n_params / 1e6:.2f}M parameters; torch threads {torch.get_num_threads()}")
    print(
        f"data: {len(sentences)} sentences, {n_tokens / len(sentences):.1f} tokens/sentence, "
        f"{len(model.vocab)} words, MER tags {len(model.tag_vocabs['mer'])}, MEN tags {len(model.tag_vocabs['men'])}"
    )
    print("CRFs: " + "; ".join(f"{t}: {model.heads[t].crf!r}" for t in config.tasks if model.heads[t].crf))

    t0, c0 = time.perf_counter(), time.process_time()
    data = {
        t: (lambda g: model.make_batches(sentences, tags, shuffle=True, generator=g)) for t in config.tasks
    }
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            res = fit(model, data, config, epochs=1, progress=False)
    else:
        res = fit(model, data, config, epochs=1, progress=False)
    epoch_s, epoch_cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = res.history[0]["steps"]
    print(
        f"train: one epoch {epoch_s:.1f}s (batching included; {sum(steps.values())} steps {steps}, "
        f"batch size {config.batch_size}); {len(sentences) / epoch_s:.0f} sentences/s "
        f"({len(sentences) * len(config.tasks) / epoch_s:.0f} sentence-task updates/s); "
        f"process CPU time {epoch_cpu:.1f}s (all threads; wall > CPU/threads means the machine is shared)"
    )

    if args.profile:
        print("(profiled: times include the profiler's overhead)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))

    # A pass over 2,000 sentences takes 1-3 s, short enough for one hiccup of a shared machine to move it
    # by 30%: the median of a few passes is the reading.
    infer = (sentences * (args.infer_sentences // len(sentences) + 1))[: args.infer_sentences]
    passes = []
    for _ in range(args.infer_repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        model.predict_tags(infer, workers=args.workers)
        passes.append((time.perf_counter() - t0, time.process_time() - c0))
    infer_s, infer_cpu = sorted(passes)[len(passes) // 2]
    print(
        f"inference: {len(infer)} sentences, both tasks, in {infer_s:.2f}s = {len(infer) / infer_s:.0f} sentences/s "
        f"(median of {len(passes)} passes: {', '.join(f'{len(infer) / s:.0f}' for s, _ in passes)}; "
        f"crf_top_k={config.crf_top_k}, workers {args.workers or torch.get_num_threads()}); "
        f"process CPU time {infer_cpu:.2f}s"
    )
    if dev:
        t0, c0 = time.perf_counter(), time.process_time()
        model.predict_tags(dev, workers=args.workers)
        dev_s, dev_cpu = time.perf_counter() - t0, time.process_time() - c0
        decode_s = decode_time(model, dev, "men")
        print(
            f"dev: {len(dev)} sentences tagged (both tasks) in {dev_s:.2f}s (CPU {dev_cpu:.2f}s); "
            f"of which MEN Viterbi over {len(model.tag_vocabs['men'])} tags {decode_s:.2f}s"
        )


def decode_time(model, sentences, task: str) -> float:
    """Seconds spent in ``task``'s decoder alone when tagging ``sentences`` (emissions computed first)."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for batch in model.make_batches(sentences, batch_size=256, shuffle=False):
            emissions = model(batch, tasks=(task,))[task]
            t0 = time.perf_counter()
            model.heads[task].decode(emissions, batch.mask)
            total += time.perf_counter() - t0
    return total


if __name__ == "__main__":
    main()
