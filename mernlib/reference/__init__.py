"""Published numbers, as cited reference data (never our results): one JSON file per paper.

Each file names the paper, the table, and the protocol the authors used; :func:`load` reads one.
"""

import json
from importlib import resources


def load(name: str) -> dict:
    """The reference data of one paper, e.g. ``load("zhao2019")``."""
    return json.loads(resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8"))
