"""The grammar world's tokens and its tokenize step.

Tokens: `<bos>` = 0, `<eos>` = 1, terminal t (1..V) = t + 1, so encoding is an offset (`cfg_encode`); an
implicit grammar's vocabulary tokens 1..M likewise. `data/<dataset>/tokens/tokenizer.json` is this
vocabulary as an HF `tokenizers` WordLevel file. The tokenize step encodes the `tokens` column of
raw/{train,test}.parquet; the stage packs them into windows (`tokenize.pack`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from physlm.io import read_parquet
from physlm.params import TokenizeParams
from physlm.tokenize import BOS, EOS, Vocab
from physlm.worlds import Tokenized
from physlm.worlds.cfg.language import load_language


def cfg_vocab(num_terminals: int) -> Vocab:
    """Grammar vocabulary: terminal t (1..V) has id t + 1, so encoding is an offset (see `cfg_encode`)."""
    return Vocab((BOS, EOS, *(str(t) for t in range(1, num_terminals + 1))))


def cfg_encode(terminals: np.ndarray) -> np.ndarray:
    return np.asarray(terminals, dtype=np.int64) + 1


def cfg_decode(ids: Sequence[int]) -> list[int] | None:
    """Terminal ids of a generated continuation (trailing <eos> removed); None if a special token is inside."""
    ids = list(ids)
    if ids and ids[-1] == Vocab.eos_id:
        ids = ids[:-1]
    if any(i < 2 for i in ids):
        return None
    return [i - 1 for i in ids]


def encode_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of the sentences of a grammar Parquet file."""
    tokens = read_parquet(path, ["tokens"])["tokens"]
    flat = cfg_encode(tokens.explode(empty_as_null=False).to_numpy())
    return flat, np.concatenate([[0], np.cumsum(tokens.list.len().to_numpy())])


def tokenize(raw: Path, params: TokenizeParams) -> Tokenized:
    """The vocabulary of the dataset's language and its train/test sentences, encoded when packed."""
    vocab = cfg_vocab(load_language(raw).vocab_size)
    return Tokenized(vocab, {split: (lambda split=split: encode_split(raw / f"{split}.parquet")) for split in ("train", "test")})
