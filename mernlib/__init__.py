"""mernlib: a Jupyter-first teaching and reproduction kit for medical named entity recognition
(MER) and normalization (MEN).

``import mernlib as ml`` gives every submodule as an attribute (``ml.data``, ``ml.metrics``,
``ml.report``, ...), imported on first use so that ``python -m mernlib stats`` does not load torch.
The layout stays flat, one level deep, on purpose: about twenty modules, each named for what it
holds, read better as ``ml.metrics`` than as ``ml.evaluation.metrics``; the groups are listed in
the README's Layout section.
"""

import importlib

__version__ = "0.1.0"

SUBMODULES = (
    # the data layer
    "corpus",
    "pubtator",
    "bioc",
    "tokenize",
    "tags",
    "conll",
    "entity_base",
    "registry",
    "data",
    "datasets",
    "files",
    "sample",
    "vocab",
    "embeddings",
    # evaluation and results
    "metrics",
    "report",
    "results",
    "reference",
    # models, training and running
    "encoders",
    "candidates",
    "models",
    "train",
    "distributed",
    "abbreviations",
    "normalize",
    "pipeline",
    "annotate",
    "pretrain",
    "experiments",
    "runner",
    "viz",
    "paths",
    "errors",
)


def __getattr__(name: str):
    if name in SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *SUBMODULES])
