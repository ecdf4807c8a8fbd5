"""The toy world's generate step: `data/<dataset>/raw/{train,test}.parquet` (columns in the package docstring).
No torch here: a generator never imports it."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl

from .params import ToyGenerateParams
from .tokenize import LETTERS


def example(seed: int, index: int, length: int, letters: int) -> str:
    """Example `index`'s string: a pure function of its arguments (its own RNG)."""
    rng = random.Random(f"toy:{seed}:{index}")
    return "".join(rng.choice(LETTERS[:letters]) for _ in range(length))


def generate(params: ToyGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write train.parquet and test.parquet into `out_dir`; returns their row counts."""
    splits = {"train": (0, params.train_examples), "test": (params.train_examples, params.test_examples)}
    for split, (start, count) in splits.items():
        indices = list(range(start, start + count))
        frame = pl.DataFrame({"index": indices, "text": [example(seed, i, params.length, params.letters) for i in indices]},
                             schema={"index": pl.Int64, "text": pl.String})
        frame.write_parquet(out_dir / f"{split}.parquet", compression="zstd", statistics=False)
    return {split: count for split, (_, count) in splits.items()}
