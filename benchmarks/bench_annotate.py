"""Annotation speed: abstracts per second of a saved pipeline with the default encoder (MiniLM).

What ``python -m mernlib annotate`` costs once the model is loaded, and how that splits between the tagger
(tokenizing, the transformer and the CRF over every sentence) and the normalizer (abbreviations, lookups,
dense retrieval of what no lookup finds); then the whole command, model loading included, with one and
with two worker processes.

The model: ``--model DIR`` (a pipeline folder, e.g. ``python -m mernlib train pipeline --corpus
ncbi-disease``); by default ``runs/models/pipeline-ncbi-disease-full`` if it is there, else a pipeline built
here (once, into ``runs/models/bench-annotate-sample``): the MiniLM tagger trained one epoch on the sample
and the default normalizer (dense retrieval, tuned encoder) fitted on it. Speed depends on the encoder,
the text and how many mentions are found, not on how well the weights were trained.

The abstracts: ``--input FILE`` (PubTator, BioC JSON or plain text), by default the NCBI-disease test set
(100 real abstracts) when ``$MERNLIB_DATA`` holds it, else the sample's test set (20 short synthetic
abstracts) repeated five times.

    PYTHONPATH=. MERNLIB_DATA=/work/shared/corpora python benchmarks/bench_annotate.py
    PYTHONPATH=. python benchmarks/bench_annotate.py --model runs/models/ncbi --input my.txt --threads 2

Each rate is given per second of wall time and per second of CPU time (``abstracts per CPU-s``: what one
core does when it has nothing else to do; on the project's shared 2-core machines the wall rate mostly
says how busy the machine was). Worker processes' CPU time is read from ``getrusage(RUSAGE_CHILDREN)``.
Numbers go to ``benchmarks/README.md`` (section "Annotation") with the command and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import torch

from mernlib.report import machine

DEFAULT_MODEL = Path("runs/models/pipeline-ncbi-disease-full")
SAMPLE_MODEL = Path("runs/models/bench-annotate-sample")


def the_model(path: str | None) -> Path:
    from mernlib.pipeline import full_config, train_pipeline

    if path:
        return Path(path)
    if (DEFAULT_MODEL / "card.json").is_file():
        return DEFAULT_MODEL
    if not (SAMPLE_MODEL / "card.json").is_file():
        print(f"building {SAMPLE_MODEL} (MiniLM tagger, 1 epoch on the sample; default normalizer)")
        train_pipeline("sample", config=full_config(epochs=1), model_dir=SAMPLE_MODEL, progress=False)
    return SAMPLE_MODEL


def the_abstracts(path: str | None):
    from mernlib.annotate import read_documents
    from mernlib.data import load_corpus

    if path:
        return read_documents(path)[0], path
    if os.environ.get("MERNLIB_DATA"):
        from mernlib.pubtator import read_pubtator_texts
        from mernlib.registry import locate

        test = locate("ncbi-disease", "test", download=False)
        return read_pubtator_texts(test), "NCBI-disease test"
    return load_corpus("sample", "test") * 5, "sample test x 5"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a pipeline folder (default: see the module docstring)")
    p.add_argument("--input", help="abstracts to annotate (default: NCBI-disease test, else the sample)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-workers", action="store_true", help="skip the runs with worker processes")
    args = p.parse_args(argv)
    print(f"machine: {machine()}")  # readings from two machines are not comparable

    from mernlib.annotate import annotate_documents, quiet_transformers
    from mernlib.pipeline import AnnotationPipeline

    quiet_transformers()
    torch.set_num_threads(args.threads)
    folder = the_model(args.model)
    documents, source = the_abstracts(args.input)
    words = sum(len(d.text.split()) for d in documents)
    print(f"model {folder}; {len(documents)} abstracts ({source}), {words / len(documents):.0f} words each")

    t0 = time.perf_counter()
    pipeline = AnnotationPipeline.load(folder)
    print(f"load: {time.perf_counter() - t0:.1f} s ({pipeline.card.get('tagger', {}).get('encoder')})")
    pipeline.annotate(documents[:2], batch_size=args.batch_size)  # warm-up
    n = len(documents)
    print(f"load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")

    def rates(wall: float, cpu: float) -> str:
        return f"{n / wall:.1f} abstracts/s, {n / cpu:.1f} abstracts per CPU-s"

    found, tagger = timed(lambda: pipeline.find_mentions(documents, args.batch_size))
    _, normalizer = timed(lambda: pipeline.normalizer.normalize(found))
    mentions = sum(len(d.mentions) for d in found)
    print(f"tagger ({args.threads} thread(s)): {rates(*tagger)}")
    print(f"normalizer: {rates(*normalizer)} ({mentions} mentions)")
    _, whole = timed(lambda: pipeline.annotate(documents, batch_size=args.batch_size))
    print(f"annotate(), in process, {args.threads} thread(s): {rates(*whole)}")
    if args.no_workers:
        return
    for workers in (1, 2):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        _, (wall, cpu) = timed(
            lambda workers=workers: annotate_documents(
                folder, documents, workers=workers, threads=1, batch_size=args.batch_size, progress=False
            )
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        print(
            f"annotate --workers {workers} (1 thread each, model loading included): {n / wall:.1f} abstracts/s "
            f"({wall:.1f} s; {cpu:.1f} CPU-s in all processes)"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def timed(function):
    """``(result, (wall seconds, CPU seconds of this process))``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, (time.perf_counter() - wall, time.process_time() - cpu)


if __name__ == "__main__":
    main()
