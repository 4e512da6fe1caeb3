"""Speed of the hierarchical shared transfer model (HST) with the default MiniLM encoder.

Trains the hierarchical model (shared encoder, type layers, dataset heads with CRFs) for one epoch on
``--train`` sentences per dataset and predicts ``--eval`` sentences per dataset, then prints training
sentences/second and inference sentences/second. These two numbers size the ``reduced`` scale of
``python -m mernlib reproduce hst``: a training sentence costs the same in every variant (single-task,
multi-task, fine-tuning), so the whole comparison's time is about
``trained sentences / train rate + predicted sentences / inference rate``.

    python benchmarks/bench_hst.py                                   # the bundled sample IOB datasets
    MERNLIB_DATA=../shared/corpora python benchmarks/bench_hst.py \\
        --datasets BC5CDR-chem NCBI-disease --train 200 --eval 200   # real sentences
    python benchmarks/bench_hst.py --threads 2 --no-type-level       # other settings

One thread by default (the machines share their cores).
"""

from __future__ import annotations

import argparse
import time

import torch

from mernlib.datasets import load_iob_datasets
from mernlib.experiments.hst import selection_names, train_multitask
from mernlib.models.hst import HSTTagger, get_default_config
from mernlib.report import machine


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--datasets", nargs="+", default=["sample"], help="dataset names or a selection (default: the sample)"
    )
    p.add_argument(
        "--data-dir", default=None, help="folder holding crichton-2017-ner/ (default: $MERNLIB_DATA)"
    )
    p.add_argument("--train", type=int, default=100, help="training sentences per dataset")
    p.add_argument("--eval", type=int, default=100, help="sentences predicted per dataset")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-type-level", action="store_true", help="plain multi-task model (no type level)")
    args = p.parse_args(argv)
    print(f"machine: {machine()}")  # readings from two machines are not comparable

    torch.set_num_threads(args.threads)
    names = selection_names(args.datasets[0]) if len(args.datasets) == 1 else args.datasets
    selection = load_iob_datasets(
        names,
        data_dir=args.data_dir,
        caps={"train": args.train, "devel": args.eval, "test": args.eval},
        seed=13,
    )
    for s in selection.skipped:
        print(f"skipped {s['dataset']}: {s['reason'].splitlines()[0]}")
    datasets = selection.datasets
    config = get_default_config(
        epochs=1,
        select_on_dev=False,
        progress=False,
        batch_size=args.batch_size,
        use_type_level=not args.no_type_level,
    )
    model = HSTTagger(config, datasets)
    n_train = sum(len(d.train) for d in datasets.values())
    words = sum(len(s.tokens) for d in datasets.values() for s in d.train)
    print(
        f"{len(datasets)} datasets, {n_train} training sentences ({words / max(n_train, 1):.1f} words each), "
        f"type level {'on' if config.use_type_level else 'off'}, {args.threads} thread(s)"
    )

    start = time.perf_counter()
    train_multitask(model, datasets)
    seconds = time.perf_counter() - start
    print(f"training:  {n_train / seconds:7.1f} sentences/s  ({seconds:.1f} s for one epoch)")

    n_eval = 0
    start = time.perf_counter()
    for d in datasets.values():
        model.predict(d.test, d.name)
        n_eval += len(d.test)
    seconds = time.perf_counter() - start
    print(f"inference: {n_eval / seconds:7.1f} sentences/s  ({n_eval} sentences in {seconds:.1f} s)")


if __name__ == "__main__":
    main()
