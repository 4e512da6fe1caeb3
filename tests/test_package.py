"""``import mernlib as ml``: every module is reachable as ``ml.<name>``, and importing the package alone
loads no heavy dependency (``python -m mernlib stats`` must not wait for torch)."""

import subprocess
import sys
from pathlib import Path

import mernlib


def test_every_module_is_a_lazy_attribute():
    package = Path(mernlib.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__", "cli"}
    modules |= {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    assert modules == set(mernlib.SUBMODULES)
    assert mernlib.files.read_text is not None  # resolved on first use


def test_importing_the_package_loads_no_torch():
    code = "import sys, mernlib; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
