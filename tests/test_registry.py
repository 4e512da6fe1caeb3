"""The corpus registry: entries, lookup, and downloads from a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from mernlib import registry
from mernlib.errors import DataNotFoundError
from mernlib.registry import DATASETS, ChecksumError, Dataset, FileSpec, locate

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("MERNLIB_DATA", "MERNLIB_OFFLINE", "MERNLIB_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MERNLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return tmp_path


# ---- the entries ----------------------------------------------------------------------------------


def test_every_entry_is_complete():
    for name, d in DATASETS.items():
        assert d.name == name and d.files and d.licence and d.citation and d.source and d.entity_types
        assert d.task in {"pubtator", "iob", "entity-base"}
        for spec in d.files.values():
            assert spec.sha256 is None or HEX64.match(spec.sha256)
            assert not Path(spec.path).is_absolute()
    specs = [(d.folder, s.path, s.sha256) for d in DATASETS.values() for s in d.files.values()]
    assert len({(folder, path) for folder, path, _ in specs}) == len(specs) == 74
    # every checksum of the corpora folder's SHA256SUMS (70 files) is in the registry, once
    assert len({h for _, _, h in specs if h}) == len(registry._SHA256) == 70


def test_official_sources():
    ncbi = DATASETS["ncbi-disease"]
    assert ncbi.files["train"].archive_url == (
        "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/NCBItrainset_corpus.zip"
    )
    assert ncbi.files["devel"].member == "NCBIdevelopset_corpus.txt"
    assert ncbi.files["test"].sha256 == "61c8050bf6979ef7b943ec1158dfc03b651ea3367d4c37356f9de4841e85c9a3"
    cdr = DATASETS["bc5cdr"]
    assert {s.archive_url for s in cdr.files.values()} == {
        "https://biocreative.bioinformatics.udel.edu/media/store/files/2016/CDR_Data.zip"
    }
    assert cdr.files["train"].member == "CDR_Data/CDR.Corpus.v010516/CDR_TrainingSet.PubTator.txt"
    base = DATASETS["entity-base"]
    assert set(base.files) == {"mesh", "omim"} and all(s.source_url is None for s in base.files.values())
    ncbi_iob = DATASETS["NCBI-disease"]
    assert ncbi_iob.folder == "crichton-2017-ner/NCBI-disease-IOB" and ncbi_iob.licence == "CC BY 4.0"
    assert ncbi_iob.files["devel"].url == (
        "https://raw.githubusercontent.com/cambridgeltl/MTL-Bioinformatics-2016/master/data/"
        "NCBI-disease-IOB/devel.tsv"
    )
    assert "Crichton" in ncbi_iob.citation and "2017" in ncbi_iob.citation


def test_absent_files_are_named_without_checksum():
    absent = {(d.name, s) for d in DATASETS.values() for s in d.absent_splits()}
    assert absent == {("BC4CHEMD", "train"), ("BC4CHEMD", "devel"), ("BC4CHEMD", "test"), ("JNLPBA", "train")}
    assert not DATASETS["BC4CHEMD"].available and DATASETS["JNLPBA"].available
    assert DATASETS["BC4CHEMD"].files["train"].url.endswith("/data/BC4CHEMD/train.tsv")
    messages = registry.absent_files(data_dir="/nowhere")
    assert len(messages) == 4
    assert messages[0] == (
        "absent: BC4CHEMD train (get it from https://raw.githubusercontent.com/cambridgeltl/"
        "MTL-Bioinformatics-2016/master/data/BC4CHEMD/train.tsv, place it at "
        "/nowhere/crichton-2017-ner/BC4CHEMD/train.tsv)"
    )


def test_absent_file_is_never_downloaded():
    with pytest.raises(DataNotFoundError) as err:
        locate("BC4CHEMD", "train", mirror="http://127.0.0.1:9")
    text = str(err.value)
    assert text.startswith("absent: BC4CHEMD train (get it from https://raw.githubusercontent.com/")
    assert "no checksum" in text and "put train.tsv under $MERNLIB_DATA/crichton-2017-ner/BC4CHEMD/" in text


def test_entity_types_and_groups():
    groups = registry.ENTITY_TYPE_GROUPS
    assert set(groups) == {"chemical", "disease", "gene-protein", "species"}
    assert groups["disease"] == ("BC5CDR-disease", "NCBI-disease")
    assert set(groups["species"]) == {"linnaeus", "BioNLP11ID-species", "BioNLP13CG-species", "CRAFT-species"}
    assert "BC4CHEMD" in groups["chemical"] and len(groups["gene-protein"]) == 10
    assert sum(len(v) for v in groups.values()) == 22
    assert [d.name for d in registry.datasets_of_type("chemical", available_only=True)] == [
        n for n in groups["chemical"] if n != "BC4CHEMD"
    ]
    assert registry.datasets_of_type("gene/protein") == registry.datasets_of_type("protein")
    with pytest.raises(KeyError, match="unknown entity type"):
        registry.datasets_of_type("anatomy")
    assert DATASETS["JNLPBA"].entity_types == ("DNA", "RNA", "cell_line", "cell_type", "protein")


def test_get_and_split_aliases():
    assert registry.get("ncbi-disease-iob") is DATASETS["NCBI-disease"]
    assert registry.get("NCBI-disease-IOB") is DATASETS["NCBI-disease"]
    assert registry.get("ncbi-disease") is DATASETS["ncbi-disease"]
    assert registry.get("bc5cdr-CHEM") is DATASETS["BC5CDR-chem"]
    assert registry.get("BC5CDR") is DATASETS["bc5cdr"]
    with pytest.raises(KeyError, match="unknown dataset"):
        registry.get("nope")
    with pytest.raises(KeyError, match="no split 'dev2'"):
        locate("ncbi-disease", "dev2")


def test_mirrored():
    url = "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/NCBItrainset_corpus.zip"
    assert registry.mirrored(url) == url
    assert registry.mirrored(url, "http://127.0.0.1:8000") == (
        "http://127.0.0.1:8000/CBBresearch/Dogan/DISEASE/NCBItrainset_corpus.zip"
    )
    assert registry.mirrored(url, "http://127.0.0.1:8000/m/").startswith(
        "http://127.0.0.1:8000/m/CBBresearch/"
    )


# ---- a local server -------------------------------------------------------------------------------

ONE = b"first member\n" * 50
TWO = b"second member\n"
THREE = b"from the tarball\n"
PLAIN = b"token\tO\n\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    def __init__(self, root: Path):
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 (http.server's name)
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www" / "files"
    root.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pack/one.txt", ONE)
        zf.writestr("pack/two.txt", TWO)
        zf.writestr("pack/README", b"not wanted")
    (root / "pack.zip").write_bytes(buf.getvalue())
    with tarfile.open(root / "pack.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("dir/sub/three.txt")
        info.size = len(THREE)
        tf.addfile(info, io.BytesIO(THREE))
    (root / "plain.tsv").write_bytes(PLAIN)
    srv = Server(tmp_path / "www")
    yield srv
    srv.close()


def make_dataset(**overrides) -> Dataset:
    official = "https://corpora.example.org/files/"
    files = {
        "one": FileSpec("one.txt", sha(ONE), archive_url=official + "pack.zip", member="pack/one.txt"),
        "two": FileSpec("two.txt", sha(TWO), archive_url=official + "pack.zip", member="pack/two.txt"),
        # the member is found by its base name when the archive's folder differs
        "three": FileSpec("three.txt", sha(THREE), archive_url=official + "pack.tar.gz", member="three.txt"),
        "plain": FileSpec("plain.tsv", sha(PLAIN), url=official + "plain.tsv"),
    }
    files.update(overrides)
    return Dataset(
        name="toy",
        folder="toy-corpus/v1",
        files=files,
        source=official,
        licence="CC0",
        citation="Nobody. A toy corpus. 2024.",
        entity_types=("Thing",),
        task="iob",
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def test_download_extracts_verifies_and_caches(server, clean_env, monkeypatch):
    toy = make_dataset()
    replaced = []
    real_replace = os.replace

    def spy_replace(src, dst):
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(registry.os, "replace", spy_replace)
    cache = clean_env / "cache" / "toy-corpus" / "v1"
    path = locate(toy, "one", mirror=server.url)
    assert path == cache / "one.txt" and path.read_bytes() == ONE
    assert server.requests == ["/files/pack.zip"]
    # the sibling member of the same archive came with the same download
    assert (cache / "two.txt").read_bytes() == TWO and not (cache / "README").exists()
    # atomic: each file was renamed from a temporary file in the same folder; nothing left behind
    assert {dst for _, dst in replaced} == {cache / "one.txt", cache / "two.txt"}
    assert all(src.parent == dst.parent and src != dst for src, dst in replaced)
    assert leftovers(clean_env / "cache") == []

    assert locate(toy, "one", mirror=server.url) == path
    assert locate(toy, "two", mirror=server.url) == cache / "two.txt"
    assert server.requests == ["/files/pack.zip"]  # the second and third calls used the cache

    assert locate(toy, "three", mirror=server.url).read_bytes() == THREE
    assert locate(toy, "plain", mirror=server.url).read_bytes() == PLAIN
    assert server.requests == ["/files/pack.zip", "/files/pack.tar.gz", "/files/plain.tsv"]
    everything = locate(toy, mirror=server.url)
    assert set(everything) == {"one", "two", "three", "plain"}
    assert len(server.requests) == 3


def test_all_splits_from_one_archive_is_one_request(server):
    toy = make_dataset()
    toy.files.pop("three")
    toy.files.pop("plain")
    paths = locate(toy, mirror=server.url)
    assert paths["one"].read_bytes() == ONE and paths["two"].read_bytes() == TWO
    assert server.requests == ["/files/pack.zip"]


def test_mirror_from_environment(server, monkeypatch):
    monkeypatch.setenv("MERNLIB_MIRROR", server.url)
    assert locate(make_dataset(), "plain").read_bytes() == PLAIN
    assert server.requests == ["/files/plain.tsv"]


def test_checksum_mismatch_writes_nothing(server, clean_env):
    wrong = "0" * 64
    toy = make_dataset(
        one=FileSpec(
            "one.txt", wrong, archive_url="https://corpora.example.org/files/pack.zip", member="pack/one.txt"
        ),
        plain=FileSpec("plain.tsv", wrong, url="https://corpora.example.org/files/plain.tsv"),
    )
    with pytest.raises(ChecksumError) as err:
        locate(toy, "one", mirror=server.url)
    text = str(err.value)
    assert "one.txt" in text and f"{server.url}/files/pack.zip" in text and "pack/one.txt" in text
    assert f"expected sha256: {wrong}" in text and sha(ONE) in text
    assert "put one.txt under $MERNLIB_DATA/toy-corpus/v1/ or " in text
    assert f"{clean_env / 'cache'}/toy-corpus/v1/" in text
    cache = clean_env / "cache" / "toy-corpus" / "v1"
    assert not (cache / "one.txt").exists() and leftovers(clean_env / "cache") == []
    with pytest.raises(ChecksumError, match="plain.tsv has sha256") as err:
        locate(toy, "plain", mirror=server.url)
    assert not (cache / "plain.tsv").exists() and leftovers(clean_env / "cache") == []
    assert isinstance(err.value, DataNotFoundError) and isinstance(err.value, FileNotFoundError)


def test_missing_member_and_http_404(server):
    toy = make_dataset(
        one=FileSpec(
            "one.txt", sha(ONE), archive_url="https://corpora.example.org/files/pack.zip", member="x/nine.txt"
        ),
        plain=FileSpec("plain.tsv", sha(PLAIN), url="https://corpora.example.org/files/gone.tsv"),
    )
    with pytest.raises(DataNotFoundError, match="does not hold x/nine.txt"):
        locate(toy, "one", mirror=server.url)
    with pytest.raises(DataNotFoundError) as err:
        locate(toy, "plain", mirror=server.url)
    assert "HTTP 404" in str(err.value) and f"{server.url}/files/gone.tsv" in str(err.value)


def test_server_down(clean_env):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataNotFoundError) as err:
        locate(make_dataset(), "one", mirror=f"http://127.0.0.1:{port}")
    text = str(err.value)
    assert "could not download one.txt (one)" in text
    assert f"http://127.0.0.1:{port}/files/pack.zip (archive member pack/one.txt)" in text
    assert f"expected sha256: {sha(ONE)}" in text
    assert "to place it by hand: put one.txt under $MERNLIB_DATA/toy-corpus/v1/" in text
    assert "(extract pack/one.txt from pack.zip)" in text
    assert leftovers(clean_env / "cache") == [] if (clean_env / "cache").exists() else True


def test_offline_and_download_false(server, monkeypatch):
    with pytest.raises(DataNotFoundError, match=r"downloads are off \(download=False\)"):
        locate(make_dataset(), "plain", mirror=server.url, download=False)
    monkeypatch.setenv("MERNLIB_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match=r"downloads are off \(MERNLIB_OFFLINE=1\)") as err:
        locate(make_dataset(), "plain", mirror=server.url)
    assert "put plain.tsv under" in str(err.value)
    assert server.requests == []


def test_found_under_mernlib_data_is_verified_once(server, clean_env, monkeypatch):
    data = clean_env / "data"
    placed = data / "toy-corpus" / "v1" / "plain.tsv"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(PLAIN)
    monkeypatch.setenv("MERNLIB_DATA", str(data))
    calls = []
    real_hash = registry._sha256_file
    monkeypatch.setattr(registry, "_sha256_file", lambda p: calls.append(p) or real_hash(p))
    toy = make_dataset()
    assert locate(toy, "plain", mirror=server.url) == placed
    assert locate(toy, "plain", mirror=server.url) == placed
    assert len(calls) == 1 and server.requests == []
    # data_dir beats $MERNLIB_DATA
    other = clean_env / "other"
    (other / "toy-corpus" / "v1").mkdir(parents=True)
    (other / "toy-corpus" / "v1" / "plain.tsv").write_bytes(PLAIN)
    assert locate(toy, "plain", data_dir=other) == other / "toy-corpus" / "v1" / "plain.tsv"


def test_wrong_copy_under_mernlib_data_is_a_clear_error(server, clean_env, monkeypatch):
    data = clean_env / "data"
    placed = data / "toy-corpus" / "v1" / "plain.tsv"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"something else\n")
    monkeypatch.setenv("MERNLIB_DATA", str(data))
    with pytest.raises(ChecksumError) as err:
        locate(make_dataset(), "plain", mirror=server.url)
    text = str(err.value)
    assert str(placed) in text and "under $MERNLIB_DATA" in text and sha(b"something else\n") in text
    assert f"expected sha256: {sha(PLAIN)}" in text
    assert server.requests == []  # a wrong copy is reported, not silently replaced
    assert locate(make_dataset(), "plain", mirror=server.url, verify=False) == placed


def test_damaged_cache_entry_is_fetched_again(server, clean_env):
    cached = clean_env / "cache" / "toy-corpus" / "v1" / "plain.tsv"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    assert locate(make_dataset(), "plain", mirror=server.url).read_bytes() == PLAIN
    assert server.requests == ["/files/plain.tsv"]
    cached.write_bytes(b"damaged again")
    with pytest.raises(ChecksumError, match="in the cache"):
        locate(make_dataset(), "plain", mirror=server.url, download=False)


def test_damaged_cache_entry_that_cannot_be_fetched_again_says_so_first(server, clean_env):
    """Not just "could not download": the user must learn that the copy they have failed its checksum."""
    cached = clean_env / "cache" / "toy-corpus" / "v1" / "plain.tsv"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    gone = make_dataset(
        plain=FileSpec("plain.tsv", sha(PLAIN), url="https://corpora.example.org/files/gone.tsv")
    )
    with pytest.raises(ChecksumError) as err:
        locate(gone, "plain", mirror=server.url)
    first, *rest = str(err.value).splitlines()
    assert (
        f"the cached copy {cached} of plain.tsv (plain) failed its checksum (sha256 {sha(b'truncated')}"
        in first
    )
    assert "fetching a fresh copy failed too" in first
    assert any("could not download plain.tsv" in line and "HTTP 404" in line for line in rest)
    assert cached.read_bytes() == b"truncated"  # nothing replaced by a failed download


def test_split_none_reports_every_missing_file():
    with pytest.raises(DataNotFoundError) as err:
        locate(make_dataset(), download=False)
    text = str(err.value)
    for name in ("one.txt", "two.txt", "three.txt", "plain.tsv"):
        assert f"put {name} under" in text


def test_entity_base_without_url_explains_hand_placement():
    with pytest.raises(DataNotFoundError) as err:
        locate("entity-base", "omim")
    text = str(err.value)
    assert "there is no public URL for this file" in text
    assert "put omim.tsv under $MERNLIB_DATA/entity-base/" in text
    assert "ca237723355a19515a4b07a6d3e58aec2cae18666001293e46db4d47d35734b2" in text


# ---- the real corpora folder ------------------------------------------------------------------------


def test_real_corpora_verify(real_corpora):
    bad = set()
    for dataset in DATASETS.values():
        for split, spec in dataset.files.items():
            if spec.sha256 is None:
                assert not (real_corpora / dataset.folder / spec.path).exists()
                continue
            try:
                path = locate(dataset.name, split, data_dir=real_corpora, download=False)
            except ChecksumError:
                bad.add((dataset.name, split))
                continue
            assert path == real_corpora / dataset.folder / spec.path
    assert not bad, bad


def test_real_registry_checksums_are_the_folders_own(real_corpora):
    # every file the registry names with a checksum is listed with the same sum in SHA256SUMS
    listed = {}
    for line in (real_corpora / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    for dataset in DATASETS.values():
        for spec in dataset.files.values():
            if spec.sha256 is not None:
                assert listed[f"{dataset.folder}/{spec.path}"] == spec.sha256, (dataset.name, spec.path)


def test_real_absent_files(real_corpora):
    assert [m.split(" (")[0] for m in registry.absent_files(real_corpora)] == [
        "absent: BC4CHEMD train",
        "absent: BC4CHEMD devel",
        "absent: BC4CHEMD test",
        "absent: JNLPBA train",
    ]
