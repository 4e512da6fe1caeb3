"""Annotating anyone's files with a saved pipeline (``python -m mernlib annotate``): reading the input in
whichever format it comes, running the model (in several processes if asked), writing the output.

**Input** (:func:`read_documents`), detected from the content (:func:`detect_format`) unless named:

* ``pubtator``: PubTator, the first non-blank line a title line ``PMID|t|...`` (or an abstract line, which
  the reader then rejects with its line); annotation lines, if any, are passed over unread
  (:func:`mernlib.pubtator.read_pubtator_texts`);
* ``bioc``: BioC JSON, the content starting with ``{`` or ``[`` (title and abstract passages,
  :mod:`mernlib.bioc`); BioC *XML* (``<``) is refused with a message saying so;
* ``text``: plain text, anything else. One document per block of lines separated by blank lines; the
  block's first line is the title, its other lines the abstract, joined by single spaces (PubTator keeps a
  text on one line). Documents are numbered ``1, 2, ...``: that is their PMID in the output.

Bad input raises :class:`~mernlib.errors.DataFormatError` naming the file and line, as every reader of
the kit does; a file without any document is an error too.

**Output** (:func:`write_documents`): PubTator with concept IDs (``|`` between the IDs of a composite
mention), or BioC JSON. The text is the input's title and abstract exactly as read (for plain text, the
lines joined as above), so the output of a PubTator input re-scores against it with
``python -m mernlib evaluate``. ``pubtator-standoff`` writes the annotation lines alone (the text is the
input's; :func:`mernlib.pubtator.read_predictions`): how ``results/annotate`` stores its outputs.

**Several processes** (:func:`annotate_documents` with ``workers > 1``): the documents are cut into
contiguous chunks, each worker process loads the model once and annotates chunk after chunk; results
come back in input order. Each worker runs torch on ``threads`` threads (default 1), so ``--workers 2``
uses two cores.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from .corpus import Document, text_document
from .errors import DataFormatError
from .files import BOM, read_text
from .pipeline import CHUNK_SIZE

INPUT_FORMATS = ("pubtator", "bioc", "text")
OUTPUT_FORMATS = ("pubtator", "pubtator-standoff", "bioc")

_PUBTATOR_HEADER = re.compile(r"^[^|\t\n]+\|[ta]\|")


def detect_format(text: str) -> str:
    """``"pubtator"``, ``"bioc"`` or ``"text"`` for the content ``text`` (see the module docstring);
    ``"bioc-xml"`` for BioC XML, which :func:`read_documents` refuses."""
    head = text.removeprefix(BOM).lstrip()
    if head[:1] in ("{", "["):
        return "bioc"
    if head[:1] == "<":
        return "bioc-xml"
    first = head.split("\n", 1)[0].rstrip("\r")
    return "pubtator" if _PUBTATOR_HEADER.match(first) else "text"


def parse_plain_text(text: str, source: str = "<string>") -> list[Document]:
    """The documents of plain ``text``: blocks of lines separated by blank lines, each :func:`text_document`
    numbered ``1, 2, ...`` in order."""
    documents: list[Document] = []
    block: list[str] = []
    for line in [*text.removeprefix(BOM).split("\n"), ""]:
        if line.strip():
            block.append(line)
        elif block:
            n = len(documents)
            documents.append(text_document("\n".join(block), str(n + 1), source, n))
            block = []
    return documents


def read_documents(path: str | os.PathLike, input_format: str = "auto") -> tuple[list[Document], str]:
    """``(documents, format)``: the titles and abstracts of ``path`` (annotations not read), in the format
    named or detected (``"auto"``). Raises :class:`~mernlib.errors.DataFormatError` for bad input or a file
    without documents."""
    from .bioc import parse_bioc
    from .pubtator import parse_pubtator_texts

    if input_format not in ("auto", *INPUT_FORMATS):
        raise ValueError(f"input format must be auto|{'|'.join(INPUT_FORMATS)}, not {input_format!r}")
    text = read_text(path)
    source = str(path)
    kind = detect_format(text) if input_format == "auto" else input_format
    if kind == "bioc-xml":
        raise DataFormatError(
            source,
            1,
            "BioC XML is not read by the kit: convert it to BioC JSON (e.g. with the bioc package: "
            "bioc.biocjson.dumps(bioc.biocxml.load(f))), or give PubTator or plain text",
        )
    if kind == "pubtator":
        documents = parse_pubtator_texts(text, source)
    elif kind == "bioc":
        documents = parse_bioc(text, source, annotations=False)
    else:
        documents = parse_plain_text(text, source)
    if not documents:
        raise DataFormatError(source, None, f"holds no document (read as {kind})")
    return documents, kind


def write_documents(
    documents: list[Document], path: str | os.PathLike, output_format: str = "pubtator"
) -> Path:
    """Write annotated ``documents`` to ``path`` as PubTator or BioC JSON, atomically."""
    from .bioc import write_bioc
    from .pubtator import write_pubtator

    if output_format in ("pubtator", "pubtator-standoff"):
        return write_pubtator(documents, path, texts=output_format == "pubtator")
    if output_format == "bioc":
        return write_bioc(documents, path)
    raise ValueError(f"output format must be one of {'|'.join(OUTPUT_FORMATS)}, not {output_format!r}")


# --------------------------------------------------------------------------------------------------
# Running the model, in one process or several
# --------------------------------------------------------------------------------------------------

_worker_pipeline = None  # the model a worker process loaded (one per process)


def quiet_transformers() -> None:
    """Switch off transformers' own progress bars ("Loading weights", "Writing model shards"): on the
    command line they only interleave with the kit's bar and say nothing about the user's documents."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def _worker_start(model_dir: str, threads: int) -> None:
    import torch

    from .pipeline import AnnotationPipeline

    global _worker_pipeline
    quiet_transformers()
    torch.set_num_threads(threads)
    _worker_pipeline = AnnotationPipeline.load(model_dir)


def _worker_annotate(args: tuple[list[Document], int]) -> list[Document]:
    documents, batch_size = args
    return _worker_pipeline.annotate(documents, batch_size=batch_size)


def chunks(documents: Sequence[Document], size: int) -> list[list[Document]]:
    """``documents`` cut into contiguous chunks of at most ``size``, in order."""
    return [list(documents[lo : lo + size]) for lo in range(0, len(documents), size)]


def annotate_documents(
    model,
    documents: Sequence[Document],
    *,
    workers: int = 1,
    threads: int | None = None,
    batch_size: int = 32,
    chunk_size: int = CHUNK_SIZE,
    progress: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> list[Document]:
    """``documents`` annotated by ``model`` (an :class:`~mernlib.pipeline.AnnotationPipeline`, or the
    folder of one), in input order. With ``workers > 1`` (``model`` must then be a folder) that many
    processes each load the model once and take contiguous chunks of ``chunk_size`` documents; each runs
    torch on ``threads`` threads (default 1). With one worker, ``threads`` (if given) sets torch's thread
    count for the call. A tqdm bar over documents with ``progress``.

    Why 64 documents a chunk: each worker gets fewer, larger pieces of work, and sentences are
    length-bucketed within a chunk, so a larger one pads less (on 1,500 BC5CDR abstracts with two workers
    on a quiet machine, 10.6-10.9 a second against 9.0 with 16; ``benchmarks/README.md``). The chunk does
    not change the output: BC5CDR's 500 test abstracts, and all 1,500, gave the same file byte for byte
    with 16 and 64 documents a chunk, and the test set with one or two workers (2026-11-30). An earlier
    note here blamed the chunk for 19 mentions that moved; they came from a change to the normalizer
    (commit 2c21f53, see ``results/annotate/README.md``)."""
    import torch
    from tqdm.auto import tqdm

    from .pipeline import AnnotationPipeline

    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if chunk_size < 1:
        raise ValueError(f"chunk size must be at least 1 document, not {chunk_size}")
    parts = chunks(documents, chunk_size)
    out: list[Document] = []
    bar = tqdm(total=len(documents), desc="annotating", unit="doc", disable=not progress)
    try:
        if workers == 1:
            before = torch.get_num_threads()
            if threads:
                torch.set_num_threads(threads)
            try:
                pipeline = model if isinstance(model, AnnotationPipeline) else AnnotationPipeline.load(model)
                for part in parts:
                    out.extend(pipeline.annotate(part, batch_size=batch_size, chunk_size=chunk_size))
                    bar.update(len(part))
            finally:
                torch.set_num_threads(before)
            return out
        if isinstance(model, AnnotationPipeline):
            raise ValueError("with several workers, give the model's folder: each process loads it once")
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a forked copy of a process that has started torch's thread pools can hang
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(workers, max(1, len(parts))),
            mp_context=context,
            initializer=_worker_start,
            initargs=(str(model), threads or 1),
        ) as pool:
            for result in pool.map(_worker_annotate, [(part, batch_size) for part in parts]):
                out.extend(result)
                bar.update(len(result))
            bar.close()  # now, not after the workers have shut down: the bar's time is the work's
        return out
    finally:
        bar.close()


def annotate_file(
    model_dir: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    output_format: str = "pubtator",
    input_format: str = "auto",
    workers: int = 1,
    threads: int | None = None,
    batch_size: int = 32,
    chunk_size: int = CHUNK_SIZE,
    progress: bool = True,
) -> dict:
    """Read ``input_path``, annotate it with the pipeline saved in ``model_dir``, write ``output_path``
    (what ``python -m mernlib annotate`` does). The input is read, and the model folder checked, before
    anything is loaded, so bad input fails at once; transformers' own progress bars are switched off
    (:func:`quiet_transformers`). Returns a summary: documents, mentions, formats,
    seconds, documents per second."""
    import time

    from .pipeline import model_kind

    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {'|'.join(OUTPUT_FORMATS)}, not {output_format!r}")
    documents, kind = read_documents(input_path, input_format)
    found = model_kind(model_dir)
    if found != "pipeline":
        raise DataFormatError(
            model_dir,
            None,
            f"a saved {found} model, not an annotation pipeline (card.json): annotate needs "
            "both a tagger and a normalizer (python -m mernlib train pipeline)",
        )
    quiet_transformers()
    started = time.perf_counter()
    annotated = annotate_documents(
        model_dir,
        documents,
        workers=workers,
        threads=threads,
        batch_size=batch_size,
        chunk_size=chunk_size,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    write_documents(annotated, output_path, output_format)
    return {
        "documents": len(annotated),
        "mentions": sum(len(d.mentions) for d in annotated),
        "input_format": kind,
        "output_format": output_format,
        "output": str(output_path),
        "seconds": round(seconds, 2),
        "documents_per_second": round(len(annotated) / seconds, 2) if seconds > 0 else None,
    }


def score_annotation(
    output_path: str | os.PathLike, gold_path: str | os.PathLike, model_dir: str | os.PathLike, summary: dict
) -> Path:
    """Score an annotated PubTator file against ``gold_path`` (the standard protocol:
    :func:`mernlib.metrics.evaluate_documents`, as ``python -m mernlib evaluate``) and write ``<output>.scores.json`` beside it: the scores, the
    model card's own test scores for comparison, the annotation summary (documents/s) and the provenance
    (the annotate command and this commit, the model's seed, scale and encoder, and its card's commit).
    This is how ``results/annotate/<corpus>/<model>.pubtator`` gets its numbers: the test text goes in,
    its annotations ignored, and what comes out is scored like any prediction file."""
    from .metrics import evaluate_documents
    from .pipeline import read_card
    from .pubtator import read_predictions, read_pubtator
    from .report import run_record, write_json

    output_path = Path(output_path)
    card = read_card(model_dir)
    gold = read_pubtator(gold_path)
    scores = evaluate_documents(gold, read_predictions(output_path, gold)[0])
    provenance = card.get("provenance", {})
    result = {
        "model": card.get("name"),
        "model_card_commit": provenance.get("git_commit"),
        "gold": str(gold_path),
        "predictions": str(output_path),
        "protocol": "standard: ner-mention-strict, men-mention and BioCreative-style men-document F1",
        "scores": {name: round(entry["f1"], 4) for name, entry in scores["protocols"].items()},
        "card_test_scores": {
            name: round(entry["f1"], 4)
            for name, entry in card.get("scores", {}).get("test", {}).get("protocols", {}).items()
        },
        "evaluation": scores,
        "annotation": summary,
        "provenance": run_record(
            seed=card.get("seed"),
            scale=card.get("scale"),
            encoder=provenance.get("encoder"),
            started=None,
            wall_time_s=summary.get("seconds"),
        ),
    }
    return write_json(result, output_path.with_name(output_path.name + ".scores.json"))


__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "annotate_documents",
    "annotate_file",
    "chunks",
    "detect_format",
    "parse_plain_text",
    "quiet_transformers",
    "read_documents",
    "score_annotation",
    "text_document",
    "write_documents",
]
