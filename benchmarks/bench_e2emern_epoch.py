"""One training epoch of E2EMERN against one of a plain MiniLM tagger, side by side, on the same sentences.

The issue's yardstick: an E2EMERN epoch should cost at most twice a plain token classifier's over the
same encoder. Both are trained here, in one process, one after the other, on the first ``--documents``
training documents of ``--corpus`` (every sentence of them), with the full-scale settings of the
experiments (batch 16 sentences, windows of 128 pieces, the kit's one trainer, no dev evaluation):

* ``tagger``: the pipeline's tagger (:class:`mernlib.models.hst.HSTTagger` with one dataset: MiniLM + a
  CRF over the corpus's BIO tags), what ``train pipeline`` trains;
* ``e2emern``: E2EMERN as published (one random negative per positive);
* ``e2emern-kit``: the kit's variant's compute (three negatives per positive, additive attention, the
  low-level CRF). Its negatives are drawn at random here instead of from the retriever -- the same number
  of (sentence, concept) pairs, so the same work, without building the tuned dense retriever first;
* ``e2emern-kit-1neg``: the same with one negative per positive (the study row of that name).

Each is timed twice per model, by the wall clock and by this process's CPU time (``time.process_time``:
what one free core would take; the machine is usually shared). Numbers go to ``benchmarks/README.md``.

    PYTHONPATH=. MERNLIB_DATA=/work/shared/corpora python benchmarks/bench_e2emern_epoch.py --documents 60
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from mernlib.report import machine


def timed(step) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="ncbi-disease", help="sample, ncbi-disease or bc5cdr")
    parser.add_argument("--documents", type=int, default=60, help="training documents (their every sentence)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    print(f"machine: {machine()}")  # readings from two machines are not comparable
    torch.set_num_threads(args.threads)

    from mernlib.experiments import scale_settings
    from mernlib.experiments.e2emern import VARIANTS, new_model, prepare, train_model
    from mernlib.experiments.hst import train_multitask
    from mernlib.models.hst import HSTTagger
    from mernlib.pipeline import full_config, tagging_dataset

    data = prepare(args.corpus, max_documents=args.documents)
    sentences = data.spanned["train"]
    n_words = sum(len(s.words) for s in sentences)
    n_mentions = sum(len(s.spans) for s in sentences)
    settings = {
        k: v for k, v in scale_settings("e2emern", "full").items() if k not in ("about", "max_documents")
    }
    settings["epochs"] = 1

    rows = []
    config = full_config(args.seed, epochs=1, select_on_dev=False, progress=False).tagger
    dataset = tagging_dataset(args.corpus, data.documents)
    tagger = HSTTagger(config, [dataset])
    rows.append(("tagger (MiniLM + CRF)", *timed(lambda: train_multitask(tagger, [dataset], config))))

    def random_negatives(kit: str) -> dict:  # the kit row's settings, negatives drawn at random: same count
        return {k: v for k, v in VARIANTS[kit].items() if k != "negatives"}

    for label, variant, overrides in (
        ("e2emern (published, 1 negative)", "e2emern", {}),
        ("e2emern-kit compute (3 negatives, CRF)", "e2emern", random_negatives("e2emern-kit")),
        ("e2emern-kit-1neg compute (1 negative, CRF)", "e2emern", random_negatives("e2emern-kit-1neg")),
    ):
        model = new_model(data, settings | overrides, variant, seed=args.seed, progress=False)
        rows.append((label, *timed(lambda model=model: train_model(model, sentences, progress=False))))

    base_cpu = rows[0][2]
    print(f"{args.corpus}: {len(sentences)} training sentences ({n_words} words, {n_mentions} mentions) of")
    print(f"the first {args.documents} documents; torch threads {torch.get_num_threads()}, load average")
    print(f"{os.getloadavg()[0]:.1f} at the end")
    print()
    print("| one epoch of | wall s | CPU s | sentences per CPU-s | x the tagger (CPU) |")
    print("|---|---:|---:|---:|---:|")
    for label, wall, cpu in rows:
        print(f"| {label} | {wall:.1f} | {cpu:.1f} | {len(sentences) / cpu:.1f} | {cpu / base_cpu:.2f} |")


if __name__ == "__main__":
    main()
