"""Command line: ``python -m mernlib {stats,evaluate,run,reproduce,table,strip,train,retrieval-floor,soup,annotate}``.

``stats`` and ``evaluate`` are the kit's equivalent of the BioCreative evaluation kit; both print one
JSON object (with the ``notes`` of anything the reader repaired) and exit with status 2 and a one-line
message naming the file and line on malformed input: bytes that are not UTF-8, a directory or a missing
file, a damaged line, a prediction whose text is not the gold text (the line of its title), an unknown
``--types`` name (the message lists the types present). Missing corpus files
(:class:`~mernlib.errors.DataNotFoundError`) also exit 2; their message says where to put the file.

``train pipeline`` trains a tagger + normalizer on a corpus and saves the folder with its card
(:mod:`mernlib.pipeline`); ``train best`` the same with the kit's own system
(:func:`mernlib.pipeline.best_config`); ``retrieval-floor`` gives a saved pipeline the floor ``train best``
chooses on dev (:func:`mernlib.pipeline.add_retrieval_floor`); ``soup`` averages the taggers of saved
systems of one corpus, greedily on dev (:func:`mernlib.pipeline.soup_pipelines`); ``annotate`` applies a saved pipeline to PubTator, BioC JSON or plain text
(:mod:`mernlib.annotate`), with the same promise for bad input: exit 2 and one line ``path:line: message``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from .data import corpus_statistics
from .errors import DataFormatError, DataNotFoundError
from .pipeline import CHUNK_SIZE


def evaluate_files(gold: str, pred: str, types: list[str] | None = None, train: str | None = None) -> dict:
    """:func:`mernlib.metrics.evaluate_documents` of two PubTator files, with the reader's ``notes``; with
    ``train`` (the training split's gold PubTator) also ``recall_by_training_text``
    (:func:`mernlib.metrics.recall_by_training_text`).

    A ``types`` name that neither file holds is refused (``ValueError`` listing the types present) rather
    than scored as a table of zeros. A predicted document that cannot be paired with gold (PMID not in
    gold, other text) raises :class:`~mernlib.errors.DataFormatError` naming the line of its title.
    """
    from .errors import DocumentMismatchError
    from .metrics import evaluate_documents, recall_by_training_text
    from .pubtator import NCBI_CLASSES, read_predictions, read_pubtator_with_notes, title_lines

    gold_docs, gold_notes = read_pubtator_with_notes(gold)
    pred_docs, pred_notes = read_predictions(pred, gold_docs)  # PubTator, or stand-off (texts from gold)
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
    training_docs, train_notes = read_pubtator_with_notes(train) if train is not None else (None, [])
    try:
        result = evaluate_documents(gold_docs, pred_docs, types=types)
        if training_docs is not None:
            result["recall_by_training_text"] = recall_by_training_text(
                gold_docs, pred_docs, training_docs, types
            )
    except DocumentMismatchError as err:
        from .files import read_text

        lines = title_lines(read_text(err.path)) if err.path == str(pred) else []
        line = lines[err.index] if 0 <= err.index < len(lines) else None
        raise DataFormatError(err.path, line, err.message) from None
    result["notes"] = gold_notes + pred_notes + train_notes
    return result


def result_table(path: str, columns: list[str] | None = None) -> str:
    """A results file's summary as markdown, recomputed from its runs by its experiment
    (:func:`mernlib.experiments.table`); for a folder ``results/<experiment>``, the README written from
    every results file in it (:func:`mernlib.experiments.results_readme`)."""
    from .experiments import results_readme, table
    from .report import markdown_table
    from .results import load_results

    if Path(path).is_dir():
        return results_readme(path)
    rows = table(load_results(path))
    if not rows:
        raise ValueError(f"{path}: no runs stored; nothing to print")
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


ENCODER_EXPERIMENTS = ("e2emern", "hst")
"""The experiments whose config has an ``encoder`` field (``reproduce --encoder``)."""


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
    p.add_argument(
        "--train",
        metavar="PUBTATOR",
        help="the training split's gold file: also report recall on test mentions whose text is, or is not, "
        "a training mention's (recall_by_training_text)",
    )

    p = sub.add_parser("run", help="execute the notebooks with papermill and write runs/<timestamp>/")
    p.add_argument("notebooks", nargs="*", help="default: every notebooks/NN_*.ipynb in order")
    p.add_argument("--scale", default="quick", choices=["quick", "full"])
    p.add_argument("--corpus", default="sample")
    p.add_argument("--data-dir", default="")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--timeout", type=int, default=None, help="seconds per cell")

    from .experiments import EXPERIMENTS, SCALE_NAMES

    p = sub.add_parser(
        "reproduce",
        help="reproduction runs on the real corpora, stored in results/",
        description="Train and score an experiment's variants; every experiment takes the same options "
        "(see mernlib/experiments/__init__.py for the scales and the variants of each).",
    )
    p.add_argument("experiment", choices=[*EXPERIMENTS, "all"])
    p.add_argument("--corpus", action="append", help="a corpus (repeatable; default: the experiment's own)")
    p.add_argument("--data-dir", default=None, help="folder holding the corpora (default: $MERNLIB_DATA)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--scale", default="full", choices=SCALE_NAMES)
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants (rows)")
    p.add_argument("--epochs", type=int, help="override the scale's number of training epochs")
    p.add_argument(
        "--encoder",
        metavar="NAME_OR_PATH",
        help="e2emern and hst: the transformer encoder, a local folder or a hub name (e.g. a BioBERT or "
        "PubMedBERT checkpoint; default: the bundled MiniLM)",
    )
    p.add_argument(
        "--results-dir",
        default=None,
        help="where results go (default: results/ for reduced/full runs, runs/results/ for quick runs "
        "and epoch overrides, so they never mix with the committed tables)",
    )

    p = sub.add_parser("table", help="print a results file's summary (or write a results README)")
    p.add_argument(
        "result", nargs="?", help="results/<experiment>/<corpus>.json, or a folder results/<experiment>"
    )
    p.add_argument("--summary", action="store_true", help="the README's summary table (one row per paper)")
    p.add_argument("--columns", nargs="+", help="the columns to print, in order (default: all)")
    p.add_argument("--write", action="store_true", help="with a folder: write its README.md")

    p = sub.add_parser("strip", help="remove outputs from notebooks before committing")
    p.add_argument("notebooks", nargs="+")

    p = sub.add_parser(
        "train",
        help="train a model and save it as a folder with its model card",
        description="Train an annotation pipeline (tagger + normalizer) on a corpus, score it on dev and "
        "test (the card says how), and save the folder that `annotate` uses.",
    )
    p.add_argument(
        "model",
        choices=["pipeline", "best"],
        help="pipeline: the corpus's tagger + the normalizer; best: the kit's own system (the tagger also "
        "learns from every other dataset of the corpus's entity types, then is fine-tuned on it; "
        "mernlib.pipeline.best_config says what is in it and why)",
    )
    p.add_argument(
        "--corpus",
        default="sample",
        help="sample, ncbi-disease, bc5cdr, or all (ncbi-disease then bc5cdr: one folder each; default: sample)",
    )
    p.add_argument("--data-dir", default=None, help="folder holding the corpora (default: $MERNLIB_DATA)")
    p.add_argument(
        "--scale", default="full", choices=["quick", "full"], help="quick: seconds, tiny encoder (tests)"
    )
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--epochs", type=int, help="override the scale's number of training epochs")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one field of the tagger's config (mernlib.models.hst.HSTConfig), e.g. "
        "--set lr=5e-5 --set lr_schedule=linear; like --epochs, the card then goes to runs/results/ "
        "and the folder's name says what was set",
    )
    p.add_argument(
        "--pretrain",
        choices=["on", "off"],
        default=None,
        help="continue the encoder's masked-language-model pretraining on the corpora's non-test text before "
        "training (mernlib.pretrain; made once per machine, then cached); default: the system's own choice "
        "(mernlib.pipeline.best_config says which and why); a change is in the folder's name",
    )
    p.add_argument("--model-dir", help="where the folder goes (default: runs/models/<model>-<corpus>-...)")
    p.add_argument(
        "--results-dir",
        default=None,
        help="where a copy of the card goes, under models/ (default: results/ at full scale, runs/results/ "
        "for quick runs and epoch overrides)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser(
        "pretrain",
        help="continue the encoder's masked-language-model pretraining on the corpora's non-test text",
        description="Domain-adaptive pretraining (mernlib.pretrain): BERT's masked-language-model objective "
        "on the train and dev text of every corpus in --data-dir, deduplicated. Writes an encoder folder that "
        "`train ... --set encoder=FOLDER` and `reproduce e2emern|hst --encoder FOLDER` take, with its card "
        "pretraining.json (copied to RESULTS_DIR/pretrain/ for the real corpora). Options left unset take "
        "mernlib.pretrain.PretrainConfig's defaults: one epoch at lr 5e-5, 32 sequences of 128 pieces, seed 13.",
    )
    p.add_argument("--output", required=True, help="the new encoder's folder (must not exist or be empty)")
    p.add_argument("--corpus", default="sample", help="sample (its train + dev), or real: every corpus found")
    p.add_argument("--data-dir", default=None, help="folder holding the corpora (default: $MERNLIB_DATA)")
    p.add_argument("--encoder", default=None, help="the encoder to start from (default: the bundled MiniLM)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int, help="pieces per packed sequence")
    p.add_argument("--seed", type=int)
    p.add_argument("--save-at", type=int, action="append", default=[], help="also save after this step")
    p.add_argument("--results-dir", default="results", help="where the card's copy goes, under pretrain/")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "retrieval-floor",
        help="choose a saved pipeline's retrieval floor on dev, without training it again",
        description="Annotate dev with a normalizer fitted on train, choose the retrieval floor with the "
        "best men-document F1 (mernlib.pipeline.choose_retrieval_floor), score test once with the saved "
        "normalizer and that floor, and rewrite the folder's card (old scores kept as scores_without_floor) "
        "and its copy RESULTS_DIR/models/<folder name>.json.",
    )
    p.add_argument("--model", required=True, help="the pipeline's folder")
    p.add_argument("--data-dir", default=None, help="folder holding the corpora (default: $MERNLIB_DATA)")
    p.add_argument("--results-dir", default="results", help="where the card's copy goes, under models/")

    p = sub.add_parser(
        "soup",
        help="average the taggers of saved systems of one corpus (a model soup chosen on dev)",
        description="Rank the taggers of the --model folders by dev tag F1, average in each next one "
        "only if the average's dev F1 does not fall (mernlib.pipeline.greedy_soup), then score dev and test "
        "by the protocol of train (the first folder's normalizer). Writes the folder (default "
        "runs/models/soup-<corpus>-<scale>) and a copy of its card under RESULTS_DIR/models/.",
    )
    p.add_argument("--model", action="append", required=True, help="a saved system (give two or more)")
    p.add_argument("--data-dir", default=None, help="folder holding the corpora (default: $MERNLIB_DATA)")
    p.add_argument("--model-dir", default=None, help="where the folder goes")
    p.add_argument(
        "--results-dir",
        default=None,
        help="where the card's copy goes, under models/ (default: results/ for full-scale systems, "
        "runs/results/ for quick ones)",
    )

    p = sub.add_parser(
        "annotate",
        help="find and normalize mentions in your own abstracts with a saved pipeline",
        description="Annotate PubTator, BioC JSON or plain text (one document per blank-line-separated "
        "block, first line the title) with a pipeline saved by `train pipeline`; the input format is "
        "detected from the content. Annotations in the input are ignored.",
    )
    p.add_argument("--model", required=True, help="the pipeline's folder")
    p.add_argument("--input", required=True, help="PubTator, BioC JSON or plain text")
    p.add_argument("--output", required=True)
    p.add_argument(
        "--format",
        default="pubtator",
        choices=["pubtator", "pubtator-standoff", "bioc"],
        help="output format (pubtator-standoff: annotation lines alone, the text is the input's)",
    )
    p.add_argument(
        "--input-format", default="auto", choices=["auto", "pubtator", "bioc", "text"], help="default: detect"
    )
    p.add_argument("--workers", type=int, default=1, help="processes, each loading the model once")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per process (default: $MERNLIB_THREADS, else torch's with one worker, 1 per worker)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=CHUNK_SIZE,
        help="documents per chunk (a worker's unit of work; the output does not depend on it: "
        "mernlib.annotate.annotate_documents)",
    )
    p.add_argument(
        "--gold",
        default=None,
        help="a PubTator file with the input's true annotations: score the output against it and write "
        "OUTPUT.scores.json (scores, the model card's, provenance); PubTator output only",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _train(args) -> None:
    import os

    from .annotate import quiet_transformers
    from .encoders import encoder_slug
    from .paths import RESULTS_DIR, SCRATCH_RESULTS_DIR
    from .pipeline import config_for, train_pipeline
    from .report import write_json

    quiet_transformers()

    threads = int(os.environ.get("MERNLIB_THREADS", "0") or 0)
    if threads:
        import torch

        torch.set_num_threads(threads)
    from tqdm.auto import tqdm

    # "all": one system per corpus, one after the other (each its own folder and card): their mention
    # types differ (NCBI: diseases; BC5CDR: chemicals and diseases), so one folder could not serve both
    corpora = list(ALL_TRAIN_CORPORA) if args.corpus == "all" else [args.corpus]
    for corpus in corpora:
        config = config_for(args.scale, args.seed, args.epochs, system=args.model)
        overrides = tagger_overrides(config.tagger, args.set)
        config.tagger = dataclasses.replace(config.tagger, **overrides)  # validates the values
        # what differs from the system's defaults ends both the folder's name and the card's
        variant = f"-e{args.epochs}" if args.epochs else ""
        # an encoder is named as everywhere else (encoder_slug: a folder by its last part), a value by itself
        variant += "".join(
            f"-{key}{encoder_slug(value) if key == 'encoder' else value}" for key, value in overrides.items()
        )
        pretrain_changed = args.pretrain is not None and (args.pretrain == "on") != (
            config.pretraining is not None
        )
        if pretrain_changed:
            config.pretraining = {} if args.pretrain == "on" else None
            variant += "-pretrain" if args.pretrain == "on" else "-no-pretrain"
        seed = f"-seed{args.seed}" if args.seed != 13 else ""
        name = f"{args.model}-{corpus}-{args.scale}{seed}{variant}"
        if args.model_dir:
            model_dir = Path(args.model_dir) / name if len(corpora) > 1 else Path(args.model_dir)
        else:
            model_dir = Path("runs") / "models" / name
        committed = args.scale == "full" and args.epochs is None and not overrides and not pretrain_changed
        results_dir = (
            Path(args.results_dir) if args.results_dir else RESULTS_DIR if committed else SCRATCH_RESULTS_DIR
        )
        pipeline = train_pipeline(
            corpus,
            args.data_dir,
            config,
            model_dir=model_dir,
            progress=False if args.no_progress or _bars_disabled() else None,
            variant=variant,
            log=tqdm.write,
        )
        card_copy = write_json(pipeline.card, results_dir / "models" / f"{name}.json")
        print(f"wrote {model_dir} (card: {model_dir / 'card.json'}, copy: {card_copy})")
        print(_test_f1(pipeline.card))
        if pipeline.card.get("note"):
            print(f"({pipeline.card['note']})")


def tagger_overrides(tagger_config, settings: list[str]) -> dict:
    """``["lr=5e-5", "lr_schedule=linear"]`` -> ``{"lr": 5e-05, "lr_schedule": "linear"}``: each value
    read as a literal (``none``, ``true``/``false``, a number, else text) of the field's current type (an
    int where a float is expected is fine); an unknown field or a value of the wrong kind is a
    ``ValueError`` naming it."""
    values = {}
    fields = {f.name for f in dataclasses.fields(tagger_config)}
    for setting in settings:
        key, sep, text = setting.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            known = ", ".join(sorted(fields))
            raise ValueError(f"--set {setting!r}: expected NAME=VALUE with NAME one of: {known}")
        current, value = getattr(tagger_config, key), _literal(text.strip())
        if isinstance(current, float) and type(value) is int:
            value = float(value)
        if current is not None and value is not None and type(value) is not type(current):
            raise ValueError(f"--set {setting!r}: {key} takes a {type(current).__name__}, not {value!r}")
        values[key] = value
    return values


def _literal(text: str):
    """``"none"`` -> None, ``"true"``/``"false"`` -> bool, then int, float, else the text itself."""
    if text.lower() in ("none", "true", "false"):
        return {"none": None, "true": True, "false": False}[text.lower()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _test_f1(card: dict) -> str:
    """The model card's overall test F1 per protocol, in one line."""
    return "test F1: " + ", ".join(
        f"{p} {v['f1']:.4f}" for p, v in card["scores"]["test"]["protocols"].items()
    )


ALL_TRAIN_CORPORA = ("ncbi-disease", "bc5cdr")
"""What ``train ... --corpus all`` trains, one system each."""


def _bars_disabled() -> bool:
    """``TQDM_DISABLE`` set: the kit's bars stay off even where a config asks for them."""
    import os

    return os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


def _annotate(args) -> None:
    import os

    from .annotate import annotate_file, score_annotation

    if args.gold and args.format == "bioc":
        raise ValueError("--gold scores a PubTator output; use --format pubtator or pubtator-standoff")
    threads = args.threads or int(os.environ.get("MERNLIB_THREADS", "0") or 0) or None
    summary = annotate_file(
        args.model,
        args.input,
        args.output,
        output_format=args.format,
        input_format=args.input_format,
        workers=args.workers,
        threads=threads,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        progress=not (args.no_progress or _bars_disabled()),
    )
    print(
        f"annotated {summary['documents']} documents ({summary['input_format']}), {summary['mentions']} "
        f"mentions, in {summary['seconds']} s with loading the model ({summary['documents_per_second']} "
        "documents/s): "
        f"{summary['output']} ({summary['output_format']})"
    )
    if args.gold:
        written = score_annotation(args.output, args.gold, args.model, summary)
        scores = json.loads(written.read_text(encoding="utf-8"))["scores"]
        print(
            f"scored against {args.gold}: "
            + ", ".join(f"{k} {v}" for k, v in scores.items())
            + f": {written}"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "stats":
            print(json.dumps(corpus_statistics(args.corpus, args.split, args.data_dir), indent=2))
        elif args.command == "evaluate":
            print(json.dumps(evaluate_files(args.gold, args.pred, args.types, args.train), indent=2))
        elif args.command == "run":
            return _run(args)
        elif args.command == "reproduce":
            from .experiments import reproduce

            overrides = {}
            if args.encoder is not None:
                if args.experiment not in ENCODER_EXPERIMENTS:
                    why = {
                        "mtl": "mtl's encoder is its own Bi-LSTM-CNNs over the kit's word2vec",
                        "data": "data trains nothing",
                    }.get(args.experiment, "run e2emern and hst on their own")
                    raise ValueError(
                        f"--encoder applies to e2emern and hst only, not {args.experiment}: {why}"
                    )
                overrides["encoder"] = args.encoder
            started = time.time()
            written = reproduce(
                args.experiment,
                corpora=args.corpus,
                data_dir=args.data_dir,
                seed=args.seed,
                scale=args.scale,
                epochs=args.epochs,
                only=args.only,
                results_dir=args.results_dir,
                **overrides,
            )
            for path in written:
                print(f"wrote {path}")
            print(f"done in {time.time() - started:.0f} s")
        elif args.command == "table":
            if args.summary:
                from .experiments import summary_table

                print(summary_table())
                return 0
            if not args.result:
                raise ValueError("name a results file or folder, or ask for --summary")
            text = result_table(args.result, args.columns)
            if args.write:
                if not Path(args.result).is_dir():
                    raise ValueError("--write needs a folder results/<experiment>")
                (Path(args.result) / "README.md").write_text(text, encoding="utf-8")
                print(f"wrote {Path(args.result) / 'README.md'}")
            else:
                print(text)
        elif args.command == "train":
            _train(args)
        elif args.command == "pretrain":
            from .pretrain import PretrainConfig, continue_pretraining
            from .report import write_json

            given = {
                name: getattr(args, name)
                for name in ("encoder", "epochs", "max_steps", "lr", "batch_size", "max_length", "seed")
                if getattr(args, name) is not None
            }
            for name in ("epochs", "batch_size", "max_steps"):
                if name in given and given[name] < 1:
                    raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {given[name]}")
            config = PretrainConfig(**given, save_at=tuple(args.save_at), progress=not args.no_progress)
            card = continue_pretraining(args.output, config, corpus=args.corpus, data_dir=args.data_dir)
            print(f"saved {args.output}: {card['steps']} steps, last loss {card['history'][-1]['loss']}")
            if args.corpus != "sample":
                print(
                    f"card copy {write_json(card, Path(args.results_dir) / 'pretrain' / f'{Path(args.output).name}.json')}"
                )
        elif args.command == "retrieval-floor":
            from .pipeline import add_retrieval_floor
            from .report import write_json

            pipeline = add_retrieval_floor(args.model, args.data_dir, log=print)
            copy = write_json(
                pipeline.card, Path(args.results_dir) / "models" / f"{Path(args.model).name}.json"
            )
            floor = pipeline.card["retrieval_floor"]
            print(f"floor {floor['value']} (dev men-document F1 by floor: {floor['dev_men_document_f1']})")
            print(f"{_test_f1(pipeline.card)}; card copy {copy}")
        elif args.command == "soup":
            from .paths import RESULTS_DIR, SCRATCH_RESULTS_DIR
            from .pipeline import soup_pipelines
            from .report import write_json

            if len(args.model) < 2:
                raise ValueError("give at least two --model folders to average")
            pipeline = soup_pipelines(args.model, args.data_dir, log=print)
            name, full = pipeline.card["name"], pipeline.card["scale"] == "full"
            model_dir = Path(args.model_dir or Path("runs") / "models" / name)
            pipeline.save(model_dir)
            results_dir = args.results_dir or (RESULTS_DIR if full else SCRATCH_RESULTS_DIR)
            copy = write_json(pipeline.card, Path(results_dir) / "models" / f"{name}.json")
            print(f"saved {model_dir}; kept {pipeline.card['tagger']['soup']['kept']}")
            print(f"{_test_f1(pipeline.card)}; card copy {copy}")
        elif args.command == "annotate":
            if args.workers < 1:
                raise ValueError(f"--workers must be at least 1, not {args.workers}")
            _annotate(args)
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
