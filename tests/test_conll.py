"""IOB TSV reading and writing (crichton-2017-ner and the kit's prediction files)."""

import warnings
from pathlib import Path

import pytest

from mernlib import registry
from mernlib.conll import (
    IOBWarning,
    TaggedSentence,
    check_tag,
    format_iob,
    iob_stats,
    read_iob,
    write_iob,
)
from mernlib.errors import DataFormatError
from mernlib.tags import tags_to_spans

FIXTURES = Path(__file__).parent / "fixtures" / "conll"


def test_read_small():
    sentences = read_iob(FIXTURES / "small.tsv")
    assert [s.tokens for s in sentences] == [
        ["Examplol", "reverses", "hypertension", "."],
        ["Example", "cancer", "risk"],
    ]
    assert sentences[1].tags == ["B-Disease", "I-Disease", "O"]
    assert [s.line for s in sentences] == [1, 6]
    assert sentences[0].source == str(FIXTURES / "small.tsv") and sentences[1].location.endswith(
        "small.tsv:6"
    )
    assert all(s.document is None and s.predicted is None for s in sentences)
    assert iob_stats(sentences) == {
        "sentences": 2,
        "tokens": 7,
        "documents": None,
        "mentions": 2,
        "mentions_per_type": {"Disease": 2},
    }


def test_docstart_lines_are_document_boundaries(tmp_path):
    path = FIXTURES / "docstart.tsv"
    sentences = read_iob(path)
    assert [s.document for s in sentences] == [0, 0, 1]
    assert [s.line for s in sentences] == [3, 6, 11]
    assert iob_stats(sentences)["documents"] == 2
    assert format_iob(sentences) == path.read_text()


def test_prediction_file_round_trip(tmp_path):
    sentences = read_iob(FIXTURES / "predicted.tsv")
    assert sentences[0].predicted == ["B-Disease", "O"]
    out = write_iob(sentences, tmp_path / "again.tsv")
    assert out.read_text() == (FIXTURES / "predicted.tsv").read_text()


def test_write_with_predictions(tmp_path):
    gold = read_iob(FIXTURES / "small.tsv")
    predicted = [["O", "O", "B-Disease", "O"], ["B-Disease", "O", "O"]]
    path = write_iob(gold, tmp_path / "runs" / "pred.tsv", predicted=predicted)
    lines = path.read_text().split("\n")
    assert (
        lines[0] == "Examplol\tO\tO"
        and lines[5] == "Example\tB-Disease\tB-Disease"
        and lines[6] == "cancer\tI-Disease\tO"
    )
    again = read_iob(path)
    assert [s.predicted for s in again] == predicted and [s.tags for s in again] == [s.tags for s in gold]
    with pytest.raises(ValueError, match="1 predicted tag sequences for 2 sentences"):
        write_iob(gold, tmp_path / "x.tsv", predicted=predicted[:1])
    with pytest.raises(ValueError, match="3 tokens but 2 predicted tags"):
        write_iob(gold, tmp_path / "x.tsv", predicted=[predicted[0], ["O", "O"]])
    with pytest.raises(ValueError, match="holds a tab"):
        format_iob([TaggedSentence(["a\tb"], ["O"])])


def test_untyped_and_iobes_tags(tmp_path):
    path = tmp_path / "bare.tsv"
    path.write_text("a\tB\nb\tI\nc\tO\n\n")
    assert read_iob(path)[0].tags == ["B", "I", "O"]
    iobes = tmp_path / "iobes.tsv"
    iobes.write_text("a\tS-Gene\nb\tB-Gene\nc\tE-Gene\n")  # no final blank line: still one sentence
    with pytest.raises(DataFormatError, match=r"iobes\.tsv:1: unknown tag 'S-Gene'"):
        read_iob(iobes)
    assert read_iob(iobes, scheme="iobes")[0].tags == ["S-Gene", "B-Gene", "E-Gene"]
    assert iob_stats(read_iob(iobes, scheme="iobes"))["mentions"] == 2
    assert check_tag("O") is None and check_tag("B-x") is None and "empty type" in check_tag("I-")


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("a\tO\nb O\n", 2, "no tab"),
        ("a\tO\n\nb\tX-Disease\n", 3, "unknown tag 'X-Disease'"),
        ("a\tB-\n", 1, "empty type"),
        ("a\tb-Disease\n", 1, "unknown tag"),
        ("a\tO\nb\tO\tO\n", 2, "3 columns where the file's first token line has 2"),
        ("a\tO\tO\tO\n", 1, "4 columns"),
        ("\tO\n", 1, "empty token"),
        ("a\tO\n-DOCSTART-\tO\n", 2, "-DOCSTART- inside a sentence"),
        ("-DOCSTART-\tO\na\tO\n", 2, "must be followed by a blank line"),
    ],
)
def test_errors_name_path_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_iob(path)
    assert (err.value.path, err.value.line) == (str(path), line)
    assert message in str(err.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"a\tO\n\xff\tO\n")
    with pytest.raises(DataFormatError, match=r"bad\.tsv:2: not UTF-8"):
        read_iob(path)


def test_a_leading_bom_is_accepted_and_a_directory_named(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "small.tsv").read_bytes())
    assert [(s.tokens, s.tags, s.line) for s in read_iob(path)] == [
        (s.tokens, s.tags, s.line) for s in read_iob(FIXTURES / "small.tsv")
    ]
    with pytest.raises(DataFormatError, match="is a directory"):
        read_iob(tmp_path)


@pytest.mark.parametrize(
    "text, tags, lines",
    [
        ("a\tO\nb\tI-Disease\nc\tI-Disease\n\n", ["O", "B-Disease", "I-Disease"], [2]),  # I-X after O
        ("a\tB-Chemical\nb\tI-Disease\n\n", ["B-Chemical", "B-Disease"], [2]),  # I-X after B-Y
        ("x\tO\n\na\tI-Disease\n\n", ["B-Disease"], [3]),  # first of its sentence
    ],
)
def test_i_tag_starting_a_mention_is_repaired_with_a_warning(tmp_path, text, tags, lines):
    """conlleval's rule everywhere: the reader writes B-, iob_stats counts what the decoder finds."""
    path = tmp_path / "loose.tsv"
    path.write_text(text)
    with pytest.warns(IOBWarning) as record:
        sentences = read_iob(path)
    assert len(record) == 1
    message = str(record[0].message)
    assert all(f"{path}:{line}: I-" in message for line in lines)
    assert sentences[-1].tags == tags
    decoded = sum(len(tags_to_spans(s.tags)) for s in sentences)
    assert iob_stats(sentences)["mentions"] == decoded == tags.count("B-Disease") + tags.count("B-Chemical")
    # counting in memory, on tags nobody repaired, agrees with the decoder too
    raw = [TaggedSentence(["a", "b"], ["O", "I-Disease"]), TaggedSentence(["a", "b"], ["B-X", "I-Y"])]
    assert iob_stats(raw)["mentions"] == 3 and iob_stats(raw)["mentions_per_type"] == {
        "Disease": 1,
        "X": 1,
        "Y": 1,
    }


def test_predicted_tags_are_kept_as_the_model_wrote_them(tmp_path):
    path = tmp_path / "pred.tsv"
    path.write_text("a\tB-Disease\tO\nb\tI-Disease\tI-Disease\n\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gold is IOB2: nothing to repair, nothing to say
        (sentence,) = read_iob(path)
    assert sentence.predicted == ["O", "I-Disease"]  # strict scoring must still see the model's I-


def test_prediction_file_with_documents_reads_back(tmp_path):
    """Found by tests/test_properties.py: the -DOCSTART- line had 2 columns in a 3-column file."""
    sentences = read_iob(FIXTURES / "docstart.tsv")
    path = write_iob(sentences, tmp_path / "pred.tsv", predicted=[s.tags for s in sentences])
    assert path.read_text().startswith("-DOCSTART-\tO\tO\n\n")
    again = read_iob(path)
    assert [(s.document, s.predicted) for s in again] == [(s.document, s.tags) for s in sentences]


def test_write_is_atomic(tmp_path):
    sentences = read_iob(FIXTURES / "small.tsv")
    path = write_iob(sentences, tmp_path / "out.tsv")
    assert path.read_text() == (FIXTURES / "small.tsv").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


def test_unknown_scheme():
    with pytest.raises(ValueError, match="scheme"):
        read_iob(FIXTURES / "small.tsv", scheme="bilou")


# ---- the real files: (sentences, tokens, mentions) per split, checked on the collection ---------------

REAL_COUNTS = {
    "BC2GM": {"train": (12574, 355405, 15197), "devel": (2519, 71042, 3061), "test": (5038, 143465, 6325)},
    "BC5CDR-chem": {
        "train": (4560, 118170, 5203),
        "devel": (4581, 117453, 5347),
        "test": (4797, 124750, 5385),
    },
    "BC5CDR-disease": {
        "train": (4560, 118170, 4182),
        "devel": (4581, 117453, 4246),
        "test": (4797, 124750, 4424),
    },
    "BioNLP09": {"train": (7462, 227742, 9296), "devel": (1448, 44185, 2078), "test": (2446, 74624, 3589)},
    "BioNLP11EPI": {
        "train": (5698, 161576, 7586),
        "devel": (1955, 54760, 2495),
        "test": (4122, 116105, 5730),
    },
    "BioNLP11ID-chem": {"train": (2496, 81856, 594), "devel": (721, 22917, 131), "test": (1961, 61643, 248)},
    "BioNLP11ID-ggp": {
        "train": (2496, 81856, 3198),
        "devel": (721, 22917, 1056),
        "test": (1961, 61643, 2301),
    },
    "BioNLP11ID-species": {
        "train": (2496, 81856, 1873),
        "devel": (721, 22917, 385),
        "test": (1961, 61643, 1213),
    },
    "BioNLP13CG-chem": {
        "train": (3033, 83467, 1097),
        "devel": (1003, 27599, 446),
        "test": (1906, 52771, 727),
    },
    "BioNLP13CG-ggp": {
        "train": (3033, 83467, 4028),
        "devel": (1003, 27599, 1360),
        "test": (1906, 52771, 2520),
    },
    "BioNLP13CG-species": {
        "train": (3033, 83467, 901),
        "devel": (1003, 27599, 296),
        "test": (1906, 52771, 518),
    },
    "BioNLP13GE": {"train": (2449, 75068, 3566), "devel": (2737, 81071, 4132), "test": (3391, 104643, 4359)},
    "BioNLP13PC-chem": {"train": (2499, 69244, 1178), "devel": (857, 23646, 451), "test": (1695, 46196, 858)},
    "BioNLP13PC-ggp": {
        "train": (2499, 69244, 5468),
        "devel": (857, 23646, 1836),
        "test": (1695, 46196, 3587),
    },
    "CRAFT-chem": {
        "train": (10875, 278226, 3377),
        "devel": (3730, 100166, 1044),
        "test": (7425, 196904, 2381),
    },
    "CRAFT-ggp": {
        "train": (10875, 278226, 8531),
        "devel": (3730, 100166, 2301),
        "test": (7425, 196904, 5282),
    },
    "CRAFT-species": {
        "train": (10875, 278226, 3361),
        "devel": (3730, 100166, 1548),
        "test": (7425, 196904, 2485),
    },
    "Ex-PTM": {"train": (1377, 39888, 1787), "devel": (437, 12664, 603), "test": (1839, 53020, 2308)},
    "JNLPBA": {"devel": (1739, 47461, 4551), "test": (3856, 101039, 8662)},
    "NCBI-disease": {"train": (5424, 135701, 5134), "devel": (923, 23969, 787), "test": (940, 24497, 960)},
    "linnaeus": {"train": (11935, 280960, 2119), "devel": (4078, 93815, 711), "test": (7142, 164653, 1433)},
}


def test_real_counts_cover_the_registry():
    present = {
        name: sorted(s for s, spec in d.files.items() if spec.sha256)
        for name, d in registry.DATASETS.items()
        if d.task == "iob" and d.available
    }
    assert present == {name: sorted(splits) for name, splits in REAL_COUNTS.items()}


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_real_files(real_corpora, name):
    dataset = registry.DATASETS[name]
    for split, (n_sent, n_tok, n_ment) in REAL_COUNTS[name].items():
        path = real_corpora / dataset.folder / dataset.files[split].path
        sentences = read_iob(path)
        stats = iob_stats(sentences)
        assert (stats["sentences"], stats["tokens"], stats["mentions"]) == (n_sent, n_tok, n_ment), split
        assert set(stats["mentions_per_type"]) == set(dataset.entity_types)
        assert format_iob(sentences) == path.read_text(encoding="utf-8")  # byte-for-byte round trip
        if name == "JNLPBA":
            assert stats["documents"] == {"devel": 200, "test": 404}[split]
        else:
            assert stats["documents"] is None
