"""The Depo world's generate step: `data/<dataset>/raw/{train,test}.parquet` (columns in the package docstring)
and `depo.json` (the resolved `DepoSpec`: what tokenize, probe and evaluate read). Instance i of split s is a
pure function of (seed, s, i) (`instance.example`); chunks of CHUNK instances run on `workers` spawned
processes (in this process for one worker or one chunk), so the files do not depend on the worker count.
No torch here."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import polars as pl
from tqdm import tqdm

from physlm.io import write_json
from physlm.worlds.depo.instance import Instance, example
from physlm.worlds.depo.params import DepoGenerateParams
from physlm.worlds.depo.spec import SPEC_FILE, DepoSpec

CHUNK = 500
SCHEMA = {"index": pl.Int64, "n": pl.UInt16, "words": pl.List(pl.List(pl.UInt16)), "edges": pl.List(pl.UInt16),
          "queries": pl.List(pl.UInt16), "hops": pl.List(pl.UInt16), "answers": pl.List(pl.UInt16),
          "length": pl.Int32, "text": pl.String}


def frame(instances: list[Instance], start: int) -> pl.DataFrame:
    """Rows for instances start, start+1, ... (the package docstring's columns)."""
    texts = [inst.render() for inst in instances]
    return pl.DataFrame({"index": range(start, start + len(instances)), "n": [i.n for i in instances],
                         "words": [[list(w) for w in i.words] for i in instances], "edges": [list(i.edges) for i in instances],
                         "queries": [list(i.queries) for i in instances], "hops": [list(i.hops) for i in instances],
                         "answers": [list(i.answers) for i in instances], "length": [len(t) for t in texts],
                         "text": [" ".join(t) for t in texts]}, schema=SCHEMA)


def _chunk(spec: DepoSpec, seed: int, split: str, lo: int, n: int) -> pl.DataFrame:
    return frame([example(spec, seed, split, i) for i in range(lo, lo + n)], lo)


def _run(job: tuple) -> pl.DataFrame:
    return _chunk(*job)


def _counted(bar: tqdm, f: pl.DataFrame) -> pl.DataFrame:
    bar.update(f.height)
    return f


def sample_split(spec: DepoSpec, seed: int, split: str, count: int, workers: int = 1) -> pl.DataFrame:
    """Instances 0..count-1 of `split` as one frame; the same whatever `workers`."""
    jobs = [(spec, seed, split, lo, min(CHUNK, count - lo)) for lo in range(0, count, CHUNK)]
    with tqdm(total=count, desc=f"generate {split}", unit="inst", mininterval=2.0, leave=False) as bar:
        if workers <= 1 or len(jobs) == 1:
            frames = [_counted(bar, _run(job)) for job in jobs]
        else:
            with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
                frames = [_counted(bar, f) for f in pool.imap(_run, jobs)]
    return pl.concat(frames)


def generate(params: DepoGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write train.parquet, test.parquet and depo.json into `out_dir`; returns the row counts."""
    spec = params.spec()
    workers = params.workers or os.cpu_count() or 1
    counts = {"train": params.train_instances, "test": params.test_instances}
    for split, count in counts.items():
        sample_split(spec, seed, split, count, workers).write_parquet(out_dir / f"{split}.parquet", compression="zstd",
                                                                     statistics=False)
    write_json(out_dir / SPEC_FILE, spec.to_json())
    return counts
