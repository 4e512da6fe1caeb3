"""PubTator reader and writer: the real files' counts and quirks, and one inline fixture per error."""

import warnings

import pytest

from mernlib.corpus import Relation, corpus_stats
from mernlib.errors import DataFormatError
from mernlib.pubtator import (
    PubTatorWarning,
    format_pubtator,
    parse_pubtator,
    parse_pubtator_with_notes,
    read_predictions,
    read_pubtator,
    read_pubtator_with_notes,
    title_lines,
    write_pubtator,
)

T = "\t"
TITLE = "Ocular and auditory toxicity."
ABSTRACT = "Cisplatin caused it."
# text: "Ocular and auditory toxicity. Cisplatin caused it."  (title 0-29, abstract from 30)
HEAD = f"111|t|{TITLE}\n111|a|{ABSTRACT}\n"


def ann(*cols):
    return T.join(str(c) for c in cols) + "\n"


GOOD = (
    "\n"
    + HEAD
    + ann(
        111,
        0,
        28,
        "Ocular and auditory toxicity",
        "Disease",
        "MESH:D014786|D006311",
        "Ocular toxicity|auditory toxicity",
    )
    + ann(111, 30, 39, "Cisplatin", "Chemical", " D002945 ")
    + ann(111, 11, 19, "auditory", "Disease", "-1")
    + ann(111, "CID", "D002945", "D014786")
    + "\n"
    + "111|t|Second document with the same PMID.\n111|a|Breast cancer.\n"
    + ann(111, 36, 49, "Breast cancer", "SpecificDisease", "D001943+OMIM:114480")
    + ann(111, 36, 42, "Breast", "Modifier", "114480")
    + "\n"
)


def parse(text, **kw):
    return parse_pubtator(text, "mem.txt", **kw)


def test_parse_inline_quirks():
    docs = parse(GOOD)
    assert [(d.pmid, d.index, d.source) for d in docs] == [("111", 0, "mem.txt"), ("111", 1, "mem.txt")]
    first, second = docs
    assert first.text == TITLE + " " + ABSTRACT
    composite, chem, nil = first.mentions
    assert composite.concept == "D014786|D006311"
    assert composite.ids == ("D014786", "D006311")
    assert composite.attrs["parts"] == ("Ocular toxicity", "auditory toxicity")
    assert chem.concept == "D002945" and chem.type == "Chemical" and chem.attrs == {}
    assert nil.concept == "-1" and nil.ids == ()
    assert first.relations == [Relation("CID", "D002945", "D014786")]
    plus, modifier = second.mentions
    assert plus.concept == "D001943+OMIM:114480" and plus.type == "Disease"
    assert plus.attrs == {"ncbi_class": "SpecificDisease"}
    assert modifier.concept == "OMIM:114480" and modifier.attrs["ncbi_class"] == "Modifier"


def test_ncbi_classes_kept_when_not_collapsing():
    docs = parse(GOOD, collapse_ncbi_classes=False)
    assert [m.type for m in docs[1].mentions] == ["SpecificDisease", "Modifier"]
    assert all("ncbi_class" not in m.attrs for m in docs[1].mentions)


def test_text_disagreement_trusts_offsets_and_reports():
    text = HEAD + ann(111, 30, 39, "Cisplatim", "Chemical", "D002945")
    docs, notes = parse_pubtator_with_notes(text, "mem.txt")
    m = docs[0].mentions[0]
    assert m.text == "Cisplatin" and m.attrs["source_text"] == "Cisplatim"
    assert len(notes) == 1 and notes[0].startswith("mem.txt:3: ")
    with pytest.warns(PubTatorWarning, match="mem.txt:3: "):
        parse(text)
    # the writer writes the repaired text: reading it again has nothing to report
    assert parse_pubtator_with_notes(format_pubtator(docs))[1] == []


def test_no_warning_for_clean_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse(GOOD)


def test_round_trip_inline(tmp_path):
    docs = parse(GOOD)
    path = write_pubtator(docs, tmp_path / "out" / "rt.txt")
    again = read_pubtator(path)
    assert_same(docs, again)
    assert format_pubtator(again) == format_pubtator(docs)
    # NCBI classes are written back as the type
    assert "SpecificDisease" in path.read_text()


def test_stand_off_predictions_take_their_text_from_gold(tmp_path):
    """The kit stores predictions without the abstracts (results/ stays small); read against gold they are
    the same documents, and a line that does not fit gold is an error naming the file and line."""
    gold = parse(HEAD + "\n" + "222|t|Empty.\n222|a|No mention here.\n")
    predicted = parse(
        HEAD
        + ann(111, 30, 39, "Cisplatin", "Chemical", "D002945")
        + "\n222|t|Empty.\n222|a|No mention here.\n"
    )
    path = write_pubtator(predicted, tmp_path / "p.pubtator", texts=False)
    assert path.read_text() == ann(111, 30, 39, "Cisplatin", "Chemical", "D002945") + "\n"
    again, notes = read_predictions(path, gold)
    assert_same(predicted, again)
    assert notes == []
    assert [d.text for d in again] == [d.text for d in gold]
    # a full PubTator prediction file is read as it is
    assert_same(predicted, read_predictions(write_pubtator(predicted, tmp_path / "full.txt"), gold)[0])
    # an empty stand-off file: every gold document, none annotated
    (tmp_path / "none.pubtator").write_text("")
    assert [d.mentions for d in read_predictions(tmp_path / "none.pubtator", gold)[0]] == [[], []]
    for line, message in [
        (ann(333, 0, 3, "Ocu", "Disease", "-"), "PMID 333 is not a document of the gold file"),
        (ann(111, 30, 39, "Cisplatim", "Chemical", "D002945"), "differs from the gold text 'Cisplatin'"),
        (ann(111, 30, 99, "Cisplatin", "Chemical", "D002945"), "lies outside document 111"),
        (ann(111, "XYZ", "D002945", "D014786"), "not a relation line"),
    ]:
        (tmp_path / "bad.pubtator").write_text("\n" + line)
        with pytest.raises(DataFormatError, match=f"bad.pubtator:2: .*{message}"):
            read_predictions(tmp_path / "bad.pubtator", gold)
    # a gold file holding a PMID twice (GOOD): a stand-off line could belong to either copy
    with pytest.raises(DataFormatError, match="holds a PMID twice"):
        read_predictions(path, parse(GOOD))


def assert_same(docs, again):
    assert [(d.pmid, d.title, d.abstract, d.index) for d in again] == [
        (d.pmid, d.title, d.abstract, d.index) for d in docs
    ]
    for a, b in zip(docs, again, strict=True):
        assert [(m.key(), m.text, m.attrs) for m in a.mentions] == [
            (m.key(), m.text, m.attrs) for m in b.mentions
        ]
        assert a.relations == b.relations


@pytest.mark.parametrize(
    "text, line, message",
    [
        (HEAD + ann(111, "3a", 9, "x", "Disease", "D1"), 3, "not a non-negative integer"),
        (HEAD + ann(111, -1, 9, "x", "Disease", "D1"), 3, "not a non-negative integer"),
        (HEAD + ann(111, 9, 9, "", "Disease", "D1"), 3, "start 9 >= end 9"),
        (HEAD + ann(111, 12, 9, "x", "Disease", "D1"), 3, "start 12 >= end 9"),
        (HEAD + ann(111, 45, 60, "x", "Disease", "D1"), 3, "outside document 111"),
        (HEAD + ann(111, 0, 6, "Ocular", "Disease"), 3, "truncated annotation line: 5"),
        (HEAD + ann(111, 0, 6), 3, "truncated annotation line: 3"),
        (HEAD + ann(111, 0, 6, "Ocular", "Disease", "D1", "p", "extra"), 3, "8 tab-separated columns"),
        (HEAD + ann(111, 0, 6, "Ocular", "", "D1"), 3, "empty mention type"),
        (HEAD + ann(222, 0, 6, "Ocular", "Disease", "D1"), 3, "PMID 222 inside document 111"),
        (ann(111, 0, 6, "Ocular", "Disease", "D1") + HEAD, 1, "no title line before it"),
        (HEAD + "\n" + ann(111, 0, 6, "Ocular", "Disease", "D1"), 4, "outside any document"),
        (f"111|t|{TITLE}\n" + ann(111, 0, 6, "Ocular", "Disease", "D1"), 2, "before the |a|"),
        (f"111|t|{TITLE}\n\n" + HEAD, 1, "no |a| (abstract) line"),
        (f"111|t|{TITLE}\n222|t|{TITLE}\n222|a|x\n", 1, "no |a| (abstract) line"),
        (f"111|t|{TITLE}", 1, "no |a| (abstract) line"),
        (f"111|a|{ABSTRACT}\n", 1, "before its title line"),
        (f"111|t|{TITLE}\n222|a|{ABSTRACT}\n", 2, "abstract line for PMID 222 inside document 111"),
        (HEAD + f"111|a|{ABSTRACT}\n", 3, "second abstract line"),
        (f"|t|{TITLE}\n", 1, "empty PMID"),
        (HEAD + ann(111, "CID", "D1"), 3, "relation line has 3 tab-separated columns"),
        (HEAD + ann(111, "CID", "D1", "D2", "D3"), 3, "relation line has 5 tab-separated columns"),
        (HEAD + "111\n", 3, "truncated annotation line: 1"),
        (HEAD + ann(111, "abc", 9, "x", "Disease", "D1"), 3, "offset 'abc' is not"),
        (HEAD + ann(111, "\u0663", 9, "x", "Disease", "D1"), 3, "not a non-negative integer"),  # Arabic 3
        (HEAD + ann(111, 0, "9" * 5000, "x", "Disease", "D1"), 3, "lies outside document 111"),
        # a word in the offset column of a 4-column line is a damaged mention, not a relation of type "O"
        (HEAD + ann(111, "O", 0, 6), 3, "column 2 is 'O': not a start offset"),
        (HEAD + ann(111, "Disease", 0, 6), 3, "not a relation type (CID)"),
        (HEAD + ann(111, "CID", "", "D2"), 3, "CID relation line with an empty argument"),
        # a byte-order mark that is not at the start of the file (two files joined) is named, not shown
        (HEAD + "\n\ufeff" + HEAD, 4, "a byte-order mark (U+FEFF, invisible) before the PMID"),
        (HEAD + "\ufeff" + ann(111, 0, 6, "Ocular", "Disease", "D1"), 3, "byte-order mark"),
        (HEAD + "1\x0011\t0\t6\tOcular\tDisease\tD1\n", 3, "holds a control character"),
    ],
)
def test_errors_name_file_and_line(text, line, message):
    with pytest.raises(DataFormatError) as caught:
        parse(text)
    err = caught.value
    assert (err.path, err.line) == ("mem.txt", line)
    assert message in err.message
    assert str(err).startswith(f"mem.txt:{line}: ")


def test_read_error_names_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(HEAD + ann(111, 0, 99, "x", "Disease", "D1"))
    with pytest.raises(DataFormatError) as caught:
        read_pubtator(path)
    assert caught.value.path == str(path) and caught.value.line == 3


def test_read_accepts_a_leading_bom_and_names_other_problems(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.lstrip("\n").encode())
    with_bom = read_pubtator(path)
    assert [d.pmid for d in with_bom] == ["111", "111"]
    assert format_pubtator(with_bom) == format_pubtator(parse(GOOD))
    assert [d.pmid for d in parse("\ufeff" + HEAD)] == ["111"]  # also when parsing text
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(HEAD.encode() + "111\t0\t6\tOcular\tDisease\tD1 caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.txt:3: not UTF-8: byte\(s\) e9 at column 30"):
        read_pubtator(latin)
    with pytest.raises(DataFormatError, match="is a directory"):
        read_pubtator(tmp_path)


def test_title_lines_name_where_each_document_starts():
    assert title_lines(GOOD) == [2, 9]
    assert title_lines("\ufeff" + HEAD) == [1]


def test_writer_refuses_what_the_reader_would_reject():
    for change, message in [
        (lambda d: setattr(d, "pmid", "1|2"), "PMID '1|2'"),
        (lambda d: setattr(d, "pmid", ""), "PMID ''"),
        (lambda d: setattr(d.mentions[0], "end", 999), "does not fit its text"),
        (lambda d: setattr(d.mentions[1], "type", " "), "empty type"),
        (lambda d: setattr(d.relations[0], "type", "O"), "relation type 'O'"),
    ]:
        docs = parse(GOOD)
        change(docs[0])
        with pytest.raises(ValueError, match=message):
            format_pubtator(docs)


def test_write_is_atomic_and_unchanged(tmp_path):
    docs = parse(GOOD)
    path = write_pubtator(docs, tmp_path / "out.txt")
    assert path.read_bytes() == format_pubtator(docs).encode("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left


def test_writer_refuses_fields_that_break_the_format():
    docs = parse(GOOD)
    docs[0].relations[0].arg1 = "D1\tD2"
    with pytest.raises(ValueError, match="tab or line break"):
        format_pubtator(docs)
    docs = parse(GOOD)
    docs[0].title = "two\nlines"
    with pytest.raises(ValueError, match="line break"):
        format_pubtator(docs)


# --- the real files ----------------------------------------------------------------------------

NCBI = {
    "NCBItrainset_corpus.txt": (593, 5145),
    "NCBIdevelopset_corpus.txt": (100, 787),
    "NCBItestset_corpus.txt": (100, 960),
}
BC5CDR = ["CDR_TrainingSet.PubTator.txt", "CDR_DevelopmentSet.PubTator.txt", "CDR_TestSet.PubTator.txt"]


@pytest.mark.real_data
def test_real_ncbi(real_corpora):
    all_docs, all_notes = [], []
    for name, (n_docs, n_mentions) in NCBI.items():
        docs, notes = read_pubtator_with_notes(real_corpora / "ncbi-disease" / name)
        assert (len(docs), sum(len(d.mentions) for d in docs)) == (n_docs, n_mentions), name
        assert all(d.source == str(real_corpora / "ncbi-disease" / name) for d in docs)
        all_docs += docs
        all_notes += notes
    stats = corpus_stats(all_docs)
    assert (stats["documents"], stats["mentions"]) == (793, 6892)
    assert stats["mentions_per_type"] == {"Disease": 6892}
    train = [d for d in all_docs if d.source.endswith("NCBItrainset_corpus.txt")]
    assert [d.index for d in train] == list(range(593))
    assert sum(d.pmid == "8528200" for d in train) == 2
    # exactly one text-column disagreement, and it is reported
    assert len(all_notes) == 1 and "PMID 10923035 711-761" in all_notes[0]
    (bad,) = [m for d in train if d.pmid == "10923035" for m in d.mentions if (m.start, m.end) == (711, 761)]
    assert bad.attrs["source_text"] == "generalized epilepsy and febrile seizures   plus  "
    assert bad.text == '''generalized epilepsy and febrile seizures " plus "'''
    concepts = {m.concept for d in all_docs for m in d.mentions}
    assert not any(c.startswith("MESH:") or c != c.strip() for c in concepts)
    assert any("+" in c for c in concepts) and any("|" in c for c in concepts)


@pytest.mark.real_data
def test_real_ncbi_warns_once(real_corpora):
    with pytest.warns(PubTatorWarning) as record:
        read_pubtator(real_corpora / "ncbi-disease" / "NCBItrainset_corpus.txt")
    assert len(record) == 1 and "10923035" in str(record[0].message)


@pytest.mark.real_data
def test_real_bc5cdr(real_corpora):
    docs, notes = [], []
    for name in BC5CDR:
        d, n = read_pubtator_with_notes(real_corpora / "bc5cdr" / name)
        assert len(d) == 500
        docs += d
        notes += n
    stats = corpus_stats(docs)
    assert (stats["documents"], stats["mentions"]) == (1500, 28785)
    assert stats["mentions_per_type"] == {"Chemical": 15935, "Disease": 12850}
    assert notes == []
    assert sum("parts" in m.attrs for d in docs for m in d.mentions) == 253
    assert sum(len(d.relations) for d in docs) == 3116
    assert all(r.type == "CID" for d in docs for r in d.relations)


@pytest.mark.real_data
@pytest.mark.parametrize("name", [f"ncbi-disease/{n}" for n in NCBI] + [f"bc5cdr/{n}" for n in BC5CDR])
def test_real_round_trip(real_corpora, tmp_path, name):
    docs, _ = read_pubtator_with_notes(real_corpora / name)
    again, notes = read_pubtator_with_notes(write_pubtator(docs, tmp_path / "rt.txt"))
    assert notes == []
    for d in docs:  # the only difference allowed: the repaired text column is no longer reported
        for m in d.mentions:
            m.attrs.pop("source_text", None)
    assert_same(docs, again)
