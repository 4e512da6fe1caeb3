"""Shared fixtures. Tests that need the real corpora take ``real_corpora`` and are skipped (with the
reason printed) when ``MERNLIB_DATA`` does not point at a folder holding them."""

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Caches written during the tests (word vectors, the regenerated sample) go to a fresh folder, not to the
# user's ~/.cache/mernlib; notebook kernels started by the tests inherit it.
os.environ.setdefault("MERNLIB_CACHE", tempfile.mkdtemp(prefix="mernlib-test-cache-"))


@pytest.fixture(scope="session")
def real_corpora() -> Path:
    root = os.environ.get("MERNLIB_DATA")
    if not root or not (Path(root) / "ncbi-disease").is_dir():
        pytest.skip("real corpora absent: set MERNLIB_DATA to the folder holding ncbi-disease/, bc5cdr/, ...")
    return Path(root)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one torch thread is far faster than two contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
