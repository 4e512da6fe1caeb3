"""The kit's charts and displays. Every function *returns* an object; the notebook displays it.

* :func:`mention_length_chart`, :func:`top_concepts_chart`: Altair charts. Data are always aggregated
  in Python first (one row per bar), so a full corpus never hits Altair's 5,000-row limit and the
  saved notebook stays small.
* :func:`stats_table`: the papers' Table 1 (rows: articles, mentions per type, unique concepts;
  one column per corpus) as a pandas DataFrame.
* :func:`highlight_html`: one document as HTML, each mention a colored ``<mark>`` with its concept ID.
* :func:`document_browser`: an ipywidgets browser over documents (interactive sessions only).

**How charts are displayed.** Importing this module makes every Altair chart display as a picture drawn in
Python (:func:`use_offline_charts`): an SVG, plus a PNG copy, made by ``vl-convert-python`` (which carries
Vega itself). Nothing is fetched from the internet and no JavaScript runs, so a chart draws the same in
JupyterLab, in exported HTML, on Binder and on Colab, with or without a network. Altair's own renderers all
need JavaScript from somewhere: ``"default"`` loads Vega from a CDN (offline, and in a notebook exported to
HTML and opened without a network, only "Error loading script" shows); ``"mimetype"`` relies on JupyterLab's
built-in Vega renderer, which handles Vega-Lite 3 to 5 but not the 6 that Altair 6 writes; the ``"jupyter"``
widget needs a live kernel. The price is interactivity (tooltips, zoom); in a live session with a network,
``alt.renderers.enable("default")`` brings it back for the rest of the session.
"""

from __future__ import annotations

import html
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import altair as alt

from .corpus import NIL, Document, Mention, corpus_stats

if TYPE_CHECKING:
    import pandas as pd

TYPE_COLORS = {
    "Chemical": "#b3e2cd",
    "Disease": "#fdcdac",
    "Gene": "#cbd5e8",
    "GENE": "#cbd5e8",
    "Species": "#f4cae4",
}
"""Background colors of mention types in :func:`highlight_html` (others get :data:`_EXTRA_COLORS`)."""
_EXTRA_COLORS = ("#e6f5c9", "#fff2ae", "#f1e2cc", "#d9d9d9", "#c6dbef", "#fcbba1")


# --------------------------------------------------------------------------------------------------
# How charts are displayed
# --------------------------------------------------------------------------------------------------

RENDERER = "mernlib-offline"
"""The name of :func:`chart_mimebundle` in Altair's renderer registry (``alt.renderers``)."""
PNG_SCALE = 2
"""The PNG copy is drawn at twice the SVG's size and shown at the SVG's size: sharp on high-DPI screens."""


def chart_mimebundle(spec: dict, **metadata) -> tuple[dict, dict]:
    """An Altair renderer: the chart ``spec`` (a Vega-Lite dict) as ``image/svg+xml`` and ``image/png``.

    Both are drawn in Python by ``vl-convert-python``, so displaying a chart needs neither JavaScript nor a
    network. Each frontend picks what it can show: nbconvert's HTML, Colab and a trusted JupyterLab
    notebook the SVG (sharp, text selectable); JupyterLab shows an *untrusted* notebook's SVG not at all (an
    executed notebook from ``runs/`` opened later is untrusted until you trust it) and falls back to the
    PNG, as do PDF exports. Renderer options (``alt.renderers.enable(..., **options)``) are ignored.
    """
    try:
        import vl_convert as vlc  # noqa: F401  (the import is the check)
    except ImportError:
        warnings.warn(
            "charts need vl-convert-python (a dependency of mernlib: pip install vl-convert-python); "
            "falling back to Altair's default renderer, which loads Vega from the internet",
            stacklevel=2,
        )
        return alt.renderers.get_renderer("default")(spec, **metadata), {}
    from altair.utils.mimebundle import spec_to_mimebundle

    # Altair's own SVG path: it hands vl-convert the Vega-Lite version Altair writes, and its locale.
    svg = spec_to_mimebundle(spec, format="svg", mode="vega-lite")["image/svg+xml"]
    png = vlc.svg_to_png(svg, scale=PNG_SCALE)
    size = _svg_size(svg)
    return {"image/svg+xml": svg, "image/png": png}, ({"image/png": size} if size else {})


def _svg_size(svg: str) -> dict[str, int]:
    match = re.search(r'<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"', svg[:1000])
    if not match:
        return {}
    return {"width": round(float(match.group(1))), "height": round(float(match.group(2)))}


def use_offline_charts() -> None:
    """Display every Altair chart as an SVG/PNG picture drawn in Python (:func:`chart_mimebundle`).

    Called when :mod:`mernlib.viz` is imported, so a notebook's ``import mernlib.viz`` is the one line that
    sets it; it replaces only Altair's ``"default"`` renderer: a renderer chosen explicitly before stays.
    Call it again after ``alt.renderers.enable(...)`` to come back to offline charts.
    """
    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, chart_mimebundle)
    alt.renderers.enable(RENDERER)


if alt.renderers.active == "default":
    use_offline_charts()


# --------------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------------


def mention_length_chart(
    documents: Iterable[Document], unit: str = "words", max_length: int = 10
) -> alt.Chart:
    """Bar chart of mention lengths, one panel (and color) per mention type.

    ``unit="words"`` counts whitespace-separated words (independent of the kit's tokenizer);
    ``unit="characters"`` counts characters. Lengths above ``max_length`` (words) share one bar,
    labelled ``">N"``; characters are not capped.
    """
    if unit not in ("words", "characters"):
        raise ValueError(f"unit must be 'words' or 'characters', not {unit!r}")
    counts: Counter = Counter()
    for doc in documents:
        for m in doc.mentions:
            n = len(m.text.split()) if unit == "words" else len(m.text)
            counts[(m.type, n)] += 1
    rows = []
    for (mention_type, n), count in sorted(counts.items()):
        capped = unit == "words" and n > max_length
        label, order = (f">{max_length}", max_length + 1) if capped else (str(n), n)
        rows.append({"type": mention_type, "length": label, "order": order, "mentions": count})
    rows = _merge(rows, ("type", "length", "order"), "mentions")
    order = list(dict.fromkeys(r["length"] for r in sorted(rows, key=lambda r: r["order"])))
    return (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            x=alt.X("length:O", sort=order, title=f"mention length ({unit})"),
            y=alt.Y("mentions:Q", title="mentions"),
            color=alt.Color("type:N", title="type"),
            column=alt.Column("type:N", title=None),
            tooltip=["type:N", "length:O", "mentions:Q"],
        )
        .properties(width=220, height=180, title="Mention length")
    )


def top_concepts_chart(
    documents: Iterable[Document], entity_base: Mapping | None = None, k: int = 20
) -> alt.Chart:
    """Horizontal bars of the ``k`` most frequently mentioned concepts (each ID of a composite mention
    counts; NIL and unnormalized mentions do not). With ``entity_base`` (ID -> name, or ID -> a record with
    a name), bars are labelled ``"name (ID)"``; otherwise by ID. Colored by the concept's mention type."""
    counts: Counter = Counter()
    types: dict[str, Counter] = {}
    for doc in documents:
        for m in doc.mentions:
            for cid in m.ids:
                counts[cid] += 1
                types.setdefault(cid, Counter())[m.type] += 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    rows = []
    for cid, count in top:
        name = concept_name(entity_base, cid) if entity_base is not None else None
        rows.append(
            {
                "concept": cid,
                "label": f"{name} ({cid})" if name else cid,
                "type": types[cid].most_common(1)[0][0],
                "mentions": count,
            }
        )
    return (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=[r["label"] for r in rows], title=None),
            x=alt.X("mentions:Q", title="mentions"),
            color=alt.Color("type:N", title="type"),
            tooltip=["concept:N", "label:N", "type:N", "mentions:Q"],
        )
        .properties(width=360, height=alt.Step(16), title=f"Top {len(rows)} concepts")
    )


def _merge(rows: list[dict], keys: tuple[str, ...], value: str) -> list[dict]:
    merged: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        if key in merged:
            merged[key][value] += r[value]
        else:
            merged[key] = dict(r)
    return list(merged.values())


def concept_name(entity_base: Mapping | None, concept_id: str) -> str | None:
    """The name of ``concept_id`` in ``entity_base``, or None. Values may be a name, a ``(name, ...)``
    tuple, a mapping with ``"name"`` or an object with ``.name``; OMIM IDs are also looked up bare."""
    if not entity_base:
        return None
    value = entity_base.get(concept_id)
    if value is None and concept_id.startswith("OMIM:"):
        value = entity_base.get(concept_id[5:])
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return value.get("name")
    if isinstance(value, (tuple, list)):
        return str(value[0]) if value else None
    name = getattr(value, "name", None)
    return str(name) if name is not None else None


# --------------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------------


def stats_table(stats_by_corpus: Mapping[str, dict | list[Document]]) -> pd.DataFrame:
    """Corpus statistics laid out like the papers' Table 1: one column per corpus, rows ``articles``,
    ``<Type> mentions`` (one row per type, in alphabetical order), ``mentions`` (all types) and
    ``unique concepts``.

    Each value is a :func:`mernlib.corpus.corpus_stats` dict or a list of documents (counted here).
    Returns a pandas DataFrame of ints (a count a corpus lacks is 0).
    """
    stats = {
        name: corpus_stats(list(v)) if not isinstance(v, Mapping) else v
        for name, v in stats_by_corpus.items()
    }
    types = sorted({t for s in stats.values() for t in s.get("mentions_per_type", {})})
    index = ["articles", *[f"{t} mentions" for t in types], "mentions", "unique concepts"]
    columns = list(stats)
    data = {}
    for name, s in stats.items():
        per_type = s.get("mentions_per_type", {})
        data[name] = [
            int(s.get("documents", s.get("articles", 0))),
            *[int(per_type.get(t, 0)) for t in types],
            int(s.get("mentions", sum(per_type.values()))),
            int(s.get("concepts", s.get("unique_concepts", 0))),
        ]
    import pandas as pd  # a dependency of the kit (Altair 6 no longer brings it)

    frame = pd.DataFrame(data, index=index, columns=columns)
    frame.columns.name = "corpus"
    return frame


# --------------------------------------------------------------------------------------------------
# Documents as HTML
# --------------------------------------------------------------------------------------------------


def type_colors(types: Iterable[str]) -> dict[str, str]:
    """A color per mention type: :data:`TYPE_COLORS` first, then a fixed palette in sorted type order."""
    out, extra = {}, 0
    for t in sorted(set(types)):
        if t in TYPE_COLORS:
            out[t] = TYPE_COLORS[t]
        else:
            out[t] = _EXTRA_COLORS[extra % len(_EXTRA_COLORS)]
            extra += 1
    return out


def _label(m: Mention) -> str:
    return "NIL" if m.concept == NIL else m.concept


def highlight_html(
    document: Document,
    mentions: Iterable[Mention] | None = None,
    show_ids: bool = True,
    entity_base: Mapping | None = None,
) -> str:
    """``document`` as an HTML fragment: the title in bold, then the abstract; every mention (by default
    the document's own; pass ``mentions`` to show e.g. a model's predictions) is a ``<mark>`` colored by
    type, with its concept ID as a superscript (``show_ids``) and type, ID (and name, given
    ``entity_base``) in the tooltip. NIL (``-1``) shows as ``NIL``. All text is HTML-escaped.

    Overlapping mentions cannot all be inline: those that overlap an earlier, longer one are listed
    below the text, so every mention is shown exactly once.
    """
    mentions = list(document.mentions if mentions is None else mentions)
    text = document.text
    for m in mentions:
        if not (0 <= m.start < m.end <= len(text)):
            raise ValueError(f"mention {m.text!r} [{m.start}, {m.end}) is outside document {document.uid}")
    colors = type_colors(m.type for m in mentions)
    inline, overlapping, end = [], [], -1
    for m in sorted(mentions, key=lambda m: (m.start, -m.end, m.type, m.concept)):
        (inline if m.start >= end else overlapping).append(m)
        if m.start >= end:
            end = m.end

    def mark(m: Mention, content: str) -> str:
        tip = f"{m.type}: {_label(m)}" if m.concept else m.type
        names = [concept_name(entity_base, i) for i in m.ids] if entity_base is not None else []
        if any(names):
            tip += " (" + "; ".join(n or "?" for n in names) + ")"
        sup = (
            f'<sup style="font-size:70%;margin-left:2px">{html.escape(_label(m))}</sup>'
            if show_ids and m.concept
            else ""
        )
        return (
            f'<mark class="mernlib-mention" data-type="{html.escape(m.type)}" title="{html.escape(tip)}" '
            f'style="background:{colors[m.type]};padding:0 2px;border-radius:3px">{content}{sup}</mark>'
        )

    title_end = len(document.title)
    parts = ["<b>"]
    in_title, pos = True, 0

    def plain(a: int, b: int) -> None:
        nonlocal in_title
        if in_title and a <= title_end <= b:
            parts.append(html.escape(text[a:title_end]) + "</b>" + html.escape(text[title_end:b]))
            in_title = False
        else:
            parts.append(html.escape(text[a:b]))

    for m in inline:
        plain(pos, m.start)
        parts.append(mark(m, html.escape(text[m.start : m.end])))
        pos = m.end
        if in_title and pos > title_end:
            parts.append("</b>")
            in_title = False
    plain(pos, len(text))
    if in_title:
        parts.append("</b>")

    legend = " ".join(
        f'<span style="background:{c};padding:0 4px;border-radius:3px">{html.escape(t)}</span>'
        for t, c in colors.items()
    )
    out = [
        '<div class="mernlib-document" style="line-height:1.9;max-width:60em">',
        f'<div style="color:#666;font-size:85%">PMID {html.escape(document.pmid)} &middot; '
        f"{len(mentions)} mentions {legend}</div>",
        "<div>" + "".join(parts) + "</div>",
    ]
    if overlapping:
        items = ", ".join(f"{mark(m, html.escape(m.text))} [{m.start}&ndash;{m.end}]" for m in overlapping)
        out.append(f'<div style="font-size:85%">Overlapping mentions (not inline): {items}</div>')
    out.append("</div>")
    return "\n".join(out)


def document_browser(documents: list[Document], show_ids: bool = True, entity_base: Mapping | None = None):
    """An ipywidgets browser: a dropdown of ``documents`` and an HTML view (:func:`highlight_html`) that a
    callback updates when the selection changes. Returns a ``VBox`` (children: the dropdown, the HTML).

    Callbacks need a live kernel: a headless run (papermill, CI, the HTML export) executes none, so the
    view there stays on the first document. That is why the notebooks also display
    ``HTML(highlight_html(doc))`` statically for the documents they discuss.
    """
    import ipywidgets as widgets

    documents = list(documents)
    if not documents:
        raise ValueError("document_browser needs at least one document")

    def label(i: int, d: Document) -> str:
        title = d.title if len(d.title) <= 70 else d.title[:67] + "..."
        return f"{i + 1}. {d.pmid}: {title}"

    picker = widgets.Dropdown(
        options=[(label(i, d), i) for i, d in enumerate(documents)],
        value=0,
        description="Document",
        layout=widgets.Layout(width="95%"),
    )
    view = widgets.HTML(value=highlight_html(documents[0], show_ids=show_ids, entity_base=entity_base))

    def update(change) -> None:
        view.value = highlight_html(documents[change["new"]], show_ids=show_ids, entity_base=entity_base)

    picker.observe(update, names="value")
    return widgets.VBox([picker, view])
