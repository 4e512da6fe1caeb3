"""Charts and displays build on the sample corpus; HTML is escaped and shows every mention."""

import json

import altair as alt
import pytest

from mernlib.corpus import Document, Mention, corpus_stats
from mernlib.sample import build_sample, entity_base
from mernlib.viz import (
    RENDERER,
    concept_name,
    document_browser,
    highlight_html,
    mention_length_chart,
    stats_table,
    top_concepts_chart,
    use_offline_charts,
)


@pytest.fixture(scope="module")
def sample():
    return build_sample()


def _values(spec: dict) -> list[dict]:
    if "datasets" in spec:
        return next(iter(spec["datasets"].values()))
    return spec["data"]["values"]


@pytest.mark.parametrize("unit", ["words", "characters"])
def test_mention_length_chart_is_aggregated(sample, unit):
    docs = sample["train"]
    spec = mention_length_chart(docs, unit=unit).to_dict()
    json.dumps(spec)
    rows = _values(spec)
    assert sum(r["mentions"] for r in rows) == sum(len(d.mentions) for d in docs)
    assert len(rows) < 100
    assert {r["type"] for r in rows} == {"Chemical", "Disease"}


def test_mention_length_chart_caps_long_mentions():
    doc = Document("1", "a b c d e f g h i j k l", "", [Mention(0, 23, "a b c d e f g h i j k l", "Disease")])
    rows = _values(mention_length_chart([doc], max_length=5).to_dict())
    assert rows == [{"type": "Disease", "length": ">5", "order": 6, "mentions": 1}]
    with pytest.raises(ValueError):
        mention_length_chart([doc], unit="tokens")


def test_top_concepts_chart_names_and_k(sample):
    docs = [d for split in sample.values() for d in split]
    base = {cid: name for cid, name, _ in entity_base()}
    rows = _values(top_concepts_chart(docs, base, k=7).to_dict())
    assert len(rows) == 7
    counts = [r["mentions"] for r in rows]
    assert counts == sorted(counts, reverse=True)
    assert all(r["label"] == f"{base[r['concept']]} ({r['concept']})" for r in rows)
    rows = _values(top_concepts_chart(docs).to_dict())
    assert len(rows) == 20 and all(r["label"] == r["concept"] for r in rows)
    assert all(r["concept"] != "-1" for r in rows)


def test_concept_name_accepts_common_entity_base_shapes():
    assert concept_name({"D1": "One"}, "D1") == "One"
    assert concept_name({"D1": ("One", "def")}, "D1") == "One"
    assert concept_name({"D1": {"name": "One"}}, "D1") == "One"
    assert concept_name({"217000": "C2D"}, "OMIM:217000") == "C2D"
    assert concept_name({}, "D1") is None


def test_stats_table_layout(sample):
    table = stats_table({split: corpus_stats(docs) for split, docs in sample.items()})
    assert table.shape == (5, 3)
    assert list(table.index) == [
        "articles",
        "Chemical mentions",
        "Disease mentions",
        "mentions",
        "unique concepts",
    ]
    assert list(table.columns) == ["train", "dev", "test"]
    assert table.loc["articles", "train"] == 80
    stats = corpus_stats(sample["test"])
    assert table.loc["Disease mentions", "test"] == stats["mentions_per_type"]["Disease"]
    assert table.loc["unique concepts", "test"] == stats["concepts"]
    # documents are counted on the fly; a type one corpus lacks counts 0
    only_genetic = [d for d in sample["dev"] if all(m.type == "Disease" for m in d.mentions)][:1]
    table = stats_table({"sample": sample["dev"], "one": only_genetic})
    assert table.loc["articles", "sample"] == 20
    assert table.loc["Chemical mentions", "one"] == 0
    assert "<table" in table._repr_html_()


def test_highlight_html_escapes_and_shows_every_mention():
    title = "Effects of <b>x</b> & y."
    abstract = 'Dose <5 mg of "drug" caused high blood pressure.'
    doc = Document("42", title, abstract)
    text = doc.text

    def at(s, t, concept):
        start = text.index(s)
        return Mention(start, start + len(s), s, t, concept)

    doc.mentions = [
        at("<b>x</b>", "Chemical", "-1"),
        at('"drug"', "Chemical", "D1"),
        at("high blood pressure", "Disease", "D006973"),
        at("blood pressure", "Disease", "D2"),
    ]
    out = highlight_html(doc)
    assert "<b>x</b>" not in out and "&lt;b&gt;x&lt;/b&gt;" in out
    assert "&lt;5 mg" in out and "&amp; y" in out and "&quot;drug&quot;" in out
    assert out.count("<mark") == 4  # the nested mention is listed below the text
    assert "Overlapping mentions" in out
    assert "D006973</sup>" in out and "NIL</sup>" in out
    assert out.index("<b>") < out.index("Effects") < out.index("</b>") < out.index("Dose")
    assert "<sup" not in highlight_html(doc, show_ids=False)
    assert highlight_html(doc, mentions=[]).count("<mark") == 0
    named = highlight_html(doc, entity_base={"D006973": "Hypertension"})
    assert 'title="Disease: D006973 (Hypertension)"' in named
    with pytest.raises(ValueError):
        highlight_html(doc, mentions=[Mention(0, 999, "x", "Disease")])


def test_highlight_html_on_the_sample(sample):
    for doc in sample["test"]:
        out = highlight_html(doc)
        assert out.count("<mark") == len(doc.mentions)
        assert "Overlapping" not in out


def test_document_browser_updates_on_selection(sample):
    widgets = pytest.importorskip("ipywidgets")
    docs = sample["dev"][:3]
    browser = document_browser(docs)
    assert isinstance(browser, widgets.VBox)
    picker, view = browser.children
    assert docs[0].pmid in view.value
    picker.value = 2
    assert docs[2].pmid in view.value
    with pytest.raises(ValueError):
        document_browser([])


def test_charts_display_as_pictures_drawn_in_python(sample):
    """Importing mernlib.viz makes charts SVG + PNG made by vl-convert: no JavaScript, no CDN."""
    assert alt.renderers.active == RENDERER
    bundle, metadata = mention_length_chart(sample["train"])._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml", "image/png"}
    svg = bundle["image/svg+xml"]
    assert svg.startswith("<svg") and 'class="mark-rect role-mark' in svg
    assert bundle["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert f'width="{metadata["image/png"]["width"]}"' in svg[:300]


def test_use_offline_charts_comes_back_after_another_renderer():
    alt.renderers.enable("default")
    try:
        use_offline_charts()
        assert alt.renderers.active == RENDERER
    finally:
        use_offline_charts()
