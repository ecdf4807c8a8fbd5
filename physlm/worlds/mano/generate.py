"""The Mano world's generate step: `data/<dataset>/raw/{train,test,lengths}.parquet` (columns `COLUMNS`, in the
package docstring) and `mano.json` (the resolved generate params: the modulus that probe and evaluate read). Every example is a pure function of (seed, split, index) (`expression.example`); chunks of
`CHUNK` examples run on spawned processes and the files do not depend on the worker count. No torch here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from physlm.io import write_json
from physlm.playground import chunked_frame
from physlm.worlds.mano.expression import SPEC_FILE, example
from physlm.worlds.mano.params import ManoGenerateParams

CHUNK = 5000
COLUMNS = {"index": pl.Int64, "ops": pl.Int16, "expression": pl.String, "value": pl.UInt8, "text": pl.String}


@dataclass(frozen=True)
class _Chunk:
    """Examples lo .. hi-1 of a split."""

    params: ManoGenerateParams
    seed: int
    split: str
    lo: int
    hi: int

    def __call__(self) -> pl.DataFrame:
        p = self.params
        found = [example(self.seed, self.split, i, max_ops=p.max_ops, operators=p.operators, augment=p.augment,
                         lengths=p.lengths(), modulus=p.modulus, held_out=p.held_out) for i in range(self.lo, self.hi)]
        return pl.DataFrame({"index": range(self.lo, self.hi), "ops": [e.ops for e in found],
                             "expression": [" ".join(e.expression) for e in found], "value": [e.value for e in found],
                             "text": [e.text for e in found]}, schema=COLUMNS)


def generate_split(params: ManoGenerateParams, seed: int, split: str, count: int, workers: int = 1) -> pl.DataFrame:
    """Examples 0..count-1 of `split` in chunks on `workers` spawned processes (`physlm.playground.chunked_frame`)."""
    chunks = [_Chunk(params, seed, split, lo, min(lo + CHUNK, count)) for lo in range(0, count, CHUNK)]
    return chunked_frame(chunks, count, workers, f"mano {split}", "example")


def generate(params: ManoGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write train.parquet (U{1..L} operations), test.parquet (L), lengths.parquet (each eval length in turn) and
    mano.json."""
    counts = {"train": params.train_examples, "test": params.test_examples,
              "lengths": params.length_examples * len(params.lengths())}
    workers = params.workers or os.cpu_count() or 1
    for split, count in counts.items():
        generate_split(params, seed, split, count, workers).write_parquet(out_dir / f"{split}.parquet", compression="zstd",
                                                                          statistics=False)
    write_json(out_dir / SPEC_FILE, {"modulus": params.modulus, "max_ops": params.max_ops, "operators": params.operators,
                                     "augment": params.augment, "eval_lengths": params.lengths()}
               | ({"held_out": params.held_out} if params.held_out else {}))  # the default's file stays as it was
    return counts
