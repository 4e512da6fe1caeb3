"""Abbreviations defined inside one abstract: ``"hereditary nonpolyposis colorectal cancer (HNPCC)"``.

Abstracts define an abbreviation once and then use it; a mention ``HNPCC`` is far easier to normalize
through its long form, which a dictionary or a retriever knows, than through the letters. Two detectors:

* **Ab3P** (Sohn et al., Bioinformatics 2008), through the ``pyab3p`` package (a compiled wheel, the
  optional extra ``mernlib[abbreviations]``): the detector BioSyn, SapBERT and most normalization
  papers use. On the NCBI-disease corpus it reads all 793 abstracts in about a second.
* **Schwartz & Hearst** (PSB 2003), written here in pure Python, so that Colab and Binder, which must
  stay pure Python, still resolve abbreviations. It finds ``long form (SHORT)`` and ``SHORT (long
  form)`` pairs and keeps a long form only when the short form's characters occur in it in order, the
  first one starting a word -- the paper's algorithm, without its optional heuristics.

:func:`find_abbreviations` picks Ab3P when it is importable (``method="auto"``) and returns
``{short form: long form}`` for one text; the first definition of a short form wins, as a reader
would read it. Both detectors' definitions are completed by :func:`compound_parts`: abstracts define
"HPT-JT" once and then write "HPT" alone, which neither detector reports.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from functools import lru_cache

METHODS = ("auto", "ab3p", "schwartz-hearst")

_PARENS = re.compile(r"\(([^()]*)\)")
_SENTENCE_END = re.compile(r"[.;:!?]\s")


def ab3p_available() -> bool:
    """Whether the ``pyab3p`` package (Ab3P) can be imported."""
    try:
        import pyab3p  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _ab3p():
    import pyab3p

    return pyab3p.Ab3p()


@contextlib.contextmanager
def _silenced_native_stderr():
    """Ab3P's C++ code writes "Failed to find sentence: ..." (a whole abstract) to the process's stderr
    for some sentences (it still returns what it found elsewhere); thousands of such lines would bury a
    notebook's output, so file descriptor 2 points at /dev/null during the call."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (some embedded interpreters): leave it be
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def ab3p_abbreviations(text: str) -> dict[str, str]:
    """``{short form: long form}`` found by Ab3P (needs ``pyab3p``)."""
    found: dict[str, str] = {}
    # Ab3P splits the text into sentences and then looks each one up in the original text; a run of
    # spaces (PubTator abstracts have some) makes the look-up fail with a message on stderr and the
    # sentence is skipped. The strings are all we use, not offsets, so runs of whitespace become one space.
    with _silenced_native_stderr():
        items = _ab3p().get_abbrs(" ".join(text.split()))
    for item in items:
        found.setdefault(item.short_form, item.long_form)
    return found


def _valid_short_form(candidate: str) -> bool:
    # the paper: at most two words, at most ten characters, at least one letter, starts with a letter
    # or a digit; and here at least one capital letter, which keeps "i.e." and "n = 5" out (abstracts
    # write nearly every abbreviation with one, and a miss only costs the fallback to the mention text)
    return (
        0 < len(candidate) <= 10
        and len(candidate.split()) <= 2
        and any(c.isupper() for c in candidate)
        and candidate[0].isalnum()
        and "=" not in candidate
    )


def best_long_form(short_form: str, long_form: str) -> str | None:
    """Schwartz & Hearst's matching: the shortest end of ``long_form`` in which the alphanumeric characters
    of ``short_form`` occur in order (case-insensitive), the first one at the start of a word; None if
    there is none."""
    s = len(short_form) - 1
    i = len(long_form) - 1
    while s >= 0:
        char = short_form[s].lower()
        if not char.isalnum():
            s -= 1
            continue
        while i >= 0 and (long_form[i].lower() != char or (s == 0 and i > 0 and long_form[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    start = long_form.rfind(" ", 0, i + 1) + 1
    return long_form[start:]


def _accept(short_form: str, long_form: str | None) -> str | None:
    if not long_form:
        return None
    long_form = long_form.strip()
    if any(c in long_form for c in "()[]="):
        return None  # a long form spanning another parenthesis is a mis-segmentation, not a definition
    words = long_form.split()
    if len(long_form) <= len(short_form) or short_form.lower() in (w.lower() for w in words):
        return None
    if len(words) > min(len(short_form) + 5, 2 * len(short_form)):
        return None
    return long_form


def schwartz_hearst_abbreviations(text: str) -> dict[str, str]:
    """``{short form: long form}`` by Schwartz & Hearst's algorithm (pure Python)."""
    found: dict[str, str] = {}
    for match in _PARENS.finditer(text):
        inside = match.group(1).strip()
        # "(HNPCC; ref. 3)" or "(HNPCC, 10 families)": the short form is the part before ; or ,
        inside = re.split(r"[;,]", inside, maxsplit=1)[0].strip()
        before = text[: match.start()]
        ends = list(_SENTENCE_END.finditer(before))
        before = before[ends[-1].end() :] if ends else before
        before = before.rstrip()
        if not inside or not before:
            continue
        if _valid_short_form(inside):
            short_form = inside
            words = before.split()
            window = " ".join(words[-min(len(short_form) + 5, 2 * len(short_form)) :])
            long_form = _accept(short_form, best_long_form(short_form, window))
        else:
            # "SHORT (long form)": the word before the parenthesis is the short form
            words = before.split()
            short_form = words[-1].strip(",")
            if not _valid_short_form(short_form) or len(inside.split()) < 2 or not short_form.isalnum():
                continue
            long_form = _accept(short_form, best_long_form(short_form, inside))
            if long_form is not None and long_form != inside:
                continue  # the whole parenthesis must be the long form
        if long_form is not None:
            found.setdefault(short_form, long_form)
    return found


def _shortest_start(short_form: str, long_form: str) -> str | None:
    """The fewest first words of ``long_form`` that spell ``short_form`` (:func:`best_long_form` on them
    uses them all): ``("JT", "jaw tumor syndrome")`` -> ``"jaw tumor"``."""
    words = long_form.split()
    for n in range(1, len(words) + 1):
        start = " ".join(words[:n])
        if best_long_form(short_form, start) == start:
            return start
    return None


def compound_parts(found: dict[str, str]) -> dict[str, str]:
    """The parts of compound definitions: ``"HPT-JT"`` defined as ``"hyperparathyroidism-jaw tumor
    syndrome"`` also defines ``HPT`` (hyperparathyroidism) and ``JT`` (jaw tumor), which abstracts then use
    alone. A short form split at ``-`` or ``/`` whose long form splits at the same character into as many
    parts, each part spelling its short part from its first words; a part already defined keeps its own
    definition."""
    parts: dict[str, str] = {}
    for short_form, long_form in found.items():
        for sep in "-/":
            shorts, longs = short_form.split(sep), long_form.split(sep)
            if len(shorts) < 2 or len(shorts) != len(longs):
                continue
            starts = [_shortest_start(s, lf.strip()) for s, lf in zip(shorts, longs, strict=True)]
            if all(starts) and all(_valid_short_form(s) for s in shorts):
                for s, start in zip(shorts, starts, strict=True):
                    if s not in found:
                        parts.setdefault(s, start)
    return parts


def find_abbreviations(text: str, method: str = "auto") -> dict[str, str]:
    """``{short form: long form}`` defined in ``text``, with the parts of compound definitions
    (:func:`compound_parts`). ``method``: ``"auto"`` (Ab3P if ``pyab3p`` is importable, else Schwartz &
    Hearst), ``"ab3p"`` (ImportError without ``pyab3p``) or ``"schwartz-hearst"``."""
    return (found := _find_defined(text, method)) | compound_parts(found)


def _find_defined(text: str, method: str) -> dict[str, str]:
    if method not in METHODS:
        raise ValueError(f"unknown abbreviation method {method!r}: choose one of {METHODS}")
    if method == "auto":
        method = "ab3p" if ab3p_available() else "schwartz-hearst"
    if method == "ab3p":
        if not ab3p_available():
            raise ImportError(
                "abbreviation method 'ab3p' needs the pyab3p package: `pip install pyab3p` "
                "(or `pip install mernlib[abbreviations]`), or use method='schwartz-hearst'"
            )
        return ab3p_abbreviations(text)
    return schwartz_hearst_abbreviations(text)


def resolved_method(method: str = "auto") -> str:
    """The detector ``method`` stands for on this machine (``"auto"`` resolved)."""
    if method == "auto":
        return "ab3p" if ab3p_available() else "schwartz-hearst"
    return method


__all__ = [
    "METHODS",
    "ab3p_abbreviations",
    "ab3p_available",
    "best_long_form",
    "compound_parts",
    "find_abbreviations",
    "resolved_method",
    "schwartz_hearst_abbreviations",
]
