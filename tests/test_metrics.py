"""mernlib.metrics: hand-made cases for every protocol and analysis, and agreement with seqeval."""

import json
import random
import warnings

import pytest

from mernlib.corpus import Document, Mention
from mernlib.errors import DocumentMismatchError
from mernlib.metrics import (
    MEN_DOCUMENT,
    MEN_MENTION,
    NER_MENTION_STRICT,
    PRF,
    PROTOCOLS,
    align_documents,
    boundary_inconsistency,
    evaluate_documents,
    men_document_prf,
    men_mention_prf,
    mention_spans,
    ner_prf,
    ner_prf_from_tags,
    oov_partition,
    prf_from_sets,
    prf_on_subset,
    protocol_keys,
    recall_by_training_text,
)
from mernlib.tags import tags_to_spans


def mention(start, end, type_="Disease", concept=""):
    return Mention(start, end, "x" * (end - start), type_, concept)


def doc(pmid, mentions, index=0):
    return Document(pmid, "t" * 100, "a" * 100, list(mentions), index=index)


# --- PRF -------------------------------------------------------------------------------------------


def test_prf_counts_and_scores():
    r = prf_from_sets({1, 2, 3, 4}, {3, 4, 5})
    assert (r.tp, r.fp, r.fn) == (2, 1, 2)
    assert r.precision == pytest.approx(2 / 3)
    assert r.recall == pytest.approx(0.5)
    assert r.f1 == pytest.approx(4 / 7)
    assert r.as_dict() == {"tp": 2, "fp": 1, "fn": 2, "precision": r.precision, "recall": 0.5, "f1": r.f1}
    assert (r + PRF.from_counts(2, 1, 0)).as_dict()["precision"] == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    "gold, pred, expected",
    [
        (set(), set(), (0, 0, 0, 0.0, 0.0, 0.0)),
        ({1, 2}, set(), (0, 0, 2, 0.0, 0.0, 0.0)),
        (set(), {1}, (0, 1, 0, 0.0, 0.0, 0.0)),
        ({1}, {2}, (0, 1, 1, 0.0, 0.0, 0.0)),
        ({1}, {1}, (1, 0, 0, 1.0, 1.0, 1.0)),
    ],
)
def test_prf_edge_cases_never_divide_by_zero(gold, pred, expected):
    r = prf_from_sets(gold, pred)
    assert (r.tp, r.fp, r.fn, r.precision, r.recall, r.f1) == expected


def test_prf_rejects_negative_counts():
    with pytest.raises(ValueError):
        PRF.from_counts(1, -1, 0)


# --- tag decoding ----------------------------------------------------------------------------------


def test_conlleval_decoding_bio():
    tags = ["I-X", "I-X", "I-Y", "O", "B-X", "B-X", "I-X", "O", "I-X"]
    assert tags_to_spans(tags) == [(0, 2, "X"), (2, 3, "Y"), (4, 5, "X"), (5, 7, "X"), (8, 9, "X")]


def test_strict_decoding_bio_drops_ill_formed_chunks():
    tags = ["I-X", "I-X", "I-Y", "O", "B-X", "B-X", "I-X", "I-Y", "O", "I-X"]
    assert tags_to_spans(tags, strict=True) == [(4, 5, "X"), (5, 7, "X")]


def test_decoding_iobes():
    tags = ["B-X", "I-X", "E-X", "S-Y", "B-X", "I-X", "O", "E-X", "B-Y", "E-X", "I-X"]
    assert tags_to_spans(tags, "IOBES", strict=True) == [(0, 3, "X"), (3, 4, "Y")]
    assert tags_to_spans(tags, "IOBES") == [
        (0, 3, "X"),
        (3, 4, "Y"),
        (4, 6, "X"),
        (7, 8, "X"),
        (8, 9, "Y"),
        (9, 10, "X"),
        (10, 11, "X"),
    ]


def test_tags_outside_the_scheme_are_rejected():
    with pytest.raises(ValueError, match="E-X"):
        tags_to_spans(["O", "E-X"], "BIO")
    with pytest.raises(ValueError, match="scheme"):
        tags_to_spans(["O"], "IOE2")
    with pytest.raises(ValueError, match="sequence 0"):
        ner_prf_from_tags([["O", "O"]], [["O"]])


def test_ner_prf_from_tags_counts():
    gold = [["B-X", "I-X", "O", "B-Y"], ["O", "B-X"]]
    pred = [["B-X", "I-X", "O", "B-X"], ["I-X", "I-X"]]
    lenient = ner_prf_from_tags(gold, pred)
    assert (lenient.tp, lenient.fp, lenient.fn) == (1, 2, 2)
    strict = ner_prf_from_tags(gold, pred, strict=True)
    assert (strict.tp, strict.fp, strict.fn) == (1, 1, 2)


def _random_sequences(rng, prefixes, n, ill_formed=True):
    types = ["A", "B", "C"]
    out = []
    for _ in range(n):
        length = rng.randint(0, 12)
        seq = []
        for _ in range(length):
            p = rng.choice(prefixes + ["O", "O"])
            seq.append("O" if p == "O" else f"{p}-{rng.choice(types)}")
        out.append(seq)
    return out


def _perturb(rng, seqs, prefixes):
    """A 'prediction': the gold sequence with some tags changed, so that scores are not trivial."""
    out = []
    for seq in seqs:
        new = list(seq)
        for i in range(len(new)):
            if rng.random() < 0.25:
                p = rng.choice(prefixes + ["O"])
                new[i] = "O" if p == "O" else f"{p}-{rng.choice('AB')}"
        out.append(new)
    return out


@pytest.mark.parametrize("scheme_name, prefixes", [("BIO", ["B", "I"]), ("IOBES", ["B", "I", "E", "S"])])
@pytest.mark.parametrize("strict", [True, False])
def test_agreement_with_seqeval(scheme_name, prefixes, strict):
    seqeval_metrics = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities
    from seqeval.scheme import IOB2, IOBES, Entities

    scheme = {"BIO": IOB2, "IOBES": IOBES}[scheme_name]
    kwargs = {"mode": "strict", "scheme": scheme} if strict else {}
    rng = random.Random(20190127 + len(prefixes) + strict)
    n_sequences = 0
    checked_nonzero = 0
    for _ in range(150):
        gold = _random_sequences(rng, prefixes, rng.randint(1, 25))
        pred = _perturb(rng, gold, prefixes)
        n_sequences += len(gold)
        # Entity sets, sequence by sequence.
        for seq in gold:
            ours = tags_to_spans(seq, scheme_name, strict=strict)
            if strict:
                theirs = [(e.start, e.end, e.tag) for e in Entities([seq], scheme).entities[0]]
            else:
                theirs = [(s, e + 1, t) for t, s, e in get_entities(seq)]
            assert sorted(ours) == sorted(theirs), seq
        # Micro scores, batch by batch.
        ours = ner_prf_from_tags(gold, pred, scheme=scheme_name, strict=strict)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = seqeval_metrics.precision_score(gold, pred, zero_division=0, **kwargs)
            r = seqeval_metrics.recall_score(gold, pred, zero_division=0, **kwargs)
            f = seqeval_metrics.f1_score(gold, pred, zero_division=0, **kwargs)
        assert abs(ours.precision - p) < 1e-9
        assert abs(ours.recall - r) < 1e-9
        assert abs(ours.f1 - f) < 1e-9
        checked_nonzero += ours.f1 > 0
    assert n_sequences > 1500
    assert checked_nonzero > 100


# --- documents -------------------------------------------------------------------------------------


GOLD = [
    doc(
        "111",
        [
            mention(0, 10, "Disease", "D001"),
            mention(20, 30, "Disease", "D002|D003"),  # composite: two IDs
            mention(40, 50, "Chemical", "C001"),
            mention(60, 70, "Disease", "-1"),  # NIL
            mention(80, 90, "Disease", "D001"),  # same concept again
        ],
        index=0,
    ),
    doc("222", [mention(5, 15, "Chemical", "C002")], index=1),
]

PRED = [
    doc(
        "111",
        [
            mention(0, 10, "Disease", "D001"),  # all right
            mention(20, 30, "Disease", "D002"),  # span right, only one of the two IDs
            mention(40, 51, "Chemical", "C001"),  # boundary wrong, concept right
            mention(60, 70, "Disease", ""),  # NIL predicted as NIL
            mention(95, 99, "Disease", "MESH:D004"),  # spurious, unnormalized ID
        ],
        index=0,
    ),
    doc("222", [mention(5, 15, "Disease", "C002")], index=1),  # wrong type, right ID
]


def test_ner_mention_strict():
    r = ner_prf(GOLD, PRED)
    # gold 6 mentions; right: (0,10), (20,30), (60,70)
    assert (r.tp, r.fp, r.fn) == (3, 3, 3)
    d = ner_prf(GOLD, PRED, types={"Disease"})
    assert (d.tp, d.fp, d.fn) == (3, 2, 1)
    c = ner_prf(GOLD, PRED, types="Chemical")
    assert (c.tp, c.fp, c.fn) == (0, 1, 2)


def test_men_mention_span_and_id_set_type_ignored_nil_excluded():
    gold, pred = protocol_keys(GOLD, PRED, MEN_MENTION)
    assert ("111#0", 20, 30, ("D002", "D003")) in gold
    assert not any(k[1] == 60 for k in gold | pred)  # NIL out of both sides
    r = men_mention_prf(GOLD, PRED)
    # gold: 0-10 D001, 20-30 {D002,D003}, 40-50 C001, 80-90 D001, 222: 5-15 C002 -> 5
    # pred: 0-10 D001 (tp), 20-30 {D002} (fp), 40-51 (fp), 95-99 D004 (fp), 222 5-15 C002 (tp, type ignored)
    assert (r.tp, r.fp, r.fn) == (2, 3, 3)
    assert r.precision == pytest.approx(0.4)
    assert r.recall == pytest.approx(0.4)


def test_recall_by_training_text_splits_gold_by_whether_a_training_mention_has_its_text():
    def named(start, text, type_="Disease", concept="D001"):
        return Mention(start, start + len(text), text, type_, concept)

    training = [doc("9", [named(0, "Breast Cancer"), named(30, "aspirin", "Chemical")])]
    gold = [
        doc(
            "1",
            [
                named(0, "breast cancer"),  # seen (case ignored): found with its concept
                named(20, "ataxia"),  # unseen: found, wrong concept
                named(40, "aspirin"),  # seen only as a Chemical: unseen once types are restricted
                named(60, "gout", concept=""),  # unseen, NIL: counts for NER only
            ],
        )
    ]
    pred = [doc("1", [named(0, "breast cancer"), named(20, "ataxia", concept="D009"), named(80, "pain")])]
    split = recall_by_training_text(gold, pred, training)
    assert split["seen"] == {"mentions": 2, "ner_recall": 0.5, "men_mentions": 2, "men_recall": 0.5}
    assert split["unseen"] == {"mentions": 2, "ner_recall": 0.5, "men_mentions": 1, "men_recall": 0.0}
    assert split["training_texts"] == 2 and split["ner_precision"] == pytest.approx(2 / 3)
    disease = recall_by_training_text(gold, pred, training, types="Disease")
    assert disease["seen"]["mentions"] == 1 and disease["unseen"]["mentions"] == 3
    assert disease["training_texts"] == 1


def test_men_mention_nil_gold_predicted_with_id_is_a_false_positive():
    gold = [doc("1", [mention(0, 5, "Disease", "-1")])]
    pred = [doc("1", [mention(0, 5, "Disease", "D009")])]
    r = men_mention_prf(gold, pred)
    assert (r.tp, r.fp, r.fn) == (0, 1, 0)
    assert ner_prf(gold, pred).tp == 1


def test_men_document_bc5cdr_concept_level():
    gold, pred = protocol_keys(GOLD, PRED, MEN_DOCUMENT)
    assert gold == {
        ("111#0", "Disease", "D001"),  # twice in the text, counted once
        ("111#0", "Disease", "D002"),
        ("111#0", "Disease", "D003"),
        ("111#0", "Chemical", "C001"),
        ("222#1", "Chemical", "C002"),
    }
    assert pred == {
        ("111#0", "Disease", "D001"),
        ("111#0", "Disease", "D002"),
        ("111#0", "Chemical", "C001"),
        ("111#0", "Disease", "D004"),
        ("222#1", "Disease", "C002"),
    }
    r = men_document_prf(GOLD, PRED)
    assert (r.tp, r.fp, r.fn) == (3, 2, 2)
    d = men_document_prf(GOLD, PRED, types=["Disease"])
    assert (d.tp, d.fp, d.fn) == (2, 2, 1)


def test_men_document_same_concept_in_two_documents_counts_twice():
    gold = [doc("1", [mention(0, 5, "Disease", "D1")]), doc("2", [mention(0, 5, "Disease", "D1")], 1)]
    pred = [doc("1", [mention(0, 5, "Disease", "D1")]), doc("2", [], 1)]
    r = men_document_prf(gold, pred)
    assert (r.tp, r.fp, r.fn) == (1, 0, 1)


def test_evaluate_documents_is_json_ready_with_per_type():
    result = evaluate_documents(GOLD, PRED)
    assert json.loads(json.dumps(result)) == result
    assert set(result["protocols"]) == set(PROTOCOLS) == {NER_MENTION_STRICT, MEN_MENTION, MEN_DOCUMENT}
    ner = result["protocols"][NER_MENTION_STRICT]
    assert (ner["tp"], ner["fp"], ner["fn"]) == (3, 3, 3)
    assert ner["per_type"]["Disease"]["tp"] == 3
    assert ner["per_type"]["Chemical"]["fn"] == 2
    men = result["protocols"][MEN_MENTION]
    assert (men["tp"], men["fp"], men["fn"]) == (2, 3, 3)
    # 222's C002 is right overall (type ignored) but per type it is a Chemical miss and a Disease error
    chem, dis = men["per_type"]["Chemical"], men["per_type"]["Disease"]
    assert (chem["tp"], chem["fp"], chem["fn"], dis["tp"], dis["fp"], dis["fn"]) == (0, 1, 2, 1, 3, 2)
    mdoc = result["protocols"][MEN_DOCUMENT]
    assert (mdoc["tp"], mdoc["fp"], mdoc["fn"]) == (3, 2, 2)
    assert mdoc["per_type"]["Disease"]["f1"] == pytest.approx(4 / 7)
    assert result["documents"] == 2 and result["types"] is None

    only = evaluate_documents(GOLD, PRED, types=["Chemical"])
    assert set(only["protocols"][NER_MENTION_STRICT]["per_type"]) == {"Chemical"}
    assert only["protocols"][MEN_DOCUMENT]["tp"] == 1


def test_evaluate_empty_gold_and_empty_prediction():
    gold = [doc("1", [])]
    empty = evaluate_documents(gold, [doc("1", [])])
    for entry in empty["protocols"].values():
        assert (entry["tp"], entry["fp"], entry["fn"], entry["f1"]) == (0, 0, 0, 0.0)
        assert entry["per_type"] == {}
    none_predicted = evaluate_documents(GOLD, [])
    ner = none_predicted["protocols"][NER_MENTION_STRICT]
    assert (ner["tp"], ner["fp"], ner["fn"], ner["precision"], ner["f1"]) == (0, 0, 6, 0.0, 0.0)
    assert evaluate_documents([], [])["protocols"][MEN_DOCUMENT]["f1"] == 0.0


# --- aligning documents ----------------------------------------------------------------------------


def test_align_by_position_when_pmids_match_in_order():
    gold = [doc("5", [], 0), doc("5", [], 1), doc("7", [], 2)]  # a PMID twice, as in NCBI training
    pred = [doc("5", [], 10), doc("5", [], 11), doc("7", [], 12)]  # other indices (another file)
    pairs = align_documents(gold, pred)
    assert [(g.index, p.index) for g, p in pairs] == [(0, 10), (1, 11), (2, 12)]


def test_align_subset_by_uid_then_pmid():
    gold = [doc("5", [], 0), doc("5", [], 1), doc("7", [], 2), doc("9", [], 3)]
    pred = [doc("7", [], 0), doc("5", [], 1)]  # read back from a file holding two documents
    pairs = align_documents(gold, pred)
    assert [(g.uid, p.uid if p else None) for g, p in pairs] == [
        ("5#0", None),
        ("5#1", "5#1"),
        ("7#2", "7#0"),
        ("9#3", None),
    ]
    # keys use the gold uid
    g, p = protocol_keys([doc("7", [mention(0, 1)], 2)], [doc("7", [mention(0, 1)], 0)], NER_MENTION_STRICT)
    assert g == p == {("7#2", 0, 1, "Disease")}


def test_align_errors_name_the_pmid():
    gold = [doc("5", [], 0), doc("5", [], 1), doc("7", [], 2)]
    with pytest.raises(ValueError, match="PMID 8"):
        align_documents(gold, [doc("8", [])])
    with pytest.raises(ValueError, match="PMID 5.*ambiguous"):
        align_documents(gold, [doc("5", [], 4)])
    with pytest.raises(ValueError, match="two predicted documents.*PMID 7"):
        align_documents(gold, [doc("7", [], 0), doc("7", [], 1)])


def test_pairs_must_carry_the_same_text():
    gold = [Document("5", "Title.", "Abstract one.", index=0), Document("7", "Other.", "Text.", index=1)]
    other = Document("5", "Title.", "Abstract two.", source="pred.txt", index=0)
    with pytest.raises(DocumentMismatchError) as caught:  # paired by position: same PMIDs, same order
        align_documents(gold, [other, gold[1]])
    err = caught.value
    assert isinstance(err, ValueError) and (err.path, err.index) == ("pred.txt", 0)
    assert "PMID 5: the text differs" in err.message and "at offset 16: 'two.' where gold has 'one.'" in (
        err.message
    )
    with pytest.raises(DocumentMismatchError, match="PMID 5: the text differs"):  # paired by uid
        align_documents(gold, [other])
    shorter = Document("7", "Other.", "", source="pred.txt", index=3)  # a prefix of the gold text
    with pytest.raises(DocumentMismatchError, match="at offset 6: '' where gold has ' Text.'"):
        align_documents(gold, [shorter])


def test_a_repeated_pmid_is_paired_by_its_text():
    """NCBI's training file holds PMID 8528200 twice, as two different abstracts."""
    first = Document("8528200", "First.", "One.", [mention(0, 5)], index=0)
    second = Document("8528200", "Second.", "Two.", [mention(0, 6)], index=1)
    gold = [first, second, Document("9", "x", "y", index=2)]
    # the second abstract alone, read back from a file of its own (index 0 there): not the first one
    pred = [Document("8528200", "Second.", "Two.", [mention(0, 6)], source="pred.txt", index=5)]
    pairs = align_documents(gold, pred)
    assert [(g.uid, p is not None) for g, p in pairs] == [
        ("8528200#0", False),
        ("8528200#1", True),
        ("9#2", False),
    ]
    assert ner_prf(gold, pred).tp == 1
    # swapped within a file with the same PMID order: the position pairing is refused, not mis-scored
    with pytest.raises(DocumentMismatchError, match="PMID 8528200: the text differs"):
        align_documents(gold, [second, first, gold[2]])


# --- analyses --------------------------------------------------------------------------------------


def test_boundary_inconsistency():
    mer = [mention(0, 5), mention(10, 20), mention(30, 40), mention(30, 40, "Chemical")]
    men = [mention(0, 5, "Chemical", "D1"), mention(10, 21), mention(50, 60)]
    r = boundary_inconsistency(mer, men)
    # spans: mer {0-5, 10-20, 30-40}, men {0-5, 10-21, 50-60}; union 5, differing 4
    assert r == {"mer_only": 2, "men_only": 2, "inconsistent": 4, "union": 5, "ratio": 0.8}
    assert boundary_inconsistency([], [])["ratio"] == 0.0
    same = boundary_inconsistency(mention_spans(GOLD), mention_spans(GOLD))
    assert (same["inconsistent"], same["union"], same["ratio"]) == (0, 6, 0.0)


def test_oov_partition():
    train = {"breast", "cancer", "Renal"}
    emb = {"breast", "cancer", "failure", "renal"}
    entities = [
        ["Breast", "cancer"],  # IV (lowercased)
        ["renal", "failure"],  # failure not in training, all in embeddings -> OOTV
        ["renal", "cancer"],  # IV
        ["cancer", "xq28"],  # xq28 out of both -> OOBV
        ["failure", "breast"],  # OOTV
        "breast carcinoma",  # string, split on spaces: carcinoma out of both -> OOBV
        ["Renal"],  # IV lowercased
    ]
    assert oov_partition(entities, train, emb) == {
        "IV": [0, 2, 6],
        "OOTV": [1, 4],
        "OOEV": [],
        "OOBV": [3, 5],
    }
    train2 = {"breast", "cancer", "tumour"}
    emb2 = {"breast", "cancer", "carcinoma"}
    parts = oov_partition(
        [["breast", "tumour"], ["breast", "carcinoma"], ["tumour", "carcinoma"], ["Breast"]],
        train2,
        emb2,
        lowercase=False,
    )
    # tumour: in training only -> OOEV; carcinoma: in embeddings only -> OOTV; mixed -> OOBV
    assert parts == {"IV": [], "OOTV": [1], "OOEV": [0], "OOBV": [2, 3]}


def test_prf_on_subset():
    gold = {("d", 0, 5, "X"), ("d", 10, 20, "X"), ("d", 30, 35, "X"), ("e", 0, 5, "X")}
    subset = {("d", 10, 20, "X"), ("e", 0, 5, "X")}
    pred = {
        ("d", 10, 20, "X"),  # tp
        ("d", 12, 25, "X"),  # overlaps subset span -> fp
        ("d", 15, 18, "Y"),  # overlaps, wrong type -> fp
        ("d", 0, 5, "X"),  # right, but another gold mention -> not counted
        ("d", 3, 11, "X"),  # overlaps 0-5 and 10-20 -> fp (it touches the subset)
        ("d", 20, 30, "X"),  # touches 10-20 only at its end (half-open) -> not counted
        ("e", 6, 9, "X"),  # overlaps nothing -> not counted
    }
    r = prf_on_subset(gold, pred, subset)
    assert (r.tp, r.fp, r.fn) == (1, 3, 1)
    assert r.precision == pytest.approx(0.25)
    assert r.recall == pytest.approx(0.5)
    with pytest.raises(ValueError):
        prf_on_subset(gold, pred, {("z", 0, 1, "X")})
    empty = prf_on_subset(gold, set(), set())
    assert (empty.tp, empty.fp, empty.fn, empty.f1) == (0, 0, 0, 0.0)


def test_unknown_protocol():
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_keys([], [], "men-concept")
