"""The Depo world's vocabulary and its tokenize step.

Vocabulary (built here from raw/depo.json, nothing downloaded): `<bos>` = 0, `<eos>` = 1, `<ans>` = 2,
`<query_k>` = 2 + k for k = 1..K, then word symbol s (1..2V) = K + 2 + s; saved as tokenizer.json (WordLevel,
whitespace-split, so the Parquet `text` column encodes as is). A word's last symbol is one of V+1..2V
(`DepoTokens.is_end`).

Probe and evaluate read test instances through `encode_instances` (ids with <bos>, each query's hop,
`<ans>` position and answer ids, checked against the structured columns).

Splits: train and test, every instance's `text` encoded, with its loss mask (`tokenize.loss: answers`, the
paper's): 1 on each `<ans>` marker and on the answer's symbols after it, 0 on the edges and on each
`<query_k> q` (`answer_mask`); with `loss: all` every token is a target. The packing's `<bos>` is never a
target and, with `loss: answers`, neither is its `<eos>` after each instance (`eos_loss=False`: the answer's last
symbol already ends the instance).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from physlm.errors import DataError
from physlm.io import read_json, read_parquet
from physlm.tokenize import BOS, EOS, Vocab
from physlm.worlds import Tokenized
from physlm.worlds.depo.spec import SPEC_FILE, DepoSpec
from physlm.worlds.depo.params import DepoTokenizeParams

@dataclass(frozen=True)
class DepoTokens:
    """The Depo vocabulary of a dataset and what its ids mean."""

    spec: DepoSpec

    @functools.cached_property
    def vocab(self) -> Vocab:
        return Vocab((BOS, EOS, *self.spec.symbols()))

    ans_id = 2

    def query_id(self, k: int) -> int:
        return 2 + k

    def symbol_id(self, s: int) -> int:
        return self.spec.K + 2 + s

    def is_query(self, ids: np.ndarray) -> np.ndarray:
        return (ids >= 3) & (ids <= self.spec.K + 2)

    def is_end(self, token: int) -> bool:
        """Is `token` a word's last symbol (V+1..2V)?"""
        return self.spec.K + 2 + self.spec.vocab < token <= self.spec.K + 2 + 2 * self.spec.vocab

    def is_symbol(self, token: int) -> bool:
        return self.spec.K + 2 < token <= self.spec.K + 2 + 2 * self.spec.vocab

    def word_ids(self, word) -> list[int]:
        return [self.symbol_id(int(s)) for s in word]

    @functools.cached_property
    def lookup(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.vocab.symbols)}

    def encode(self, text: str) -> list[int]:
        ids = self.lookup
        try:
            return [ids[w] for w in text.split()]
        except KeyError as err:
            raise DataError(f"token {err.args[0]!r} is not in the Depo vocabulary (in {text[:60]!r})") from None


def load_tokens(raw: Path) -> DepoTokens:
    """The dataset's vocabulary, from raw/depo.json."""
    data = read_json(raw / SPEC_FILE, ("N", "K", "vocab", "min_len", "max_len"))
    try:
        return DepoTokens(DepoSpec.from_json(data))
    except TypeError as err:
        raise DataError(f"{raw / SPEC_FILE}: not a Depo spec ({err})") from None


def check_vocab(tokens_dir: Path, tokens: DepoTokens) -> None:
    """Probe and evaluate read the dataset's tokenizer.json: it must be this dataset's vocabulary."""
    if Vocab.load(tokens_dir / "tokenizer.json") != tokens.vocab:
        raise DataError(f"{tokens_dir / 'tokenizer.json'}: not this Depo dataset's vocabulary (rerun tokenize)")


def answer_mask(ids: np.ndarray, offsets: np.ndarray, tokens: DepoTokens) -> np.ndarray:
    """uint8 mask over the concatenated instances `ids` (bounds `offsets`): 1 from each `<ans>` up to the next
    `<query_k>` or the instance's end, 0 elsewhere."""
    marker = np.full(len(ids), -1, dtype=np.int8)  # 1 at <ans>, 0 at <query_k> and at each instance's first token
    marker[tokens.is_query(ids)] = 0
    marker[offsets[:-1][np.diff(offsets) > 0]] = 0
    marker[ids == tokens.ans_id] = 1
    last = np.where(marker >= 0, np.arange(len(ids)), 0)
    np.maximum.accumulate(last, out=last)  # the latest marker at or before each position
    return (marker[last] == 1).astype(np.uint8)


def encode_texts(texts: pl.Series, tokens: DepoTokens, chunk: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of many instance texts, vectorised by polars in slices of `chunk` rows (2M training
    instances hold ~10^9 tokens: never one Python int per token); DataError naming a token outside the vocabulary."""
    parts, lengths = [], []
    for lo in range(0, len(texts), chunk):
        words = texts.slice(lo, chunk).str.split(" ")
        lengths.append(words.list.len().to_numpy())
        ids = words.explode(empty_as_null=False).replace_strict(tokens.lookup, default=-1, return_dtype=pl.Int64).to_numpy()
        if (ids < 0).any():
            bad = words.explode(empty_as_null=False).to_numpy()[np.argmax(ids < 0)]
            raise DataError(f"token {bad!r} is not in the Depo vocabulary")
        parts.append(ids)
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
    return np.concatenate(parts), offsets


def encode_split(path: Path, tokens: DepoTokens, loss: str) -> tuple[np.ndarray, ...]:
    """(flat ids, offsets, loss mask) of a Depo Parquet file (`loss: answers`: `<ans>` and the answers' tokens)."""
    flat, offsets = encode_texts(read_parquet(path, {"text": pl.String})["text"], tokens)
    mask = answer_mask(flat, offsets, tokens) if loss == "answers" else np.ones(len(flat), dtype=np.uint8)
    return flat, offsets, mask


def tokenize(raw: Path, params: DepoTokenizeParams) -> Tokenized:
    tokens = load_tokens(raw)
    splits = {split: (lambda split=split: encode_split(raw / f"{split}.parquet", tokens, params.loss)) for split in ("train", "test")}
    meta = {"depo": tokens.spec.to_json(), "loss": params.loss}
    return Tokenized(tokens.vocab, splits, meta=meta, eos_loss=params.loss == "all")


COLUMNS = {"words": pl.List(pl.List(pl.UInt16)), "queries": pl.List(pl.UInt16), "hops": pl.List(pl.UInt16),
           "answers": pl.List(pl.UInt16), "text": pl.String}


@dataclass(frozen=True)
class Scored:
    """One instance encoded for scoring: its ids (with <bos>), and per query its hop, the position of its
    `<ans>` and its answer's ids."""

    ids: list[int]
    hops: list[int]
    ans_at: list[int]
    answers: list[list[int]]


def encode_instances(frame: pl.DataFrame, tokens: DepoTokens) -> list[Scored]:
    """The rows of a test frame as `Scored`; DataError when a row's text disagrees with its answer columns."""
    out = []
    for words, queries, hops, answers, text in frame.select(list(COLUMNS)).iter_rows():
        ids = [Vocab.bos_id, *tokens.encode(text)]
        ans_at = [i for i, t in enumerate(ids) if t == tokens.ans_id]
        truth = [tokens.word_ids(words[a]) for a in answers]
        if len(ans_at) != len(queries) or any(ids[p + 1 : p + 1 + len(w)] != w for p, w in zip(ans_at, truth)):
            raise DataError(f"test instance {len(out)}: its text does not hold its answers (regenerate the dataset)")
        out.append(Scored(ids, list(hops), ans_at, truth))
    return out
