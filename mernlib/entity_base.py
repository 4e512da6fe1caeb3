"""The entity base: the concepts (ID, name, synonyms, definition) that normalization maps mentions to.

Three source formats are read, each into :class:`Concept` objects keyed by the kit's normalized ID
(:func:`mernlib.corpus.normalize_concept_id`, so ``MESH:D003924`` is ``D003924`` and ``217000`` is
``OMIM:217000``):

* ``mesh.tsv`` (:func:`load_mesh_tsv`): ``ID<TAB>name<TAB>scope note``, no header; MeSH descriptor
  (``D...``) and supplementary concept (``C...``) IDs. The E2EMERN file writes a missing value as the
  literal ``None`` (Python's ``None`` printed): 495 of its 2,786 lines have no scope note and 91 (lines
  2696-2786) no name either. Such a value is read as empty; a concept without a name is kept (its ID
  is a real MeSH ID the corpora use) but contributes no names (:meth:`EntityBase.nameless` lists
  them). Four of those nameless lines repeat, with a leading space, the ID of a named concept
  (`` D015862``, `` D008661``, `` D007945``, `` D007153``): after normalization they merge into it, so
  the file holds 2,786 lines but 2,782 concepts, 87 of them nameless.
* ``omim.tsv`` (:func:`load_omim_tsv`): the file as published with E2EMERN has five tab-separated
  columns and no header -- OMIM number, English title, a Chinese title, the omim.org URL and a second
  URL (``217000<TAB>COMPLEMENT COMPONENT 2 DEFICIENCY; C2D <TAB>补体成分2缺乏症【C2D】<TAB>http://...``).
  Only the first two are read, on purpose: the Chinese title is not a name an English abstract uses,
  and the URLs are derived from the number. The two-column layout ``number<TAB>title`` (an earlier
  copy, and what a user's own list is likely to be) is read too. An OMIM title is
  ``PREFERRED TITLE; SYMBOL`` (``COMPLEMENT COMPONENT 2 DEFICIENCY; C2D``): the part before the first
  ``;`` is the name, every later part a synonym. The E2EMERN file has 2,016 lines but 1,792 distinct
  numbers: 224 lines repeat an earlier number (the file lists an entry once per time the corpora
  cite it, e.g. 114500 COLORECTAL CANCER fourteen times). 223 of them repeat the whole line; one gives
  another title (109565 ``B-CELL LYMPHOMA 6; BCL6e`` on line 899, ``...; BCL6`` on line 983). Repeats
  are merged into one concept: the first title's name stays the name, any new name or symbol becomes a
  synonym, and :attr:`EntityBase.merged` / :attr:`EntityBase.conflicts` record what was merged.
* CTD's ``CTD_diseases.tsv`` (MEDIC; :func:`load_ctd_medic`): ``#`` comment lines, then
  ``DiseaseName, DiseaseID, AltDiseaseIDs, Definition, ParentIDs, TreeNumbers, ParentTreeNumbers,
  Synonyms, SlimMappings`` (the older eight-column release without SlimMappings is read too);
  ``|`` separates several synonyms or IDs.

Runs of whitespace inside names are collapsed to one space (omim.tsv line 263 has
``OSTEOPETROSIS,  AUTOSOMAL RECESSIVE 4``). Blank lines carry nothing and are passed over; every other
line that does not fit its format raises :class:`~mernlib.errors.DataFormatError` naming file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .corpus import normalize_concept_id
from .errors import DataFormatError

_MESH_ID = re.compile(r"^[CD]\d+$")
_PREFIXED_ID = re.compile(r"^[A-Z]+:\S+$")
_OMIM_ID = re.compile(r"^OMIM:\d+$")
_OWN_HEADER = "# mernlib entity base"
_NONE = "None"  # how the E2EMERN gathering wrote a missing name or scope note (Python's None)
_OWN_COLUMNS = ("id", "name", "synonyms", "definition", "source", "alt_ids")
_CTD_COLUMNS = (
    "DiseaseName",
    "DiseaseID",
    "AltDiseaseIDs",
    "Definition",
    "ParentIDs",
    "TreeNumbers",
    "ParentTreeNumbers",
    "Synonyms",
    "SlimMappings",
)


def _clean(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Concept:
    """One concept of the entity base. ``id`` is normalized; ``source`` names the file(s) it came
    from (``mesh.tsv``, ``omim.tsv+CTD_diseases.tsv`` after a merge); ``alt_ids`` are the other IDs
    CTD gives for it (normalized where the kit knows the vocabulary)."""

    id: str
    name: str
    synonyms: tuple[str, ...] = ()
    definition: str = ""
    source: str = ""
    alt_ids: tuple[str, ...] = ()

    @property
    def all_names(self) -> tuple[str, ...]:
        """The name followed by the synonyms, without repeats (empty for a nameless concept)."""
        return tuple(n for n in dict.fromkeys((self.name, *self.synonyms)) if n)


class EntityBase(Mapping):
    """Concepts by normalized ID, in the order first seen. ``base["MESH:D003924"]`` and
    ``base["D003924"]`` are the same concept; ``"217000" in base`` asks for ``OMIM:217000``.

    Adding a concept whose ID is already present merges it (see :meth:`add`); :attr:`merged` counts
    such records and :attr:`conflicts` lists ``(id, names kept, names added)`` (names ``; ``-joined)
    for each merge that brought a name the base did not have.
    """

    def __init__(self, concepts: Iterable[Concept] = ()):
        self._concepts: dict[str, Concept] = {}
        self.merged = 0
        self.conflicts: list[tuple[str, str, str]] = []
        for concept in concepts:
            self.add(concept)

    # Mapping protocol -------------------------------------------------------------------------------
    def __getitem__(self, concept_id: str) -> Concept:
        return self._concepts[normalize_concept_id(concept_id)]

    def __contains__(self, concept_id: object) -> bool:
        return isinstance(concept_id, str) and normalize_concept_id(concept_id) in self._concepts

    def __iter__(self) -> Iterator[str]:
        return iter(self._concepts)

    def __len__(self) -> int:
        return len(self._concepts)

    def __repr__(self) -> str:
        return f"EntityBase({len(self)} concepts, {sum(1 for _ in self.names())} names)"

    # Building -------------------------------------------------------------------------------------
    def add(self, concept: Concept) -> Concept:
        """Add ``concept`` (its ID normalized); merge it into the concept with the same ID if any.

        A merge keeps the first non-empty name, turns a different new name into a synonym, unites synonyms and
        alternative IDs in order, keeps the first non-empty definition and joins the sources with ``+``.
        Returns the stored concept.
        """
        cid = normalize_concept_id(concept.id)
        if cid != concept.id:
            concept = replace(concept, id=cid)
        old = self._concepts.get(cid)
        if old is None:
            self._concepts[cid] = concept
            return concept
        self.merged += 1
        if old.name and not set(concept.all_names) <= set(old.all_names):
            self.conflicts.append((cid, "; ".join(old.all_names), "; ".join(concept.all_names)))
        name = old.name or concept.name
        synonyms = tuple(
            n for n in dict.fromkeys((*old.synonyms, concept.name, *concept.synonyms)) if n and n != name
        )
        sources = old.source.split("+") if old.source else []
        if concept.source and concept.source not in sources:
            sources.append(concept.source)
        merged = Concept(
            id=cid,
            name=name,
            synonyms=synonyms,
            definition=old.definition or concept.definition,
            source="+".join(sources),
            alt_ids=tuple(dict.fromkeys((*old.alt_ids, *concept.alt_ids))),
        )
        self._concepts[cid] = merged
        return merged

    def update(self, other: Iterable[Concept] | EntityBase) -> EntityBase:
        """Add every concept of ``other`` (merging as :meth:`add` does); returns self."""
        concepts = other.values() if isinstance(other, EntityBase) else other
        for concept in concepts:
            self.add(concept)
        if isinstance(other, EntityBase):
            self.merged += other.merged
            self.conflicts.extend(other.conflicts)
        return self

    # Views ----------------------------------------------------------------------------------------
    def names(self) -> Iterator[tuple[str, str]]:
        """``(name, id)`` for every name and synonym of every concept (a name once per concept)."""
        for cid, concept in self._concepts.items():
            for name in concept.all_names:
                yield name, cid

    def slice(self, ids: Iterable[str]) -> EntityBase:
        """A new base holding only the concepts of ``ids`` (normalized; IDs the base lacks are left
        out — see :meth:`missing`), in this base's order."""
        wanted = {normalize_concept_id(i) for i in ids}
        return EntityBase(c for cid, c in self._concepts.items() if cid in wanted)

    def nameless(self) -> list[str]:
        """IDs of the concepts that have no name at all (e.g. mesh.tsv's ``None`` rows)."""
        return [cid for cid, c in self._concepts.items() if not c.all_names]

    def missing(self, ids: Iterable[str]) -> list[str]:
        """The normalized IDs among ``ids`` that the base does not hold, sorted."""
        return sorted({normalize_concept_id(i) for i in ids} - set(self._concepts))

    # Writing --------------------------------------------------------------------------------------
    def to_tsv(self, path: str | Path) -> Path:
        """Write the base as ``id, name, synonyms (|-joined), definition, source, alt_ids (|-joined)`` after a
        ``# mernlib entity base`` header line; :func:`load_entity_base` reads it back."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [_OWN_HEADER + "\t" + "\t".join(_OWN_COLUMNS)]
        for concept in self._concepts.values():
            for name in concept.all_names:
                if "|" in name:
                    raise ValueError(f"{concept.id}: a name with '|' cannot be written: {name!r}")
            fields = [
                concept.id,
                concept.name,
                "|".join(concept.synonyms),
                concept.definition,
                concept.source,
                "|".join(concept.alt_ids),
            ]
            rows.append("\t".join(_clean(f) for f in fields))
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return path


# --------------------------------------------------------------------------------------------------
# Readers


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text without the line break)`` for every line of ``path`` (UTF-8)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(path, number, f"not UTF-8 ({err.reason})") from None
            yield number, text.rstrip("\r\n")


def _fields(path: Path, number: int, line: str, allowed: tuple[int, ...], what: str) -> list[str]:
    fields = line.split("\t")
    if len(fields) not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise DataFormatError(
            path, number, f"expected {want} tab-separated columns ({what}), found {len(fields)}"
        )
    return fields


def load_mesh_tsv(path: str | Path) -> EntityBase:
    """Read ``ID<TAB>name<TAB>scope note`` lines (the scope note column may be absent).

    IDs are MeSH IDs, or IDs of another vocabulary written with their prefix (``OMIM:217000``): the
    bundled sample's ``entities.tsv`` uses this layout for both.
    """
    path = Path(path)
    base = EntityBase()
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = _fields(path, number, line, (2, 3), "MeSH ID, name, scope note")
        cid = normalize_concept_id(fields[0])
        if not (_MESH_ID.match(cid) or _PREFIXED_ID.match(fields[0].strip())):
            raise DataFormatError(
                path, number, f"not a MeSH ID (nor a prefixed ID like OMIM:217000): {fields[0]!r}"
            )
        name = _clean(fields[1])
        if not name:
            raise DataFormatError(path, number, f"{cid} has an empty name")
        if name == _NONE:
            name = ""  # the gathering found no name for this ID: a nameless concept
        definition = fields[2].strip() if len(fields) == 3 else ""
        if definition == _NONE:
            definition = ""
        base.add(Concept(cid, name, (), definition, path.name))
    return base


def split_omim_title(title: str) -> tuple[str, tuple[str, ...]]:
    """``"COMPLEMENT COMPONENT 2 DEFICIENCY; C2D"`` -> ``("COMPLEMENT COMPONENT 2 DEFICIENCY", ("C2D",))``."""
    parts = [_clean(p) for p in title.split(";")]
    name, synonyms = parts[0], tuple(dict.fromkeys(p for p in parts[1:] if p and p != parts[0]))
    return name, synonyms


OMIM_COLUMNS = (2, 5)
"""``number, title`` or the published ``number, title, Chinese title, URL, URL`` (see the module docstring)."""


def load_omim_tsv(path: str | Path) -> EntityBase:
    """Read ``number<TAB>title[<TAB>Chinese title<TAB>URL<TAB>URL]`` lines: the title and each symbol
    after ``;`` become names of ``OMIM:<number>``; the last three columns are ignored on purpose (see the
    module docstring). Repeated numbers are merged."""
    path = Path(path)
    base = EntityBase()
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = _fields(path, number, line, OMIM_COLUMNS, "OMIM number, title[, Chinese title, URL, URL]")
        cid = normalize_concept_id(fields[0])
        if not _OMIM_ID.match(cid):
            raise DataFormatError(path, number, f"not an OMIM number: {fields[0]!r}")
        name, synonyms = split_omim_title(fields[1])
        if not name:
            raise DataFormatError(path, number, f"{cid} has no title before ';': {fields[1]!r}")
        base.add(Concept(cid, name, synonyms, "", path.name))
    return base


def _split_bar(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in (_clean(x) for x in text.split("|")) if p))


def load_ctd_medic(path: str | Path) -> EntityBase:
    """Read CTD's disease vocabulary (MEDIC, ``CTD_diseases.tsv``): see the module docstring."""
    path = Path(path)
    base = EntityBase()
    for number, line in _lines(path):
        if line.startswith("#"):
            header = line.lstrip("#").strip().split("\t")
            if header and header[0] == _CTD_COLUMNS[0] and tuple(header) != _CTD_COLUMNS[: len(header)]:
                raise DataFormatError(path, number, f"unexpected CTD columns: {', '.join(header)}")
            continue
        if not line.strip():
            continue
        fields = _fields(path, number, line, (8, 9), "CTD_diseases.tsv columns")
        name = _clean(fields[0])
        cid = normalize_concept_id(fields[1])
        if not name:
            raise DataFormatError(path, number, "empty DiseaseName")
        if not (_MESH_ID.match(cid) or _OMIM_ID.match(cid)):
            raise DataFormatError(path, number, f"DiseaseID is neither MESH:... nor OMIM:...: {fields[1]!r}")
        synonyms = tuple(s for s in _split_bar(fields[7]) if s != name)
        alt_ids = tuple(normalize_concept_id(a) for a in _split_bar(fields[2]))
        base.add(Concept(cid, name, synonyms, fields[3].strip(), path.name, alt_ids))
    return base


def _load_own_tsv(path: Path) -> EntityBase:
    base = EntityBase()
    for number, line in _lines(path):
        if number == 1 or not line.strip():
            continue
        fields = _fields(path, number, line, (len(_OWN_COLUMNS),), ", ".join(_OWN_COLUMNS))
        cid, name, synonyms, definition, source, alt_ids = fields
        if not cid.strip():
            raise DataFormatError(path, number, "empty id")
        base.add(Concept(cid, _clean(name), _split_bar(synonyms), definition, source, _split_bar(alt_ids)))
    return base


def sniff_format(path: str | Path) -> str:
    """``"mesh"``, ``"omim"``, ``"ctd"`` or ``"mernlib"`` (:meth:`EntityBase.to_tsv`), from content."""
    path = Path(path)
    for number, line in _lines(path):
        if not line.strip():
            continue
        if line.startswith(_OWN_HEADER):
            return "mernlib"
        if line.startswith("#"):
            return "ctd"
        columns = line.split("\t")
        if len(columns) in (8, 9):
            return "ctd"
        if len(columns) == 3:
            return "mesh"
        if len(columns) == 2:
            return "mesh" if _MESH_ID.match(normalize_concept_id(columns[0])) else "omim"
        if len(columns) == 5 and _OMIM_ID.match(normalize_concept_id(columns[0])):
            return "omim"
        raise DataFormatError(
            path,
            number,
            f"not an entity-base format I know ({len(columns)} tab-separated columns; expected MeSH "
            "'ID, name[, scope note]', OMIM 'number, title' or the published 5-column omim.tsv, CTD MEDIC, "
            "or the kit's own file)",
        )
    raise DataFormatError(path, None, "empty file")


LOADERS = {"mesh": load_mesh_tsv, "omim": load_omim_tsv, "ctd": load_ctd_medic, "mernlib": _load_own_tsv}


def load_entity_base(
    *paths: str | Path, data_dir: str | Path | None = None, verify: bool = True
) -> EntityBase:
    """One base from several files, merged in order (each file's format is recognised from its
    content). Without paths: the registry's ``entity-base`` dataset (mesh.tsv and omim.tsv), located
    through :func:`mernlib.registry.locate`."""
    if not paths:
        from .registry import locate

        located = locate("entity-base", data_dir=data_dir, verify=verify)
        paths = (located["mesh"], located["omim"])
    base = EntityBase()
    for path in paths:
        base.update(LOADERS[sniff_format(path)](path))
    return base


__all__ = [
    "Concept",
    "EntityBase",
    "LOADERS",
    "OMIM_COLUMNS",
    "load_ctd_medic",
    "load_entity_base",
    "load_mesh_tsv",
    "load_omim_tsv",
    "sniff_format",
    "split_omim_title",
]
