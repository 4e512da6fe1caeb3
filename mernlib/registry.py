"""Where every corpus comes from, and how the kit finds (or fetches) a verified copy of it.

:data:`DATASETS` names each corpus the kit knows: its folder, its files (one per split) with their
official source URL and SHA-256 checksum, licence, citation, entity types and task. :func:`locate`
turns a dataset name into a local, checksum-verified path:

1. ``data_dir`` (argument) or ``$MERNLIB_DATA``, laid out as ``<root>/<folder>/<file>``, e.g.
   ``$MERNLIB_DATA/ncbi-disease/NCBItrainset_corpus.txt`` or
   ``$MERNLIB_DATA/crichton-2017-ner/NCBI-disease-IOB/train.tsv``;
2. the user cache, ``$MERNLIB_CACHE`` or ``~/.cache/mernlib``, same layout;
3. otherwise a download from the official URL (urllib only; a member is extracted when the file is
   distributed inside a zip / tar.gz archive), verified against the registry's checksum and written
   atomically (temporary file + :func:`os.replace`) into the cache.

Files found under ``$MERNLIB_DATA`` or in the cache are checksum-verified too, lazily (the first time
they are located) and once per process per file version. A file the registry has no checksum for
(``sha256=None``: BC4CHEMD and the JNLPBA training split, which are not in the project's corpora
folder) is used as found when placed by hand, but never downloaded automatically: the kit could not
verify what it got.

A cached copy that fails its checksum is fetched again when downloads are allowed; when they are
not, or the fresh download fails too, the error says first that the cached copy failed its checksum
(:class:`ChecksumError`), then why it could not be replaced.

Downloads are off when ``download=False`` or ``MERNLIB_OFFLINE=1``. ``mirror=`` or ``$MERNLIB_MIRROR``
(e.g. ``http://127.0.0.1:8000``) replaces the scheme and host of every official URL, keeping its
path, for tests and local mirrors. Whatever goes wrong, :class:`~mernlib.errors.DataNotFoundError`
says which file, from which URL, with which checksum, and where to put it by hand.

Split names are ``train``, ``devel`` and ``test`` for every corpus (``dev`` is accepted for ``devel``);
the entity base's files are the splits ``mesh`` and ``omim``.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import DataNotFoundError

TIMEOUT = 60
"""Seconds a download may stall before it counts as failed."""

_CHUNK = 1 << 16

# The checksums of the project's corpora folder (its SHA256SUMS), keyed by path under the data root.
# Copied here once so that the registry itself says what a good copy is; nothing reads that folder.
_SHA256: dict[str, str] = {
    "bc5cdr/CDR_DevelopmentSet.PubTator.txt": "9e18d8e700168887a7919e62f67ac2ce2357e3f409a48ee992906abdd80fe3e5",
    "bc5cdr/CDR_TestSet.PubTator.txt": "a3c48d5f35bdfce20c2371778abedc9fd24d1da092207072e5181ad53c8d0e2f",
    "bc5cdr/CDR_TrainingSet.PubTator.txt": "7afcec134e3d4871e74b0398d92850d3c9ac94c0bdc780003f2d60184c012bd8",
    "crichton-2017-ner/BC2GM-IOB/devel.tsv": "33a94577aa22f1e70ec9e02781a05baa4e1390e866d28bf2b344888e4e3d4103",
    "crichton-2017-ner/BC2GM-IOB/test.tsv": "30d7a4f571ca8ed22a044528063ba5d0388d666d8b8b329733d6927e5fb30764",
    "crichton-2017-ner/BC2GM-IOB/train.tsv": "46e17f4e1509483b82c03f27d6f0214020f738fb71704356fb3445eb824ab38d",
    "crichton-2017-ner/BC5CDR-chem-IOB/devel.tsv": "3f1df5cfcff95735663ffc37121fd3687e82b1e9a019bec0480491502652721b",
    "crichton-2017-ner/BC5CDR-chem-IOB/test.tsv": "6fce42139a9d819151eff3ab8cb0eda6fbf861fd17d4cfe6be2123f010a3b6c5",
    "crichton-2017-ner/BC5CDR-chem-IOB/train.tsv": "165c4cd2efadd0caf1bb8f3c6bcd3acca199446bb3d55eb06d9137114c9a0b2d",
    "crichton-2017-ner/BC5CDR-disease-IOB/devel.tsv": "8c3af95475029c2100c2b7c0108b2715bc700ac198c7a21d587f11f1d06b17bd",
    "crichton-2017-ner/BC5CDR-disease-IOB/test.tsv": "a530bf9e17a4122b101b09cedd5f3cf8e6307d6a0093146c33b8de2e69ec0fa3",
    "crichton-2017-ner/BC5CDR-disease-IOB/train.tsv": "d630dafe7dd67e21350cc3278dbdcfadcccbb2b63d0fda83b2427853988e5ad9",
    "crichton-2017-ner/BioNLP09-IOB/devel.tsv": "9cfebba60ecb0db64ce9153c3500f2e7e995c6c5e827f0d7f3e7a9dc5422aada",
    "crichton-2017-ner/BioNLP09-IOB/test.tsv": "b4e2acba0863bbd9ed27264adafc3e1d0b1cd764334366a622d662eeb5c310f4",
    "crichton-2017-ner/BioNLP09-IOB/train.tsv": "abf9a6242bbd932e725f85d6ceb0ece41aae3c96775e45d18364868a1ad7bfe1",
    "crichton-2017-ner/BioNLP11EPI-IOB/devel.tsv": "522435a7f9e8fb22d2a0575493b3e8dbbe6bafedae944c7d346c7fffd55e06d5",
    "crichton-2017-ner/BioNLP11EPI-IOB/test.tsv": "fa4aa96d5f318cafa741fffa5e3fa542f29f0b67320f0b8ba7e1f8780848490b",
    "crichton-2017-ner/BioNLP11EPI-IOB/train.tsv": "96c531c78b76b7e1f7d38547e6f6a321c6781a6f199c151f443855765996d34f",
    "crichton-2017-ner/BioNLP11ID-chem-IOB/devel.tsv": "1d49e2be6821b1972e43565ed329513a758cd1cbe4549c5156100daae4c14fa1",
    "crichton-2017-ner/BioNLP11ID-chem-IOB/test.tsv": "1c9f2a575be46a52bfad6fb0876ff8ee8eddaef5515ebfb4bf06652608c0453e",
    "crichton-2017-ner/BioNLP11ID-chem-IOB/train.tsv": "c3061cb3ee267ed90b7a60e3b585f8ba35a909e0fa347274634491e81fea6eb4",
    "crichton-2017-ner/BioNLP11ID-ggp-IOB/devel.tsv": "40292fd71358feb11910c65c39f8ac69973d20d4b98ac5d2f2e82c9cd226478b",
    "crichton-2017-ner/BioNLP11ID-ggp-IOB/test.tsv": "dfd9a1170a5d9681d513e88bfa15a306488d5869139a4821ac413522911c1293",
    "crichton-2017-ner/BioNLP11ID-ggp-IOB/train.tsv": "77f770192e8cff59eba86667e0da19ace90341555b9ea3ee0b9d6deb197a2fef",
    "crichton-2017-ner/BioNLP11ID-species-IOB/devel.tsv": "2356ea17bf507d278f1415c84a80c0dcf6b8802416c53414a3f26cd861129137",
    "crichton-2017-ner/BioNLP11ID-species-IOB/test.tsv": "13d84c91619139209de14c08a75026178a7a150cb1411b697a0c37d50771e0be",
    "crichton-2017-ner/BioNLP11ID-species-IOB/train.tsv": "6c7f109b70c232443db517dee1a622e537684ffbcd7c4104183453e2267940fe",
    "crichton-2017-ner/BioNLP13CG-chem-IOB/devel.tsv": "2d7c6ad64d6ad1102d97afc0ded1939c66d22e2aca61ef7a12553edc1d9a5a7b",
    "crichton-2017-ner/BioNLP13CG-chem-IOB/test.tsv": "45df8f868329fd504fc29f1aff5bce7be60382d8be21539d8f2264b22f395007",
    "crichton-2017-ner/BioNLP13CG-chem-IOB/train.tsv": "efc0513f346e46dc8699bf87ed69ed21acac350d323d655b9e7ed67428d3b8c5",
    "crichton-2017-ner/BioNLP13CG-ggp-IOB/devel.tsv": "97f59ef34444fe40eea3efde6637dc3b3bfe53232a51ae50dab0be373897b102",
    "crichton-2017-ner/BioNLP13CG-ggp-IOB/test.tsv": "44489463c00ff75a2f3868ba4c9950b8a1ad13c8e9524d968a0e50dda93669e4",
    "crichton-2017-ner/BioNLP13CG-ggp-IOB/train.tsv": "eae03b77052f057aec0bb9d5f5eff60584ac008d1743d2ffac5a5a6114425b8c",
    "crichton-2017-ner/BioNLP13CG-species-IOB/devel.tsv": "3b909b9fda5896ceea3f2a847efcee608faf02fe31c3c4d3aa7b0558b4ea97c2",
    "crichton-2017-ner/BioNLP13CG-species-IOB/test.tsv": "fc051ee7ae9e1a77ce74a6c9c029a2e1023d3fb8c5145d5c003ab8e4498633ef",
    "crichton-2017-ner/BioNLP13CG-species-IOB/train.tsv": "848fe7fd814eda8df96481151e3aba7a994d8a1a5a8a6368f0618fa8bfed5ebb",
    "crichton-2017-ner/BioNLP13GE-IOB/devel.tsv": "b09afafc63fc4fcc2ddc3a5a0a9711c973bc1aecee48e3e5afec6364e39b83b4",
    "crichton-2017-ner/BioNLP13GE-IOB/test.tsv": "812fdb078ad257d3b87a6f9ff62a37cf622225cf3763bdaed9c897169b528cfa",
    "crichton-2017-ner/BioNLP13GE-IOB/train.tsv": "6961abede2a0a14cd984674435accf6f4bbb201361bf04a796a248c2ffce3759",
    "crichton-2017-ner/BioNLP13PC-chem-IOB/devel.tsv": "58081382558640838cbd4beec5786cd2c9954c5b84e88468c34e5f3421685bcb",
    "crichton-2017-ner/BioNLP13PC-chem-IOB/test.tsv": "53799fd4e87f47fa653f43f2ea8a850e4c9e3b963ef2102ca426dcbbdaa0f11d",
    "crichton-2017-ner/BioNLP13PC-chem-IOB/train.tsv": "a3586c7d35e2027fefed5e25276219c96fc5f3898cce7d445778f8fee9130968",
    "crichton-2017-ner/BioNLP13PC-ggp-IOB/devel.tsv": "5c96f8f768901fda2ab7f9c47cbedbdae9072da7376b933c23ccfbf1c08351fb",
    "crichton-2017-ner/BioNLP13PC-ggp-IOB/test.tsv": "9a7992ac6efdd534ee7c489ac9d1a61e036f56762c946e5c78d84f8096f8a6d2",
    "crichton-2017-ner/BioNLP13PC-ggp-IOB/train.tsv": "9b0739ffbba0dd8ec76e54af66d7251da5c56f95e68de588f2f734c0237ea753",
    "crichton-2017-ner/CRAFT-chem-IOB/devel.tsv": "b2fd7d38a552d3ae9c8d7ab01348f7d77ed7b303885313a973c728eee6c77853",
    "crichton-2017-ner/CRAFT-chem-IOB/test.tsv": "452ac0dc9fadaec94722012350ee3f9fdfb7cc5b943919721e2d3b1f308912d3",
    "crichton-2017-ner/CRAFT-chem-IOB/train.tsv": "b5f6d646d9abe1ae041b2124a7dd9a925cb704e0fb4ddb3d4f8339b36aa3ec13",
    "crichton-2017-ner/CRAFT-ggp-IOB/devel.tsv": "1f13e2b4f2be5f4a414652aa98d062c27349de8d74240d9a2a73f3a76fb06d0d",
    "crichton-2017-ner/CRAFT-ggp-IOB/test.tsv": "f2b8b1cec54b15eb64abff17f16d696552ee46ae890095a0ccb8c854533df69d",
    "crichton-2017-ner/CRAFT-ggp-IOB/train.tsv": "43957478a2af18cf6d7833fc65a8191d54fc70764fb2298832db62a30de0f94f",
    "crichton-2017-ner/CRAFT-species-IOB/devel.tsv": "f702529e903a1f2cb79c1ca2657ff7e8413e6a3278b34507c0f2afaac71a34b1",
    "crichton-2017-ner/CRAFT-species-IOB/test.tsv": "63f9164ccb91c842323788299d29d4fdad0a04e90063dd2a96d17850bbc39791",
    "crichton-2017-ner/CRAFT-species-IOB/train.tsv": "408b2057a88f6043720e731bc9a2ce322b86492793e4cb222203fa28b486c9ba",
    "crichton-2017-ner/Ex-PTM-IOB/devel.tsv": "488bb9fc78dd439473158753a87bc341016835bc4698b0756bcd52cd80e4de1e",
    "crichton-2017-ner/Ex-PTM-IOB/test.tsv": "f4da237c2caced544a20ce7567835e840a410fa329f9ef33f62cb343e7481e0d",
    "crichton-2017-ner/Ex-PTM-IOB/train.tsv": "93633cfd1b3722960f17c632a92d0cc403168fbaddef5d4e7027761cdbb13ac6",
    "crichton-2017-ner/JNLPBA/devel.tsv": "462b09bc79a4dd69cec2e70b6041f54383b4b94892d2ee971a587fdc74caae80",
    "crichton-2017-ner/JNLPBA/test.tsv": "87c9b8f1f7fcf94add38c16088203d4ddf35c2f61eb2c7e61240c738d8dd9d35",
    "crichton-2017-ner/NCBI-disease-IOB/devel.tsv": "b4e1e7efcc2a35047bf2f3d281648357470e674f555d4a26a0049ac37d59cc61",
    "crichton-2017-ner/NCBI-disease-IOB/test.tsv": "8f088ce45dc4746592188f9e69de3d89d87f3bb8f0ed8c4a287d018123fa148d",
    "crichton-2017-ner/NCBI-disease-IOB/train.tsv": "58379baf4614b8d757d93dd7a21b202849ca99f9b9d71b49185523ff5443300c",
    "crichton-2017-ner/linnaeus-IOB/devel.tsv": "042b5676d4f541995d617f43e2926afdf6653ed60ad9010c2f45b78ae869f2b6",
    "crichton-2017-ner/linnaeus-IOB/test.tsv": "1792b82f7cf9159fd71de38b139a457dbc5ca126c13ac9e355a5fad3e65930ad",
    "crichton-2017-ner/linnaeus-IOB/train.tsv": "74c8612944a4de87665680989a3d589c843562d3ec175e3b512295691b221d9a",
    "entity-base/mesh.tsv": "2673a412b9dbcac6591cf862e017f2b06e13d893fe537bcfce5cb73382915e60",
    "entity-base/omim.tsv": "ca237723355a19515a4b07a6d3e58aec2cae18666001293e46db4d47d35734b2",
    "ncbi-disease/NCBIdevelopset_corpus.txt": "02db559974624ae9cbe6cd95d64d953e6926bb63afb6b25b63e53bd8b41a4b55",
    "ncbi-disease/NCBItestset_corpus.txt": "61c8050bf6979ef7b943ec1158dfc03b651ea3367d4c37356f9de4841e85c9a3",
    "ncbi-disease/NCBItrainset_corpus.txt": "3577a122567916449f4127289aa6f84d49c73ff32bf64b3be5ff14e019c98c38",
}


class ChecksumError(DataNotFoundError):
    """A corpus file whose SHA-256 is not the one the registry records (a wrong or damaged copy)."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    ``path`` is relative to the dataset's folder. ``url`` is where the file itself can be fetched;
    when the file is distributed inside an archive instead, ``archive_url`` is the archive (zip,
    tar.gz, tgz or tar) and ``member`` the file's path inside it. ``sha256`` is ``None`` when the
    registry has no checksum (the file is not in the project's corpora folder).
    """

    path: str
    sha256: str | None
    url: str | None = None
    archive_url: str | None = None
    member: str | None = None

    @property
    def filename(self) -> str:
        return Path(self.path).name

    @property
    def source_url(self) -> str | None:
        """The URL a download starts from: the file's own, or its archive's."""
        return self.url or self.archive_url

    @property
    def downloadable(self) -> bool:
        """True when the kit can fetch *and verify* this file on its own."""
        return self.source_url is not None and self.sha256 is not None


@dataclass(frozen=True)
class Dataset:
    """A corpus (or one folder of a collection) and everything needed to obtain it.

    ``folder`` is relative to the data root (``$MERNLIB_DATA`` or the cache). ``task`` says which
    reader applies: ``"pubtator"`` (:mod:`mernlib.pubtator`), ``"iob"`` (:mod:`mernlib.conll`) or
    ``"entity-base"`` (:mod:`mernlib.entity_base`). ``entity_types`` are the type names as the files
    write them; ``group`` is the coarse type of the Crichton et al. hierarchy (chemical, disease,
    gene-protein, species) or ``None``. ``available`` says whether the data is obtainable as a verified
    copy at all (False for BC4CHEMD, which the kit can only name); a single missing split is marked by
    its ``sha256=None`` (see :meth:`absent_splits`).
    """

    name: str
    folder: str
    files: dict[str, FileSpec]
    source: str
    licence: str
    citation: str
    entity_types: tuple[str, ...]
    task: str
    available: bool = True
    group: str | None = None
    note: str = ""

    def absent_splits(self) -> list[str]:
        """Splits the registry has no checksum for: not in the project's corpora folder."""
        return [split for split, spec in self.files.items() if spec.sha256 is None]


def _spec(folder: str, path: str, **kwargs) -> FileSpec:
    return FileSpec(path=path, sha256=_SHA256.get(f"{folder}/{path}"), **kwargs)


# --------------------------------------------------------------------------------------------------
# The datasets

_NCBI_BASE = "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/"
_CDR_ZIP = "https://biocreative.bioinformatics.udel.edu/media/store/files/2016/CDR_Data.zip"
_CDR_MEMBER = "CDR_Data/CDR.Corpus.v010516/"
_CRICHTON_REPO = "https://github.com/cambridgeltl/MTL-Bioinformatics-2016"
_CRICHTON_RAW = "https://raw.githubusercontent.com/cambridgeltl/MTL-Bioinformatics-2016/master/data/"
_CRICHTON_CITATION = (
    "Crichton G, Pyysalo S, Chiu B, Korhonen A. A neural network multi-task learning approach to "
    "biomedical named entity recognition. BMC Bioinformatics 2017;18:368. doi:10.1186/s12859-017-1776-8"
)
SPLITS = ("train", "devel", "test")

DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    """Add (or replace) a dataset in :data:`DATASETS`; returns it."""
    DATASETS[dataset.name] = dataset
    return dataset


register(
    Dataset(
        name="ncbi-disease",
        folder="ncbi-disease",
        files={
            split: _spec(
                "ncbi-disease",
                f"NCBI{stem}_corpus.txt",
                archive_url=f"{_NCBI_BASE}NCBI{stem}_corpus.zip",
                member=f"NCBI{stem}_corpus.txt",
            )
            for split, stem in (("train", "trainset"), ("devel", "developset"), ("test", "testset"))
        },
        source=_NCBI_BASE,
        licence="public domain (US government work, NCBI)",
        citation=(
            "Dogan RI, Leaman R, Lu Z. NCBI disease corpus: a resource for disease name recognition and "
            "concept normalization. J Biomed Inform 2014;47:1-10. doi:10.1016/j.jbi.2013.12.006"
        ),
        entity_types=("Disease",),
        task="pubtator",
        group="disease",
    )
)

register(
    Dataset(
        name="bc5cdr",
        folder="bc5cdr",
        files={
            split: _spec(
                "bc5cdr",
                f"CDR_{stem}.PubTator.txt",
                archive_url=_CDR_ZIP,
                member=f"{_CDR_MEMBER}CDR_{stem}.PubTator.txt",
            )
            for split, stem in (("train", "TrainingSet"), ("devel", "DevelopmentSet"), ("test", "TestSet"))
        },
        source="https://biocreative.bioinformatics.udel.edu/tasks/biocreative-v/track-3-cdr/",
        licence="BioCreative V track 3 (CDR) corpus: freely available for research use",
        citation=(
            "Li J, Sun Y, Johnson RJ, Sciaky D, Wei CH, Leaman R, Davis AP, Mattingly CJ, Wiegers TC, Lu Z. "
            "BioCreative V CDR task corpus: a resource for chemical disease relation extraction. "
            "Database 2016;2016:baw068. doi:10.1093/database/baw068"
        ),
        entity_types=("Chemical", "Disease"),
        task="pubtator",
    )
)

register(
    Dataset(
        name="entity-base",
        folder="entity-base",
        files={
            "mesh": _spec("entity-base", "mesh.tsv"),
            "omim": _spec("entity-base", "omim.tsv"),
        },
        source="E2EMERN experiments (Zhou et al., ACL 2021); no public download of this exact gathering",
        licence="MeSH names and scope notes: NLM terms and conditions; OMIM titles: OMIM terms of use",
        citation=(
            "Zhou B, Cai X, Zhang Y, Yuan X. An end-to-end progressive multi-task learning framework for "
            "medical named entity recognition and normalization. ACL-IJCNLP 2021:6214-6224."
        ),
        entity_types=("Disease", "Chemical"),
        task="entity-base",
        note=(
            "mesh.tsv (MeSH ID, name, scope note) and omim.tsv (OMIM number, title, Chinese title, two URLs) were "
            "gathered for the "
            "E2EMERN experiments and have no public URL: copy them from the project's corpora folder, or "
            "build an equivalent base from CTD's CTD_diseases.tsv (mernlib.entity_base.load_ctd_medic)."
        ),
    )
)

# The Crichton et al. (2017) collection: folder -> (entity types as tagged, group). Names drop "-IOB".
_CRICHTON: dict[str, tuple[tuple[str, ...], str]] = {
    "BC2GM-IOB": (("GENE",), "gene-protein"),
    "BC4CHEMD": (("Chemical",), "chemical"),
    "BC5CDR-chem-IOB": (("Chemical",), "chemical"),
    "BC5CDR-disease-IOB": (("Disease",), "disease"),
    "BioNLP09-IOB": (("Protein",), "gene-protein"),
    "BioNLP11EPI-IOB": (("Protein",), "gene-protein"),
    "BioNLP11ID-chem-IOB": (("Chemical",), "chemical"),
    "BioNLP11ID-ggp-IOB": (("Protein",), "gene-protein"),
    "BioNLP11ID-species-IOB": (("Organism",), "species"),
    "BioNLP13CG-chem-IOB": (("Simple_chemical",), "chemical"),
    "BioNLP13CG-ggp-IOB": (("Gene_or_gene_product",), "gene-protein"),
    "BioNLP13CG-species-IOB": (("Organism",), "species"),
    "BioNLP13GE-IOB": (("Protein",), "gene-protein"),
    "BioNLP13PC-chem-IOB": (("Simple_chemical",), "chemical"),
    "BioNLP13PC-ggp-IOB": (("Gene_or_gene_product",), "gene-protein"),
    "CRAFT-chem-IOB": (("CHEBI",), "chemical"),
    "CRAFT-ggp-IOB": (("GGP",), "gene-protein"),
    "CRAFT-species-IOB": (("NCBITaxon",), "species"),
    "Ex-PTM-IOB": (("Protein",), "gene-protein"),
    "JNLPBA": (("DNA", "RNA", "cell_line", "cell_type", "protein"), "gene-protein"),
    "NCBI-disease-IOB": (("Disease",), "disease"),
    "linnaeus-IOB": (("Species",), "species"),
}

for _folder, (_types, _group) in _CRICHTON.items():
    _path = f"crichton-2017-ner/{_folder}"
    _files = {s: _spec(_path, f"{s}.tsv", url=f"{_CRICHTON_RAW}{_folder}/{s}.tsv") for s in SPLITS}
    _absent = [s for s, spec in _files.items() if spec.sha256 is None]
    register(
        Dataset(
            name=_folder.removesuffix("-IOB"),
            folder=_path,
            files=_files,
            source=_CRICHTON_REPO,
            licence="CC BY 4.0",
            citation=_CRICHTON_CITATION,
            entity_types=_types,
            task="iob",
            available=len(_absent) < len(_files),
            group=_group,
            note=(
                f"not in the project's corpora folder (too large to carry): {', '.join(_absent)}; the "
                "registry has no checksum for it, so it is never downloaded automatically"
                if _absent
                else ""
            ),
        )
    )
del _folder, _types, _group, _path, _files, _absent

ENTITY_TYPE_GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(d.name for d in DATASETS.values() if d.task == "iob" and d.group == group)
    for group in ("chemical", "disease", "gene-protein", "species")
}
"""Crichton et al.'s coarse entity types -> the IOB datasets of that type (hierarchical sharing)."""


def datasets_of_type(entity_type: str, available_only: bool = False) -> list[Dataset]:
    """The IOB datasets of one coarse entity type (``chemical``, ``disease``, ``gene-protein``,
    ``species``; ``gene``/``protein``/``gene/protein`` mean ``gene-protein``)."""
    key = entity_type.strip().lower().replace("/", "-").replace("_", "-")
    key = {"gene": "gene-protein", "protein": "gene-protein", "genes": "gene-protein"}.get(key, key)
    if key not in ENTITY_TYPE_GROUPS:
        raise KeyError(f"unknown entity type {entity_type!r}; known: {', '.join(ENTITY_TYPE_GROUPS)}")
    found = [DATASETS[name] for name in ENTITY_TYPE_GROUPS[key]]
    return [d for d in found if d.available] if available_only else found


def get(name: str | Dataset) -> Dataset:
    """The registered dataset called ``name``: exactly, else the one whose name matches ignoring
    case (``ncbi-disease`` is the PubTator corpus, ``NCBI-disease`` the IOB one); a trailing ``-IOB``
    (the collection's folder names) selects among the IOB datasets."""
    if isinstance(name, Dataset):
        return name
    if name in DATASETS:
        return DATASETS[name]
    # "ncbi-disease" (PubTator) and "NCBI-disease" (IOB) differ only in case, so a case-insensitive
    # match must be unique; a "-IOB" suffix picks among the IOB datasets.
    wanted = name.lower()
    pool = list(DATASETS.values())
    if wanted.endswith("-iob"):
        wanted = wanted.removesuffix("-iob")
        pool = [d for d in pool if d.task == "iob"]
    matches = [d for d in pool if d.name.lower() == wanted]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise KeyError(f"ambiguous dataset name {name!r}: say {' or '.join(repr(d.name) for d in matches)}")
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


# --------------------------------------------------------------------------------------------------
# Where files are looked for


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def data_root(data_dir: str | Path | None = None) -> Path | None:
    """``data_dir`` or ``$MERNLIB_DATA`` (``None`` when neither is given)."""
    root = data_dir if data_dir is not None else os.environ.get("MERNLIB_DATA")
    return Path(root).expanduser() if root else None


cache_root = paths.cache_root  # downloads go to $MERNLIB_CACHE or ~/.cache/mernlib


def mirrored(url: str, mirror: str | None = None) -> str:
    """``url`` with its scheme and host replaced by ``mirror`` (or ``$MERNLIB_MIRROR``), path kept.

    ``mirrored("https://host/a/b.zip", "http://127.0.0.1:8000/m")`` -> ``"http://127.0.0.1:8000/m/a/b.zip"``.
    """
    mirror = mirror if mirror is not None else os.environ.get("MERNLIB_MIRROR")
    if not mirror:
        return url
    original = urllib.parse.urlsplit(url)
    base = urllib.parse.urlsplit(mirror)
    path = base.path.rstrip("/") + original.path
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path, original.query, ""))


def _normalize_split(dataset: Dataset, split: str) -> str:
    if split in dataset.files:
        return split
    alias = {"dev": "devel", "development": "devel", "validation": "devel"}.get(split.lower(), split.lower())
    if alias in dataset.files:
        return alias
    raise KeyError(f"{dataset.name} has no split {split!r}; it has: {', '.join(dataset.files)}")


def hand_placement(dataset: Dataset, spec: FileSpec, data_dir: str | Path | None = None) -> str:
    """How to put ``spec`` in place by hand, as one sentence."""
    root = data_root(data_dir)
    data_hint = f"{root}/{dataset.folder}/" if root else f"$MERNLIB_DATA/{dataset.folder}/"
    return f"put {spec.filename} under {data_hint} or {cache_root()}/{dataset.folder}/"


def absent_message(dataset: Dataset, split: str, spec: FileSpec, data_dir: str | Path | None = None) -> str:
    """``absent: BC4CHEMD train (get it from <url>, place it at <path>)``."""
    root = data_root(data_dir)
    place = (root or Path("$MERNLIB_DATA")) / dataset.folder / spec.path
    src = spec.source_url or dataset.source
    return f"absent: {dataset.name} {split} (get it from {src}, place it at {place})"


def absent_files(data_dir: str | Path | None = None) -> list[str]:
    """One :func:`absent_message` per registered file without a checksum that is not in place."""
    out = []
    root = data_root(data_dir)
    for dataset in DATASETS.values():
        for split, spec in dataset.files.items():
            if spec.sha256 is not None:
                continue
            candidates = [cache_root() / dataset.folder / spec.path]
            if root:
                candidates.insert(0, root / dataset.folder / spec.path)
            if not any(p.is_file() for p in candidates):
                out.append(absent_message(dataset, split, spec, data_dir))
    return out


# --------------------------------------------------------------------------------------------------
# Verification

_VERIFIED: dict[tuple[str, int, int], str] = {}
"""(resolved path, size, mtime) -> its SHA-256, computed at most once per process per file version."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file, hex; remembered for the process while the file is unchanged."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = _sha256_file(path)
    return _VERIFIED[key]


def _details(dataset: Dataset, spec: FileSpec, url: str | None, data_dir) -> str:
    lines = []
    if url and spec.archive_url:
        lines.append(f"  source: {url} (archive member {spec.member})")
    elif url:
        lines.append(f"  source: {url}")
    else:
        lines.append(f"  source: no public URL ({dataset.source})")
    lines.append(
        f"  expected sha256: {spec.sha256 or 'unknown (the registry has no checksum for this file)'}"
    )
    lines.append(f"  to place it by hand: {hand_placement(dataset, spec, data_dir)}")
    if spec.archive_url:
        lines[-1] += (
            f" (extract {spec.member} from {Path(urllib.parse.urlsplit(spec.archive_url).path).name})"
        )
    if dataset.note:
        lines.append(f"  note: {dataset.note}")
    return "\n".join(lines)


def _check(path: Path, dataset: Dataset, spec: FileSpec, url: str | None, data_dir, where: str) -> None:
    if spec.sha256 is None:
        return
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ChecksumError(
            f"{dataset.name}: {path} ({where}) has sha256 {actual}, not the registry's: it is a different "
            f"or damaged copy of {spec.filename}; replace it.\n" + _details(dataset, spec, url, data_dir)
        )


# --------------------------------------------------------------------------------------------------
# Downloading


def _progress(total: int | None, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def _fetch(url: str, out, desc: str) -> None:
    """Stream ``url`` into the open binary file ``out`` with a progress bar."""
    request = urllib.request.Request(url, headers={"User-Agent": "mernlib (+corpus registry)"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        length = response.headers.get("Content-Length")
        with _progress(int(length) if length and length.isdigit() else None, desc) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))


def _archive_kind(url: str) -> str:
    name = urllib.parse.urlsplit(url).path.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    raise ValueError(f"cannot tell the archive type of {url} (expected .zip, .tar.gz, .tgz or .tar)")


def _open_member(archive: Path, kind: str, member: str):
    """A binary file object for ``member`` of ``archive`` (exact name, else the one with that basename)."""
    if kind == "zip":
        zf = zipfile.ZipFile(archive)
        names = [n for n in zf.namelist() if not n.endswith("/")]
        opener = zf.open
    else:
        zf = tarfile.open(archive, "r:*")
        names = [m.name for m in zf.getmembers() if m.isfile()]
        opener = zf.extractfile
    if member not in names:
        base = member.rsplit("/", 1)[-1]
        same = [n for n in names if n.rsplit("/", 1)[-1] == base]
        if len(same) != 1:
            zf.close()
            raise KeyError(f"{member} is not in the archive (it holds {len(names)} files)")
        member = same[0]
    return zf, opener(member)


def _write_verified(stream, dest: Path, expected: str | None) -> str:
    """Copy ``stream`` to ``dest`` atomically, returning its SHA-256; ``dest`` is only created when the
    checksum matches ``expected`` (a temporary file in the same folder is renamed over it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            return actual
        os.replace(tmp, dest)
        return actual
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download(dataset: Dataset, split: str, spec: FileSpec, dest: Path, mirror, data_dir) -> None:
    """Fetch ``spec`` into ``dest`` (and, for an archive, every other file of ``dataset`` it holds)."""
    url = mirrored(spec.source_url, mirror)
    try:
        if spec.archive_url is None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".download")
            try:
                with os.fdopen(fd, "wb") as out:
                    _fetch(url, out, spec.filename)
                actual = _sha256_file(Path(tmp))
                if actual == spec.sha256:
                    os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            if actual != spec.sha256:
                raise ChecksumError(
                    f"{dataset.name}: the download of {spec.filename} has sha256 {actual}, not the "
                    f"registry's; nothing was written.\n" + _details(dataset, spec, url, data_dir)
                )
            return
        kind = _archive_kind(spec.archive_url)
        archive_name = Path(urllib.parse.urlsplit(spec.archive_url).path).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{archive_name}.", suffix=".download")
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, archive_name)
            # Extract every file of the dataset this archive holds, so one download serves all splits.
            siblings = [(split, spec)] + [
                (s, f) for s, f in dataset.files.items() if s != split and f.archive_url == spec.archive_url
            ]
            for _sib_split, sib in siblings:
                sib_dest = cache_root() / dataset.folder / sib.path
                if sib is not spec and sib_dest.is_file():
                    continue
                try:
                    handle, stream = _open_member(Path(tmp), kind, sib.member or sib.path)
                except KeyError as err:
                    if sib is not spec:
                        continue
                    raise DataNotFoundError(
                        f"{dataset.name}: {archive_name} from {url} does not hold {sib.member}: {err}.\n"
                        + _details(dataset, spec, url, data_dir)
                    ) from None
                with handle, stream:
                    actual = _write_verified(stream, sib_dest, sib.sha256)
                if actual != sib.sha256 and sib.sha256 is not None:
                    if sib is spec:
                        raise ChecksumError(
                            f"{dataset.name}: {sib.member} in {archive_name} (downloaded from {url}) has "
                            f"sha256 {actual}, not the registry's; nothing was written.\n"
                            + _details(dataset, spec, url, data_dir)
                        )
                    # A sibling that does not verify is left out; its own locate() reports it.
        finally:
            os.unlink(tmp)
    except (urllib.error.URLError, OSError, tarfile.TarError, zipfile.BadZipFile) as err:
        if isinstance(err, DataNotFoundError):
            raise
        if isinstance(err, urllib.error.HTTPError):
            reason = f"HTTP {err.code} {err.reason}"
        else:
            reason = getattr(err, "reason", None) or err
        raise DataNotFoundError(
            f"{dataset.name}: could not download {spec.filename} ({split}): {reason}.\n"
            + _details(dataset, spec, url, data_dir)
        ) from err


# --------------------------------------------------------------------------------------------------
# locate


def _locate_one(dataset, split, data_dir, download, mirror, verify) -> Path:
    spec = dataset.files[split]
    url = mirrored(spec.source_url, mirror) if spec.source_url else None
    root = data_root(data_dir)
    if root is not None:
        candidate = root / dataset.folder / spec.path
        if candidate.is_file():
            if verify:
                where = "under data_dir" if data_dir is not None else "under $MERNLIB_DATA"
                _check(candidate, dataset, spec, url, data_dir, where)
            return candidate
    cached = cache_root() / dataset.folder / spec.path
    stale = False
    if cached.is_file():
        if not verify or spec.sha256 is None or sha256_of(cached) == spec.sha256:
            return cached
        stale = True  # a damaged cache entry: fetch it again when we may, else say so
    looked = ", ".join(str(p / dataset.folder) + "/" for p in ([root] if root else []) + [cache_root()])
    offline = _truthy(os.environ.get("MERNLIB_OFFLINE"))
    if spec.sha256 is None:
        reason = (
            "the registry has no checksum for this file (it is not part of the project's corpora), so it "
            "is not downloaded automatically"
        )
    elif url is None:
        reason = "there is no public URL for this file"
    elif not download or offline:
        reason = "downloads are off (" + ("MERNLIB_OFFLINE=1" if offline else "download=False") + ")"
    else:
        try:
            _download(dataset, split, spec, cached, mirror, data_dir)
        except DataNotFoundError as err:
            if not stale:
                raise
            raise ChecksumError(
                f"{dataset.name}: the cached copy {cached} of {spec.filename} ({split}) failed its checksum "
                f"(sha256 {sha256_of(cached)}, expected {spec.sha256}) and fetching a fresh copy failed "
                f"too; delete the cached copy or replace it by hand.\n{err}"
            ) from err
        return cached
    if stale:
        _check(cached, dataset, spec, url, data_dir, "in the cache")
    head = absent_message(dataset, split, spec, data_dir) + "\n" if spec.sha256 is None else ""
    raise DataNotFoundError(
        head
        + f"{dataset.name}: {spec.filename} ({split}) was not found (looked in {looked}) and {reason}.\n"
        + _details(dataset, spec, url, data_dir)
    )


def locate(
    name: str | Dataset,
    split: str | None = None,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    verify: bool = True,
) -> Path | dict[str, Path]:
    """The local path of one split of a dataset, or ``{split: path}`` for all when ``split`` is None.

    Looks under ``data_dir`` / ``$MERNLIB_DATA``, then the cache, then downloads (unless ``download``
    is False or ``$MERNLIB_OFFLINE=1``) from the official URL, or from ``mirror`` / ``$MERNLIB_MIRROR``.
    Every file is checked against the registry's SHA-256 (once per process) unless ``verify=False``.
    Raises :class:`~mernlib.errors.DataNotFoundError` (:class:`ChecksumError` for a wrong copy) naming
    the file, its URL, its checksum and where to put it by hand; with ``split=None`` one error lists
    every missing file.
    """
    dataset = get(name)
    if split is not None:
        return _locate_one(dataset, _normalize_split(dataset, split), data_dir, download, mirror, verify)
    found: dict[str, Path] = {}
    problems: list[DataNotFoundError] = []
    for each in dataset.files:
        try:
            found[each] = _locate_one(dataset, each, data_dir, download, mirror, verify)
        except DataNotFoundError as err:
            problems.append(err)
    if problems:
        if len(problems) == 1:
            raise problems[0]
        cls = ChecksumError if all(isinstance(p, ChecksumError) for p in problems) else DataNotFoundError
        raise cls("\n\n".join(str(p) for p in problems))
    return found


__all__ = [
    "DATASETS",
    "ENTITY_TYPE_GROUPS",
    "SPLITS",
    "ChecksumError",
    "Dataset",
    "FileSpec",
    "absent_files",
    "absent_message",
    "cache_root",
    "data_root",
    "datasets_of_type",
    "get",
    "hand_placement",
    "locate",
    "mirrored",
    "register",
    "sha256_of",
]
