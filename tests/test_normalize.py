"""The staged normalizer (mernlib.normalize) and the abbreviation detectors (mernlib.abbreviations)."""

from pathlib import Path

import pytest

from mernlib import abbreviations
from mernlib.abbreviations import best_long_form, find_abbreviations, schwartz_hearst_abbreviations
from mernlib.candidates import recall_at_k
from mernlib.corpus import Document, Mention
from mernlib.entity_base import Concept, EntityBase, load_ctd_medic
from mernlib.normalize import (
    DenseRetriever,
    Normalizer,
    NormalizerConfig,
    composite_parts,
    lookup_keys,
    tune_encoder,
    tuning_key,
)

FIXTURES = Path(__file__).parent / "fixtures" / "entity_base"

BASE = EntityBase(
    [
        Concept("D001943", "Breast Neoplasms"),
        Concept("D010051", "Ovarian Neoplasms"),
        Concept("D003123", "Colorectal Neoplasms, Hereditary Nonpolyposis"),
        Concept("D007621", "Leukemia, Myeloid"),
        Concept("D006816", "Huntington Disease"),
        Concept("D010190", "Pancreatic Neoplasms"),
        Concept("OMIM:260350", "PANCREATIC CANCER", ("PNCA1",)),
        Concept("D000740", "Anemia"),
        Concept("D006973", "Hypertension"),
        Concept("D007022", "Hypotension"),
        Concept("D008012", "Lidocaine"),
    ]
)


def doc(text: str, mentions: list[tuple[str, str, str]], pmid: str = "1") -> Document:
    """A one-title document whose mentions are found in ``text`` by their text (first occurrence)."""
    out = []
    for surface, concept, mention_type in mentions:
        start = text.index(surface)
        out.append(Mention(start, start + len(surface), surface, mention_type, concept))
    return Document(pmid, text, "", out)


TRAIN = [
    doc(
        "Patients with hereditary nonpolyposis colorectal cancer.",
        [("hereditary nonpolyposis colorectal cancer", "D003123", "Disease")],
    ),
    doc("High blood pressure was seen.", [("High blood pressure", "D006973", "Disease")]),
    doc(
        "Low blood pressure and lidocaine.",
        [("Low blood pressure", "D007022", "Disease"), ("lidocaine", "D008012", "Chemical")],
    ),
    doc("Some strange finding.", [("strange finding", "-1", "Disease")]),
]


@pytest.fixture(scope="module")
def tfidf_normalizer():
    return Normalizer(
        NormalizerConfig(retriever="tfidf", abbreviations="schwartz-hearst", progress=False)
    ).fit(TRAIN, BASE)


# -- abbreviations -----------------------------------------------------------------------------------

ABSTRACT = (
    "Hereditary nonpolyposis colorectal cancer (HNPCC) is common. Ataxia telangiectasia (A-T) patients "
    "and HNPCC families were studied (n = 5, i.e. few)."
)


def test_schwartz_hearst_finds_definitions():
    found = schwartz_hearst_abbreviations(ABSTRACT)
    assert found["HNPCC"] == "Hereditary nonpolyposis colorectal cancer"
    assert found["A-T"] == "Ataxia telangiectasia"
    assert "n = 5" not in found and "i.e." not in found
    assert (
        best_long_form("HNPCC", "so Hereditary nonpolyposis colorectal cancer")
        == "Hereditary nonpolyposis colorectal cancer"
    )
    assert best_long_form("XYZ", "nothing like it") is None
    # the reverse layout: SHORT (long form)
    assert schwartz_hearst_abbreviations("We studied AT (ataxia telangiectasia) here.") == {
        "AT": "ataxia telangiectasia"
    }


@pytest.mark.skipif(not abbreviations.ab3p_available(), reason="pyab3p (optional extra) not installed")
def test_ab3p_finds_definitions(capfd):
    found = find_abbreviations(ABSTRACT + "  Double  spaces (DS) do not matter.", "ab3p")
    assert found["HNPCC"] == "Hereditary nonpolyposis colorectal cancer"
    assert found["A-T"] == "Ataxia telangiectasia"
    assert capfd.readouterr().err == ""  # Ab3P's native "Failed to find sentence" lines are silenced


def test_abbreviation_method_choice(monkeypatch):
    with pytest.raises(ValueError):
        find_abbreviations(ABSTRACT, "spacy")
    monkeypatch.setattr(abbreviations, "ab3p_available", lambda: False)
    assert abbreviations.resolved_method("auto") == "schwartz-hearst"
    assert find_abbreviations(ABSTRACT)["A-T"] == "Ataxia telangiectasia"  # auto falls back to pure Python
    with pytest.raises(ImportError, match="pyab3p"):
        find_abbreviations(ABSTRACT, "ab3p")


def test_compound_definitions_define_their_parts():
    text = "Hereditary hyperparathyroidism-jaw tumor syndrome (HPT-JT) is rare; HPT and JT also occur."
    found = find_abbreviations(text, "schwartz-hearst")
    assert found["HPT-JT"] == "hyperparathyroidism-jaw tumor syndrome"
    assert (found["HPT"], found["JT"]) == (
        "hyperparathyroidism",
        "jaw tumor",
    )  # the fewest words that spell it
    # a part defined on its own keeps its definition; parts that do not spell their long part are not made
    assert abbreviations.compound_parts({"A-B": "alpha-beta", "A": "another"}) == {"B": "beta"}
    assert abbreviations.compound_parts({"XY-Z": "alpha-beta"}) == {}
    assert abbreviations.compound_parts({"HPT-JT": "hyperparathyroidism jaw tumor"}) == {}  # no "-" to split


def test_a_numbered_short_form_is_expanded(tfidf_normalizer):
    document = doc("Hereditary nonpolyposis colorectal cancer (HNPCC) families; HNPCC2 and HNPCC-1.", [])
    long_form = "Hereditary nonpolyposis colorectal cancer"
    assert tfidf_normalizer.queries("HNPCC2", document) == ([f"{long_form} 2", "HNPCC2"], True)
    assert tfidf_normalizer.queries("HNPCC-1", document) == ([f"{long_form} 1", "HNPCC-1"], True)
    assert tfidf_normalizer.queries("XHNPCC2", document) == (["XHNPCC2"], False)


# -- string rules and composite mentions -------------------------------------------------------------


def keys(text):
    return dict(lookup_keys(text))


def test_lookup_keys():
    assert keys("Breast Cancers")["rules"] == keys("breast neoplasms")["rules"] == "breast neoplasm"
    assert keys("breast tumours")["rules"] == "breast neoplasm"
    assert keys("Leukemia, Myeloid")["bag"] == keys("myeloid leukaemias")["bag"]
    assert keys("Huntington's disease")["rules"] == keys("Huntington disease")["rules"]
    assert keys("deficiency of the enzyme")["bag"] == keys("enzyme deficiency")["bag"]
    assert keys("non-polyposis")["compact"] == keys("nonpolyposis")["compact"]
    assert keys("anaemia")["rules"] == keys("anemia")["rules"]
    assert keys("diabetes")["rules"] != "diabete s"
    assert [level for level, _ in lookup_keys("Breast cancer", string_rules=False)] == ["exact"]
    assert lookup_keys("!!") == []


def test_composite_parts():
    assert composite_parts("breast and ovarian cancer")[0] == ["breast cancer", "ovarian cancer"]
    assert ["breast", "ovarian", "prostate cancer"] in composite_parts("breast, ovarian, and prostate cancer")
    assert ["breast cancer", "ovarian cancer", "prostate cancer"] == composite_parts(
        "breast, ovarian, and prostate cancer"
    )[0]
    assert ["colorectal adenomas", "colorectal carcinomas"] in composite_parts(
        "colorectal adenomas and carcinomas"
    )
    assert composite_parts("breast cancer") == []


# -- the normalizer (TF-IDF retrieval: fast) -------------------------------------------------------------


def test_exact_levels_and_preferences(tfidf_normalizer):
    n = tfidf_normalizer
    assert n.normalize_mention("high blood pressure") == "D006973"  # training mention
    assert n.lookup("breast cancer")[:2] == ("D001943", "name")  # rules: cancer -> neoplasm
    assert n.lookup("myeloid leukaemia")[0] == "D007621"  # bag of words, British spelling
    assert n.lookup("Huntington's disease")[0] == "D006816"
    # an OMIM title that matches word for word loses to a MeSH name found at a looser level
    assert n.lookup("pancreatic cancer")[0] == "D010190"
    assert n.lookup("PNCA1")[0] == "OMIM:260350"  # OMIM symbol, no MeSH rival
    assert n.normalize_mention("strange finding") == "-1"  # training says NIL
    assert n.lookup("nothing of the kind") is None


def test_normalize_documents(tfidf_normalizer):
    text = "Breast and ovarian cancer (BOC) and HNPCC: BOC in two. Hereditary nonpolyposis colorectal cancer (HNPCC) too."
    document = doc(text, [("Breast and ovarian cancer", "", "Disease"), ("HNPCC", "", "Disease")])
    start = text.index("BOC in")
    document.mentions.append(Mention(start, start + 3, "BOC", "Disease", ""))
    (out,) = tfidf_normalizer.normalize([document])
    concepts = [m.concept for m in out.mentions]
    assert concepts[0] == "D001943|D010051"  # composite: joined with | as the corpora write it
    assert concepts[1] == "D003123"  # HNPCC through its long form, defined later in the abstract
    assert concepts[2] == "D001943|D010051"  # BOC -> "Breast and ovarian cancer" -> composite
    assert [m.concept for m in document.mentions] == ["", "", ""]  # the input is not modified
    assert [(m.start, m.end, m.type) for m in out.mentions] == [
        (m.start, m.end, m.type) for m in document.mentions
    ]


def test_abbreviations_off_and_composite_off():
    n = Normalizer(retriever="tfidf", abbreviations="off", composite=False, progress=False).fit(TRAIN, BASE)
    document = doc("Hereditary nonpolyposis colorectal cancer (HNPCC). HNPCC", [])
    document.mentions.append(Mention(51, 56, "HNPCC", "Disease"))
    assert n.queries("HNPCC", document) == (["HNPCC"], False)
    assert "|" not in n.normalize_mention("breast and ovarian cancer")


def test_type_aware_retrieval(tfidf_normalizer):
    # "lidocain" is a chemical: a Disease mention is not sent to a concept seen only as Chemical
    assert tfidf_normalizer.candidates("lidocain", mention_type="Chemical", k=1)[0][0] == "D008012"
    assert "D008012" not in dict(tfidf_normalizer.candidates("lidocain", mention_type="Disease", k=5))


def test_candidates_for_rerankers(tfidf_normalizer):
    cands = tfidf_normalizer.candidates("breast cancer", k=4)
    assert cands[0] == ("D001943", 1.0) and len(cands) == 4
    assert len({c for c, _ in cands}) == 4
    assert tfidf_normalizer.candidates("hypotensoin", k=3)[0][0] == "D007022"  # retrieval only
    assert [c[0] for c in tfidf_normalizer.top_k_batch(["breast cancer"], 2)[0]][0] == "D001943"
    r = recall_at_k(tfidf_normalizer, [("breast cancer", "D001943"), ("hypotensoin", "D007022")], ks=(1,))
    assert r[1] == 1.0


def test_extra_base_ctd_medic():
    medic = load_ctd_medic(FIXTURES / "CTD_diseases.tsv")
    n = Normalizer(retriever="tfidf", progress=False).fit(TRAIN, [BASE, medic])
    assert n.normalize_mention("example tumours") == "D900001"  # a CTD synonym
    assert n.normalize_mention("EC2D") == "OMIM:900200"
    assert n.normalize_mention("breast cancer") == "D001943"  # the first base is still there


def test_config_is_checked_and_fit_first():
    with pytest.raises(ValueError):
        NormalizerConfig(retriever="bm25")
    with pytest.raises(ValueError):
        NormalizerConfig(abbreviations="yes")
    with pytest.raises(RuntimeError, match="fit"):
        Normalizer().candidates("x")


# -- dense retrieval and encoder tuning (a tiny random BERT: seconds) -------------------------------------


def test_the_cascades_answer_stays_first_at_any_retrieval_score(tfidf_normalizer, monkeypatch):
    # "breast cancer" is an exact name of D001943; let the retriever score another concept higher, as a
    # form shared by two concepts can (cosine 1.0 plus float error): the cascade's answer keeps the top
    # score, so a re-ranker at weight 0 (max keeps the first of equals) still returns it
    monkeypatch.setattr(
        tfidf_normalizer,
        "_retrieve",
        lambda texts, types, k: [[("D009369", 1.0000001), ("D001943", 1.0)] for _ in texts],
    )
    (cands,), (res,) = tfidf_normalizer.candidates_batch([("breast cancer", None, None)], k=3)
    assert res.stage != "retrieval" and cands == [("D001943", 1.0000001), ("D009369", 1.0000001)]
    assert max(cands, key=lambda c: c[1])[0] == "D001943"
    assert tfidf_normalizer.candidates("breast cancer", k=3) == cands


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, one_torch_thread):
    from transformers import AutoTokenizer

    from mernlib.encoders import default_encoder_path, tiny_random_encoder

    # the default tokenizer alone (loading it through load_encoder would load MiniLM's weights too)
    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path(), local_files_only=True)
    encoder = tiny_random_encoder(tokenizer, hidden_size=32, num_layers=1, max_length=32, seed=0)
    folder = tmp_path_factory.mktemp("tiny-encoder")
    encoder.transformer.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    return str(folder)


def tiny_config(encoder, cache_dir, **overrides):
    settings = dict(
        encoder=encoder, cache_dir=str(cache_dir), tuning_epochs=1, tuning_batch_size=4, progress=False
    )
    return NormalizerConfig(**(settings | overrides))


FORMS = {
    "D006973": ["hypertension", "high blood pressure"],
    "D007022": ["hypotension", "low blood pressure"],
    "D000740": ["anemia"],
}


def test_tuning_is_reproducible_and_cached(tiny_encoder, tmp_path):
    import torch
    from transformers import AutoModel

    first = tune_encoder(tiny_config(tiny_encoder, tmp_path / "a"), FORMS)
    second = tune_encoder(tiny_config(tiny_encoder, tmp_path / "b"), FORMS)
    assert first.name == second.name == tuning_key(tiny_config(tiny_encoder, tmp_path), FORMS)
    a, b = AutoModel.from_pretrained(first), AutoModel.from_pretrained(second)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), name
    base = AutoModel.from_pretrained(tiny_encoder)
    assert not torch.equal(
        a.encoder.layer[0].attention.self.query.weight, base.encoder.layer[0].attention.self.query.weight
    )
    assert torch.equal(a.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight)  # frozen
    # the cache: the same definition is not trained again; another seed or other forms is another key
    stamp = (first / "config.json").stat().st_mtime_ns
    assert tune_encoder(tiny_config(tiny_encoder, tmp_path / "a"), FORMS) == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    assert tuning_key(tiny_config(tiny_encoder, tmp_path, seed=1), FORMS) != first.name
    assert tuning_key(tiny_config(tiny_encoder, tmp_path), FORMS | {"D1": ["a", "b"]}) != first.name
    assert (first / "mernlib-tuning.json").is_file()


def test_dense_normalizer(tiny_encoder, tmp_path):
    n = Normalizer(tiny_config(tiny_encoder, tmp_path, retriever="dense")).fit(TRAIN, BASE)
    assert isinstance(n.retriever, DenseRetriever) and n.encoder_path is not None
    assert n.normalize_mention("high blood pressure") == "D006973"  # exact lookup still first
    cands = n.candidates("some unknown words", k=3)
    assert len(cands) == 3 and all(-1.0 <= s <= 1.0 + 1e-6 for _, s in cands)
    assert cands == sorted(cands, key=lambda c: -c[1])
    assert n.describe()["retriever"] == "DenseRetriever"
    untuned = Normalizer(tiny_config(tiny_encoder, tmp_path, tune_encoder=False)).fit(TRAIN, BASE)
    assert untuned.encoder_path is None
    assert untuned.retriever.top_k("hypertension", 1)[0] == ("D006973", pytest.approx(1.0, abs=1e-5))


# -- real data ---------------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_beats_the_baseline_on_ncbi_dev(real_corpora):
    import warnings

    from mernlib.candidates import DictionaryNormalizer
    from mernlib.data import load_corpus, load_corpus_entity_base
    from mernlib.experiments.e2emern import entity_tables
    from mernlib.metrics import men_mention_prf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = load_corpus("ncbi-disease", data_dir=real_corpora)
    base = load_corpus_entity_base("ncbi-disease", data_dir=real_corpora)
    names, synonyms, train_mentions = entity_tables(base, splits["train"])
    baseline = DictionaryNormalizer(names, train_mentions, synonyms).normalize_documents(splits["dev"])
    ours = Normalizer(retriever="tfidf", progress=False).fit(splits["train"], base).normalize(splits["dev"])
    baseline_recall = men_mention_prf(splits["dev"], baseline).recall
    ours_recall = men_mention_prf(splits["dev"], ours).recall
    assert ours_recall > baseline_recall + 0.03, (ours_recall, baseline_recall)
