"""The MEN head's CRF alone: the factorised CRF (the default above 64 tags) against the dense BIO-constrained
one (the paper's L x L transition matrix), on a corpus's real MEN tag set.

Times, in CPU seconds of one thread, the negative log-likelihood with its backward pass (what a training
step pays) and exact Viterbi decoding (what every dev evaluation pays), for one batch of random emissions
of the config's batch size and NCBI's mean sentence length. No model, no data beyond the tag set.

    MERNLIB_DATA=../shared/corpora python benchmarks/bench_crf.py --corpus ncbi-disease

Why it exists: the men-convergence study (notebook 03) compares the MEN head's settings over 8 epochs with
a dev evaluation each; this says what the dense transitions would cost there. Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from mernlib.experiments import mtl
from mernlib.models.crf import CRF
from mernlib.report import machine
from mernlib.vocab import TagVocab


def cpu_seconds(fn, repeats: int) -> float:
    """Mean process CPU time of ``fn()`` over ``repeats`` calls."""
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def _loss_backward(crf, scores, tags, mask) -> None:
    crf.neg_log_likelihood(scores, tags, mask, reduction="sum").backward()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="ncbi-disease")
    ap.add_argument("--data-dir", help="folder holding the real corpora (default: $MERNLIB_DATA)")
    ap.add_argument("--batch-size", type=int, default=mtl.row_config("mtl").batch_size)
    ap.add_argument("--length", type=int, default=25, help="tokens per sentence")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")  # readings from two machines are not comparable
    torch.set_num_threads(1)

    tag_vocab = TagVocab.build(mtl.prepare(args.corpus, args.data_dir).tags["train"]["men"])
    generator = torch.Generator().manual_seed(0)
    emissions = torch.randn(args.batch_size, args.length, len(tag_vocab), generator=generator)
    tags = torch.zeros(args.batch_size, args.length, dtype=torch.long)  # all O: a valid BIO path
    mask = torch.ones(args.batch_size, args.length, dtype=torch.bool)
    print(
        f"{args.corpus}: {len(tag_vocab)} MEN tags; batch {args.batch_size} x {args.length} tokens; 1 thread"
    )
    for structure in ("factorised", "full"):
        crf = CRF.for_tags(tag_vocab.itos, structure=structure)
        scores = emissions.clone().requires_grad_()
        train_step = functools.partial(_loss_backward, crf, scores, tags, mask)
        with torch.no_grad():
            decode = cpu_seconds(functools.partial(crf.decode, emissions, mask), 1)
        print(
            f"{structure:>10}: {sum(p.numel() for p in crf.parameters()):>9,} transition parameters; "
            f"loss + backward {cpu_seconds(train_step, args.repeats):.3f} CPU-s, exact Viterbi {decode:.3f} CPU-s per batch"
        )


if __name__ == "__main__":
    main()
