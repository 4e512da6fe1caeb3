"""`python -m mernlib annotate` (and `train pipeline`): PubTator, BioC JSON and plain text in, PubTator or
BioC JSON out, the output re-scored against gold with `evaluate`; several worker processes keep the order;
an abstract longer than the encoder's window is annotated whole; bad input exits 2 with one line
`path:line: message`, never a traceback.

The quick pipeline comes from tests/test_pipeline.py (trained once per session)."""

import json
import subprocess
import sys

import pytest
from test_pipeline import quick_model

import mernlib as ml
from mernlib.annotate import (
    annotate_documents,
    chunks,
    detect_format,
    parse_plain_text,
    read_documents,
    text_document,
)
from mernlib.bioc import format_bioc, read_bioc
from mernlib.cli import main
from mernlib.errors import DataFormatError
from mernlib.pubtator import format_pubtator, parse_pubtator_texts, read_pubtator


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return quick_model(tmp_path_factory)[1]


@pytest.fixture(scope="module")
def gold(repo_root):
    return repo_root / "data" / "sample" / "test.pubtator"


def spans(documents):
    return [[(m.start, m.end, m.text, m.type, m.concept) for m in d.mentions] for d in documents]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "mernlib", *map(str, args)], capture_output=True, text=True)


def test_annotate_then_evaluate_against_gold(model, gold, tmp_path):
    out = tmp_path / "pred.pubtator"
    run = _cli("annotate", "--model", model, "--input", gold, "--output", out, "--no-progress")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("annotated 20 documents (pubtator)") and run.stderr == ""
    scored = _cli("evaluate", "--gold", gold, "--pred", out)
    assert scored.returncode == 0, scored.stderr  # same text: evaluate's text check passes
    result = json.loads(scored.stdout)
    card = json.loads((model / "card.json").read_text())
    for protocol, entry in card["scores"]["test"]["protocols"].items():
        assert result["protocols"][protocol]["f1"] == entry["f1"], protocol
    concepts = [m.concept for d in read_pubtator(out) for m in d.mentions]
    assert sum(bool(c) for c in concepts) > 0.9 * len(concepts)  # IDs written (TF-IDF may find none)
    assert any("|" in c for c in concepts)  # composite mentions keep all their IDs


def test_annotate_with_gold_writes_the_scores_beside_the_output(model, gold, tmp_path):
    out = tmp_path / "annotate" / "sample" / "quick.pubtator"
    out.parent.mkdir(parents=True)
    args = ["annotate", "--model", str(model), "--input", str(gold), "--output", str(out), "--no-progress"]
    assert main([*args, "--gold", str(gold)]) == 0
    stored = json.loads(out.with_name("quick.pubtator.scores.json").read_text())
    card = json.loads((model / "card.json").read_text())
    # the text alone went in; what came out scores as the card says the model does on test
    assert stored["scores"] == stored["card_test_scores"] and set(stored["scores"]) >= {"men-document"}
    assert stored["model"] == card["name"] and stored["model_card_commit"] == card["provenance"]["git_commit"]
    assert stored["provenance"]["command"] and stored["provenance"]["seed"] == card["seed"]
    assert stored["annotation"]["documents"] == 20
    assert main([*args, "--gold", str(gold), "--format", "bioc"]) == 2  # scores a PubTator output only
    assert main([*args, "--chunk-size", "0"]) == 2  # a chunk holds at least one document


def test_bioc_and_plain_text_give_the_same_annotations(model, gold, tmp_path):
    documents = read_pubtator(gold)
    assert main(["annotate", "--model", str(model), "--input", str(gold), "--output", str(tmp_path / "a.pubtator"),
                 "--no-progress"]) == 0  # fmt: skip
    expected = spans(read_pubtator(tmp_path / "a.pubtator"))

    (tmp_path / "in.json").write_text(format_bioc(documents))  # gold annotations in the input: ignored
    args = ["--model", str(model), "--input", str(tmp_path / "in.json"), "--no-progress"]
    assert main(["annotate", *args, "--output", str(tmp_path / "b.json"), "--format", "bioc"]) == 0
    bioc = read_bioc(tmp_path / "b.json")
    assert [d.text for d in bioc] == [d.text for d in documents] and spans(bioc) == expected

    (tmp_path / "in.txt").write_text("\n\n".join(f"{d.title}\n{d.abstract}" for d in documents) + "\n")
    args = ["--model", str(model), "--input", str(tmp_path / "in.txt"), "--no-progress"]
    assert main(["annotate", *args, "--output", str(tmp_path / "c.pubtator")]) == 0
    text = read_pubtator(tmp_path / "c.pubtator")
    assert [d.pmid for d in text] == [str(k) for k in range(1, 21)]
    assert [d.text for d in text] == [d.text for d in documents] and spans(text) == expected


def test_workers_keep_the_order(model, gold):
    documents = read_pubtator(gold)
    one = annotate_documents(model, documents, chunk_size=3, progress=False)
    two = annotate_documents(model, documents, workers=2, chunk_size=3, progress=False)
    assert [d.pmid for d in two] == [d.pmid for d in documents]
    assert format_pubtator(two) == format_pubtator(one)
    assert [len(c) for c in chunks(documents, 6)] == [6, 6, 6, 2]
    with pytest.raises(ValueError, match="chunk size must be at least 1"):
        annotate_documents(model, documents, chunk_size=0, progress=False)


def test_an_abstract_longer_than_the_encoders_window(model):
    from mernlib.tokenize import tokenize_document

    pipeline = ml.pipeline.load_model(model)
    clause = (
        "vincristine is widely used in the treatment of type II diabetes, but renal damage was seen, and "
    )
    doc = text_document(
        "Renal damage after treatment with vincristine.\n" + "In rats " + clause * 40 + "so on."
    )
    sentences = tokenize_document(doc)
    assert len(sentences) == 2  # the title, and the abstract as one long sentence
    pieces = len(pipeline.tagger.encoder.aligner.encode([[t.text for t in sentences[1].tokens]])[0].piece_ids)
    window = pipeline.tagger.encoder.aligner.max_length
    assert pieces > 10 * window  # far past the encoder's limit (and its position embeddings)
    [annotated] = pipeline.annotate([doc])
    found = [m for m in annotated.mentions if m.start > len(doc.title)]
    assert all(doc.text[m.start : m.end] == m.text for m in found)
    late = [m for m in found if m.start > 0.9 * len(doc.text)]  # inside the last windows
    assert {m.text for m in late} & {"vincristine", "renal damage", "type II diabetes"}


def test_the_train_command(tmp_path):
    args = ["train", "pipeline", "--scale", "quick", "--epochs", "1", "--no-progress"]
    assert main([*args, "--model-dir", str(tmp_path / "m"), "--results-dir", str(tmp_path / "r")]) == 0
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert json.loads((tmp_path / "r" / "models" / "pipeline-sample-quick-e1.json").read_text()) == card
    assert card["tagger"]["epochs"] == 1 and card["scale"] == "quick"


# -- reading the input ----------------------------------------------------------------------------------


def test_detect_format():
    assert detect_format("\ufeff 123|t|Title\n123|a|Abstract\n") == "pubtator"
    assert detect_format('\n  {"documents": []}') == "bioc"
    assert detect_format("[{}]") == "bioc"
    assert detect_format('<?xml version="1.0"?><collection/>') == "bioc-xml"
    assert detect_format("Aspirin and headache\nA study | of t|hings.") == "text"


def test_plain_text_blocks():
    documents = parse_plain_text(
        "\ufeffFirst title\n  first abstract,\nline two \n\n\n \nSecond title only\n", "x"
    )
    assert [(d.pmid, d.title, d.abstract, d.index) for d in documents] == [
        ("1", "First title", "first abstract, line two", 0),
        ("2", "Second title only", "", 1),
    ]


def test_pubtator_annotation_lines_are_passed_over():
    text = "1|t|Title\n1|a|Abstract\n1\tx\ty\tdamaged line\n1\tCID\ta\n\n2|t|T2\n2|a|A2\n"
    documents = parse_pubtator_texts(text, "f")
    assert [(d.pmid, d.text, d.mentions) for d in documents] == [
        ("1", "Title Abstract", []),
        ("2", "T2 A2", []),
    ]
    with pytest.raises(DataFormatError, match="annotation line for PMID '2' inside document 1") as err:
        parse_pubtator_texts("1|t|T\n1|a|A\n2\t0\t1\tT\tX\t-1\n", "f")
    assert err.value.line == 3


@pytest.mark.parametrize(
    "name, content, line, message",
    [
        ("abstract-first.pubtator", "1|a|Abstract first\n", 1, "abstract line for PMID 1 before its title"),
        ("no-abstract.pubtator", "1|t|T\n1|a|A\n\n2|t|T2\n\n", 4, "has a title line but no |a|"),
        ("broken.json", '{"documents": [\n  {"id": "1",, }]}', 2, "not JSON"),
        ("no-text.json", '{"documents": [{"id": "9", "passages": [{}]}]}', 1, 'no "text"'),
        ("collection.xml", '<?xml version="1.0"?>\n<collection/>', 1, "BioC XML is not read"),
        ("latin1.txt", b"Title\nna\xefve abstract\n", 2, "not UTF-8"),
        ("empty.txt", "\n \n", None, "holds no document"),
    ],
)
def test_bad_input_exits_2_with_one_line(model, tmp_path, capsys, name, content, line, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code = main(["annotate", "--model", str(model), "--input", str(path), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    where = f"{path}:{line}" if line is not None else f"{path}"
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"mernlib annotate: {where}: "), err
    assert message in err and not (tmp_path / "o").exists()
    with pytest.raises(DataFormatError):
        read_documents(path)


def test_bad_model_or_paths_exit_2(model, gold, tmp_path, capsys):
    cases = [
        (["--model", str(model / "tagger"), "--input", str(gold)], f"{model / 'tagger'}: a saved hst model"),
        (["--model", str(tmp_path / "none"), "--input", str(gold)], f"{tmp_path / 'none'}: no such model"),
        (
            ["--model", str(model), "--input", str(tmp_path / "absent.txt")],
            f"{tmp_path / 'absent.txt'}: No such file",
        ),
        (["--model", str(model), "--input", str(tmp_path)], f"{tmp_path}: is a directory"),
        (["--model", str(model), "--input", str(gold), "--workers", "0"], "--workers must be at least 1"),
    ]
    for args, expected in cases:
        assert main(["annotate", *args, "--output", str(tmp_path / "o")]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"mernlib annotate: {expected}"), err


def test_no_traceback_from_the_command_line(model, tmp_path):
    path = tmp_path / "bad.pubtator"
    path.write_text("1|t|Title\n1|a|Abstract\n\n1|a|again\n")
    run = _cli("annotate", "--model", model, "--input", path, "--output", tmp_path / "o")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == f"mernlib annotate: {path}:4: abstract line for PMID 1 before its title line\n"
