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
    # --train splits the same recall by whether a training mention has the gold mention's text.
    train = repo_root / "data" / "sample" / "train.pubtator"
    split = json.loads(
        _run("evaluate", "--gold", str(gold), "--pred", str(pred), "--train", str(train)).stdout
    )
    by_text = split["recall_by_training_text"]
    found = sum(round(by_text[s]["ner_recall"] * by_text[s]["mentions"]) for s in ("seen", "unseen"))
    assert by_text["seen"]["mentions"] + by_text["unseen"]["mentions"] == ner["tp"] + ner["fn"]
    assert found == ner["tp"]


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


# --- the error promise, case by case: exit 2, ONE line naming the file (and line), no traceback -------

SAMPLE_TEST = "data/sample/test.pubtator"


def _error_line(capsys, argv) -> str:
    """Run ``main(argv)`` in-process; it must exit 2 with exactly one line on stderr and nothing on stdout."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured
    return captured.err


@pytest.fixture
def gold(repo_root):
    return repo_root / SAMPLE_TEST


def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path, capsys, gold):
    latin = tmp_path / "latin1.pubtator"
    latin.write_bytes(gold.read_bytes().replace(b"Renal damage", "R\u00e9nal damage".encode("latin-1")))
    line = 1 + gold.read_text().split("Renal damage")[0].count("\n")
    for argv in (
        ["stats", str(latin)],
        ["evaluate", "--gold", str(gold), "--pred", str(latin)],
        ["evaluate", "--gold", str(latin), "--pred", str(gold)],  # gold and pred are told apart by name
    ):
        err = _error_line(capsys, argv)
        assert f"{latin}:{line}: not UTF-8: byte(s) e9" in err


def test_a_directory_or_a_missing_file(tmp_path, capsys, gold):
    for argv in (
        ["evaluate", "--gold", str(tmp_path), "--pred", str(gold)],
        ["evaluate", "--gold", str(gold), "--pred", str(tmp_path)],
    ):
        assert f"{tmp_path}: is a directory" in _error_line(capsys, argv)
    assert f"{tmp_path / 'no.txt'}: No such file" in _error_line(
        capsys, ["evaluate", "--gold", str(gold), "--pred", str(tmp_path / "no.txt")]
    )
    # stats PATH: not "unknown corpus" for a path that exists, or for one that does not
    assert f"{tmp_path}: is a directory; give a PubTator file or one of sample" in _error_line(
        capsys, ["stats", str(tmp_path)]
    )
    assert f"{tmp_path / 'no.txt'}: no such file, and not a corpus name" in _error_line(
        capsys, ["stats", str(tmp_path / "no.txt")]
    )
    assert "--split test applies to a corpus name" in _error_line(
        capsys, ["stats", str(gold), "--split", "test"]
    )
    process = _run("evaluate", "--gold", str(tmp_path), "--pred", str(gold))  # the real process, too
    assert process.returncode == 2 and "Traceback" not in process.stderr and process.stderr.count("\n") == 1


def test_a_leading_bom_is_accepted(tmp_path, capsys, gold):
    bom = tmp_path / "bom.pubtator"
    bom.write_bytes(b"\xef\xbb\xbf" + gold.read_bytes())
    assert main(["stats", str(bom)]) == 0
    with_bom = json.loads(capsys.readouterr().out)
    assert main(["stats", str(gold)]) == 0
    assert {k: v for k, v in with_bom.items() if k != "files"} == {
        k: v for k, v in json.loads(capsys.readouterr().out).items() if k != "files"
    }
    assert main(["evaluate", "--gold", str(gold), "--pred", str(bom)]) == 0
    assert json.loads(capsys.readouterr().out)["protocols"]["ner-mention-strict"]["f1"] == 1.0
    joined = tmp_path / "joined.pubtator"  # a second file with a BOM appended with cat: named, not shown
    joined.write_bytes(gold.read_bytes() + b"\n\xef\xbb\xbf" + gold.read_bytes())
    line = gold.read_text().count("\n") + 2
    err = _error_line(capsys, ["stats", str(joined)])
    assert f"{joined}:{line}: a byte-order mark (U+FEFF, invisible)" in err and "\ufeff" not in err


def test_unknown_types_are_refused_with_the_types_present(tmp_path, capsys, gold):
    err = _error_line(capsys, ["evaluate", "--gold", str(gold), "--pred", str(gold), "--types", "Disese"])
    assert "--types Disese: not a mention type" in err and "they hold: Chemical, Disease" in err
    ncbi = tmp_path / "ncbi.txt"
    ncbi.write_text("1|t|Breast cancer.\n1|a|Rare.\n1\t0\t13\tBreast cancer\tSpecificDisease\tD001943\n\n")
    err = _error_line(
        capsys, ["evaluate", "--gold", str(ncbi), "--pred", str(ncbi), "--types", "SpecificDisease"]
    )
    assert "they hold: Disease (NCBI-disease's classes are all read as Disease)" in err
    assert main(["evaluate", "--gold", str(gold), "--pred", str(gold), "--types", "Disease"]) == 0
    assert json.loads(capsys.readouterr().out)["types"] == ["Disease"]


def test_a_word_in_the_offset_column_is_not_a_relation(tmp_path, capsys):
    bad = tmp_path / "bad.pubtator"
    bad.write_text("1|t|A title\n1|a|Short.\n1\tO\t0\t5\n")
    assert f"{bad}:3: column 2 is 'O': not a start offset" in _error_line(capsys, ["stats", str(bad)])


def test_predictions_on_other_text_name_the_pmid_and_line(tmp_path, capsys, gold):
    blocks = gold.read_text().split("\n\n")
    blocks[1] = blocks[1].replace("|a|", "|a|Edited. ", 1)
    pred = tmp_path / "pred.pubtator"
    pred.write_text("\n\n".join(blocks))
    line = 1 + "\n\n".join(blocks[:1]).count("\n") + 2  # the title line of the second document
    pmid = blocks[1].split("|", 1)[0]
    err = _error_line(capsys, ["evaluate", "--gold", str(gold), "--pred", str(pred)])
    assert f"{pred}:{line}: predicted document 2 of the file: PMID {pmid}: the text differs" in err
    other = tmp_path / "other.pubtator"
    other.write_text(blocks[0].replace(blocks[0].split("|", 1)[0], "12345") + "\n")
    err = _error_line(capsys, ["evaluate", "--gold", str(gold), "--pred", str(other)])
    assert f"{other}:1: predicted document 1 of the file: PMID 12345 is not in the gold standard" in err


def test_repairs_are_reported_in_the_json_not_on_stderr(tmp_path, capsys, gold):
    text = gold.read_text()
    first_mention = next(line for line in text.splitlines() if line.count("\t") >= 5)
    cols = first_mention.split("\t")
    pred = tmp_path / "pred.pubtator"
    pred.write_text(text.replace(first_mention, "\t".join(cols[:3] + ["typo"] + cols[4:]), 1))
    assert main(["evaluate", "--gold", str(gold), "--pred", str(pred)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    (note,) = json.loads(captured.out)["notes"]
    assert note.startswith(f"{pred}:") and "'typo'" in note


@pytest.mark.real_data
def test_the_documents_of_pmid_8528200_are_checked_by_their_text(real_corpora, tmp_path, capsys):
    """NCBI's training file holds PMID 8528200 twice (in this copy both hold the same text and mentions)."""
    from mernlib.pubtator import read_pubtator, write_pubtator

    train = real_corpora / "ncbi-disease" / "NCBItrainset_corpus.txt"
    with pytest.warns(UserWarning):
        docs = read_pubtator(train)
    first, second = (k for k, d in enumerate(docs) if d.pmid == "8528200")
    assert main(["evaluate", "--gold", str(train), "--pred", str(train)]) == 0
    assert json.loads(capsys.readouterr().out)["protocols"]["ner-mention-strict"]["f1"] == 1.0
    # a prediction for the second copy made on another abstract is refused, not scored against the first
    docs[second].abstract = docs[second + 1].abstract
    docs[second].mentions = []
    edited = write_pubtator(docs, tmp_path / "edited.txt")
    titles = [n for n, text in enumerate(edited.read_text().split("\n"), 1) if text.startswith("8528200|t|")]
    line = titles[1]  # the second copy's title line
    err = _error_line(capsys, ["evaluate", "--gold", str(train), "--pred", str(edited)])
    assert (
        f"{edited}:{line}: predicted document {second + 1} of the file: PMID 8528200: the text differs" in err
    )
    # one copy alone, from a file of its own: neither the uid nor the text says which gold copy it is
    alone = write_pubtator([docs[first]], tmp_path / "alone.txt")
    err = _error_line(capsys, ["evaluate", "--gold", str(train), "--pred", str(alone)])
    assert f"{alone}:1: predicted document 1 of the file: PMID 8528200 is ambiguous" in err


@pytest.mark.real_data
def test_offline_stats_of_one_split_needs_only_that_file(real_corpora, tmp_path, capsys, monkeypatch):
    root = tmp_path / "data"
    (root / "ncbi-disease").mkdir(parents=True)
    (root / "ncbi-disease" / "NCBItestset_corpus.txt").symlink_to(
        real_corpora / "ncbi-disease" / "NCBItestset_corpus.txt"
    )
    monkeypatch.setenv("MERNLIB_OFFLINE", "1")
    monkeypatch.setenv("MERNLIB_CACHE", str(tmp_path / "cache"))
    assert main(["stats", "ncbi-disease", "--split", "test", "--data-dir", str(root)]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 100
    assert main(["stats", "ncbi-disease", "--split", "dev", "--data-dir", str(root)]) == 2
    assert "NCBIdevelopset_corpus.txt (devel) was not found" in capsys.readouterr().err
