"""Reproduction of Chai et al. (BMC Bioinformatics 2022): hierarchical shared transfer against its baselines.

``python -m mernlib reproduce hst --scale reduced|full`` trains the four variants of
:data:`mernlib.models.hst.VARIANTS` with the default encoder (the offline MiniLM) on every selected
dataset and writes, under ``results/hst/``:

* ``<scale>.json`` -- per dataset: each variant's test P/R/F1 (with counts), the change against
  single-task in F1 points beside the change the paper reports (``mernlib/reference/chai2022.json``),
  the split sizes before and after the caps; the scale and its caps, the model configuration, the
  datasets skipped (absent files) with the reason, and the provenance (:func:`mernlib.report.run_record`:
  command, seed, encoder, wall time, git commit). Written after every variant with ``"complete": false``
  so an interrupted run leaves what it finished.
* ``<scale>.csv`` -- the same numbers, one row per (dataset, variant).
* ``<scale>/<variant>/<dataset>.tsv`` -- each model's test predictions, ``token<TAB>gold<TAB>predicted``
  (:func:`mernlib.conll.write_iob`), so every number can be re-scored independently with
  :func:`mernlib.metrics.ner_prf_from_tags` (:func:`rescore` does exactly that).

Protocol. The dev split selects the best epoch (mean dev F1 over datasets in the multi-task stage, the
target's dev F1 in fine-tuning and single-task training); the test split is predicted once, by the
selected model. The ``multi-task`` variant *is* the stage-1 model of ``multi-task+fine-tune`` (same
configuration, same seed), so it is trained once and scored before the fine-tuned copies are made;
:func:`mernlib.models.hst.run_variant` would train it twice with identical results.

Scales (:data:`SCALES`). ``full``: every sentence of every dataset of the collection (the paper's 14;
BC4CHEMD and the JNLPBA training split are absent here and skipped), 3 multi-task epochs + 2
fine-tuning epochs -- a GPU job. ``reduced``: a seeded random subset of each dataset's splits and fewer
epochs, sized so that the whole comparison finishes in about an hour on one CPU core (see
``benchmarks/bench_hst.py``), on the datasets whose change the paper reports. Numbers at ``reduced``
are about the *methods under a small budget*, not a reproduction of the paper's absolute scores: with
600 training sentences per dataset, sharing has more to give than with the full sets.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from mernlib.report import run_record, write_json

PAPER_DATASETS = ("BC5CDR-chem", "BC5CDR-disease", "NCBI-disease", "BC2GM", "linnaeus", "BC4CHEMD")
"""The datasets whose change the paper reports (BC4CHEMD is absent here: it is skipped, and says so)."""

SCALES: dict[str, dict] = {
    # caps: sentences per dataset and split (None: all); epochs: multi-task / single-task stage;
    # fine_tune_epochs: fine-tuning stage; corpora: the default dataset selection
    "tiny": {
        "train": 64,
        "devel": 32,
        "test": 64,
        "epochs": 1,
        "fine_tune_epochs": 1,
        "corpora": PAPER_DATASETS,
    },
    "reduced": {
        "train": 600,
        "devel": 300,
        "test": 1000,
        "epochs": 3,
        "fine_tune_epochs": 1,
        "corpora": PAPER_DATASETS,
    },
    "full": {
        "train": None,
        "devel": None,
        "test": None,
        "epochs": 3,
        "fine_tune_epochs": 2,
        "corpora": ("crichton",),
    },
}
"""``scale`` -> caps per dataset, epochs and the default datasets. A cap keeps a random subset fixed by
the seed (and the dataset and split names), in file order."""

VARIANT_ORDER = ("single-task", "multi-task", "multi-task+fine-tune", "hierarchical")


def _select_variants(only) -> list[str]:
    from mernlib.models.hst import VARIANTS

    if not only:
        return list(VARIANT_ORDER)
    unknown = [v for v in only if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose among {list(VARIANTS)}")
    return [v for v in VARIANT_ORDER if v in only]


def load_datasets(corpora, data_dir, caps: dict, seed: int, log: Callable[[str], None] = print):
    """``(datasets, skipped)``: the capped datasets by name, and ``[{"dataset", "reason"}]`` for every
    requested dataset whose files are absent (each also reported through ``log``)."""
    from mernlib.models.hst import DatasetSkipped, _cap, load_hst_datasets

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetSkipped)
        datasets = load_hst_datasets(
            list(corpora), data_dir=data_dir, scale="full", max_train_sentences=caps["train"], seed=seed
        )
    skipped = []
    for w in caught:
        if not issubclass(w.category, DatasetSkipped):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        text = str(w.message)
        match = re.match(r"HST: skipping dataset (\S+?):\n(.*)", text, re.S)
        name, reason = (match.group(1), match.group(2).strip()) if match else ("?", text)
        skipped.append({"dataset": name, "reason": reason})
        log(f"SKIPPED {name}: {reason}")
    for d in datasets.values():  # evaluation caps: the same seeded subsets load_hst_datasets makes
        d.devel = _cap(d.devel, caps["devel"], seed, f"{d.name}:devel")
        d.test = _cap(d.test, caps["test"], seed, f"{d.name}:test")
    return datasets, skipped


def rescore(path: str | Path) -> dict:
    """P/R/F1 (and counts) of a ``token<TAB>gold<TAB>predicted`` file, read back from disk."""
    from mernlib.conll import read_iob
    from mernlib.metrics import ner_prf_from_tags

    sentences = read_iob(path)
    if any(s.predicted is None for s in sentences):
        raise ValueError(f"{path}: expected three columns (token, gold, predicted)")
    return ner_prf_from_tags([s.tags for s in sentences], [s.predicted for s in sentences]).as_dict()


def _score(prf, path: Path, root: Path, fit=None, seconds=None) -> dict:
    row = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in prf.as_dict().items()}
    row["predictions"] = str(path.relative_to(root))
    if fit is not None:
        row["best_epoch"] = fit.best_epoch
        row["best_dev"] = None if fit.best_score is None else round(fit.best_score, 6)
    if seconds is not None:
        row["train_seconds"] = round(seconds, 1)
    return row


def reproduce(
    corpora: Sequence[str] | None = None,
    data_dir=None,
    seed: int = 13,
    results_dir=Path("results"),
    scale: str = "reduced",
    only: Sequence[str] | None = None,
    *,
    config=None,
    encoder_fn: Callable | None = None,
    caps: dict | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    command: str | None = None,
    encoder_label: str | None = None,
) -> list[Path]:
    """Train and score the four variants on ``corpora`` and write ``results_dir/hst/<scale>...``.

    ``corpora``: dataset names (or the shortcuts of :func:`mernlib.models.hst.load_hst_datasets`:
    ``"sample"``, ``"crichton"``, an entity type); default: the scale's selection (:data:`SCALES`).
    ``only``: a subset of the variants. ``config``: an :class:`~mernlib.models.hst.HSTConfig` (default:
    :func:`~mernlib.models.hst.get_default_config`); the scale's epochs and ``seed`` override it.
    ``encoder_fn()``: a fresh :class:`~mernlib.encoders.WordEncoder` per model (default: the config's
    encoder). ``caps``: override the scale's caps/epochs (keys of :data:`SCALES` entries).
    ``encoder_label``: how the provenance names the encoder of ``encoder_fn``.
    ``progress``: tqdm bars (default: on unless ``$TQDM_DISABLE`` is set).
    ``threads``: ``torch.set_num_threads`` (default: ``$MERNLIB_THREADS`` if set, else torch's choice).
    Returns the paths written (JSON, CSV; the prediction files are listed in the JSON).
    """
    import torch

    from mernlib.encoders import encoder_name
    from mernlib.models.hst import HSTTagger, evaluate, fine_tune, get_default_config, train_multitask
    from mernlib.reference import load as load_reference

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {'|'.join(SCALES)}, not {scale!r}")
    if progress is None:
        progress = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
    started = time.time()
    threads = threads or int(os.environ.get("MERNLIB_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    settings = {**SCALES[scale], **(caps or {})}
    corpora = list(corpora) if corpora else list(settings["corpora"])
    variants = _select_variants(only)
    base = dataclasses.replace(
        config or get_default_config(),
        seed=seed,
        epochs=settings["epochs"],
        fine_tune_epochs=settings["fine_tune_epochs"],
        progress=progress,
    )
    reference = load_reference("chai2022")
    paper_delta = reference["delta_f1_vs_single_task"]

    root = Path(results_dir) / "hst"
    pred_dir = root / scale
    log = tqdm.write

    datasets, skipped = load_datasets(corpora, data_dir, settings, seed, log)
    if not datasets:
        raise RuntimeError(f"none of the datasets {corpora} could be read (skipped: {skipped})")
    names = list(datasets)
    log(
        f"HST {scale}: {len(names)} datasets ({', '.join(names)}); variants: {', '.join(variants)}; caps "
        f"train {settings['train']} / devel {settings['devel']} / test {settings['test']} sentences, "
        f"{settings['epochs']} + {settings['fine_tune_epochs']} epochs"
    )

    def new_encoder():
        return encoder_fn() if encoder_fn is not None else None

    encoder_label = (
        encoder_name(base.encoder) if encoder_fn is None else (encoder_label or "custom (encoder_fn)")
    )
    scores: dict[str, dict[str, dict]] = {v: {} for v in variants}
    timings: dict[str, float] = {}

    result = {
        "experiment": "hst",
        "paper": reference["citation"],
        "scale": scale,
        "caps": {k: settings[k] for k in ("train", "devel", "test")},
        "epochs": {
            "multi-task (and single-task)": settings["epochs"],
            "fine-tune": settings["fine_tune_epochs"],
        },
        "variants": variants,
        "datasets": {},
        "skipped": skipped,
        "complete": False,
    }

    def write_partial(done: bool = False) -> Path:
        result["datasets"] = {}
        for name in names:
            d = datasets[name]
            entry = {
                "entity_type": d.entity_type,
                "sizes": d.sizes,
                "used": {s: len(d.split(s)) for s in ("train", "devel", "test")},
                "tags": d.tags,
                "variants": {v: scores[v][name] for v in variants if name in scores[v]},
            }
            single = scores.get("single-task", {}).get(name)
            if single is not None:
                entry["delta_f1_points_vs_single_task"] = {
                    v: round(100 * (scores[v][name]["f1"] - single["f1"]), 2)
                    for v in variants
                    if v != "single-task" and name in scores[v]
                }
            entry["paper_delta_f1_points_hierarchical"] = paper_delta.get(name)
            result["datasets"][name] = entry
        result["mean_f1"] = {
            v: round(sum(s["f1"] for s in scores[v].values()) / len(scores[v]), 6)
            for v in variants
            if scores[v]
        }
        result["variant_seconds"] = {k: round(v, 1) for k, v in timings.items()}
        result["complete"] = done
        result["config"] = dataclasses.asdict(base)
        result["provenance"] = run_record(
            command=command,
            seed=seed,
            scale=scale,
            encoder=encoder_label,
            started=started,
            seeds=[seed],
            threads=torch.get_num_threads(),
        )
        return write_json(result, root / f"{scale}.json")

    def score(variant: str, model, d, fit=None, seconds=None):
        path = pred_dir / variant / f"{d.name}.tsv"
        prf = evaluate(model, d, "test", output=path)
        scores[variant][d.name] = _score(prf, path, root, fit, seconds)
        log(f"  {variant:22s} {d.name:16s} P {prf.precision:.4f} R {prf.recall:.4f} F1 {prf.f1:.4f}")

    # 1. single-task: one encoder-CRF per dataset (no type level)
    if "single-task" in variants:
        t0 = time.time()
        c = dataclasses.replace(base, use_type_level=False)
        for d in tqdm(datasets.values(), desc="single-task", disable=not progress):
            t1 = time.time()
            model = HSTTagger(c, [d], new_encoder())
            fit = train_multitask(model, [d], c)
            score("single-task", model, d, fit, time.time() - t1)
            del model
        timings["single-task"] = time.time() - t0
        write_partial()

    # 2. multi-task (shared encoder, one CRF head per dataset), then fine-tuned copies of it
    for variant, stage1 in (("multi-task+fine-tune", "multi-task"), ("hierarchical", None)):
        want_stage1 = stage1 is not None and stage1 in variants
        if variant not in variants and not want_stage1:
            continue
        t0 = time.time()
        c = dataclasses.replace(base, use_type_level=variant == "hierarchical")
        model = HSTTagger(c, list(datasets.values()), new_encoder())
        log(f"{variant}: multi-task stage over {len(names)} datasets")
        fit = train_multitask(model, list(datasets.values()), c)
        stage_seconds = time.time() - t0
        if want_stage1:
            for d in datasets.values():
                score(stage1, model, d, fit, stage_seconds)
            timings[stage1] = stage_seconds
            write_partial()
        if variant in variants:
            for d in tqdm(datasets.values(), desc=f"{variant}: fine-tuning", disable=not progress):
                t1 = time.time()
                tuned = fine_tune(model, d, c)
                score(variant, tuned, d, tuned.history[-1]["result"], stage_seconds + time.time() - t1)
                del tuned
            timings[variant] = time.time() - t0
            write_partial()
        del model

    json_path = write_partial(done=True)
    csv_path = root / f"{scale}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "dataset",
                "entity_type",
                "variant",
                "precision",
                "recall",
                "f1",
                "tp",
                "fp",
                "fn",
                "delta_f1_points_vs_single_task",
                "paper_delta_f1_points",
                "scale",
            ]
        )
        for name, entry in result["datasets"].items():
            deltas = entry.get("delta_f1_points_vs_single_task", {})
            for v, s in entry["variants"].items():
                w.writerow(
                    [
                        name,
                        entry["entity_type"],
                        v,
                        s["precision"],
                        s["recall"],
                        s["f1"],
                        s["tp"],
                        s["fp"],
                        s["fn"],
                        deltas.get(v, ""),
                        entry["paper_delta_f1_points_hierarchical"]
                        if v == "hierarchical" and entry["paper_delta_f1_points_hierarchical"] is not None
                        else "",
                        scale,
                    ]
                )
    log(f"HST {scale}: done in {time.time() - started:.0f} s")
    return [json_path, csv_path]


# --------------------------------------------------------------------------------------------------
# Reading results back: a table and charts (notebook 06 shows them for its own run and for results/hst/)
# --------------------------------------------------------------------------------------------------

VARIANT_COLORS = {
    "single-task": "#9e9e9e",
    "multi-task": "#80b1d3",
    "multi-task+fine-tune": "#8dd3c7",
    "hierarchical": "#fb8072",
    "paper (hierarchical)": "#333333",
}


def result_rows(result: dict) -> list[dict]:
    """One row per (dataset, variant) of a ``results/hst/<scale>.json`` dict (or of a dict of the same
    shape): dataset, entity_type, variant, precision, recall, f1, delta (F1 points against single-task)
    and paper_delta (the paper's change for the hierarchical model, where it reports one)."""
    rows = []
    for name, entry in result["datasets"].items():
        deltas = entry.get("delta_f1_points_vs_single_task", {})
        for variant, s in entry["variants"].items():
            rows.append(
                {
                    "dataset": name,
                    "entity_type": entry["entity_type"],
                    "variant": variant,
                    "precision": s["precision"],
                    "recall": s["recall"],
                    "f1": s["f1"],
                    "delta": deltas.get(variant),
                    "paper_delta": entry.get("paper_delta_f1_points_hierarchical")
                    if variant == "hierarchical"
                    else None,
                }
            )
    return rows


def comparison(scores: dict, entity_types: dict[str, str], reference: dict | None = None) -> dict:
    """Scores of a run made by hand (``{variant: {dataset: PRF}}``, as in notebook 06) in the shape of
    ``results/hst/<scale>.json`` (``{"datasets": ...}``), so :func:`result_rows` and the charts read both."""
    paper = (reference or {}).get("delta_f1_vs_single_task", {})
    out = {}
    for name, etype in entity_types.items():
        variants = {v: s[name].as_dict() for v, s in scores.items() if name in s}
        entry = {
            "entity_type": etype,
            "variants": variants,
            "paper_delta_f1_points_hierarchical": paper.get(name),
        }
        if "single-task" in variants:
            single = variants["single-task"]["f1"]
            entry["delta_f1_points_vs_single_task"] = {
                v: round(100 * (s["f1"] - single), 2) for v, s in variants.items() if v != "single-task"
            }
        out[name] = entry
    return {"datasets": out}


def f1_chart(rows: list[dict], title: str = "Test F1 per dataset"):
    """Grouped bars: each variant's F1 per dataset (rows from :func:`result_rows`)."""
    import altair as alt

    variants = [v for v in VARIANT_COLORS if any(r["variant"] == v for r in rows)]
    return (
        alt.Chart(
            alt.Data(values=[{k: r[k] for k in ("dataset", "entity_type", "variant", "f1")} for r in rows])
        )
        .mark_bar()
        .encode(
            x=alt.X("variant:N", sort=variants, title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("f1:Q", title="F1", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "variant:N",
                sort=variants,
                scale=alt.Scale(domain=variants, range=[VARIANT_COLORS[v] for v in variants]),
                title="model",
            ),
            column=alt.Column("dataset:N", title=None, header=alt.Header(labelAngle=0, labelFontSize=10)),
            tooltip=["dataset:N", "entity_type:N", "variant:N", alt.Tooltip("f1:Q", format=".4f")],
        )
        .properties(width=90, height=180, title=title)
    )


def delta_chart(
    rows: list[dict], reference: dict | None = None, title: str = "Change in F1 against single-task"
):
    """Bars: our change in F1 points against single-task per dataset and variant; beside them (dark bars)
    the paper's change for its hierarchical model on every dataset it reports (``reference``: the
    ``chai2022`` reference data; its datasets that are not in ``rows`` get a panel of their own, so the
    paper's six numbers are always all shown)."""
    import altair as alt

    values = [
        {"dataset": r["dataset"], "model": r["variant"], "delta": r["delta"], "source": "this run"}
        for r in rows
        if r["delta"] is not None
    ]
    if reference is not None:
        names = reference.get("paper_names", {})
        values += [
            {
                "dataset": names.get(k, k) if k not in {r["dataset"] for r in rows} else k,
                "model": "paper (hierarchical)",
                "delta": v,
                "source": "paper",
            }
            for k, v in reference["delta_f1_vs_single_task"].items()
        ]
    models = [m for m in VARIANT_COLORS if any(v["model"] == m for v in values)]
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X("model:N", sort=models, title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("delta:Q", title="F1 points vs single-task"),
            color=alt.Color(
                "model:N",
                sort=models,
                scale=alt.Scale(domain=models, range=[VARIANT_COLORS[m] for m in models]),
                title="model",
            ),
            column=alt.Column("dataset:N", title=None, header=alt.Header(labelAngle=0, labelFontSize=10)),
            tooltip=["dataset:N", "model:N", "source:N", alt.Tooltip("delta:Q", format="+.2f")],
        )
        .properties(width=70, height=200, title=title)
    )


def structure_chart(datasets: dict[str, str], encoder: str = "shared encoder"):
    """The three levels as a tree: the shared encoder, one node per entity type, one per dataset
    (``datasets``: name -> entity type)."""
    import altair as alt

    types = sorted(set(datasets.values()))
    by_type = {t: sorted(n for n, et in datasets.items() if et == t) for t in types}
    order = [n for t in types for n in by_type[t]]
    y_data = {n: i for i, n in enumerate(order)}
    y_type = {t: sum(y_data[n] for n in by_type[t]) / len(by_type[t]) for t in types}
    y_enc = (len(order) - 1) / 2
    nodes = [{"x": 0, "y": y_enc, "label": encoder, "level": "bottom: encoder"}]
    nodes += [{"x": 1, "y": y_type[t], "label": t, "level": "middle: entity type"} for t in types]
    nodes += [{"x": 2, "y": y_data[n], "label": n, "level": "top: dataset (own CRF)"} for n in order]
    edges = [{"x": 0, "y": y_enc, "x2": 1, "y2": y_type[t]} for t in types]
    edges += [{"x": 1, "y": y_type[datasets[n]], "x2": 2, "y2": y_data[n]} for n in order]
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=[-0.3, 2.9]))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[-0.5, len(order) - 0.5], reverse=True))
    links = (
        alt.Chart(alt.Data(values=edges)).mark_rule(color="#bbbbbb").encode(x=x, y=y, x2="x2:Q", y2="y2:Q")
    )
    dots = (
        alt.Chart(alt.Data(values=nodes))
        .mark_circle(size=180)
        .encode(x=x, y=y, color=alt.Color("level:N", title="level"), tooltip=["label:N", "level:N"])
    )
    text = (
        alt.Chart(alt.Data(values=nodes))
        .mark_text(align="left", dx=9, fontSize=11)
        .encode(x=x, y=y, text="label:N")
    )
    return (links + dots + text).properties(
        width=520,
        height=max(120, 26 * len(order)),
        title="Hierarchical sharing: encoder -> entity types -> datasets",
    )


__all__ = [
    "PAPER_DATASETS",
    "SCALES",
    "VARIANT_ORDER",
    "comparison",
    "delta_chart",
    "f1_chart",
    "load_datasets",
    "reproduce",
    "rescore",
    "result_rows",
    "structure_chart",
]
