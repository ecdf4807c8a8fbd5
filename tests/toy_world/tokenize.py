"""The toy world's tokens and its tokenize step: `<bos>` = 0, `<eos>` = 1, the separator `=` = 2, a..z = 3..28
(one vocabulary for every dataset, so tokenize needs nothing but the Parquet files). An example `abc` is
encoded `a b c = a b c`; the stage adds `<bos>` and `<eos>` and packs the windows. With `tokenize.loss: copy`
each split also gives a loss mask: only the copy `a b c` and the `<eos>` after it are training targets (the
prompt `a b c =` is context only), as a QA world trains only on its answers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from physlm.errors import DataError
from physlm.io import read_parquet
from physlm.tokenize import BOS, EOS, Vocab
from physlm.worlds import Tokenized

from .params import ToyTokenizeParams

SEP = "="
LETTERS = "abcdefghijklmnopqrstuvwxyz"
VOCAB = Vocab((BOS, EOS, SEP, *LETTERS))
SEP_ID = 2


def letter_ids(text: str) -> list[int]:
    return [LETTERS.index(c) + 3 for c in text]


def prompt(text: str) -> list[int]:
    """What the model is given at evaluation: `<bos> letters =`."""
    return [Vocab.bos_id, *letter_ids(text), SEP_ID]


def target(text: str) -> list[int]:
    """What a perfect copy generates after the prompt: the letters and `<eos>`."""
    return [*letter_ids(text), Vocab.eos_id]


def check_vocab(tokens: Path) -> None:
    """The probe and evaluate steps read the dataset's tokenizer.json: it must be this vocabulary."""
    if Vocab.load(tokens / "tokenizer.json") != VOCAB:
        raise DataError(f"{tokens / 'tokenizer.json'}: not the toy world's vocabulary (rerun tokenize)")


def read_texts(path: Path) -> list[str]:
    texts = read_parquet(path, ["text"])["text"].to_list()
    bad = next((t for t in texts if not t or set(t) - set(LETTERS)), None)
    if bad is not None:
        raise DataError(f"{path}: example {bad!r} is not a non-empty string of a..z")
    return texts


def encode(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of the examples `letters = letters`."""
    rows = [[*letter_ids(t), SEP_ID, *letter_ids(t)] for t in texts]
    flat = np.fromiter((i for row in rows for i in row), dtype=np.int64)
    return flat, np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)


def copy_mask(text: str) -> np.ndarray:
    """The loss mask of one example `letters = letters`: 1 on the copy only."""
    return np.array([0] * (len(text) + 1) + [1] * len(text), dtype=np.uint8)


def encode_masked(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat ids, offsets, loss mask): `encode` and the copies' masks."""
    flat, offsets = encode(texts)
    return flat, offsets, np.concatenate([copy_mask(t) for t in texts]) if texts else np.zeros(0, np.uint8)


def tokenize(raw: Path, params: ToyTokenizeParams) -> Tokenized:
    """The fixed vocabulary and the train/test examples, encoded when packed; every example must fit one
    window with its `<bos>` and `<eos>` (evaluation generates the whole copy inside the context)."""
    texts = {split: read_texts(raw / f"{split}.parquet") for split in ("train", "test")}
    longest = max(len(t) for found in texts.values() for t in found)
    if 2 * longest + 3 > params.context + 1:
        raise DataError(f"{raw}: examples of {longest} letters take {2 * longest + 3} tokens, more than a window of"
                        f" tokenize.context + 1 = {params.context + 1}")
    if params.loss == "all":
        return Tokenized(VOCAB, {split: (lambda split=split: encode(texts[split])) for split in texts}, meta={"separator": SEP})
    return Tokenized(VOCAB, {split: (lambda split=split: encode_masked(texts[split])) for split in texts},
                     meta={"separator": SEP, "loss": "copy"}, eos_loss=True)
