"""Where the kit's files live: the checkout, the user cache, committed results and scratch runs.

One module so that every other one asks the same question the same way (the cache folder used to be
worked out in three places).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout holding ``mernlib/`` (for a pip-installed kit: the site-packages folder above it)."""

RESULTS_DIR = Path("results")
"""Committed results of the reproduction runs (relative to the working directory, as the CLI runs)."""

SCRATCH_RESULTS_DIR = Path("runs") / "results"
"""Where runs that are not a committed configuration (quick scale, an epoch override) write by default."""


def cache_root() -> Path:
    """``$MERNLIB_CACHE`` or ``~/.cache/mernlib``: downloads, trained word vectors, tuned encoders."""
    root = os.environ.get("MERNLIB_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "mernlib"


def cache_dir(*parts: str) -> Path:
    """A folder under :func:`cache_root` (not created)."""
    return cache_root().joinpath(*parts)


__all__ = ["REPO_ROOT", "RESULTS_DIR", "SCRATCH_RESULTS_DIR", "cache_dir", "cache_root"]
