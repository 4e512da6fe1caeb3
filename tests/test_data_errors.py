"""mernlib.data: only the splits asked for are located, and an entity base without concepts stops the run."""

import pytest

from mernlib import data
from mernlib.errors import DataNotFoundError


@pytest.fixture
def only_the_ncbi_test_file(real_corpora, tmp_path, monkeypatch):
    """A data folder holding the NCBI test file alone, offline, with an empty cache."""
    root = tmp_path / "data"
    (root / "ncbi-disease").mkdir(parents=True)
    (root / "ncbi-disease" / "NCBItestset_corpus.txt").symlink_to(
        real_corpora / "ncbi-disease" / "NCBItestset_corpus.txt"
    )
    monkeypatch.setenv("MERNLIB_OFFLINE", "1")
    monkeypatch.setenv("MERNLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MERNLIB_DATA", raising=False)
    return root


@pytest.mark.real_data
def test_one_split_needs_only_its_file(only_the_ncbi_test_file):
    root = only_the_ncbi_test_file
    assert list(data.corpus_files("ncbi-disease", root, ("test",))) == ["test"]
    assert len(data.load_corpus("ncbi-disease", "test", root)) == 100
    with pytest.raises(DataNotFoundError, match="NCBItrainset_corpus.txt"):
        data.corpus_files("ncbi-disease", root)  # all splits: the train file is needed, and missing


def test_unknown_split_is_refused_before_anything_is_located():
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        data.corpus_files("ncbi-disease", None, ("validation",))
    with pytest.raises(ValueError, match="unknown split 'devel'"):
        data.load_corpus("sample", "devel")
    assert len(data.load_corpus("sample", "test")) == 20


@pytest.mark.real_data
def test_an_entity_base_with_no_concepts_stops_with_the_fix(only_the_ncbi_test_file):
    root = only_the_ncbi_test_file
    with pytest.warns(UserWarning, match="entity base without (mesh|omim) names"):
        with pytest.raises(DataNotFoundError) as err:
            data.load_corpus_entity_base("ncbi-disease", root)
    first = str(err.value).splitlines()[0]
    assert (
        first.startswith("no entity base for ncbi-disease")
        and "Fix: put mesh.tsv and omim.tsv under" in first
    )
    assert "mesh.tsv" in str(err.value) and "omim.tsv" in str(err.value)  # each file's own reason follows
    # an empty (or truncated) copy fails its checksum: the same stop, not a base of 0 concepts
    (root / "entity-base").mkdir()
    (root / "entity-base" / "mesh.tsv").write_text("")
    (root / "entity-base" / "omim.tsv").write_text("")
    with pytest.warns(UserWarning), pytest.raises(DataNotFoundError, match="no entity base"):
        data.load_corpus_entity_base("ncbi-disease", root)


@pytest.mark.real_data
def test_an_entity_base_missing_one_file_still_loads_with_a_warning(only_the_ncbi_test_file, real_corpora):
    root = only_the_ncbi_test_file
    (root / "entity-base").mkdir()
    (root / "entity-base" / "mesh.tsv").symlink_to(real_corpora / "entity-base" / "mesh.tsv")
    with pytest.warns(UserWarning, match="entity base without omim names"):
        base = data.load_corpus_entity_base("ncbi-disease", root)
    assert len(base) > 2000
