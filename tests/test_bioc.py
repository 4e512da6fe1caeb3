"""BioC JSON: what PubTator Central / PMC write is read (title and abstract, annotations moved to the
kit's offsets), what the kit writes reads back to the same documents, and every malformed file is a
DataFormatError naming the file and, where it can, the line."""

import json

import pytest

from mernlib.bioc import format_bioc, parse_bioc, read_bioc, write_bioc
from mernlib.corpus import Document, Mention
from mernlib.errors import DataFormatError
from mernlib.pubtator import read_pubtator

TITLE = "Naloxone reverses the antihypertensive effect of clonidine."
ABSTRACT = "In unanesthetized, spontaneously hypertensive rats clonidine lowered blood pressure."


def collection(*documents):
    return json.dumps(
        {"source": "PubTator", "date": "", "key": "", "infons": {}, "documents": list(documents)}
    )


def annotation(offset, text, kind, identifier):
    return {
        "id": "1",
        "infons": {"type": kind, "identifier": identifier},
        "text": text,
        "locations": [{"offset": offset, "length": len(text)}],
    }


def passage(kind, offset, text, annotations=()):
    return {"offset": offset, "infons": {"type": kind}, "text": text, "annotations": list(annotations)}


def pubtator_central_document():
    a = len(TITLE) + 1
    return {
        "id": "6993",
        "infons": {},
        "passages": [
            passage("title", 0, TITLE, [annotation(0, "Naloxone", "Chemical", "MESH:D009270")]),
            passage(
                "abstract",
                a,
                ABSTRACT,
                [annotation(a + ABSTRACT.index("hypertensive"), "hypertensive", "Disease", "MESH:D006973")],
            ),
        ],
        "relations": [],
    }


def test_reads_a_pubtator_central_document():
    [doc] = parse_bioc(collection(pubtator_central_document()), "pc.json")
    assert (doc.pmid, doc.title, doc.abstract, doc.source) == ("6993", TITLE, ABSTRACT, "pc.json")
    got = [(m.start, m.end, m.text, m.type, m.concept) for m in doc.mentions]
    start = len(TITLE) + 1 + ABSTRACT.index("hypertensive")
    assert got == [
        (0, 8, "Naloxone", "Chemical", "D009270"),
        (start, start + 12, "hypertensive", "Disease", "D006973"),
    ]
    assert parse_bioc(collection(pubtator_central_document()), annotations=False)[0].mentions == []


def test_round_trip_of_the_sample(repo_root, tmp_path):
    gold = read_pubtator(repo_root / "data" / "sample" / "test.pubtator")
    path = write_bioc(gold, tmp_path / "test.json")
    back = read_bioc(path)
    assert [(d.pmid, d.title, d.abstract) for d in back] == [(d.pmid, d.title, d.abstract) for d in gold]

    def key(docs):
        return [[(m.start, m.end, m.text, m.type, m.concept) for m in d.mentions] for d in docs]

    assert key(back) == key(gold)
    assert json.loads(path.read_text())["documents"][0]["passages"][1]["offset"] == len(gold[0].title) + 1


def test_passage_offsets_of_another_layout_are_moved_to_the_kits():
    """A producer that leaves a gap between title and abstract: offsets still land on the same words."""
    gap = len(TITLE) + 10
    clonidine = ABSTRACT.index("clonidine")
    doc = {
        "id": "1",
        "passages": [
            passage("title", 0, TITLE),
            passage(
                "abstract", gap, ABSTRACT, [annotation(gap + clonidine, "clonidine", "Chemical", "D003000")]
            ),
        ],
    }
    [read] = parse_bioc(collection(doc))
    [m] = read.mentions
    assert read.text[m.start : m.end] == "clonidine" and m.start == len(TITLE) + 1 + clonidine


def test_untyped_passages_and_pmc_sections():
    untyped = {
        "id": "2",
        "passages": [{"offset": 0, "text": "A title"}, {"offset": 8, "text": "An abstract."}],
    }
    pmc = {
        "id": "3",
        "passages": [
            {"offset": 0, "infons": {"section_type": "TITLE", "type": "front"}, "text": "PMC title"},
            {"offset": 10, "infons": {"type": "abstract"}, "text": "First part."},
            {"offset": 22, "infons": {"type": "abstract"}, "text": "Second part."},
            {"offset": 35, "infons": {"type": "paragraph"}, "text": "Body text is not read."},
        ],
    }
    a, b = parse_bioc(collection(untyped, pmc))
    assert (a.title, a.abstract) == ("A title", "An abstract.")
    assert (b.title, b.abstract) == ("PMC title", "First part. Second part.")


def test_line_breaks_in_a_passage_become_spaces_one_for_one():
    doc = {"id": "4", "passages": [passage("title", 0, "T"), passage("abstract", 2, "line one\r\nline two")]}
    [read] = parse_bioc(collection(doc))
    assert read.abstract == "line one  line two"


def test_a_mention_across_title_and_abstract_cannot_be_written():
    doc = Document("1", "Title", "abstract", [Mention(3, 9, "le abs", "Disease")])
    with pytest.raises(ValueError, match="spans title and abstract"):
        format_bioc([doc])


@pytest.mark.parametrize(
    "text, line, message",
    [
        ('{"documents": [\n{"id": "1",,}]}', 2, "not JSON"),
        ('{"collection": []}', 1, 'no "documents" list'),
        ("[{}, {}]", 1, "2 BioC collections"),
    ],
)
def test_malformed_collections(text, line, message):
    with pytest.raises(DataFormatError, match=message) as err:
        parse_bioc(text, "bad.json")
    assert err.value.line == line and str(err.value).startswith(f"bad.json:{line}: ")


@pytest.mark.parametrize(
    "document, message",
    [
        ({"passages": []}, 'no "id"'),
        ({"id": "1"}, 'no "passages" list'),
        ({"id": "1", "passages": [{"offset": 0, "infons": {"type": "title"}}]}, 'has no "text"'),
        ({"id": "1", "passages": [passage("paragraph", 0, "x")]}, "no title or abstract passage.*paragraph"),
        ({"id": "1", "passages": [passage("title", -3, "x")]}, "not a non-negative integer"),
        ({"id": "1", "passages": [passage("title", 0, "abc", [annotation(2, "cde", "X", "")])]}, "outside"),
        (
            {
                "id": "1",
                "passages": [
                    passage(
                        "title",
                        0,
                        "abc def",
                        [{"infons": {"type": "X"}, "locations": [{"offset": 0, "length": 1}] * 2}],
                    )
                ],
            },
            "2 locations",
        ),
        (
            {"id": "1", "passages": [passage("title", 0, "abc", [annotation(0, "a", "", "")])]},
            'no infons "type"',
        ),
        ({"id": "a|b", "passages": [passage("title", 0, "abc")]}, "bar"),
    ],
)
def test_malformed_documents_name_the_document(document, message):
    with pytest.raises(DataFormatError, match=message) as err:
        parse_bioc(collection(pubtator_central_document(), document), "bad.json")
    assert "documents[1]" in str(err.value) and str(err.value).startswith("bad.json")


def test_the_line_of_a_bad_document_is_given_when_its_id_is_unique(tmp_path):
    good = pubtator_central_document()
    bad = {"id": "777", "passages": [{"offset": 0}]}
    text = json.dumps({"documents": [good, bad]}, indent=1)
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_bioc(path)
    expected = text.splitlines().index(next(line for line in text.splitlines() if '"777"' in line)) + 1
    assert err.value.line == expected and str(err.value).startswith(
        f"{path}:{expected}: documents[1] (id 777)"
    )
