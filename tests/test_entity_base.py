"""Entity-base loaders: MeSH / OMIM TSV, CTD MEDIC, merging, and the real E2EMERN files."""

from pathlib import Path

import pytest

from mernlib.entity_base import (
    Concept,
    EntityBase,
    load_ctd_medic,
    load_entity_base,
    load_mesh_tsv,
    load_omim_tsv,
    sniff_format,
    split_omim_title,
)
from mernlib.errors import DataFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "entity_base"


def test_mesh_fixture_reads_none_as_missing_and_merges_padded_ids():
    base = load_mesh_tsv(FIXTURES / "mesh_small.tsv")
    assert list(base) == ["D900001", "D900002", "C900003", "C900004"]
    assert base["MESH:D900001"].name == "Example Neoplasms"
    assert base["C900003"].definition == ""  # 'None' scope note
    assert base["C900004"].name == "" and base.nameless() == ["C900004"]
    # ' D900002<TAB>None<TAB>None' merges into D900002 without adding a 'None' name
    assert base.merged == 1 and base.conflicts == []
    assert base["D900002"].all_names == ("Example Pressure Disorder",)
    assert ("None", "C900004") not in set(base.names())
    assert base["D900002"].source == "mesh_small.tsv"


def test_omim_fixture_titles_synonyms_and_duplicates():
    base = load_omim_tsv(FIXTURES / "omim_small.tsv")
    assert len(base) == 6 and base.merged == 2
    assert base["900200"] is base["OMIM:900200"]
    assert base["900200"].name == "EXAMPLE COMPONENT 2 DEFICIENCY"
    assert base["900200"].synonyms == ("EC2D",)
    assert base["900300"].synonyms == ("example ataxia 3", "EA3")
    assert base["900400"].name == "EXAMPLE OSTEOPATHY, TYPE 4"  # double space collapsed
    assert base["900600"].synonyms == ()
    # the repeated number with another symbol: first kept, the other becomes a synonym, recorded
    assert base["900500"].synonyms == ("EXL6x", "EXL6")
    assert base.conflicts == [("OMIM:900500", "EXAMPLE LYMPHOMA 6; EXL6x", "EXAMPLE LYMPHOMA 6; EXL6")]


def test_omim_published_five_column_layout(tmp_path):
    # the layout of omim.tsv as published with E2EMERN: number, title, Chinese title, two URLs
    path = tmp_path / "omim.tsv"
    path.write_text(
        "900200\tEXAMPLE COMPONENT 2 DEFICIENCY; EC2D \t例子【EC2D】 \thttp://omim.org/entry/900200\thttp://x/900200/\n"
        "900300\tEXAMPLE ATAXIA, EA; example ataxia 3;EA3 \t例子\thttps://omim.org/entry/900300\thttp://x\n"
        "900200\tEXAMPLE COMPONENT 2 DEFICIENCY; EC2D \t例子【EC2D】 \thttp://omim.org/entry/900200\thttp://x/900200/",
        encoding="utf-8",
    )
    assert sniff_format(path) == "omim"
    base = load_omim_tsv(path)
    assert list(base) == ["OMIM:900200", "OMIM:900300"] and base.merged == 1
    assert base["900200"].all_names == ("EXAMPLE COMPONENT 2 DEFICIENCY", "EC2D")
    assert base["900300"].all_names == ("EXAMPLE ATAXIA, EA", "example ataxia 3", "EA3")
    # the Chinese title and the URLs are not names
    assert all("例" not in n and "http" not in n for n, _ in base.names())
    assert load_entity_base(path)["900300"].name == "EXAMPLE ATAXIA, EA"


def test_omim_three_or_four_columns_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "omim.tsv"
    path.write_text("900200\tA; B\n900300\tC\tD\tE\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"omim.tsv:2: expected 2 or 5 tab-separated columns"):
        load_omim_tsv(path)


def test_split_omim_title():
    assert split_omim_title("A; B;C ; ") == ("A", ("B", "C"))
    assert split_omim_title("NO SYMBOL") == ("NO SYMBOL", ())


def test_ctd_medic_fixture():
    base = load_ctd_medic(FIXTURES / "CTD_diseases.tsv")
    assert list(base) == ["D900001", "OMIM:900200", "D900002"]
    neo = base["MESH:D900001"]
    assert neo.synonyms == ("Example Cancer", "Example Tumours", "Example Carcinoma")
    assert neo.alt_ids == ("DO:DOID:99001", "OMIM:900100")
    assert neo.definition == "Tumours of an example organ."
    assert base["D900002"].synonyms == ("Pressure, Example",)  # the name itself is not repeated
    assert base["OMIM:900200"].definition == ""


def test_ctd_eight_column_release_and_header_check(tmp_path):
    old = tmp_path / "old.tsv"
    old.write_text("# header\nX Disease\tMESH:D900009\t\tdef\t\t\t\tXD|X-D\n")
    assert load_ctd_medic(old)["D900009"].synonyms == ("XD", "X-D")
    bad = tmp_path / "bad.tsv"
    bad.write_text("# DiseaseName\tAltDiseaseIDs\tDiseaseID\n")
    with pytest.raises(DataFormatError, match=r"bad\.tsv:1: unexpected CTD columns"):
        load_ctd_medic(bad)


@pytest.mark.parametrize(
    "loader, text, line, message",
    [
        (load_mesh_tsv, "D900001\tA\tdef\nD900002 B def\n", 2, "expected 2 or 3 tab-separated columns"),
        (load_mesh_tsv, "D900001\tA\tdef\n900002\tB\tdef\n", 2, "not a MeSH ID"),
        (load_mesh_tsv, "D900001\t \tdef\n", 1, "empty name"),
        (load_omim_tsv, "900100\tA; B\n900200\tC\textra\n", 2, "expected 2 or 5 tab-separated columns"),
        (load_omim_tsv, "900100\tA\nD900200\tC\n", 2, "not an OMIM number"),
        (load_omim_tsv, "900100\t; SYM\n", 1, "no title before ';'"),
        (load_ctd_medic, "# c\nA\tMESH:D1\t\td\n", 2, "expected 8 or 9 tab-separated columns"),
        (load_ctd_medic, "A\tDOID:1\t\t\t\t\t\t\t\n", 1, "neither MESH:... nor OMIM:..."),
        (load_ctd_medic, "\tMESH:D1\t\t\t\t\t\t\t\n", 1, "empty DiseaseName"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, loader, text, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(DataFormatError) as err:
        loader(path)
    assert err.value.line == line and err.value.path == str(path)
    assert message in str(err.value) and str(err.value).startswith(f"{path}:{line}: ")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("D900001\tA\tok\nD900002\tCaf\xe9\tx\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.tsv:2: not UTF-8"):
        load_mesh_tsv(path)


def test_blank_lines_are_passed_over(tmp_path):
    path = tmp_path / "o.tsv"
    path.write_text("900100\tA\n\n900200\tB\r\n")
    assert list(load_omim_tsv(path)) == ["OMIM:900100", "OMIM:900200"]


def test_entity_base_mapping_names_slice_missing():
    base = EntityBase(
        [
            Concept("MESH:D900001", "Alpha", ("A1", "Alpha"), "", "x"),
            Concept("900100", "BETA", ("B",), "", "y"),
        ]
    )
    assert list(base) == ["D900001", "OMIM:900100"] and len(base) == 2
    assert "D900001" in base and "MESH:D900001" in base and "900100" in base and 5 not in base
    assert list(base.names()) == [
        ("Alpha", "D900001"),
        ("A1", "D900001"),
        ("BETA", "OMIM:900100"),
        ("B", "OMIM:900100"),
    ]
    small = base.slice(["900100", "D999999"])
    assert list(small) == ["OMIM:900100"]
    assert base.missing(["MESH:D999999", "D900001"]) == ["D999999"]
    assert dict(base.items())["D900001"].name == "Alpha"


def test_merge_across_files_and_tsv_round_trip(tmp_path):
    base = load_entity_base(
        FIXTURES / "mesh_small.tsv", FIXTURES / "omim_small.tsv", FIXTURES / "CTD_diseases.tsv"
    )
    # mesh 4 + omim 6 concepts; CTD's D900001, D900002, OMIM:900200 merge into them
    assert len(base) == 10
    neo = base["D900001"]
    assert neo.name == "Example Neoplasms" and neo.source == "mesh_small.tsv+CTD_diseases.tsv"
    assert neo.synonyms == ("Example Cancer", "Example Tumours", "Example Carcinoma")
    assert base["OMIM:900200"].synonyms == ("EC2D", "Example Component 2 Deficiency", "EC2 deficiency")
    assert base.merged == 1 + 2 + 3
    out = base.to_tsv(tmp_path / "sub" / "base.tsv")
    assert sniff_format(out) == "mernlib"
    again = load_entity_base(out)
    assert list(again) == list(base)
    assert [again[k] for k in again] == [base[k] for k in base]


def test_sniff_format():
    assert sniff_format(FIXTURES / "mesh_small.tsv") == "mesh"
    assert sniff_format(FIXTURES / "omim_small.tsv") == "omim"
    assert sniff_format(FIXTURES / "CTD_diseases.tsv") == "ctd"


def test_to_tsv_refuses_a_bar_in_a_name(tmp_path):
    base = EntityBase([Concept("D900001", "A|B")])
    with pytest.raises(ValueError, match="'\\|'"):
        base.to_tsv(tmp_path / "x.tsv")


# ---- the real files -----------------------------------------------------------------------------


def test_real_mesh(real_corpora):
    path = real_corpora / "entity-base" / "mesh.tsv"
    assert sum(1 for _ in path.open()) == 2786  # the README's "2,786 concepts" counts lines
    base = load_mesh_tsv(path)
    assert len(base) == 2782  # 4 lines repeat an ID with a leading space and name 'None'
    assert base.merged == 4 and base.conflicts == []
    assert len(base.nameless()) == 87
    assert sum(1 for _ in base.names()) == 2695
    assert base["D015862"].name == "Choroid Diseases"
    assert base["MESH:D009270"].name == "Naloxone"
    assert (
        sum(1 for c in base.values() if c.id.startswith("C"))
        + sum(1 for c in base.values() if c.id.startswith("D"))
        == 2782
    )


def test_real_omim(real_corpora):
    # the file as published with E2EMERN: its SHA256SUMS line, 2,016 rows (the last without a line
    # break) of 5 columns, and a few known rows
    import hashlib

    path = real_corpora / "entity-base" / "omim.tsv"
    sums = (real_corpora / "SHA256SUMS").read_text().splitlines()
    listed = [line.split()[0] for line in sums if line.endswith("entity-base/omim.tsv")]
    assert listed == [hashlib.sha256(path.read_bytes()).hexdigest()]
    rows = path.read_text(encoding="utf-8").split("\n")
    assert len(rows) == 2016 and all(len(r.split("\t")) == 5 for r in rows)
    assert rows[0].startswith("217000\tCOMPLEMENT COMPONENT 2 DEFICIENCY; C2D")
    assert sniff_format(path) == "omim"
    base = load_omim_tsv(path)
    assert len(base) == 1792  # the README's count: distinct OMIM numbers
    assert base.merged == 224  # lines repeating an earlier number
    assert base.conflicts == [("OMIM:109565", "B-CELL LYMPHOMA 6; BCL6e", "B-CELL LYMPHOMA 6; BCL6")]
    c2d = base["217000"]
    assert (c2d.id, c2d.name, c2d.synonyms) == ("OMIM:217000", "COMPLEMENT COMPONENT 2 DEFICIENCY", ("C2D",))
    assert base["109150"].synonyms == ("spinocerebellar ataxia 3", "SCA3")
    assert base["611490"].name == "OSTEOPETROSIS, AUTOSOMAL RECESSIVE 4"
    assert sum(1 for _ in base.names()) == 3274


def test_real_merged_base(real_corpora):
    paths = (real_corpora / "entity-base" / "mesh.tsv", real_corpora / "entity-base" / "omim.tsv")
    base = load_entity_base(*paths)
    assert len(base) == 2782 + 1792
    assert base.merged == 4 + 224
