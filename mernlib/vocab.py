"""Vocabularies and batching for the neural taggers.

Three vocabularies turn plain Python strings into integer ids:

* :class:`Vocab` -- words. ``PAD = 0``, ``UNK = 1``; built from token counts with ``min_freq``.
  Two normalisations are optional and recorded in the vocab (so encoding later applies the same ones):
  ``lower=True`` lowercases every token, ``normalize_digits=True`` replaces every digit by ``0``
  (``"IL-2"`` -> ``"IL-0"``). Both are off by default: the character CNN sees the original spelling
  anyway, and pretrained biomedical vectors are usually cased.
* :class:`CharVocab` -- characters, same ``PAD``/``UNK`` convention, never lowercased (capitals are a
  strong hint for entity boundaries).
* :class:`TagVocab` -- output labels (BIO tags for MER such as ``B-Disease``; for MEN ``B-D003924`` and
  composite labels like ``B-D014786|D006311`` are *one* label each). No PAD, no UNK: padded positions
  are masked, never scored.

Unseen tags. During training an unseen tag is a bug in the data pipeline, so
``TagVocab.encode(..., train=True)`` raises :class:`UnknownTagError`. At evaluation time a gold MEN
tag whose concept never occurs in training is normal (NCBI's test set has such concepts); with
``train=False`` it is encoded as ``O`` and counted in :attr:`TagVocab.unseen` (nothing is dropped
silently). This encoding only matters for a dev *loss*: scores must be computed on tag *strings*
(decode the predicted ids with :meth:`TagVocab.decode` and compare with the original gold strings), so
such a gold mention still counts as a miss -- the model can never output a label it was not trained on.

Batching: :func:`encode_batch` pads a list of sentences into LongTensors plus a mask and a
``[B, T, W]`` character tensor; :func:`length_bucketed_batches` groups sentences of similar length so
that padding (and the wasted LSTM/CRF time) stays small, deterministically given a seed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
_DIGIT = re.compile(r"\d")


class UnknownTagError(ValueError):
    """A tag that is not in the tag vocabulary was given at training time."""


class Vocab:
    """Token <-> id mapping with ``PAD = 0`` and ``UNK = 1``.

    >>> v = Vocab.build([["Ataxia", "telangiectasia"], ["ataxia"]], min_freq=1, lower=True)
    >>> v.encode(["ATAXIA", "gene"])
    [2, 1]
    """

    def __init__(self, tokens: Iterable[str] = (), lower: bool = False, normalize_digits: bool = False):
        self.lower = lower
        self.normalize_digits = normalize_digits
        self.itos: list[str] = [PAD_TOKEN, UNK_TOKEN]
        self.stoi: dict[str, int] = {PAD_TOKEN: PAD, UNK_TOKEN: UNK}
        for tok in tokens:
            self.add(tok)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]] | Mapping[str, int],
        min_freq: int = 1,
        lower: bool = False,
        normalize_digits: bool = False,
        max_size: int | None = None,
    ) -> Vocab:
        """A vocab of the (normalised) tokens seen at least ``min_freq`` times.

        ``sentences`` is either a list of token lists or an existing ``{token: count}`` mapping.
        Order: by decreasing count, ties broken alphabetically, so the result never depends on the
        order of the input (or on ``PYTHONHASHSEED``).
        """
        vocab = cls(lower=lower, normalize_digits=normalize_digits)
        counts: Counter[str] = Counter()
        if isinstance(sentences, Mapping):
            for tok, n in sentences.items():
                counts[vocab.normalize(tok)] += n
        else:
            for sent in sentences:
                counts.update(vocab.normalize(t) for t in sent)
        kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size]
        for tok in kept:
            vocab.add(tok, normalized=True)
        return vocab

    def normalize(self, token: str) -> str:
        if self.lower:
            token = token.lower()
        if self.normalize_digits:
            token = _DIGIT.sub("0", token)
        return token

    def add(self, token: str, normalized: bool = False) -> int:
        tok = token if normalized else self.normalize(token)
        if tok not in self.stoi:
            self.stoi[tok] = len(self.itos)
            self.itos.append(tok)
        return self.stoi[tok]

    # -- lookup -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return self.normalize(token) in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(self.normalize(token), UNK)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self[t] for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    # -- persistence (plain Python, so torch.load(weights_only=True) can read it) ---------------
    def to_dict(self) -> dict:
        return {"itos": list(self.itos), "lower": self.lower, "normalize_digits": self.normalize_digits}

    @classmethod
    def from_dict(cls, d: Mapping) -> Vocab:
        vocab = cls(lower=d["lower"], normalize_digits=d["normalize_digits"])
        for tok in d["itos"][2:]:
            vocab.add(tok, normalized=True)
        return vocab

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={len(self)}, lower={self.lower}, normalize_digits={self.normalize_digits})"


class CharVocab(Vocab):
    """Characters of the training tokens (case kept), ``PAD = 0``, ``UNK = 1``."""

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_freq: int = 1, **_ignored) -> CharVocab:  # type: ignore[override]
        counts: Counter[str] = Counter()
        for sent in sentences:
            for tok in sent:
                counts.update(tok)
        vocab = cls()
        for ch in sorted((c for c, n in counts.items() if n >= min_freq), key=lambda c: (-counts[c], c)):
            vocab.add(ch, normalized=True)
        return vocab

    def add(self, token: str, normalized: bool = False) -> int:
        self._words = {}  # a new character may change a memoised word
        return super().add(token, normalized)

    def encode_word(self, word: str) -> list[int]:
        """The ids of ``word``'s characters, memoised: a corpus repeats its words, and the batches are
        encoded again every epoch. The list is shared: read it, do not change it."""
        memo = self.__dict__.setdefault("_words", {})
        ids = memo.get(word)
        if ids is None:
            ids = memo[word] = [self.stoi.get(c, UNK) for c in word]
        return ids


class TagVocab:
    """Tag <-> id mapping without PAD/UNK (see the module docstring for unseen tags).

    ``outside`` (default ``"O"``) is always present and always id 0, so an all-``O`` sentence is the
    all-zeros tensor regardless of the tag set.
    """

    def __init__(self, tags: Iterable[str] = (), outside: str = "O"):
        self.outside = outside
        self.itos: list[str] = [outside]
        self.stoi: dict[str, int] = {outside: 0}
        self.unseen: Counter[str] = Counter()
        for tag in tags:
            self.add(tag)

    @classmethod
    def build(cls, tag_sequences: Iterable[Sequence[str]], outside: str = "O") -> TagVocab:
        """Tags sorted alphabetically after ``O`` (deterministic whatever the input order)."""
        seen = {t for seq in tag_sequences for t in seq}
        seen.discard(outside)
        return cls(sorted(seen), outside=outside)

    def add(self, tag: str) -> int:
        if tag not in self.stoi:
            self.stoi[tag] = len(self.itos)
            self.itos.append(tag)
        return self.stoi[tag]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, tag: str) -> bool:
        return tag in self.stoi

    def encode(self, tags: Sequence[str], train: bool = True) -> list[int]:
        out = []
        for tag in tags:
            idx = self.stoi.get(tag)
            if idx is None:
                if train:
                    raise UnknownTagError(
                        f"tag {tag!r} is not in the tag vocabulary ({len(self)} tags, e.g. {self.itos[:5]}); "
                        "build the TagVocab from the training tags, or pass train=False at evaluation time"
                    )
                self.unseen[tag] += 1
                idx = 0
            out.append(idx)
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def to_dict(self) -> dict:
        return {"itos": list(self.itos), "outside": self.outside}

    @classmethod
    def from_dict(cls, d: Mapping) -> TagVocab:
        return cls(d["itos"][1:], outside=d["outside"])

    def __repr__(self) -> str:
        return f"TagVocab(size={len(self)}, outside={self.outside!r})"


@dataclass
class Batch:
    """A padded batch. ``words``/``mask`` are ``[B, T]``, ``chars`` ``[B, T, W]`` (or ``None``),
    ``tags[task]`` ``[B, T]`` (padding positions hold 0 and are masked), ``index`` the positions of
    these sentences in the list they came from."""

    words: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    chars: torch.Tensor | None = None
    tags: dict[str, torch.Tensor] = field(default_factory=dict)
    index: list[int] | None = None

    def __len__(self) -> int:
        return self.words.shape[0]

    def to(self, device) -> Batch:
        return Batch(
            self.words.to(device),
            self.mask.to(device),
            self.lengths.to(device),
            None if self.chars is None else self.chars.to(device),
            {k: v.to(device) for k, v in self.tags.items()},
            self.index,
        )


def encode_batch(
    sentences: Sequence[Sequence[str]],
    vocab: Vocab,
    char_vocab: CharVocab | None = None,
    tags: Mapping[str, Sequence[Sequence[str]]] | None = None,
    tag_vocabs: Mapping[str, TagVocab] | None = None,
    train: bool = True,
    max_word_len: int | None = None,
    index: list[int] | None = None,
) -> Batch:
    """Pad ``sentences`` (lists of token strings) into a :class:`Batch`.

    ``tags`` maps a task name (``"mer"``, ``"men"``) to one tag list per sentence, encoded with
    ``tag_vocabs[task]`` (``train`` is passed to :meth:`TagVocab.encode`). ``max_word_len`` truncates
    very long tokens for the char tensor (``W`` is the longest word in the batch otherwise).
    Every sentence must have at least one token (the CRF needs a first position).
    """
    if not sentences:
        raise ValueError("encode_batch needs at least one sentence")
    lengths = [len(s) for s in sentences]
    if min(lengths) == 0:
        raise ValueError(f"sentence {lengths.index(0)} of the batch is empty")
    # Every token's ids are gathered into one flat list and scattered into the padded tensors with a single
    # indexed assignment: a tensor per token (the obvious loop) cost 8% of an MTL training epoch.
    B, T = len(sentences), max(lengths)
    lengths_t = torch.tensor(lengths, dtype=torch.long)
    mask = torch.arange(T).unsqueeze(0) < lengths_t.unsqueeze(1)
    tokens = [tok for sent in sentences for tok in sent]
    rows = torch.arange(B).repeat_interleave(lengths_t)  # the sentence of each flat token
    cols = _positions_within(lengths_t)
    words = torch.zeros(B, T, dtype=torch.long)
    words[rows, cols] = torch.tensor(vocab.encode(tokens), dtype=torch.long)
    chars = None
    if char_vocab is not None:
        W = max(len(tok) for tok in tokens)
        W = max(1, W if max_word_len is None else min(W, max_word_len))
        char_ids = [char_vocab.encode_word(tok[:W]) or [UNK] for tok in tokens]
        n_chars = torch.tensor([len(ids) for ids in char_ids], dtype=torch.long)
        chars = torch.zeros(B, T, W, dtype=torch.long)
        chars[
            rows.repeat_interleave(n_chars), cols.repeat_interleave(n_chars), _positions_within(n_chars)
        ] = torch.tensor([i for ids in char_ids for i in ids], dtype=torch.long)
    tag_tensors: dict[str, torch.Tensor] = {}
    for task, seqs in (tags or {}).items():
        if tag_vocabs is None or task not in tag_vocabs:
            raise KeyError(f"no TagVocab for task {task!r}")
        if len(seqs) != B:
            raise ValueError(f"task {task!r}: {len(seqs)} tag sequences for {B} sentences")
        for b, seq in enumerate(seqs):
            if len(seq) != lengths[b]:
                raise ValueError(f"task {task!r}, sentence {b}: {len(seq)} tags for {lengths[b]} tokens")
        out = torch.zeros(B, T, dtype=torch.long)
        out[rows, cols] = torch.tensor(
            tag_vocabs[task].encode([tag for seq in seqs for tag in seq], train=train), dtype=torch.long
        )
        tag_tensors[task] = out
    return Batch(words, mask, lengths_t, chars, tag_tensors, index)


def _positions_within(lengths: torch.Tensor) -> torch.Tensor:
    """For groups of ``lengths`` laid end to end, each item's position in its group: [2, 3] -> [0 1 0 1 2]."""
    return torch.arange(int(lengths.sum())) - (lengths.cumsum(0) - lengths).repeat_interleave(lengths)


def length_bucketed_batches(
    lengths: Sequence[int],
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | int | None = None,
    bucket_batches: int = 50,
) -> list[list[int]]:
    """Index lists of at most ``batch_size`` sentences of similar length.

    With ``shuffle``: the indices are permuted, cut into buckets of ``bucket_batches * batch_size``,
    each bucket is sorted by length and cut into batches, and the batch order is permuted -- so
    batches differ between epochs but padding stays small. Deterministic given ``generator`` (a
    ``torch.Generator`` or an int seed; pass the same generator across epochs for a different but
    reproducible order each epoch). Without ``shuffle``: all sentences sorted by length (stable),
    which is the fastest order for inference; map predictions back with :attr:`Batch.index`.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    n = len(lengths)
    if not shuffle:
        order = sorted(range(n), key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if not isinstance(generator, torch.Generator):
        seed = 0 if generator is None else int(generator)
        generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator).tolist()
    bucket = batch_size * bucket_batches
    batches: list[list[int]] = []
    for start in range(0, n, bucket):
        chunk = sorted(perm[start : start + bucket], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]
