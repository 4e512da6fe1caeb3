"""The annotation pipeline: a tagger finds the mentions (with their types), the normalizer gives them
concept IDs. Trained on a corpus, scored on its dev and test splits, saved as one folder with a model
card, loaded back to annotate anyone's abstracts (``python -m mernlib annotate``, notebook 07)::

    pipeline = train_pipeline("ncbi-disease", config=full_config(), model_dir="runs/models/ncbi")
    pipeline = load_model("runs/models/ncbi")
    annotated = pipeline.annotate(documents)      # copies: mentions with types and concept IDs

**The parts.**

* The *tagger* is :class:`mernlib.models.hst.HSTTagger` with one dataset (the corpus, its BIO tags over
  every mention type) and no type level: a transformer encoder (words in, one vector per word, windowed
  past the encoder's limit) and a CRF over the corpus's tags -- the single-task baseline of
  :mod:`mernlib.experiments.hst`, trained by its helper :func:`~mernlib.experiments.hst.train_multitask`
  (:func:`mernlib.train.fit`; the best epoch on dev by the tags' F1). ``HSTTagger`` asks each dataset for
  an entity-type group; only its type level reads it, and that is off here, so the group of the corpus's
  most frequent type is recorded (:func:`entity_group`).
* The *normalizer* is :class:`mernlib.normalize.Normalizer`, unchanged.

**Protocol** (what the card's scores mean). The tagger's epoch is chosen on dev. Dev is annotated with a
normalizer fitted on *train*; the test split with one fitted on *train + dev* (the normalizer's own
protocol, ``benchmarks/README.md``), which is the one saved; test is annotated once, after every choice.
With a *retrieval floor* (chosen on dev by default, :func:`choose_retrieval_floor`) a mention that only
retrieval could name, and only weakly, is dropped (:func:`mernlib.normalize.drop_weak_mentions`); cards
made before it existed get one with :func:`add_retrieval_floor`.
Both are scored with :func:`mernlib.metrics.evaluate_documents`: ``ner-mention-strict``, ``men-mention``
and ``men-document``, overall and per type.

**The folder** (``card.json`` ``format``: :data:`FORMAT`)::

    card.json      the model card (corpus, scores on dev and test with the protocol, seed, commit, wall
                   time, configuration: see :func:`make_card`)
    tagger/        HSTTagger.save: config.json (configuration, tag set), encoder/ (transformer + tokenizer
                   as fine-tuned), heads.pt
    normalizer/    Normalizer.save: config.json, training_mentions.json, entity_base.tsv, and for the dense
                   retriever encoder/ (the tuned encoder) and vectors.npy

:func:`load_model` reads any model the kit saves: this folder, and for completeness an HST or E2EMERN
folder and an MTL checkpoint file. Folders are written under ``runs/models/`` by default (not committed:
MiniLM alone is 90 MB); ``python -m mernlib train pipeline`` copies the card to ``results/models/``.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .corpus import Document
from .errors import DataFormatError

CHUNK_SIZE = 64  # documents tagged and normalized together; why 64: annotate.annotate_documents' docstring

FORMAT = "mernlib.pipeline/1"
"""The ``format`` of a pipeline folder's ``card.json``."""

QUICK_NOTE = "trained for seconds on the sample: shows the machinery, not the quality"
"""What a quick pipeline's numbers mean, in one line (on the card and beside every number shown)."""

PROTOCOL = {
    "tagger": "best epoch on dev by the tag F1 (conlleval decoding) of mernlib.experiments.hst",
    "dev": "tagger chosen on dev; normalizer fitted on train; the retrieval floor, if any, chosen on dev",
    "test": "normalizer refitted on train + dev (the saved one); test annotated once, after every choice",
    "metrics": "mernlib.metrics.evaluate_documents: ner-mention-strict (exact span and type), men-mention "
    "(exact span and concept-ID set), men-document (per document, the set of (type, concept ID), "
    "BioCreative V CDR); micro-averaged, overall and per type",
}


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class PipelineConfig:
    """What :func:`train_pipeline` trains: the tagger's :class:`~mernlib.models.hst.HSTConfig` (its
    ``encoder`` names the transformer: ``None`` the bundled MiniLM, a local folder or a hub name), the
    :class:`~mernlib.normalize.NormalizerConfig`, and ``tiny_encoder``: the hidden size of a tiny random
    BERT to use *instead* of ``tagger.encoder`` (quick runs only; ``None``: off). ``scale`` names the
    configuration on the card."""

    tagger: object = None
    normalizer: object = None
    tiny_encoder: int | None = None
    scale: str = "full"
    name: str = "pipeline"  # the system's name on the card and in file names ("pipeline" | "best")
    # IOB datasets trained alongside the corpus (hierarchical sharing without the type level, then a
    # fine-tuning stage on the corpus, kept only if dev says it helps): names, or "same-type" for every
    # dataset of the corpus's entity types but the corpus's own (:func:`auxiliary_names`)
    auxiliary: str | tuple[str, ...] = ()
    auxiliary_cap: int | None = None  # training sentences per auxiliary dataset (a seeded subset)
    # drop a mention only retrieval could name when its best score is below this (None: never; "dev":
    # the floor of RETRIEVAL_FLOORS with the best dev men-document F1, choose_retrieval_floor). On dev it
    # added 2.3 points of men-document F1 on NCBI (train best's tagger) and 7.4 on BC5CDR (the pipeline's)
    retrieval_floor: float | str | None = "dev"
    # continue the encoder's masked-language-model pretraining on the corpora's non-test text first
    # (mernlib.pretrain: fields of PretrainConfig, e.g. {"epochs": 1}; cached per machine); None: off
    pretraining: dict | None = None

    def __post_init__(self):
        from .models.hst import get_default_config
        from .normalize import NormalizerConfig

        if self.tagger is None:
            self.tagger = get_default_config(use_type_level=False)
        if self.normalizer is None:
            self.normalizer = NormalizerConfig()
        if self.tagger.use_type_level:
            raise ValueError("the pipeline's tagger has no type level: use_type_level must be False")
        if isinstance(self.auxiliary, list):
            self.auxiliary = tuple(self.auxiliary)

    @property
    def seed(self) -> int:
        return self.tagger.seed


def full_config(seed: int = 13, epochs: int | None = None, **tagger_overrides) -> PipelineConfig:
    """The real thing: the HST single-task tagger at its defaults (MiniLM, AdamW at 3e-5 for the encoder
    and 1e-3 for the CRF head, batch 16, 3 epochs, best on dev) and the default normalizer (abbreviations,
    lookups, composites, dense retrieval with a tuned encoder)."""
    from .models.hst import get_default_config
    from .normalize import NormalizerConfig

    tagger = get_default_config(use_type_level=False, seed=seed, **tagger_overrides)
    if epochs is not None:
        tagger.epochs = epochs
    return PipelineConfig(tagger, NormalizerConfig(seed=seed), scale="full")


def quick_config(seed: int = 13, epochs: int | None = None, **tagger_overrides) -> PipelineConfig:
    """Seconds on the sample (tests, notebook 07): a tiny random BERT tagger (hidden 64, one layer, windows
    of 64 pieces) trained 3 epochs at lr 3e-3 (:func:`mernlib.experiments.hst.quick_config`), and the
    normalizer with TF-IDF retrieval (no encoder to load or tune). Its numbers: :data:`QUICK_NOTE`."""
    from .experiments.hst import quick_config as hst_quick
    from .normalize import NormalizerConfig

    values = {"epochs": epochs or 3, "use_type_level": False} | tagger_overrides
    tagger = hst_quick(seed, **values)
    normalizer = NormalizerConfig(retriever="tfidf", progress=False, seed=seed)
    return PipelineConfig(tagger, normalizer, tiny_encoder=64, scale="quick")


BEST_EPOCHS = 6
"""Multi-task epochs of ``train best`` (the best on the corpus's dev is kept). Why more than the pipeline's
3: the pipeline's dev F1 was still rising at its last epoch (0.701, 0.796, 0.806 on NCBI,
``results/models/pipeline-ncbi-disease-full.json``). With NCBI's auxiliary set an epoch is 1.8 of the
pipeline's in steps. The first ``train best`` run had 4 epochs, and its NCBI dev tag F1 was still rising at
the last one (0.765, 0.797, 0.807, 0.830; commit 4e7a7c6), so 6 it is: there is no learning-rate schedule and
the best dev epoch is kept, so more epochs can only add candidates. On NCBI they added none: the 6-epoch run
(commit 1a62303) repeated epochs 1-4 digit for digit, then fell (0.811, 0.825), so its card is the 4-epoch
one. On BC5CDR (MLM encoder) a 7-epoch run (commit 3abcf2c) likewise repeated epochs 1-6 and fell at the
seventh (dev tag F1 0.842 -> 0.838; ``results/pretrain/README.md``), so 6 it stays for both corpora."""

BEST_AUXILIARY_CAP = 5000
"""Training sentences per auxiliary dataset in ``train best``. NCBI's one auxiliary set (BC5CDR-disease,
4,560 training sentences) is used whole; for BC5CDR (NCBI-disease 5,424, BioNLP11ID-chem 2,496,
BioNLP13CG-chem 3,033, BioNLP13PC-chem 2,499, CRAFT-chem 10,875 capped to 5,000; BC4CHEMD is not in the
corpora) an epoch is about 23k sentences, about 4x NCBI's."""


def best_config(seed: int = 13, epochs: int | None = None, **tagger_overrides) -> PipelineConfig:
    """``train best``: the kit's own system, from what the three papers and dev say.

    * The tagger is fine-tuned MiniLM + CRF (E2EMERN's and HST's encoder; notebook 05 found the CRF on
      the encoder helps) trained on the corpus **and every other dataset of its entity types**
      (``auxiliary="same-type"``): notebook 06's multi-task sharing *without* the type level, which had
      the best mean dev/test F1 of the four HST variants (``results/hst/findings.md``). Then one
      fine-tuning epoch on the corpus alone (HST's second stage), kept only if the corpus's dev F1 rises.
    * :data:`BEST_EPOCHS` multi-task epochs, the best on the corpus's dev kept (not the mean over all
      datasets: the system is for this corpus).
    * The shared normalizer at its defaults (abbreviations, training mentions, MeSH + OMIM names,
      composite splitting, dense retrieval with the contrastively tuned encoder): notebook 04 shows on dev
      what each stage adds.

    Not in it, and why: the Bi-LSTM tagger ensemble (the MTL model's MER is below the encoder's on NCBI:
    0.79 vs 0.80) and continued MLM pretraining of the encoder on the corpora's non-test text
    (:mod:`mernlib.pretrain`; ``train ... --pretrain on``). One epoch of it took 80 minutes of one CPU
    thread. In ``train best`` it raised strict dev NER (NCBI 0.841 -> 0.843, BC5CDR 0.838 -> 0.848) but
    lowered the tagger's own dev criterion on both corpora (tag F1 of the kept tagger 0.838 -> 0.833 and
    0.845 -> 0.843), and dev men-document F1, by which systems are compared, rose on NCBI (0.824 -> 0.831)
    and fell on BC5CDR (0.843 -> 0.841): ``results/pretrain/README.md``. A mixed dev signal does not pay
    for 80 CPU-minutes, so it stays an option. A linear warm-up + decay schedule (``--set
    lr_schedule=linear``, commit 0d9b743) lost on the training's own dev criterion, the tag F1 after
    fine-tuning: 0.8267 at lr 3e-5 and 0.8342 at 5e-5, against 0.8379 with constant rates, so the rates
    stay constant. Averaging the weights of this system and the 5e-5 run (:func:`soup_pipelines`,
    ``python -m mernlib soup``) raised every dev number (tag F1 0.8379 -> 0.8441, NER 0.841 -> 0.844,
    men-document 0.824 -> 0.831) for twice the training; its card is
    ``results/models/soup-ncbi-disease-full.json``."""
    values = {"fine_tune_epochs": 1} | tagger_overrides
    config = full_config(seed, epochs or BEST_EPOCHS, **values)
    config.name = "best"
    config.auxiliary = "same-type"
    config.auxiliary_cap = BEST_AUXILIARY_CAP
    return config


def quick_best_config(seed: int = 13, epochs: int | None = None, **tagger_overrides) -> PipelineConfig:
    """:func:`best_config`'s shape at :func:`quick_config`'s size (the sample's IOB sets as auxiliaries)."""
    config = quick_config(seed, epochs, **({"fine_tune_epochs": 1} | tagger_overrides))
    config.name = "best"
    config.auxiliary = "same-type"
    return config


SCALES = {"quick": quick_config, "full": full_config}
"""Scale name -> configuration factory ``(seed, epochs) -> PipelineConfig``."""

SYSTEMS = {"pipeline": SCALES, "best": {"quick": quick_best_config, "full": best_config}}
"""What ``python -m mernlib train`` builds -> its scales."""


def config_for(
    scale: str, seed: int = 13, epochs: int | None = None, system: str = "pipeline"
) -> PipelineConfig:
    """The configuration of ``system`` (``"pipeline"`` or ``"best"``) at ``scale`` (``"quick"``, ``"full"``)."""
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {'|'.join(SYSTEMS)}, not {system!r}")
    if scale not in SYSTEMS[system]:
        raise ValueError(f"scale must be one of {'|'.join(SYSTEMS[system])}, not {scale!r}")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a positive whole number, not {epochs!r}")
    return SYSTEMS[system][scale](seed, epochs)


# --------------------------------------------------------------------------------------------------
# Documents -> the tagger's dataset
# --------------------------------------------------------------------------------------------------


def entity_group(types: Iterable[str]) -> str:
    """The HST entity-type group recorded for a corpus with these mention types (most frequent first): the
    first that :func:`mernlib.datasets.normalize_entity_type` knows, else ``"disease"``. The pipeline's
    tagger has no type level, so the group is a label only (see the module docstring)."""
    from .datasets import normalize_entity_type

    for t in types:
        try:
            return normalize_entity_type(t)
        except KeyError:
            continue
    return "disease"


def tagged_sentences(documents: Iterable[Document]) -> list:
    """Every sentence of ``documents`` as a :class:`~mernlib.conll.TaggedSentence` (words and BIO tags of
    the mention types, :func:`mernlib.tags.labeled_sentences`); ``source``/``line`` say which document."""
    from .conll import TaggedSentence
    from .tags import labeled_sentences

    return [
        TaggedSentence(item.words, item.ner_tags(), source=item.document.uid, line=item.sentence.index)
        for item in labeled_sentences(documents)
    ]


def tagging_dataset(name: str, splits: Mapping[str, list[Document]]):
    """The corpus as an :class:`~mernlib.datasets.IOBDataset` (train, devel = dev, test) for the tagger."""
    from .datasets import IOBDataset

    counts = Counter(m.type for d in splits["train"] for m in d.mentions)
    types = [t for t, _ in counts.most_common()]
    return IOBDataset(
        name,
        entity_group(types),
        tagged_sentences(splits["train"]),
        tagged_sentences(splits["dev"]),
        tagged_sentences(splits["test"]),
        sizes={s: len(v) for s, v in splits.items()},
    )


OWN_IOB_DATASETS = {"ncbi-disease": ("NCBI-disease",), "bc5cdr": ("BC5CDR-disease", "BC5CDR-chem")}
"""The IOB datasets made from a PubTator corpus: never auxiliary data for it (their dev and test splits
are the corpus's own). NCBI-disease and BC5CDR share no PMID (checked on the files in
``../shared/corpora``), so each may help the other."""


def corpus_groups(dataset) -> list[str]:
    """The entity-type groups (:func:`mernlib.datasets.normalize_entity_type`) of a tagging dataset's
    mention types; types no group knows are left out."""
    from .datasets import normalize_entity_type

    groups = []
    for tag in dataset.tags:
        if tag == "O":
            continue
        try:
            group = normalize_entity_type(tag[2:])
        except KeyError:
            continue
        if group not in groups:
            groups.append(group)
    return groups


def auxiliary_names(corpus: str, groups: Sequence[str]) -> list[str]:
    """``auxiliary="same-type"``: the IOB datasets of ``groups`` (the sample's own for ``"sample"``, the
    registry's otherwise) less the corpus's own (:data:`OWN_IOB_DATASETS`)."""
    from . import registry
    from .datasets import normalize_entity_type
    from .sample import IOB_DATASETS

    if corpus == "sample":
        found = [
            n for n, spec in IOB_DATASETS.items() if normalize_entity_type(spec["entity_type"]) in groups
        ]
    else:
        found = [n for g in groups for n in registry.ENTITY_TYPE_GROUPS.get(g, ())]
    own = OWN_IOB_DATASETS.get(corpus, ())
    return [n for n in found if n not in own]


def load_auxiliary(corpus: str, dataset, config: PipelineConfig, data_dir=None):
    """``(datasets, skipped)``: the auxiliary IOB datasets of ``config`` (training split only, capped at
    ``config.auxiliary_cap`` sentences; their dev and test are not used) and those whose files are missing
    (with the reason: reported on the card, never dropped silently)."""
    from .datasets import load_iob_datasets

    names = config.auxiliary
    if names == "same-type":
        names = auxiliary_names(corpus, corpus_groups(dataset))
    elif isinstance(names, str):
        raise ValueError(f'auxiliary must be "same-type" or a list of dataset names, not {names!r}')
    if not names:
        return [], []
    caps = {"train": config.auxiliary_cap, "devel": 0, "test": 0}
    selection = load_iob_datasets(list(names), data_dir=data_dir, caps=caps, seed=config.seed)
    return list(selection.datasets.values()), selection.skipped


# --------------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------------


class AnnotationPipeline:
    """A trained tagger (``tagger``, an :class:`~mernlib.models.hst.HSTTagger`; ``dataset``: its head) and a
    fitted :class:`~mernlib.normalize.Normalizer`; ``card`` is the model card (``{}`` until trained or
    loaded). :meth:`annotate` is the whole system; :meth:`save` / :meth:`load` the folder."""

    def __init__(
        self,
        tagger,
        normalizer,
        dataset: str | None = None,
        card: dict | None = None,
        retrieval_floor: float | None = None,
    ):
        self.tagger = tagger
        self.normalizer = normalizer
        self.dataset = dataset or tagger.dataset_names[0]
        self.card = dict(card or {})
        self.retrieval_floor = retrieval_floor  # see mernlib.normalize.drop_weak_mentions

    def __repr__(self) -> str:
        corpus = self.card.get("corpus", {}).get("name", self.dataset)
        return f"AnnotationPipeline({corpus}: types {self.types}, scale {self.card.get('scale', '?')})"

    @property
    def types(self) -> list[str]:
        """The mention types the tagger finds."""
        return sorted({t[2:] for t in self.tagger.tags_of(self.dataset) if t != "O"})

    @property
    def entity_base(self):
        """The normalizer's entity base (concept names for displays)."""
        return self.normalizer.entity_base

    # -- annotation ---------------------------------------------------------------------------------

    def find_mentions(self, documents: Sequence[Document], batch_size: int = 32) -> list[Document]:
        """Copies of ``documents`` (title and abstract only) with the mentions the tagger finds: spans and
        types, concept ``""``. Each document is split into sentences and tokens (:mod:`mernlib.tokenize`,
        no gold mentions to refine by); a sentence longer than the encoder's window is windowed."""
        from .tags import decode_mentions
        from .tokenize import tokenize_document

        blanks = [Document(d.pmid, d.title, d.abstract, source=d.source, index=d.index) for d in documents]
        sentences = [(doc, s) for doc in blanks for s in tokenize_document(doc)]
        if not sentences:
            return blanks
        tags = self.tagger.predict(
            [[t.text for t in s.tokens] for _, s in sentences], self.dataset, batch_size
        )
        for (doc, sentence), row in zip(sentences, tags, strict=True):
            doc.mentions.extend(decode_mentions(sentence, doc.text, row))
        return blanks

    def annotate(
        self,
        documents: Iterable[Document],
        batch_size: int = 32,
        progress: bool = False,
        chunk_size: int = CHUNK_SIZE,
    ) -> list[Document]:
        """Copies of ``documents`` with every mention found (:meth:`find_mentions`) and normalized (concept
        IDs joined by ``|`` for a composite mention, ``-1`` where training says NIL); gold mentions and
        relations of the input are not copied. Works through ``chunk_size`` documents at a time (a tqdm bar
        over documents with ``progress``)."""
        from tqdm.auto import tqdm

        documents = list(documents)
        out: list[Document] = []
        with tqdm(total=len(documents), desc="annotating", unit="doc", disable=not progress) as bar:
            for lo in range(0, len(documents), chunk_size):
                chunk = self.find_mentions(documents[lo : lo + chunk_size], batch_size)
                out.extend(self.normalizer.normalize(chunk, self.retrieval_floor))
                # the normalizer remembers each text's abbreviations; over a large file that would only grow
                self.normalizer.__dict__.pop("_abbreviation_cache", None)
                bar.update(len(chunk))
        return out

    def annotate_text(self, text: str, pmid: str = "text") -> Document:
        """``text`` as one document (first non-blank line the title, the other lines the abstract, joined
        by single spaces: :func:`mernlib.corpus.text_document`), annotated."""
        from .corpus import text_document

        return self.annotate([text_document(text, pmid)])[0]

    # -- the folder ---------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the folder (see the module docstring), atomically: it is built beside ``directory`` and
        renamed into place, so a reader never sees half a model. An existing ``directory`` is replaced only
        if it is empty or a pipeline folder; anything else raises ``FileExistsError``."""
        directory = Path(directory)
        if directory.exists() and not _replaceable(directory):
            raise FileExistsError(f"{directory} exists and is not a pipeline folder: not overwriting it")
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = directory.parent / f".{directory.name}.{secrets.token_hex(4)}.tmp"
        try:
            with transformers_bars_off():
                self.tagger.save(staging / "tagger")
            self.normalizer.save(staging / "normalizer")
            card = {"format": FORMAT, **{k: v for k, v in self.card.items() if k != "format"}}
            card["tagger"] = {**card.get("tagger", {}), "dataset": self.dataset}
            (staging / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
            old = None
            if directory.exists():
                old = directory.parent / f".{directory.name}.{secrets.token_hex(4)}.old"
                os.replace(directory, old)
            os.replace(staging, directory)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        self.card = card
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, map_location="cpu") -> AnnotationPipeline:
        """The pipeline :meth:`save` wrote (local files only: nothing is downloaded, tuned or encoded)."""
        from .models.hst import HSTTagger
        from .normalize import Normalizer

        directory = Path(directory)
        card = read_card(directory)
        with transformers_bars_off():
            tagger = HSTTagger.load(directory / "tagger", map_location)
            normalizer = Normalizer.load(directory / "normalizer", progress=False)
        return cls(tagger, normalizer, card.get("tagger", {}).get("dataset"), card, card_floor(card))


@contextmanager
def transformers_bars_off():
    """transformers' own progress bars ("Loading weights", "Writing model shards") off for the block, then
    as they were: saving or loading a pipeline is one step of the user's work, not three bars of it."""
    from transformers.utils import logging

    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging.enable_progress_bar()


def read_card(directory: str | os.PathLike) -> dict:
    """The ``card.json`` of a pipeline folder, checked (not JSON, another format: a
    :class:`~mernlib.errors.DataFormatError` naming the file)."""
    path = Path(directory) / "card.json"
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DataFormatError(path, getattr(err, "lineno", None), f"not JSON: {err}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        found = card.get("format") if isinstance(card, dict) else None
        raise DataFormatError(path, None, f"format {found!r}, expected {FORMAT!r}")
    return card


def _replaceable(directory: Path) -> bool:
    if not directory.is_dir():
        return False
    if not any(directory.iterdir()):
        return True
    try:
        return json.loads((directory / "card.json").read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def train_tagger(dataset, config: PipelineConfig, encoder=None, auxiliary=()):
    """``(tagger, fit, fine_tuning)``: an :class:`~mernlib.models.hst.HSTTagger` trained on ``dataset``'s
    train split -- with ``auxiliary`` IOB datasets, one head each, interleaved -- by
    :func:`mernlib.experiments.hst.train_multitask` (the best epoch on ``dataset``'s devel split). With
    auxiliaries, HST's fine-tuning stage follows on ``dataset`` alone (``config.tagger.fine_tune_epochs``),
    and the fine-tuned copy is kept only if its devel F1 is higher; ``fine_tuning`` says what happened
    (``None`` without auxiliaries). ``encoder``: a ready :class:`~mernlib.encoders.WordEncoder` (default:
    ``config.tiny_encoder``'s tiny random BERT, else the one ``config.tagger.encoder`` names)."""
    from .experiments.hst import evaluate, fine_tune, quick_encoder, train_multitask
    from .models.hst import HSTTagger

    if encoder is None and config.tiny_encoder:
        from transformers import AutoTokenizer

        from .encoders import default_encoder_path

        # the tiny BERT reads MiniLM's vocabulary: its tokenizer is all it needs (not MiniLM's 90 MB)
        tokenizer = AutoTokenizer.from_pretrained(str(default_encoder_path()), local_files_only=True)
        encoder = quick_encoder(config.seed, config.tiny_encoder, tokenizer)()
    datasets = [dataset, *auxiliary]
    if config.tagger.progress:
        tagger = HSTTagger(config.tagger, datasets, encoder)
    else:
        with transformers_bars_off():
            tagger = HSTTagger(config.tagger, datasets, encoder)
    fit = train_multitask(tagger, datasets, tagger.config, select_on=[dataset])
    if not auxiliary or config.tagger.fine_tune_epochs < 1:
        return tagger, fit, None
    before = evaluate(tagger, dataset, "devel").f1
    tuned = fine_tune(tagger, dataset, tagger.config)
    after = evaluate(tuned, dataset, "devel").f1
    tuned_fit = tuned.history[-1]["result"]
    fine_tuning = {
        "epochs": config.tagger.fine_tune_epochs,
        "dev_tag_f1_before": round(before, 4),
        "dev_tag_f1_after": round(after, 4),
        "kept": after > before,
        "seconds": round(sum(h["seconds"] for h in tuned_fit.history), 1),
    }
    return (tuned if after > before else tagger), fit, fine_tuning


def train_pipeline(
    corpus: str = "sample",
    data_dir: str | os.PathLike | None = None,
    config: PipelineConfig | None = None,
    *,
    model_dir: str | os.PathLike | None = None,
    documents: Mapping[str, list[Document]] | None = None,
    entity_base=None,
    encoder=None,
    progress: bool | None = None,
    command: str | None = None,
    variant: str = "",
    log=None,
) -> AnnotationPipeline:
    """Train the tagger, fit the normalizer, score dev and test (see the module docstring for the
    protocol), and, with ``model_dir``, save the folder. Returns the pipeline, its card filled in.

    ``corpus`` names a corpus of :func:`mernlib.data.load_corpus` (``"sample"``, ``"ncbi-disease"``,
    ``"bc5cdr"``) and its entity base; your own corpus comes as ``documents`` (``{"train", "dev", "test"}``
    -> documents) and ``entity_base``, ``corpus`` then only naming it. ``progress`` overrides the configs'
    (``False``: no bar at all); ``log(message)`` is told what is happening (default: nothing);
    ``command`` is recorded on the card (default: the running command line). ``variant`` ends the card's
    name and says how the run differs from the config's defaults (``train``'s CLI passes e.g.
    ``"-e7-pretrain"``), so two cards of one system, corpus and seed never share a name.
    """
    from .data import load_corpus, load_corpus_entity_base
    from .report import run_record

    started = time.time()
    log = log or (lambda message: None)
    config = copy.deepcopy(config) if config is not None else full_config()
    # the commit (and command) of the code that runs, taken now: files edited during a long run do not count
    provenance = run_record(
        command=command, seed=config.seed, scale=config.scale, encoder=tagger_encoder_name(config)
    )
    if progress is not None:
        config.tagger.progress = config.normalizer.progress = progress
    splits = dict(documents) if documents is not None else load_corpus(corpus, data_dir=data_dir)
    missing = [s for s in ("train", "dev", "test") if s not in splits]
    if missing:
        raise ValueError(f"the corpus needs train, dev and test splits; missing {missing}")
    base = entity_base if entity_base is not None else load_corpus_entity_base(corpus, data_dir)
    dataset = tagging_dataset(corpus, splits)
    auxiliary, skipped = load_auxiliary(corpus, dataset, config, data_dir)
    for gone in skipped:
        log(f"auxiliary dataset {gone['dataset']} not found, trained without it: {gone['reason']}")

    log(f"tagger: {len(dataset.train)} training sentences, tags {dataset.tags}")
    for aux in auxiliary:
        log(f"  + {aux.name}: {len(aux.train)} training sentences, tags {aux.tags}")
    pretraining = None
    if config.pretraining is not None:
        from .pretrain import pretrained_encoder

        if encoder is not None or config.tiny_encoder:
            raise ValueError(
                "pretraining continues the training of config.tagger.encoder (a folder or hub name); it cannot "
                "apply to a tiny random encoder (quick scale) or to an encoder passed in: turn one of them off"
            )

        text = "sample" if corpus == "sample" else "real"
        folder, pretraining = pretrained_encoder(
            config.tagger.encoder, config.pretraining, text, data_dir, log
        )
        config.tagger.encoder = str(folder)
    t0 = time.time()
    tagger, fit, fine_tuning = train_tagger(dataset, config, encoder, auxiliary)
    tagger_seconds = time.time() - t0

    t0 = time.time()
    pipeline, scores, floor = score_pipeline(
        tagger, dataset.name, splits, base, config.normalizer, config.retrieval_floor, log=log
    )
    normalizer_seconds = time.time() - t0

    provenance["wall_time_s"] = round(time.time() - started, 1)
    pipeline.card = make_card(
        corpus=corpus,
        splits=splits,
        dataset=dataset,
        config=config,
        fit=fit,
        normalizer=pipeline.normalizer,
        auxiliary={"datasets": auxiliary, "skipped": skipped, "fine_tuning": fine_tuning},
        scores=scores,
        seconds={"tagger": tagger_seconds, "normalizer_and_scoring": normalizer_seconds},
        provenance=provenance,
        variant=variant,
    )
    if floor is not None:
        pipeline.card["retrieval_floor"] = floor
    if pretraining is not None:  # what the tagger's encoder learnt before the tagging task
        pipeline.card["pretraining"] = {k: v for k, v in pretraining.items() if k != "format"}
        described = (
            f"{pretraining['encoder']} + MLM on the corpora's non-test text ({pretraining['steps']} steps)"
        )
        pipeline.card["tagger"]["encoder"] = pipeline.card["provenance"]["encoder"] = described
    if model_dir is not None:
        pipeline.save(model_dir)
        log(f"saved {model_dir}")
    return pipeline


RETRIEVAL_FLOORS = (None, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
"""The retrieval floors ``retrieval_floor="dev"`` tries (:func:`choose_retrieval_floor`); ``None`` keeps
every mention. Cosines of the tuned MiniLM between a mention and its best concept form."""


def choose_retrieval_floor(named_dev: list[Document], gold_dev: list[Document], floors=RETRIEVAL_FLOORS):
    """``(floor, {"value", "chosen_on", "dev_men_document_f1"})``: of ``floors``, the one whose
    :func:`~mernlib.normalize.drop_weak_mentions` gives ``named_dev`` (dev annotated with a normalizer
    fitted on train, every mention kept) the best men-document F1 against ``gold_dev``; on a tie the
    earlier (``None`` first: a floor must earn its place). Measured on NCBI dev with ``train best``'s
    tagger before it was built in: 0.801 with no floor, 0.822 at 0.7, 0.824 at 0.75, 0.817 at 0.85."""
    from .metrics import evaluate_documents
    from .normalize import drop_weak_mentions

    by_floor = {
        floor: evaluate_documents(gold_dev, drop_weak_mentions(named_dev, floor))["protocols"][
            "men-document"
        ]["f1"]
        for floor in floors
    }
    best = max(floors, key=lambda f: (by_floor[f], -floors.index(f)))
    return best, {
        "value": best,
        "chosen_on": "dev men-document F1 (normalizer fitted on train)",
        "dev_men_document_f1": {str(f): round(v, 4) for f, v in by_floor.items()},
    }


def card_floor(card: dict) -> float | None:
    """The retrieval floor a model card records (``None``: none, or a card made before floors existed)."""
    return (card.get("retrieval_floor") or {}).get("value")


def score_pipeline(
    tagger, dataset_name: str, splits, base, normalizer_config, floor=None, normalizer=None, log=None
):
    """The protocol after the tagger (module docstring): dev annotated with a normalizer fitted on train
    (and the retrieval floor chosen there when ``floor == "dev"``), then test, once, with one fitted on
    train + dev (``normalizer``, when it is already). Returns ``(pipeline, {"dev": scores, "test":
    scores}, floor record or None)``; the pipeline holds the train + dev normalizer and the floor."""
    from .metrics import evaluate_documents
    from .normalize import Normalizer, drop_weak_mentions

    log = log or (lambda message: None)
    log("normalizer fitted on train; scoring dev")
    dev_normalizer = Normalizer(normalizer_config).fit(splits["train"], base)
    dev_pred = AnnotationPipeline(tagger, dev_normalizer, dataset_name).annotate(splits["dev"])
    record = None
    if floor == "dev":
        floor, record = choose_retrieval_floor(dev_pred, splits["dev"])
        log(f"retrieval floor chosen on dev: {floor}")
    elif floor is not None:
        record = {"value": floor, "chosen_on": "set in the configuration"}
    dev_scores = evaluate_documents(splits["dev"], drop_weak_mentions(dev_pred, floor))
    log("normalizer refitted on train + dev; scoring test")
    if normalizer is None:
        normalizer = Normalizer(normalizer_config).fit(splits["train"] + splits["dev"], base)
    pipeline = AnnotationPipeline(tagger, normalizer, dataset_name, retrieval_floor=floor)
    test_scores = evaluate_documents(splits["test"], pipeline.annotate(splits["test"]))
    return pipeline, {"dev": dev_scores, "test": test_scores}, record


def add_retrieval_floor(
    model_dir: str | os.PathLike, data_dir=None, command: str | None = None, log=None
) -> AnnotationPipeline:
    """Give a saved pipeline the retrieval floor chosen on dev (:func:`choose_retrieval_floor`) without
    training its tagger again, and score it by the protocol of :func:`score_pipeline` with the saved
    train + dev normalizer (``python -m mernlib retrieval-floor --model DIR``). The card's ``scores`` become
    those at the chosen floor; the previous ones are kept as ``scores_without_floor``, and
    ``retrieval_floor["provenance"]`` says which commit and command chose it. The folder's card is
    rewritten; tagger and normalizer are not touched."""
    from .data import load_corpus, load_corpus_entity_base
    from .normalize import NormalizerConfig
    from .report import run_record

    started = time.time()
    pipeline = AnnotationPipeline.load(model_dir)
    card = pipeline.card
    corpus = card["corpus"]["name"]
    provenance = run_record(command=command, seed=card.get("seed"), scale=card.get("scale"))
    splits = load_corpus(corpus, data_dir=data_dir)
    settings = {**card["config"]["normalizer"], "progress": False}
    scored, scores, record = score_pipeline(
        pipeline.tagger,
        pipeline.dataset,
        splits,
        load_corpus_entity_base(corpus, data_dir),
        NormalizerConfig(**settings),
        "dev",
        normalizer=pipeline.normalizer,
        log=log,
    )
    provenance["wall_time_s"] = round(time.time() - started, 1)
    card.setdefault("scores_without_floor", card["scores"])
    card["scores"] = scores
    card["retrieval_floor"] = {**record, "provenance": provenance}
    card["config"]["retrieval_floor"] = "dev"
    (Path(model_dir) / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    scored.card = card
    return scored


def greedy_soup(taggers: Sequence, names: Sequence[str], dataset, log=None):
    """``(tagger, record)``: the greedy "model soup" of ``taggers`` (Wortsman et al., ICML 2022) on
    ``dataset``'s devel split. The taggers are ranked by their own dev tag F1 (the selection score of
    training); the soup starts as the best, and each next one is averaged in
    (:func:`mernlib.models.hst.average_weights`, equal weights) only if the soup's dev F1 does not fall.
    So the soup is never worse on dev than its best ingredient, and costs one model at annotation time.
    ``record``: each ingredient's dev F1, each step's, and which were kept."""
    from .experiments.hst import evaluate
    from .models.hst import average_weights

    log = log or (lambda message: None)
    if len(taggers) != len(names) or not taggers:
        raise ValueError("give one name per tagger, and at least one tagger")
    alone = [evaluate(t, dataset, "devel").f1 for t in taggers]
    order = sorted(range(len(taggers)), key=lambda i: -alone[i])
    for i in order:
        log(f"dev tag F1 {alone[i]:.4f}: {names[i]}")
    kept, best = [order[0]], alone[order[0]]
    soup, steps = taggers[order[0]], []
    for i in order[1:]:
        candidate = average_weights([taggers[k] for k in [*kept, i]])
        score = evaluate(candidate, dataset, "devel").f1
        added = score >= best
        log(f"+ {names[i]}: dev tag F1 {score:.4f} ({'kept' if added else 'dropped'})")
        steps.append({"added": names[i], "dev_tag_f1": round(score, 4), "kept": added})
        if added:
            kept, best, soup = [*kept, i], score, candidate
    record = {
        "method": "greedy soup: ingredients by dev tag F1, each averaged in if the soup's dev F1 does not fall",
        "ingredients": [{"model": names[i], "dev_tag_f1": round(alone[i], 4)} for i in order],
        "steps": steps,
        "kept": [names[i] for i in kept],
        "dev_tag_f1": round(best, 4),
    }
    return soup, record


def soup_pipelines(
    model_dirs: Sequence[str | os.PathLike],
    data_dir=None,
    *,
    model_dir: str | os.PathLike | None = None,
    command: str | None = None,
    log=None,
) -> AnnotationPipeline:
    """A saved system whose tagger is the :func:`greedy_soup` of the taggers of ``model_dirs`` (pipelines
    of one corpus with the same tag sets, e.g. ``train best`` runs that differ in learning rate), scored
    by :func:`score_pipeline`'s protocol with the first folder's normalizer settings and its saved train +
    dev normalizer (the ingredients' normalizers are fitted on the same data with the same settings). The
    card is the first ingredient's with the soup's ``tagger`` section, new scores and provenance
    (``python -m mernlib soup --model A --model B ...``)."""
    from .data import load_corpus, load_corpus_entity_base
    from .normalize import NormalizerConfig
    from .report import run_record

    started = time.time()
    pipelines = [AnnotationPipeline.load(d) for d in model_dirs]
    first = pipelines[0]
    corpus = first.card["corpus"]["name"]
    for folder, p in zip(model_dirs, pipelines, strict=True):
        if p.card["corpus"]["name"] != corpus or p.dataset != first.dataset:
            raise ValueError(f"{folder}: a system of {p.card['corpus']['name']}, not of {corpus}")
        if p.card["config"]["normalizer"] != first.card["config"]["normalizer"]:
            raise ValueError(f"{folder}: other normalizer settings than {model_dirs[0]}")
    provenance = run_record(command=command, seed=first.card.get("seed"), scale=first.card.get("scale"))
    splits = load_corpus(corpus, data_dir=data_dir)
    dataset = tagging_dataset(corpus, splits)
    names = [p.card["name"] + f" ({Path(d).name})" for d, p in zip(model_dirs, pipelines, strict=True)]
    tagger, record = greedy_soup([p.tagger for p in pipelines], names, dataset, log=log)
    settings = {**first.card["config"]["normalizer"], "progress": False}
    floor = first.card["config"].get("retrieval_floor")
    scored, scores, floor_record = score_pipeline(
        tagger,
        first.dataset,
        splits,
        load_corpus_entity_base(corpus, data_dir),
        NormalizerConfig(**settings),
        floor,
        normalizer=first.normalizer,
        log=log,
    )
    provenance["wall_time_s"] = round(time.time() - started, 1)
    card = copy.deepcopy(first.card)
    card["name"] = f"soup-{corpus}-{card['scale']}"
    card["tagger"] = {
        "model": "model soup: the mean weights of the kept taggers (mernlib.pipeline.greedy_soup)",
        "encoder": first.card["tagger"]["encoder"],
        "dataset": first.dataset,
        "tags": first.card["tagger"]["tags"],
        "best_dev_tag_f1": record["dev_tag_f1"],
        "soup": record,
        "ingredients": {name: p.card["tagger"] for name, p in zip(names, pipelines, strict=True)},
    }
    card["scores"] = scores
    card.pop("scores_without_floor", None)
    if floor_record is not None:
        card["retrieval_floor"] = floor_record
    card["seconds"] = {"soup_and_scoring": provenance["wall_time_s"]}
    card["provenance"] = provenance
    scored.card = card
    if model_dir is not None:
        scored.save(model_dir)
        log(f"saved {model_dir}")
    return scored


def tagger_encoder_name(config: PipelineConfig) -> str:
    """The tagger's encoder in words, for the card."""
    from .encoders import encoder_name

    if config.tiny_encoder:
        return f"tiny random BERT (hidden {config.tiny_encoder}, 1 layer; MiniLM's vocabulary)"
    return encoder_name(config.tagger.encoder)


def make_card(
    *,
    corpus,
    splits,
    dataset,
    config,
    fit,
    normalizer,
    scores,
    seconds,
    provenance,
    auxiliary=None,
    variant="",
) -> dict:
    """The model card: what a pipeline folder says about itself (``card.json``).

    Fields: ``format``; ``name`` (system, corpus, scale, seed, then ``variant``); ``scale`` and, for a quick
    pipeline, ``note`` (:data:`QUICK_NOTE`); ``seed``; ``corpus`` (name, documents per split, mention types
    with their counts in train); ``tagger`` (model, encoder, tag set, epochs, best epoch and its dev tag
    F1, per-epoch history, seconds; with auxiliary datasets their training sizes, those missing, and the
    fine-tuning stage's dev F1 before and after);
    ``normalizer`` (:meth:`~mernlib.normalize.Normalizer.describe` and what it was fitted on);
    ``protocol`` (:data:`PROTOCOL`); ``scores`` (``dev`` and ``test``: the JSON of
    :func:`mernlib.metrics.evaluate_documents`, per type included); ``seconds``; ``provenance``
    (:func:`mernlib.report.run_record`: command, commit, machine, date, wall time); ``config`` (every
    setting of the tagger and the normalizer).
    """
    types = Counter(m.type for d in splits["train"] for m in d.mentions)
    described = normalizer.describe()
    aux = auxiliary or {}
    card = {
        "format": FORMAT,
        "name": f"{config.name}-{corpus}-{config.scale}-seed{config.seed}{variant}",
        "scale": config.scale,
        "seed": config.seed,
        "corpus": {
            "name": corpus,
            "documents": {s: len(v) for s, v in splits.items()},
            "sentences": {"train": len(dataset.train), "dev": len(dataset.devel), "test": len(dataset.test)},
            "types": dict(types.most_common()),
        },
        "tagger": {
            "model": "HSTTagger with no type level: encoder + CRF over the corpus's BIO tags"
            + (", trained alongside auxiliary datasets (one CRF head each), then fine-tuned" if aux else ""),
            "encoder": tagger_encoder_name(config),
            "dataset": dataset.name,
            "entity_group": dataset.entity_type,
            "tags": list(dataset.tags),
            "epochs": config.tagger.epochs,
            "best_epoch": fit.best_epoch,
            "best_dev_tag_f1": None if fit.best_score is None else round(fit.best_score, 4),
            "history": [
                {
                    "epoch": h["epoch"],
                    "loss": round(sum(h["loss"].values()), 4),
                    "dev_tag_f1": None if h["dev"] is None else round(h["dev"], 4),
                    "seconds": round(h["seconds"], 1),
                }
                for h in fit.history
            ],
        },
        "normalizer": {
            "fitted_on": "train + dev",
            "abbreviation_detector": described["abbreviation_detector"],
            "retriever": f"{config.normalizer.retriever} ({described['retriever']})",
            "tuned_encoder": normalizer.encoder_path is not None,
            "surface_forms": described["surface_forms"],
            "entity_base_concepts": len(normalizer.entity_base),
            "training_mentions": len(normalizer.training_mentions),
        },
        "protocol": dict(PROTOCOL),
        "scores": scores,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "provenance": provenance,
        "config": {
            "tagger": asdict(config.tagger),
            "normalizer": asdict(config.normalizer),
            "tiny_encoder": config.tiny_encoder,
            "auxiliary": list(config.auxiliary)
            if not isinstance(config.auxiliary, str)
            else config.auxiliary,
            "auxiliary_cap": config.auxiliary_cap,
            "retrieval_floor": config.retrieval_floor,
        },
    }
    if aux.get("datasets") or aux.get("skipped"):
        card["tagger"]["auxiliary"] = {
            "datasets": {
                d.name: {"group": d.entity_type, "train_sentences": len(d.train)} for d in aux["datasets"]
            },
            "cap": config.auxiliary_cap,
            "missing": [s["dataset"] for s in aux.get("skipped", [])],
            "fine_tuning": aux.get("fine_tuning"),
        }
    if config.scale == "quick":
        card["note"] = QUICK_NOTE
    return card


# --------------------------------------------------------------------------------------------------
# Loading any saved model
# --------------------------------------------------------------------------------------------------


def model_kind(path: str | os.PathLike) -> str:
    """What is saved at ``path``: ``"pipeline"``, ``"hst"``, ``"e2emern"`` or ``"mtl"``; raises
    :class:`~mernlib.errors.DataFormatError` naming the path when it is none of them."""
    from .models.hst import FORMAT as HST_FORMAT

    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, None, "no such model folder or file")
    if path.is_dir():
        if (path / "card.json").is_file():
            read_card(path)
            return "pipeline"
        if (path / "config.json").is_file():
            try:
                meta = json.loads((path / "config.json").read_text(encoding="utf-8"))
            except ValueError as err:
                raise DataFormatError(path / "config.json", None, f"not JSON: {err}") from None
            if isinstance(meta, dict) and meta.get("format") == HST_FORMAT:
                return "hst"
            if isinstance(meta, dict) and meta.get("model") == "E2EMERN":
                return "e2emern"
        raise DataFormatError(
            path,
            None,
            "not a saved mernlib model: a pipeline folder holds card.json (python -m mernlib train pipeline), "
            "an HST or E2EMERN folder config.json",
        )
    import torch

    from .models.mtl_feedback import FORMAT as MTL_FORMAT

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises a variety of errors for a file that is not a checkpoint
        checkpoint = None
    if isinstance(checkpoint, dict) and checkpoint.get("format") == MTL_FORMAT:
        return "mtl"
    raise DataFormatError(
        path, None, "not a saved mernlib model (neither a model folder nor an MTL checkpoint)"
    )


def load_model(path: str | os.PathLike, map_location="cpu"):
    """The model saved at ``path``, whatever its kind (:func:`model_kind`): an :class:`AnnotationPipeline`,
    an :class:`~mernlib.models.hst.HSTTagger`, an :class:`~mernlib.models.e2emern.E2EMERN` or a
    :class:`~mernlib.models.mtl_feedback.MultiTaskTagger`, in eval mode."""
    kind = model_kind(path)
    if kind == "pipeline":
        return AnnotationPipeline.load(path, map_location)
    if kind == "hst":
        from .models.hst import HSTTagger

        return HSTTagger.load(path, map_location)
    if kind == "e2emern":
        from .models.e2emern import E2EMERN

        return E2EMERN.load(path, map_location)
    from .models.mtl_feedback import MultiTaskTagger

    return MultiTaskTagger.load(path, map_location)


def mention_rows(document: Document, entity_base=None) -> list[dict]:
    """One row per mention of an annotated ``document``: its text, type, offsets, concept string and the
    concepts' names in ``entity_base`` (``"?"`` for an ID the base does not name; NIL is ``-1``)."""
    from .viz import concept_name

    rows = []
    for m in sorted(document.mentions, key=lambda m: (m.start, m.end)):
        names = [concept_name(entity_base, i) or "?" for i in m.ids] if entity_base is not None else []
        rows.append(
            {
                "mention": m.text,
                "type": m.type,
                "start": m.start,
                "end": m.end,
                "concept": m.concept,
                "name": "; ".join(names) if names else ("NIL" if m.concept == "-1" else ""),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------
# The card's numbers, as rows and a chart beside the papers'
# --------------------------------------------------------------------------------------------------

PROTOCOL_LABELS = {
    "ner-mention-strict": "NER F1 (ner-mention-strict)",
    "men-mention": "MEN F1 (men-mention)",
    "men-document": "MEN F1 (men-document)",
}


def card_scores(card: dict) -> list[dict]:
    """One row per (split, protocol, type) of a card's scores, ``type`` ``"all"`` for the overall score:
    ``{"source", "split", "protocol", "type", "precision", "recall", "f1"}``."""
    rows = []
    for split in ("dev", "test"):
        result = card.get("scores", {}).get(split)
        if not result:
            continue
        for protocol, entry in result["protocols"].items():
            for mention_type, prf in [("all", entry), *entry.get("per_type", {}).items()]:
                rows.append(
                    {
                        "source": f"this model ({split})",
                        "split": split,
                        "protocol": protocol,
                        "type": mention_type,
                        "precision": round(prf["precision"], 4),
                        "recall": round(prf["recall"], 4),
                        "f1": round(prf["f1"], 4),
                    }
                )
    return rows


def compare_cards(cards: Sequence[dict]) -> list[dict]:
    """One row per model card, side by side (notebook 07, the README): the system, its corpus, what the
    tagger learned from (continued MLM pretraining of its encoder; auxiliary datasets; whether the
    fine-tuning stage was kept), the best epoch, the retrieval floor, and the overall F1 of
    ``ner-mention-strict`` and ``men-document`` on dev, then test."""
    rows = []
    for card in cards:
        aux = card.get("tagger", {}).get("auxiliary") or {}
        tuning = aux.get("fine_tuning") or {}
        row = {
            "model": card["name"],
            "corpus": card["corpus"]["name"],
            "encoder pretraining": f"MLM, {card['pretraining']['steps']} steps"
            if card.get("pretraining")
            else "—",
            "auxiliary datasets": ", ".join(aux.get("datasets", {})) or "—",
            "fine-tuning kept": {True: "yes", False: "no"}.get(tuning.get("kept"), "—"),
            "best epoch": card["tagger"].get("best_epoch"),
            "retrieval floor": card_floor(card) or "—",
        }
        for split in ("dev", "test"):
            protocols = card["scores"][split]["protocols"]
            row[f"{split} NER F1"] = round(protocols["ner-mention-strict"]["f1"], 4)
            row[f"{split} men-document F1"] = round(protocols["men-document"]["f1"], 4)
        rows.append(row)
    return rows


def dev_choice(cards: Sequence[dict]) -> dict:
    """The card dev prefers among ``cards``: the best dev men-document F1, the measure systems are compared
    by (notebook 07's chart, the README summary's row per corpus); test is never looked at."""
    return max(cards, key=lambda card: card["scores"]["dev"]["protocols"]["men-document"]["f1"])


SYSTEM_TITLES = {
    "pipeline": "The kit: `train pipeline`",
    "best": "The kit's own system: `train best`",
    "soup": "The kit's own system: `soup` of `train best` runs",
}


def headline(card: dict) -> dict:
    """The README summary-table row of a full-scale model card (``python -m mernlib table --summary``):
    its test scores from text alone, beside BioBERT's NER F1 on the same corpus (:mod:`mernlib.reference`
    ``lee2020``; BC5CDR: its disease and chemical sets) -- the honest distance to a biomedical encoder."""
    from . import reference

    system = card["name"].split("-", 1)[0]
    test = card["scores"]["test"]["protocols"]
    biobert = reference.load("lee2020")["results"]
    corpus = card["corpus"]["name"]
    sets = [corpus] if corpus in biobert else [k for k in biobert if k.startswith(corpus + "-")]
    published = " / ".join(
        f"{k.removeprefix(corpus + '-') if k != corpus else 'NER'} {biobert[k]['BioBERT']['ner_f1']}"
        for k in sets
    )
    tagger = card.get("tagger", {})
    soup = tagger.get("soup")
    first = tagger["ingredients"][soup["kept"][0]] if soup else tagger  # a soup's ingredients share a recipe
    aux = first.get("auxiliary") or {}
    encoder = card["tagger"]["encoder"].split(" ")[0].removeprefix("all-")
    parts = [encoder + (" + MLM" if card.get("pretraining") else "") + " + CRF"]  # MLM: mernlib.pretrain
    names = list(aux.get("datasets") or [])
    if names:  # more than two are counted, to keep the README's row short (the card names them)
        parts.append("+ " + (", ".join(names) if len(names) <= 2 else f"{len(names)} same-type datasets"))
    if soup:
        parts.append(f"mean of {len(soup['kept'])} taggers")
    floor = card_floor(card)
    parts.append(f"normalizer{f', floor {floor}' if floor else ''} (seed {card['seed']})")
    return {
        "paper": SYSTEM_TITLES.get(system, system),
        "corpus": corpus,
        "model": "; ".join(parts),
        "paper protocol: ours": "—",
        "paper protocol: paper": f"BioBERT {published or '—'}",
        "standard NER F1": round(test["ner-mention-strict"]["f1"], 4),
        "standard men-document F1": round(test["men-document"]["f1"], 4),
    }


def paper_scores(corpora: Sequence[str] = ("ncbi-disease", "bc5cdr")) -> list[dict]:
    """The papers' test F1 on ``corpora`` (``mernlib.reference``: Zhao et al. 2019, Zhou et al. 2021), one
    row per number, each naming its protocol: both report MER as mention F1 with exact span and type (our
    ``ner-mention-strict``); Zhao et al.'s MEN F1 is exact span and concept of the MEN output (close to our
    ``men-mention``); Zhou et al.'s MEN F1 is pair-based (sentence-concept pairs from the test set's own
    gold IDs), comparable to none of ours."""
    from . import reference

    zhao, zhou = reference.load("zhao2019"), reference.load("zhou2021")
    rows = []
    for corpus in corpora:
        for model, values in zhao.get(corpus, {}).items():
            rows.append(
                _paper_row(
                    "Zhao et al. 2019",
                    corpus,
                    model,
                    "ner-mention-strict",
                    values["mer_f1"],
                    "paper protocol: exact span and type of the MER output",
                )
            )
            rows.append(
                _paper_row(
                    "Zhao et al. 2019",
                    corpus,
                    model,
                    "men-mention",
                    values["men_f1"],
                    "paper protocol: exact span and concept of the MEN output",
                )
            )
        for model, values in zhou["results"].get(corpus, {}).items():
            rows.append(
                _paper_row(
                    "Zhou et al. 2021",
                    corpus,
                    model,
                    "ner-mention-strict",
                    values["mer_f1"],
                    "paper protocol: NER F1 as reported",
                )
            )
            rows.append(
                _paper_row(
                    "Zhou et al. 2021",
                    corpus,
                    model,
                    "men-pairs",
                    values["men_f1"],
                    "paper protocol: pair-based, test-set gold IDs + sampled negatives; "
                    "no mention detection (comparable to none of ours)",
                )
            )
    return rows


def _paper_row(paper, corpus, model, protocol, f1, how) -> dict:
    return {
        "source": f"{paper} ({corpus})",
        "split": "test",
        "protocol": protocol,
        "type": "all",
        "f1": f1,
        "model": model,
        "paper protocol": how,
    }


def scores_chart(card: dict, papers: Sequence[dict] | None = None, title: str | None = None):
    """Bars of F1 per type (dev and test, from the card) beside the papers' numbers (``papers``: rows of
    :func:`paper_scores`), one panel per protocol; Zhou et al.'s pair-based MEN F1 gets a panel of its own,
    since no protocol of ours measures what it does."""
    import altair as alt

    rows = [r for r in card_scores(card)] + list(papers or [])
    label = dict(PROTOCOL_LABELS, **{"men-pairs": "MEN F1 (paper protocol, pairs)"})
    values = [
        {
            "source": r["source"],
            "type": r["type"],
            "bar": f"{r['source']} · {r['type']}",
            "protocol": label.get(r["protocol"], r["protocol"]),
            "f1": r["f1"],
            "how": r.get("paper protocol", "standard protocol (mernlib.metrics)"),
        }
        for r in rows
    ]
    panels = [
        label[p] for p in (*PROTOCOL_LABELS, "men-pairs") if any(v["protocol"] == label[p] for v in values)
    ]
    name = card.get("corpus", {}).get("name", "?")
    note = f" — {card['note']}" if card.get("note") else ""
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            y=alt.Y("bar:N", title=None, sort=None),
            x=alt.X("f1:Q", title="F1", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "source:N", title=None, sort=None, legend=alt.Legend(orient="bottom", columns=3, labelLimit=0)
            ),
            column=alt.Column("protocol:N", title=None, sort=panels, header=alt.Header(labelFontSize=11)),
            tooltip=["source:N", "type:N", "protocol:N", alt.Tooltip("f1:Q", format=".4f"), "how:N"],
        )
        .properties(width=125, height=alt.Step(14), title=title or f"F1 on {name}{note}")
    )


__all__ = [
    "FORMAT",
    "PROTOCOL",
    "QUICK_NOTE",
    "SCALES",
    "AnnotationPipeline",
    "PipelineConfig",
    "card_scores",
    "config_for",
    "entity_group",
    "full_config",
    "load_model",
    "read_card",
    "make_card",
    "mention_rows",
    "model_kind",
    "paper_scores",
    "quick_config",
    "scores_chart",
    "tagged_sentences",
    "tagger_encoder_name",
    "tagging_dataset",
    "train_pipeline",
    "transformers_bars_off",
    "train_tagger",
]
