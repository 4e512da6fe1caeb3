"""The READMEs that print our numbers are written from results/ by the kit, and are current:
``results/<experiment>/README.md`` (``python -m mernlib table results/<experiment> --write``) and the
summary table of the top-level README (``python -m mernlib table --summary``)."""

import pytest

from mernlib.experiments import EXPERIMENTS, results_readme, summary_table
from mernlib.paths import REPO_ROOT

RESULTS = REPO_ROOT / "results"
FOLDERS = [RESULTS / name for name in EXPERIMENTS if list((RESULTS / name).glob("*.json"))]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_results_readme_is_current(folder):
    written = (folder / "README.md").read_text(encoding="utf-8")
    assert written == results_readme(folder), (
        f"{folder}/README.md is stale: run  python -m mernlib table results/{folder.name} --write"
    )


def test_readme_summary_table_is_current():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- summary:start -->\n", "\n<!-- summary:end -->"
    block = readme[readme.index(start) + len(start) : readme.index(end)]
    assert block == summary_table(RESULTS), (
        "README summary is stale: paste  python -m mernlib table --summary"
    )


def test_readme_stays_short():
    assert len((REPO_ROOT / "README.md").read_text(encoding="utf-8")) <= 12_000
