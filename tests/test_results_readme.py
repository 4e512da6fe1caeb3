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


def test_summary_shows_per_corpus_the_own_system_dev_prefers(tmp_path):
    """Several `train best`/`soup` cards of one corpus give one README row: the best on dev, not on test."""
    import json

    from mernlib.experiments import headline_rows

    card = json.loads((RESULTS / "models" / "best-ncbi-disease-full.json").read_text())
    (tmp_path / "models").mkdir()
    for name, dev, test in (("best-ncbi-disease-full", 0.70, 0.90), ("soup-ncbi-disease-full", 0.80, 0.60)):
        card["name"] = name
        card["scores"]["dev"]["protocols"]["men-document"]["f1"] = dev
        card["scores"]["test"]["protocols"]["men-document"]["f1"] = test
        (tmp_path / "models" / f"{name}.json").write_text(json.dumps(card))
    card["name"] = "pipeline-ncbi-disease-full"
    (tmp_path / "models" / "pipeline-ncbi-disease-full.json").write_text(json.dumps(card))
    rows = [r for r in headline_rows(tmp_path) if r["corpus"] == "ncbi-disease"]
    assert [r["paper"].split("](")[1] for r in rows] == [
        "results/models/soup-ncbi-disease-full.json)",
        "results/models/pipeline-ncbi-disease-full.json)",
    ]
    assert rows[0]["standard men-document F1"] == 0.6
