"""Tokenizers and packing into fixed-length training windows.

A vocabulary is the two specials `<bos>` (id 0) and `<eos>` (id 1) followed by the world's symbols. It is
saved as an HF `tokenizers` WordLevel `tokenizer.json` (whitespace-separated symbols), built here from the
world's own symbol list: nothing is downloaded.

Packing: every sentence becomes `<bos> s <eos>` and sentences are concatenated in order. Two layouts
(the `tokenize.pack` param):
- `stream` (Part 1's training stream): the stream is cut into consecutive windows of `context + 1` tokens
  (inputs are the first `context`, targets the last `context`); the incomplete tail is dropped.
- `sentences`: every window starts at a sentence's `<bos>` and runs on through the following sentences;
  the sentence cut by the window's end starts the next window, so every sentence is seen whole once. Then
  position 0 always holds a sentence start, as when a model generates from `<bos>` alone (cut0); a small
  model trained on `stream` windows rarely sees `<bos>` without history and generates worse from it.
Windows are stored as a uint16 `.npy` array that loads memory-mapped.

Loss masks: a world may say which tokens are training targets (1) and which are context only (0), e.g. loss
only on the answers. `pack_loss` packs such a per-token mask exactly as `pack_windows` packs the tokens (the
same rows, the same layout); the `<bos>` packing adds is never a target, the `<eos>` is one when `eos_loss`.
The mask rides with the tokens as `Windows` and is stored as a uint8 `.npy` array of the windows' shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physlm.errors import DataError

BOS, EOS = "<bos>", "<eos>"


@dataclass(frozen=True)
class Vocab:
    """Token strings in id order; ids 0 and 1 are always <bos> and <eos>."""

    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.symbols[:2] != (BOS, EOS) or len(set(self.symbols)) != len(self.symbols):
            raise ValueError("a vocabulary starts with <bos>, <eos> and has no duplicate symbols")
        object.__setattr__(self, "_ids", {s: i for i, s in enumerate(self.symbols)})

    def id(self, symbol: str) -> int:
        return self._ids[symbol]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, symbols separated by white space (how the symbol worlds write their text and split
        it in tokenizer.json); DataError naming the first symbol outside the vocabulary. `TextVocab` overrides it."""
        ids = self._ids
        try:
            return [ids[s] for s in text.split()]
        except KeyError as err:
            raise DataError(f"symbol {err.args[0]!r} is not in the vocabulary (in {text[:80]!r})") from None

    def decode(self, ids) -> str:
        """Text of token ids, the symbols joined by single spaces (ids out of range are rendered as `<?>`)."""
        n = len(self.symbols)
        return " ".join(self.symbols[i] if 0 <= i < n else "<?>" for i in ids)

    @property
    def size(self) -> int:
        return len(self.symbols)

    bos_id = 0
    eos_id = 1

    def tokenizer(self):  # -> tokenizers.Tokenizer
        from tokenizers import Tokenizer, models, pre_tokenizers

        tok = Tokenizer(models.WordLevel({s: i for i, s in enumerate(self.symbols)}, unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return tok

    def save(self, path: str | Path) -> None:
        self.tokenizer().save(str(path))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        from tokenizers import Tokenizer

        try:
            vocab = Tokenizer.from_file(str(path)).get_vocab()
        except Exception as err:
            raise DataError(f"{path}: not a readable tokenizer.json ({err})") from None
        return cls(tuple(sorted(vocab, key=vocab.__getitem__)))


@dataclass(frozen=True)
class Windows:
    """Packed windows [N, T+1] of token ids with their loss mask [N, T+1] (1: the token is a training target,
    0: context only), row for row; `loss` None: every token is a target. Indexing takes rows of both."""

    tokens: np.ndarray
    loss: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.loss is not None and self.loss.shape != self.tokens.shape:
            raise DataError(f"a loss mask of shape {list(self.loss.shape)} for windows of shape {list(self.tokens.shape)}")

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, rows) -> Windows:
        return Windows(self.tokens[rows], None if self.loss is None else self.loss[rows])

    @property
    def width(self) -> int:
        return self.tokens.shape[1]


def pack_windows(flat: np.ndarray, offsets: np.ndarray, context: int, bos_id: int, eos_id: int,
                 pack: str = "stream") -> np.ndarray:
    """Windows [n, context+1] of the stream `<bos> s0 <eos> <bos> s1 <eos> ...` in the `pack` layout.

    `flat` holds the concatenated (already encoded) sentences, `offsets` their n+1 boundaries.
    """
    stream, starts = _stream(flat, np.asarray(offsets, dtype=np.int64), bos_id, eos_id)
    if stream.max(initial=0) >= np.iinfo(np.uint16).max:
        raise DataError("token ids exceed uint16")
    return _cut(stream, starts, context + 1, pack).astype(np.uint16)


def pack_loss(loss: np.ndarray, offsets: np.ndarray, context: int, pack: str = "stream",
              eos_loss: bool = False) -> np.ndarray:
    """The loss mask [n, context+1] (uint8) of `pack_windows`' windows of the same sentences: each sentence's
    mask `loss` (one 0/1 per token of `flat`), 0 at the `<bos>` before it, `eos_loss` at the `<eos>` after it."""
    loss = np.asarray(loss)
    if loss.ndim != 1 or (len(loss) and not np.isin(loss, (0, 1)).all()):
        raise DataError("a loss mask is one 0 or 1 per token")
    stream, starts = _stream(loss.astype(np.int64), np.asarray(offsets, dtype=np.int64), 0, int(eos_loss))
    return _cut(stream, starts, context + 1, pack).astype(np.uint8)


def _cut(stream: np.ndarray, starts: np.ndarray, width: int, pack: str) -> np.ndarray:
    """The windows [n, width] of a packed stream in the `pack` layout (module docstring)."""
    if pack == "stream":
        rows = np.arange(len(stream) // width) * width
    elif pack == "sentences":
        rows = _sentence_starts(starts, len(stream), width)
    else:
        raise ValueError(f"pack must be 'stream' or 'sentences', got {pack!r}")
    if len(rows) == 0:
        raise DataError(f"only {len(stream)} tokens: not enough for one window of {width}")
    return stream[rows[:, None] + np.arange(width)]


def _sentence_starts(starts: np.ndarray, total: int, width: int) -> np.ndarray:
    """Window start positions for the `sentences` layout (see the module docstring)."""
    ends = np.append(starts[1:], total)  # stream position after each sentence's <eos>
    rows, i = [], 0
    while i < len(starts) and starts[i] + width <= total:
        rows.append(starts[i])
        cut = int(np.searchsorted(ends, starts[i] + width, side="right"))  # first sentence not complete
        i = max(cut, i + 1)
    return np.asarray(rows, dtype=np.int64)


def _stream(flat: np.ndarray, offsets: np.ndarray, bos_id: int, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The `<bos> s <eos>` stream and the position of each sentence's <bos> in it."""
    lengths = np.diff(offsets)
    n = len(lengths)
    stream = np.empty(len(flat) + 2 * n, dtype=np.int64)
    starts = offsets[:-1] + 2 * np.arange(n)  # where each sentence's <bos> lands
    stream[starts] = bos_id
    stream[starts + lengths + 1] = eos_id
    body = np.ones(len(stream), dtype=bool)
    body[starts] = False
    body[starts + lengths + 1] = False
    stream[body] = flat
    return stream, starts


def drop_long(flat: np.ndarray, offsets: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Examples of at most `limit` tokens (SPEC 2.2: over-long problems are dropped); returns the count dropped."""
    lengths = np.diff(offsets)
    keep = lengths <= limit
    if keep.all():
        return flat, offsets, 0
    mask = np.repeat(keep, lengths)
    return flat[mask], np.concatenate([[0], np.cumsum(lengths[keep])]), int((~keep).sum())
