"""The bundled sample corpus: shape, consistency, and byte-identical regeneration of data/sample."""

import re
import warnings
from pathlib import Path

import pytest

from mernlib import pubtator
from mernlib.corpus import NIL, normalize_concept
from mernlib.sample import (
    CHEMICALS,
    DISEASES,
    GENETIC,
    IOB_DATASETS,
    IOB_SPLIT_SIZES,
    build_iob,
    build_sample,
    write_sample,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture(scope="module")
def sample():
    return build_sample()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_regenerating_gives_the_committed_files_byte_for_byte(tmp_path):
    write_sample(tmp_path)
    committed, fresh = _files(SAMPLE), _files(tmp_path)
    assert sorted(fresh) == sorted(committed), "data/sample is stale: run python -m mernlib.sample"
    for name, data in fresh.items():
        assert data == committed[name], f"data/sample/{name} differs: run python -m mernlib.sample"


def test_deterministic_for_a_seed_and_different_for_another():
    a, b, c = build_sample(13), build_sample(13), build_sample(14)
    assert pubtator.format_pubtator(a["train"]) == pubtator.format_pubtator(b["train"])
    assert pubtator.format_pubtator(a["train"]) != pubtator.format_pubtator(c["train"])
    assert build_iob(13) == build_iob(13)


def test_size_budget():
    assert sum(len(b) for b in _files(SAMPLE).values()) < 300_000


def test_split_sizes_and_sentences(sample):
    assert {k: len(v) for k, v in sample.items()} == {"train": 80, "dev": 20, "test": 20}
    pmids = [d.pmid for docs in sample.values() for d in docs]
    assert len(set(pmids)) == len(pmids)
    for doc in (d for docs in sample.values() for d in docs):
        sentences = re.findall(r"[.!?](?= [A-Z0-9]|$)", doc.abstract)
        assert 4 <= len(sentences) <= 6, doc.abstract


def test_offsets_index_the_title_and_abstract_joined_by_one_space(sample):
    for doc in (d for docs in sample.values() for d in docs):
        assert doc.text == doc.title + " " + doc.abstract
        for m in doc.mentions:
            assert doc.text[m.start : m.end] == m.text
            assert m.type in {"Chemical", "Disease"}
            assert m.concept == normalize_concept(m.concept)


def test_every_lexicon_name_in_the_text_is_annotated(sample):
    names = {f for c in (*CHEMICALS, *DISEASES, *(g for g, _ in GENETIC)) for f in (*c.forms, *c.eval_forms)}
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")(?![\w-])",
        re.IGNORECASE,
    )
    for doc in (d for docs in sample.values() for d in docs):
        spans = [(m.start, m.end) for m in doc.mentions]
        for hit in pattern.finditer(doc.text):
            assert any(s <= hit.start() and hit.end() <= e for s, e in spans), (doc.pmid, hit.group())


def test_the_quirks_the_real_corpora_have_are_present(sample):
    mentions = [m for docs in sample.values() for d in docs for m in d.mentions]
    composite = [m for m in mentions if len(m.ids) > 1]
    assert any(m.concept == "D014786|D006311" for m in composite)
    assert all(len(m.attrs["parts"]) == len(m.ids) for m in composite)
    assert any(m.concept == NIL and m.type == "Chemical" for m in mentions)
    assert any(i.startswith("OMIM:") for m in mentions for i in m.ids)
    assert any(m.text == "NIDDM" and m.concept == "D003924" for m in mentions)
    assert any(m.text.lower() == "high blood pressure" and m.concept == "D006973" for m in mentions)
    relations = [r for docs in sample.values() for d in docs for r in d.relations]
    assert relations and all(r.type == "CID" for r in relations)
    for doc in (d for docs in sample.values() for d in docs):
        ids = {i for m in doc.mentions for i in m.ids}
        assert all(r.arg1 in ids and r.arg2 in ids for r in doc.relations)


def test_test_split_has_names_and_concepts_unseen_in_train(sample):
    train_names = {m.text.lower() for d in sample["train"] for m in d.mentions}
    train_ids = {i for d in sample["train"] for m in d.mentions for i in m.ids}
    test_mentions = [m for d in sample["test"] for m in d.mentions]
    assert sum(m.text.lower() not in train_names for m in test_mentions) >= 5
    assert any(i not in train_ids for m in test_mentions for i in m.ids)


def test_entities_tsv_covers_every_concept_in_mesh_tsv_layout(sample):
    rows = [line.split("\t") for line in (SAMPLE / "entities.tsv").read_text(encoding="utf-8").splitlines()]
    assert all(len(r) == 3 and all(r) for r in rows)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    used = {i for docs in sample.values() for d in docs for m in d.mentions for i in m.ids}
    assert used <= set(ids)


def test_pubtator_files_read_back_to_the_same_annotations(sample):
    read = getattr(pubtator, "read_pubtator", None)
    if read is None:
        pytest.skip("mernlib.pubtator.read_pubtator not available yet")
    for split, docs in sample.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the sample needs no repair
            back = read(SAMPLE / f"{split}.pubtator")
        assert [(d.pmid, d.title, d.abstract) for d in back] == [(d.pmid, d.title, d.abstract) for d in docs]
        assert [[m.key() for m in d.mentions] for d in back] == [[m.key() for m in d.mentions] for d in docs]
        assert [[(r.type, r.arg1, r.arg2) for r in d.relations] for d in back] == [
            [(r.type, r.arg1, r.arg2) for r in d.relations] for d in docs
        ]


@pytest.mark.parametrize("name", list(IOB_DATASETS))
def test_iob_files_in_crichton_layout(name):
    tag = IOB_DATASETS[name]["tag"]
    for split, size in IOB_SPLIT_SIZES.items():
        text = (SAMPLE / "iob" / name / f"{split}.tsv").read_text(encoding="utf-8")
        assert text.endswith("\n\n") and "\n\n\n" not in text
        sentences = text[:-2].split("\n\n")
        assert len(sentences) == size
        entities = 0
        for sentence in sentences:
            previous = "O"
            for line in sentence.split("\n"):
                token, label = line.split("\t")
                assert token and not token.isspace()
                assert label in ("O", f"B-{tag}", f"I-{tag}"), line
                assert not (label.startswith("I-") and previous == "O"), sentence
                entities += label.startswith("B-")
                previous = label
        assert entities > 0, (name, split)
