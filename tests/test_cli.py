"""`python -m mernlib stats|evaluate`: JSON on good input, exit 2 with file:line on bad input."""

import json
import subprocess
import sys

import pytest

from mernlib.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "mernlib", *args], capture_output=True, text=True)


def test_stats_on_the_sample(capsys):
    assert main(["stats", "sample"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["documents"] == 120 and stats["lost_mentions"] == 0
    assert stats["mentions"] == sum(stats["mentions_per_type"].values()) > 0
    assert main(["stats", "sample", "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 20


@pytest.mark.real_data
@pytest.mark.parametrize(
    "corpus, documents, mentions", [("ncbi-disease", 793, 6892), ("bc5cdr", 1500, 28785)]
)
def test_stats_on_the_real_corpora(real_corpora, capsys, corpus, documents, mentions):
    assert main(["stats", corpus, "--data-dir", str(real_corpora)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["documents"], stats["mentions"], stats["lost_mentions"]) == (documents, mentions, 0)


def test_evaluate_scores_damaged_predictions(tmp_path, repo_root):
    gold = repo_root / "data" / "sample" / "test.pubtator"
    perfect = _run("evaluate", "--gold", str(gold), "--pred", str(gold))
    assert perfect.returncode == 0, perfect.stderr
    scores = json.loads(perfect.stdout)["protocols"]
    assert {name: s["f1"] for name, s in scores.items()} == {
        "ner-mention-strict": 1.0,
        "men-mention": 1.0,
        "men-document": 1.0,
    }
    # Drop every mention of the first document: recall falls by exactly that many mentions.
    blocks = gold.read_text().split("\n\n")
    first = blocks[0].splitlines()
    dropped = sum(1 for line in first[2:] if line.split("\t")[1] != "CID")
    blocks[0] = "\n".join(first[:2] + [line for line in first[2:] if line.split("\t")[1] == "CID"])
    pred = tmp_path / "pred.pubtator"
    pred.write_text("\n\n".join(blocks))
    result = json.loads(_run("evaluate", "--gold", str(gold), "--pred", str(pred)).stdout)["protocols"]
    ner = result["ner-mention-strict"]
    assert ner["fn"] == dropped and ner["fp"] == 0 and ner["precision"] == 1.0


@pytest.mark.parametrize(
    "line, message",
    [
        ("1\t0\tx\tA\tDisease\tD1", "offset"),  # a non-integer offset
        ("1\t0\t999\tA\tDisease\tD1", "outside"),  # an annotation outside its document
        ("1\t0\t1", "columns"),  # a truncated line
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, line, message):
    bad = tmp_path / "bad.pubtator"
    bad.write_text(f"1|t|A title\n1|a|Short.\n{line}\n")
    for args in (["stats", str(bad)], ["evaluate", "--gold", str(bad), "--pred", str(bad)]):
        result = _run(*args)
        assert result.returncode == 2
        assert f"{bad}:3" in result.stderr and message in result.stderr.lower(), result.stderr
        assert "Traceback" not in result.stderr
