"""Tag schemes: encoding, conlleval-style decoding, and the corpus -> tags -> mentions round trip."""

import warnings

import pytest

from mernlib.corpus import Document, Mention
from mernlib.pubtator import parse_pubtator, read_pubtator_with_notes
from mernlib.tags import (
    concept_tags,
    decode_mentions,
    ner_tags,
    overlapping_mentions,
    repair_tags,
    sentence_mentions,
    spans_to_mentions,
    spans_to_tags,
    tags_to_spans,
)
from mernlib.tokenize import tokenize_document, tokenize_text

SPANS = [(0, 1, "Chemical"), (2, 5, "Disease"), (5, 7, "Disease")]


def test_spans_to_tags_bio_and_iobes():
    assert spans_to_tags(8, SPANS, "BIO") == [
        "B-Chemical",
        "O",
        "B-Disease",
        "I-Disease",
        "I-Disease",
        "B-Disease",
        "I-Disease",
        "O",
    ]
    assert spans_to_tags(8, SPANS, "IOBES") == [
        "S-Chemical",
        "O",
        "B-Disease",
        "I-Disease",
        "E-Disease",
        "B-Disease",
        "E-Disease",
        "O",
    ]
    for scheme in ("BIO", "IOBES"):
        assert tags_to_spans(spans_to_tags(8, SPANS, scheme), scheme) == SPANS


def test_spans_to_tags_rejects_bad_spans():
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags(5, [(0, 3, "A"), (2, 4, "B")])
    with pytest.raises(ValueError, match="does not fit"):
        spans_to_tags(3, [(2, 4, "A")])
    with pytest.raises(ValueError, match="does not fit"):
        spans_to_tags(3, [(2, 2, "A")])
    with pytest.raises(ValueError, match="unknown tag scheme"):
        spans_to_tags(3, [], "BILOU")


@pytest.mark.parametrize(
    "tags, scheme, spans",
    [
        (["O", "I-X", "I-X"], "BIO", [(1, 3, "X")]),  # I- without B- starts an entity
        (["B-X", "I-Y", "O"], "BIO", [(0, 1, "X"), (1, 2, "Y")]),  # label change closes and reopens
        (["B-X", "B-X"], "BIO", [(0, 1, "X"), (1, 2, "X")]),
        (["I-X"], "BIO", [(0, 1, "X")]),
        (["B-X", "I-X"], "IOBES", [(0, 2, "X")]),  # missing E-: closed at the end
        (["B-X", "O", "E-X"], "IOBES", [(0, 1, "X"), (2, 3, "X")]),  # lone E- is an entity of its own
        (["S-X", "I-X", "E-X"], "IOBES", [(0, 1, "X"), (1, 3, "X")]),
        (["B-X", "E-Y"], "IOBES", [(0, 1, "X"), (1, 2, "Y")]),
        (["B--1", "I--1"], "BIO", [(0, 2, "-1")]),  # the NIL concept as a label
        ([], "BIO", []),
    ],
)
def test_ill_formed_sequences_follow_conlleval(tags, scheme, spans):
    assert tags_to_spans(tags, scheme) == spans
    # repair_tags writes conlleval's reading out; the default decoder finds the same mentions after it
    repaired, _ = repair_tags(tags, scheme)
    assert tags_to_spans(repaired, scheme) == spans
    if scheme == "BIO":  # and for BIO even the strict decoder does
        assert tags_to_spans(repaired, scheme, strict=True) == spans


@pytest.mark.parametrize(
    "tags, scheme, repaired, changed",
    [
        (["O", "I-X", "I-X"], "BIO", ["O", "B-X", "I-X"], [1]),  # I-X after O
        (["B-Y", "I-X", "O"], "BIO", ["B-Y", "B-X", "O"], [1]),  # I-X after B-Y
        (["I-X"], "BIO", ["B-X"], [0]),  # first in its sentence
        (["I", "I"], "BIO", ["B", "I"], [0]),  # untyped tags stay untyped
        (["B-X", "I-X", "B-X"], "BIO", ["B-X", "I-X", "B-X"], []),  # IOB2 already: nothing to do
        (["O", "E-X", "S-X", "I-X", "E-X"], "IOBES", ["O", "S-X", "S-X", "B-X", "E-X"], [1, 3]),
    ],
)
def test_repair_tags(tags, scheme, repaired, changed):
    assert repair_tags(tags, scheme) == (repaired, changed)


@pytest.mark.parametrize(
    "tag, scheme", [("E-X", "BIO"), ("S-X", "BIO"), ("X", "BIO"), ("O-X", "IOBES"), ("Q-X", "IOBES")]
)
def test_unknown_tags_are_errors(tag, scheme):
    with pytest.raises(ValueError, match="ill-formed tag"):
        tags_to_spans([tag], scheme)


T = "\t"
INLINE = (
    "7|t|Cisplatin-induced ocular and auditory toxicity.\n"
    "7|a|Breast cancer patients, e.g. Smith et al. Reported it. Some got D-penicillamine.\n"
    f"7{T}0{T}9{T}Cisplatin{T}Chemical{T}D002945\n"
    f"7{T}18{T}46{T}ocular and auditory toxicity{T}Disease{T}D014786|D006311{T}ocular toxicity|auditory toxicity\n"
    f"7{T}48{T}54{T}Breast{T}Disease{T}-1\n"
    f"7{T}48{T}61{T}Breast cancer{T}Disease{T}D001943\n"
    f"7{T}112{T}120{T}D-penici{T}Chemical{T}\n"
)


def inline_doc():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_pubtator(INLINE)[0]


def test_overlapping_mentions_are_found_and_refused():
    doc = inline_doc()
    overlapping = overlapping_mentions(doc.mentions)
    assert [(m.start, m.end) for m in overlapping] == [(48, 54), (48, 61)]
    sentences = tokenize_document(doc)
    with pytest.raises(ValueError, match="overlaps"):
        ner_tags(sentences[1], doc.mentions)


def test_inline_round_trip_and_options():
    doc = inline_doc()
    doc.mentions = [m for m in doc.mentions if (m.start, m.end) != (48, 54)]
    text = doc.text
    sentences = tokenize_document(doc)
    assert len(sentences) == 3  # "et al. Reported" does not end a sentence
    title = sentences[0]
    assert [m.text for m in sentence_mentions(title, doc)] == ["Cisplatin", "ocular and auditory toxicity"]
    assert ner_tags(title, doc.mentions) == [
        "B-Chemical",
        "O",
        "O",
        "B-Disease",
        "I-Disease",
        "I-Disease",
        "I-Disease",
        "O",
    ]
    assert concept_tags(title, doc.mentions, "IOBES") == [
        "S-D002945",
        "O",
        "O",
        "B-D014786|D006311",
        "I-D014786|D006311",
        "I-D014786|D006311",
        "E-D014786|D006311",
        "O",
    ]
    assert ner_tags(title, doc.mentions, types={"Disease"})[0] == "O"
    # a mention with an empty concept is O in the concept tags and decodes back with concept ''
    last = sentences[2]
    assert set(concept_tags(last, doc.mentions)) == {"O"}
    got = []
    for scheme in ("BIO", "IOBES"):
        got = []
        for s in sentences:
            ms = sentence_mentions(s, doc)
            got += decode_mentions(
                s, text, ner_tags(s, ms, scheme), concept_tags(s, ms, scheme), scheme=scheme
            )
        assert [m.key() for m in got] == [m.key() for m in doc.mentions]
        assert [m.text for m in got] == [m.text for m in doc.mentions]
    # concept tags alone give spans and concepts, with the type supplied by the caller
    alone = decode_mentions(
        title, text, concept_tags=concept_tags(title, doc.mentions), mention_type="Disease"
    )
    assert [(m.start, m.end, m.type, m.concept) for m in alone] == [
        (0, 9, "Disease", "D002945"),
        (18, 46, "Disease", "D014786|D006311"),
    ]


def test_decode_concept_by_majority():
    (sentence,) = tokenize_text("aa bb cc dd")
    ner = ["B-Disease", "I-Disease", "I-Disease", "O"]
    concepts = ["B-D1", "B-D2", "I-D2", "B-D3"]  # D2 has two votes of three
    (m,) = decode_mentions(sentence, "aa bb cc dd", ner, concepts)
    assert (m.start, m.end, m.text, m.type, m.concept) == (0, 8, "aa bb cc", "Disease", "D2")
    (m,) = decode_mentions(sentence, "aa bb cc dd", ner, ["B-D1", "O", "B-D3", "O"])
    assert m.concept == "D1"  # a tie goes to the first label seen
    (m,) = decode_mentions(sentence, "aa bb cc dd", ner, ["O"] * 4)
    assert m.concept == ""
    (m,) = decode_mentions(sentence, "aa bb cc dd", ner)
    assert m.concept == ""
    with pytest.raises(ValueError, match="3 tags for 4 tokens"):
        decode_mentions(sentence, "aa bb cc dd", ner[:3])
    with pytest.raises(ValueError, match="needs"):
        decode_mentions(sentence, "aa bb cc dd")


def test_spans_to_mentions_uses_document_offsets():
    text = "Title. Aspirin helps."
    (_, second) = tokenize_text(text)
    (m,) = spans_to_mentions(second, text, [(0, 1, "Chemical")])
    assert (m.start, m.end, m.text, m.type, m.concept) == (7, 14, "Aspirin", "Chemical", "")
    (m,) = spans_to_mentions(second, text, [(0, 1, "D001241")], label_as="concept", mention_type="Chemical")
    assert (m.type, m.concept) == ("Chemical", "D001241")


def test_mention_not_on_token_boundaries_is_an_error():
    doc = Document("1", "Breast cancer", "")
    doc.mentions = [Mention(1, 6, "reast", "Disease")]
    (sentence,) = tokenize_text(doc.text)  # no refinement
    with pytest.raises(ValueError, match="not a token span"):
        ner_tags(sentence, doc.mentions)


FILES = [
    "ncbi-disease/NCBItrainset_corpus.txt",
    "ncbi-disease/NCBIdevelopset_corpus.txt",
    "ncbi-disease/NCBItestset_corpus.txt",
    "bc5cdr/CDR_TrainingSet.PubTator.txt",
    "bc5cdr/CDR_DevelopmentSet.PubTator.txt",
    "bc5cdr/CDR_TestSet.PubTator.txt",
]


@pytest.mark.real_data
@pytest.mark.parametrize("name", FILES)
def test_real_round_trip(real_corpora, name):
    """Every mention survives corpus -> tokens -> BIO/IOBES (NER + concept) -> mentions.

    Overlapping mentions cannot be flat tags; they are counted, not skipped: the real files have none.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        docs, _ = read_pubtator_with_notes(real_corpora / name)
    overlapping = sum(len(overlapping_mentions(doc.mentions)) for doc in docs)
    assert overlapping == 0
    for doc in docs:
        sentences = tokenize_document(doc)
        expected = sorted(m.key() for m in doc.mentions)
        for scheme in ("BIO", "IOBES"):
            got = []
            for s in sentences:
                ms = sentence_mentions(s, doc)
                got += decode_mentions(
                    s, doc.text, ner_tags(s, ms, scheme), concept_tags(s, ms, scheme), scheme=scheme
                )
            assert sorted(m.key() for m in got) == expected, doc.uid
        # diseases only (the Zhao et al. setting for BC5CDR)
        got = []
        for s in sentences:
            ms = sentence_mentions(s, doc)
            got += decode_mentions(
                s, doc.text, ner_tags(s, ms, types={"Disease"}), concept_tags(s, ms, types={"Disease"})
            )
        assert sorted(m.key() for m in got) == sorted(m.key() for m in doc.mentions if m.type == "Disease")


def test_labeled_sentences_round_trip_through_predicted_documents():
    from mernlib.data import load_corpus
    from mernlib.metrics import evaluate_documents
    from mernlib.tags import labeled_sentences, predicted_documents

    gold = load_corpus("sample", "dev")
    labeled = labeled_sentences(gold)
    assert sum(len(x.mentions) for x in labeled) == sum(len(d.mentions) for d in gold)
    decoded = [
        x.decode(x.ner_tags("IOBES"), x.concept_tags(), scheme="IOBES", concept_scheme="BIO") for x in labeled
    ]
    predicted = predicted_documents(labeled, decoded)
    assert [d.uid for d in predicted] == [d.uid for d in gold]
    scores = evaluate_documents(gold, predicted)["protocols"]
    assert all(s["f1"] == 1.0 for s in scores.values()), scores
    # Disease-only concept tags (Zhao et al. normalize diseases only in BC5CDR) leave chemicals untagged.
    chem = next(x for x in labeled if any(m.type == "Chemical" for m in x.mentions))
    assert chem.concept_tags(types={"Disease"}) != chem.concept_tags()
