"""The Brevo world's generate step: `data/<dataset>/raw/{train,test,sizes}.parquet` (`frames.columns(layout)`, in the
package docstring) and `brevo.json` (the layout tokenize and evaluate read: `names`, `N`, the word shape). Every
instance is a pure function of (seed, split, index) (`sample.instance`); chunks of `CHUNK` instances run on spawned
processes and the files do not depend on the worker count. No torch here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from physlm.playground import chunked_frame
from physlm.worlds.brevo.frames import frame, write_layout
from physlm.worlds.brevo.params import BrevoGenerateParams
from physlm.worlds.brevo.sample import instance
from physlm.worlds.brevo.text import Layout

CHUNK = 1000


def layout_of(params: BrevoGenerateParams) -> Layout:
    return Layout(params.names, params.N, params.word_vocab, *params.word_lengths)


@dataclass(frozen=True)
class _Chunk:
    params: BrevoGenerateParams
    seed: int
    split: str
    lo: int
    hi: int

    def __call__(self) -> pl.DataFrame:
        p, layout = self.params, layout_of(self.params)
        found = [instance(self.seed, self.split, i, N=p.N, query=p.query, word_shape=layout.word_shape, sizes=p.sizes())
                 for i in range(self.lo, self.hi)]
        return frame(found, self.lo, layout)


def generate_split(params: BrevoGenerateParams, seed: int, split: str, count: int, workers: int = 1) -> pl.DataFrame:
    """Instances 0..count-1 of `split` in chunks on `workers` spawned processes (`physlm.playground.chunked_frame`)."""
    chunks = [_Chunk(params, seed, split, lo, min(lo + CHUNK, count)) for lo in range(0, count, CHUNK)]
    return chunked_frame(chunks, count, workers, f"brevo {split}", "instance")


def generate(params: BrevoGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write train.parquet (n ~ 1/(n + √N)), test.parquet (n = N), sizes.parquet (each eval size in turn), brevo.json."""
    counts = {"train": params.train_examples, "test": params.test_examples,
              "sizes": params.size_examples * len(params.sizes())}
    workers = params.workers or os.cpu_count() or 1
    for split, count in counts.items():
        generate_split(params, seed, split, count, workers).write_parquet(out_dir / f"{split}.parquet", compression="zstd",
                                                                          statistics=False)
    write_layout(out_dir, layout_of(params))
    return counts
