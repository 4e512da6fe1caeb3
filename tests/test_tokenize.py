"""Sentence splitting and tokenization: offsets, abbreviations, refinement, and no lost mention."""

import warnings

import pytest

from mernlib.corpus import Document, Mention
from mernlib.pubtator import read_pubtator_with_notes
from mernlib.tokenize import Token, lost_mentions, split_sentences, tokenize_document, tokenize_text


def doc_with(title, abstract, spans=(), mention_type="Disease"):
    doc = Document("1", title, abstract)
    text = doc.text
    doc.mentions = [Mention(s, e, text[s:e], mention_type, "D1") for s, e in spans]
    return doc


def sentence_texts(text, **kw):
    return [text[s:e] for s, e in split_sentences(text, **kw)]


def test_tokens_keep_offsets():
    text = "G6PD-deficient patients (n = 3.5%) had H2-receptor; 1178G."
    (sentence,) = tokenize_text(text, "d#0")
    words = [t.text for t in sentence.tokens]
    assert words == [
        "G6PD",
        "-",
        "deficient",
        "patients",
        "(",
        "n",
        "=",
        "3.5",
        "%",
        ")",
        "had",
        "H2",
        "-",
        "receptor",
        ";",
        "1178G",
        ".",
    ]
    assert all(text[t.start : t.end] == t.text for t in sentence.tokens)
    assert (sentence.doc_uid, sentence.index, sentence.start, sentence.end) == ("d#0", 0, 0, len(text))
    assert sentence.text(text) == text


def test_sentence_rules():
    text = (
        "Drugs, e.g. Aspirin, were given. Results vs. Controls differed (Fig. 2). Smith et al. Showed it. "
        "J. Smith agreed! Was it 5? 12 patients died.Not a split. End"
    )
    assert sentence_texts(text) == [
        "Drugs, e.g. Aspirin, were given.",
        "Results vs. Controls differed (Fig. 2).",
        "Smith et al. Showed it.",
        "J. Smith agreed!",
        "Was it 5?",
        "12 patients died.Not a split.",
        "End",
    ]


def test_lowercase_after_period_does_not_split():
    assert sentence_texts("It rose to 5 mg. then fell.") == ["It rose to 5 mg. then fell."]


def test_title_is_its_own_sentence():
    doc = doc_with("Famotidine-associated delirium. A series of six cases", "Famotidine is used. It works.")
    sentences = tokenize_document(doc)
    assert [s.text(doc.text) for s in sentences] == [
        "Famotidine-associated delirium. A series of six cases",
        "Famotidine is used.",
        "It works.",
    ]
    assert [s.index for s in sentences] == [0, 1, 2]
    assert all(s.doc_uid == doc.uid for s in sentences)


def test_no_sentence_boundary_inside_a_mention():
    title, abstract = "Title", "Type II. Diabetes was seen. Next one."
    doc = doc_with(title, abstract)
    start = doc.text.index("Type")
    doc.mentions = [Mention(start, start + len("Type II. Diabetes"), "Type II. Diabetes", "Disease")]
    texts = [s.text(doc.text) for s in tokenize_document(doc)]
    assert texts == ["Title", "Type II. Diabetes was seen.", "Next one."]
    assert lost_mentions(doc, tokenize_document(doc)) == []
    # without the mention, the period after "II" ends a sentence
    assert len(tokenize_text(abstract)) == 3


def test_refinement_splits_tokens_at_mention_boundaries():
    doc = doc_with("Title", "G6PD-deficient and BRCA1mutation carriers.")
    text = doc.text
    g, b = text.index("G6PD"), text.index("BRCA1")
    doc.mentions = [
        Mention(g, g + 4, "G6PD", "Gene"),
        Mention(b, b + 5, "BRCA1", "Gene"),
        Mention(b + 5, b + 13, "mutation", "Event"),
    ]
    tokens = [t.text for s in tokenize_document(doc) for t in s.tokens]
    assert tokens == ["Title", "G6PD", "-", "deficient", "and", "BRCA1", "mutation", "carriers", "."]
    # without gold mentions the same text keeps "BRCA1mutation" whole
    assert "BRCA1mutation" in [t.text for s in tokenize_text(doc.abstract) for t in s.tokens]


def test_lost_mentions_reports_spans_that_are_not_tokens():
    doc = doc_with("Title", "Breast cancer.", [(6, 12)])
    sentences = tokenize_text(doc.text)  # no refinement, and "Breast" spans 6-12 exactly
    assert lost_mentions(doc, sentences) == []
    doc.mentions.append(Mention(7, 12, "reast", "Disease"))
    assert lost_mentions(doc, sentences) == [doc.mentions[1]]
    assert lost_mentions(doc, tokenize_document(doc)) == []
    # a mention whose start and end are token edges in *different* sentences is lost too
    two = doc_with("Title", "Aa. Bb.", [(6, 12)])  # "Aa. Bb"
    assert lost_mentions(two, tokenize_text(two.text)) == two.mentions


def test_empty_and_whitespace_text():
    assert tokenize_text("") == []
    assert tokenize_text("   \n ") == []
    assert tokenize_document(Document("1", "Only a title", ""))[0].tokens[-1] == Token("title", 7, 12)


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
def test_real_files_lose_no_mention(real_corpora, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        docs, _ = read_pubtator_with_notes(real_corpora / name)
    lost = []
    for doc in docs:
        sentences = tokenize_document(doc)
        lost += lost_mentions(doc, sentences)
        text = doc.text
        assert sentences[0].end == len(doc.title)  # the title is its own sentence
        for s in sentences:
            assert all(text[t.start : t.end] == t.text and t.text.strip() == t.text for t in s.tokens)
            assert s.start == s.tokens[0].start and s.end == s.tokens[-1].end
    assert lost == []
