"""Command line: ``python -m mernlib {stats,evaluate,run,reproduce,strip}``.

``stats`` and ``evaluate`` are the kit's equivalent of the BioCreative evaluation kit; both print one
JSON object (with the ``notes`` of anything the reader repaired) and exit with status 2 and a one-line
message naming the file and line on malformed input: bytes that are not UTF-8, a directory or a missing
file, a damaged line, a prediction whose text is not the gold text (the line of its title), an unknown
``--types`` name (the message lists the types present). Missing corpus files
(:class:`~mernlib.errors.DataNotFoundError`) also exit 2; their message says where to put the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import DataFormatError, DataNotFoundError


def corpus_statistics(name_or_path: str, split: str | None = None, data_dir: str | None = None) -> dict:
    """Documents, mentions (per type), unique concepts and mentions lost by tokenization, as a dict.

    ``name_or_path`` is a corpus name (``sample``, ``ncbi-disease``, ``bc5cdr``) or a PubTator file; with
    ``split`` only that split's file is located (offline, the test split alone is enough).
    """
    from .corpus import corpus_stats
    from .data import PUBTATOR_CORPORA, SPLITS, corpus_files
    from .pubtator import read_pubtator_with_notes
    from .tokenize import lost_mentions, tokenize_document

    names = ("sample",) + PUBTATOR_CORPORA
    path = Path(name_or_path)
    if path.is_file():
        if split:
            raise ValueError(f"--split {split} applies to a corpus name ({', '.join(names)}), not to a file")
        files = {"file": path}
    elif name_or_path in names:
        files = corpus_files(name_or_path, data_dir, (split,) if split else SPLITS)
    elif path.is_dir():
        raise DataFormatError(
            path, None, f"is a directory; give a PubTator file or one of {', '.join(names)}"
        )
    else:
        raise DataFormatError(path, None, f"no such file, and not a corpus name ({', '.join(names)})")
    documents, notes = [], []
    for path in files.values():
        docs, file_notes = read_pubtator_with_notes(path)
        documents.extend(docs)
        notes.extend(file_notes)
    stats = corpus_stats(documents)
    stats["lost_mentions"] = sum(len(lost_mentions(doc, tokenize_document(doc))) for doc in documents)
    stats["files"] = [str(p) for p in files.values()]
    stats["notes"] = notes
    return stats


def evaluate_files(gold: str, pred: str, types: list[str] | None = None) -> dict:
    """:func:`mernlib.metrics.evaluate_documents` of two PubTator files, with the reader's ``notes``.

    A ``types`` name that neither file holds is refused (``ValueError`` listing the types present) rather
    than scored as a table of zeros. A predicted document that cannot be paired with gold (PMID not in
    gold, other text) raises :class:`~mernlib.errors.DataFormatError` naming the line of its title.
    """
    from .errors import DocumentMismatchError
    from .metrics import evaluate_documents
    from .pubtator import NCBI_CLASSES, read_pubtator_with_notes, title_lines

    gold_docs, gold_notes = read_pubtator_with_notes(gold)
    pred_docs, pred_notes = read_pubtator_with_notes(pred)
    if types is not None:
        present = {m.type for docs in (gold_docs, pred_docs) for d in docs for m in d.mentions}
        unknown = [t for t in types if t not in present]
        if unknown:
            hint = (
                " (NCBI-disease's classes are all read as Disease)"
                if any(t in NCBI_CLASSES for t in unknown)
                else ""
            )
            files = gold if gold == pred else f"{gold} or {pred}"
            raise ValueError(
                f"--types {' '.join(unknown)}: not a mention type of {files}; they hold: "
                f"{', '.join(sorted(present)) or 'no mentions'}{hint}"
            )
    try:
        result = evaluate_documents(gold_docs, pred_docs, types=types)
    except DocumentMismatchError as err:
        from .files import read_text

        lines = title_lines(read_text(err.path)) if err.path == str(pred) else []
        line = lines[err.index] if 0 <= err.index < len(lines) else None
        raise DataFormatError(err.path, line, err.message) from None
    result["notes"] = gold_notes + pred_notes
    return result


def result_table(path: str, columns: list[str] | None = None) -> str:
    """The summary rows of a results file as markdown: the MTL experiment's per-row means over seeds
    (recomputed from its runs), or the ``table`` of E2EMERN."""
    from .report import markdown_table

    result = json.loads(Path(path).read_text(encoding="utf-8"))
    if result.get("experiment") == "mtl":
        from . import reference
        from .experiments.mtl import summarize

        rows = summarize(result["runs"], reference.load("zhao2019").get(result["corpus"], {}))
    elif result.get("experiment") == "e2emern":
        from . import reference
        from .experiments.e2emern import _table

        rows = _table(result, reference.load("zhou2021"))
    elif "table" in result:
        rows = result["table"]
    else:
        raise ValueError(f"{path}: no 'table' and not an MTL result; nothing to print")
    return markdown_table(rows, columns)


def _run(args) -> int:
    from .runner import NOTEBOOKS_DIR, discover_notebooks, run_all

    notebooks = [Path(p) for p in args.notebooks] if args.notebooks else discover_notebooks(NOTEBOOKS_DIR)
    if not notebooks:
        print(f"no notebooks found in {NOTEBOOKS_DIR}", file=sys.stderr)
        return 2
    parameters = {
        "scale": args.scale,
        "corpus": args.corpus,
        "data_dir": args.data_dir or "",
        "seed": args.seed,
    }
    run_dir, results = run_all(notebooks, Path(args.runs_dir), parameters, timeout=args.timeout)
    print(f"report: {run_dir / 'report.md'} (also {Path(args.runs_dir) / 'latest'})")
    failed = [r for r in results if r.status != "ok"]
    for r in failed:
        print(f"FAILED {r.error}  (executed notebook: {run_dir / r.notebook})", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mernlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stats", help="corpus statistics as JSON")
    p.add_argument("corpus", help="sample, ncbi-disease, bc5cdr, or a PubTator file")
    p.add_argument("--split", choices=["train", "dev", "test"], help="one split (default: all together)")
    p.add_argument("--data-dir", help="folder holding the corpora (default: $MERNLIB_DATA)")

    p = sub.add_parser("evaluate", help="score predictions against gold (PubTator files) as JSON")
    p.add_argument("--gold", required=True)
    p.add_argument("--pred", required=True)
    p.add_argument("--types", nargs="+", help="restrict to these mention types (e.g. Disease)")

    p = sub.add_parser("run", help="execute the notebooks with papermill and write runs/<timestamp>/")
    p.add_argument("notebooks", nargs="*", help="default: every notebooks/NN_*.ipynb in order")
    p.add_argument("--scale", default="quick", choices=["quick", "full"])
    p.add_argument("--corpus", default="sample")
    p.add_argument("--data-dir", default="")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--timeout", type=int, default=None, help="seconds per cell")

    p = sub.add_parser("reproduce", help="full-scale runs on the real corpora, written to results/")
    p.add_argument("experiment", help="an experiment name, or 'all'")
    p.add_argument("--corpus", action="append", help="restrict to a corpus (repeatable)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--scale", help="full (default) or, where an experiment offers it, reduced")
    p.add_argument("--only", nargs="+", help="run only these rows/variants of the experiment")
    p.add_argument("--epochs", type=int, help="override the experiment's number of training epochs")
    p.add_argument("--results-dir", default="results")

    p = sub.add_parser("table", help="print a results file's summary as a markdown table (for the README)")
    p.add_argument("result", help="results/<experiment>/<corpus>.json")
    p.add_argument("--columns", nargs="+", help="the columns to print, in order (default: all)")

    p = sub.add_parser("strip", help="remove outputs from notebooks before committing")
    p.add_argument("notebooks", nargs="+")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "stats":
            print(json.dumps(corpus_statistics(args.corpus, args.split, args.data_dir), indent=2))
        elif args.command == "evaluate":
            print(json.dumps(evaluate_files(args.gold, args.pred, args.types), indent=2))
        elif args.command == "run":
            return _run(args)
        elif args.command == "reproduce":
            from .reproduce import reproduce

            started = time.time()
            written = reproduce(
                args.experiment,
                corpora=args.corpus,
                data_dir=args.data_dir,
                seed=args.seed,
                results_dir=Path(args.results_dir),
                scale=args.scale,
                only=args.only,
                epochs=args.epochs,
            )
            for path in written:
                print(f"wrote {path}")
            print(f"done in {time.time() - started:.0f} s")
        elif args.command == "table":
            print(result_table(args.result, args.columns))
        elif args.command == "strip":
            from .runner import strip_outputs

            for nb in args.notebooks:
                if strip_outputs(Path(nb)):
                    print(f"stripped {nb}")
    except (DataFormatError, DataNotFoundError, ValueError) as error:
        print(f"mernlib {args.command}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file that is missing, a directory, unreadable: name it, no traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"mernlib {args.command}: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
