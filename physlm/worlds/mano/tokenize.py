"""The Mano world's tokens and its tokenize step.

One vocabulary for every Mano dataset (`VOCAB`): `<bos>` = 0, `<eos>` = 1, the answer markers `<ans>`, `<ans'>`,
the operators `+ - * /` and their augmentation twins `+' -' *' /'`, the values `0`..`22`, then the length tokens
`<len_1>`, `<len_1'>`, ..., `<len_64>`, `<len_64'>` (`MAX_OPS`). An example's `text` column is its symbols
separated by spaces; the stage adds `<bos>` and `<eos>` and packs the windows. The loss is on every token (SPEC
7.3), so no loss mask is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from physlm.errors import DataError
from physlm.io import read_json, read_parquet
from physlm.params import TokenizeParams
from physlm.tokenize import BOS, EOS, Vocab
from physlm.worlds import Tokenized
from physlm.worlds.mano.expression import ANSWER, ANSWER_ALT, MAX_OPS, MOD, OPERATORS, SPEC_FILE, length_token, operator_symbol

SYMBOLS = (ANSWER, ANSWER_ALT, *(operator_symbol(op, v) for v in (0, 1) for op in OPERATORS),
           *(str(value) for value in range(MOD)), *(length_token(n, v) for n in range(1, MAX_OPS + 1) for v in (0, 1)))
VOCAB = Vocab((BOS, EOS, *SYMBOLS))
IDS = {symbol: i for i, symbol in enumerate(VOCAB.symbols)}
VALUE_IDS = tuple(IDS[str(value)] for value in range(MOD))  # a value's token id, by value
MARKERS = frozenset({IDS[ANSWER], IDS[ANSWER_ALT]})


@dataclass(frozen=True)
class Row:
    """An example as the probe and evaluate steps read it back: its operation count, token ids (no <bos>/<eos>)
    and value."""

    ops: int
    ids: tuple[int, ...]
    value: int

    @property
    def prompt(self) -> list[int]:
        """What the model is given: `<bos> <len_ℓ> expression <ans>` (all but the value)."""
        return [Vocab.bos_id, *self.ids[:-1]]

    @property
    def sequence(self) -> list[int]:
        """The whole example as trained on: `<bos> ... <ans> value <eos>`."""
        return [Vocab.bos_id, *self.ids, Vocab.eos_id]


def encode_text(text: str) -> list[int]:
    """Token ids of an example's text; KeyError names a symbol outside the vocabulary."""
    return [IDS[s] for s in text.split(" ")]


def in_split(path: Path, rows: Sequence[Row]) -> list[bool]:
    """Whether each row's example (its whole text) is also an example of the Parquet file at `path`; a join on
    the text column, so a training split of millions of rows is never turned into Python objects."""
    texts = [" ".join(VOCAB.symbols[i] for i in r.ids) for r in rows]  # read_rows split each text on " "
    found = read_parquet(path, {"text": pl.String}).join(pl.DataFrame({"text": texts}, schema={"text": pl.String}).unique(),
                                                          on="text", how="semi")
    seen = set(found["text"].to_list())
    return [t in seen for t in texts]


def read_rows(path: Path, limit: int | None = None) -> list[Row]:
    """The first `limit` examples of a Mano Parquet file; DataError when a text is not `<len_ℓ> ... <ans> value`
    with ℓ = ops and value = the value column."""
    frame = read_parquet(path, {"ops": pl.Int16, "text": pl.String, "value": pl.UInt8})
    frame = frame if limit is None else frame.head(limit)
    rows = []
    for ops, text, value in frame.iter_rows():
        try:
            ids = tuple(encode_text(text))
        except KeyError as err:
            raise DataError(f"{path}: example {text!r} has a symbol outside the Mano vocabulary: {err}") from None
        if (len(ids) != 2 * ops + 4 or VOCAB.symbols[ids[0]] not in (length_token(ops), length_token(ops, 1))
                or ids[-2] not in MARKERS or ids[-1] != VALUE_IDS[value]):
            raise DataError(f"{path}: example {text!r} is not `<len_{ops}> expression <ans> {value}`")
        rows.append(Row(ops, ids, value))
    return rows


def read_modulus(raw: Path) -> int:
    """The dataset's modulus, from raw/mano.json; DataError when missing or outside 2..23."""
    modulus = read_json(raw / SPEC_FILE, ("modulus",))["modulus"]
    if not isinstance(modulus, int) or not 2 <= modulus <= MOD:
        raise DataError(f"{raw / SPEC_FILE}: modulus {modulus!r} is not an integer in 2..{MOD}")
    return modulus


def check_vocab(tokens: Path) -> None:
    """The probe and evaluate steps read the dataset's tokenizer.json: it must be this vocabulary."""
    if Vocab.load(tokens / "tokenizer.json") != VOCAB:
        raise DataError(f"{tokens / 'tokenizer.json'}: not the Mano world's vocabulary (rerun tokenize)")


def encode(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of the examples."""
    flat = np.fromiter((i for row in rows for i in row.ids), dtype=np.int64)
    return flat, np.concatenate([[0], np.cumsum([len(row.ids) for row in rows])]).astype(np.int64)


def tokenize(raw: Path, params: TokenizeParams) -> Tokenized:
    """The fixed vocabulary and the train/test examples; every example must fit one window with its `<bos>` and
    `<eos>` (2ℓ + 6 tokens)."""
    rows = {split: read_rows(raw / f"{split}.parquet") for split in ("train", "test")}
    longest = max(len(r.ids) for found in rows.values() for r in found) + 2
    if longest > params.context + 1:
        raise DataError(f"{raw}: examples of {longest} tokens (with <bos> and <eos>) exceed a window of tokenize.context + 1"
                        f" = {params.context + 1}")
    return Tokenized(VOCAB, {split: (lambda split=split: encode(rows[split])) for split in rows})
