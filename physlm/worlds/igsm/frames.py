"""iGSM problems as Parquet rows (`FRAME_SCHEMA`, documented in the package docstring) and back, and
whole splits or eval sets generated in shards on spawned processes (`generate_frame`; the frame does not
depend on the worker count). This module never imports torch."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from tqdm import tqdm

from physlm.io import read_parquet
from physlm.worlds.igsm.graph import IgsmSpec, allowed_buckets
from physlm.worlds.igsm.knowledge import Knowledge, load_knowledge
from physlm.worlds.igsm.problems import EVAL_SETS, eval_problem, generate_problem
from physlm.worlds.igsm.types import Param, Problem


# --------------------------------------------------------------------------------------------- Parquet

FRAME_SCHEMA = {
    "index": pl.Int64, "split": pl.String, "problem": pl.String, "question": pl.String, "solution": pl.String,
    "answer": pl.UInt8, "op": pl.Int16, "fmt": pl.String, "bucket": pl.Int8, "categorization": pl.Int8,
    "layers": pl.List(pl.Int8), "query": pl.Int16, "param_name": pl.List(pl.String),
    "param_abstract": pl.List(pl.Boolean), "param_deps": pl.List(pl.List(pl.Int16)),
    "param_combine": pl.List(pl.String), "param_rng_op": pl.List(pl.String), "param_const": pl.List(pl.Int16),
    "param_value": pl.List(pl.UInt8), "sentences": pl.List(pl.Int16), "necessary": pl.List(pl.Int16),
    "order": pl.List(pl.Int16),
}


def problems_frame(problems: Sequence[Problem], indices: Sequence[int], *, split: str) -> pl.DataFrame:
    """One row per problem (columns `FRAME_SCHEMA`; rng_op "" and const -1 where a parameter has none)."""
    def params(field: Callable[[Param], object]) -> list[list]:
        return [[field(p) for p in pr.params] for pr in problems]

    columns = {
        "index": list(indices), "split": [split] * len(problems),
        **{k: [getattr(pr, k) for pr in problems] for k in ("problem", "question", "solution", "answer", "op", "fmt",
                                                             "bucket", "categorization")},
        "layers": [list(pr.layers) for pr in problems], "query": [pr.query for pr in problems],
        "param_name": params(lambda p: p.name), "param_abstract": params(lambda p: p.abstract),
        "param_deps": params(lambda p: list(p.deps)), "param_combine": params(lambda p: p.combine),
        "param_rng_op": params(lambda p: p.rng_op or ""),
        "param_const": params(lambda p: -1 if p.const is None else p.const),
        "param_value": params(lambda p: p.value), "sentences": [list(pr.sentences) for pr in problems],
        "necessary": [sorted(pr.necessary) for pr in problems], "order": [list(pr.order) for pr in problems],
    }
    return pl.DataFrame(columns, schema=FRAME_SCHEMA)


def problem_from_row(row: dict) -> Problem:
    """The Problem a `problems_frame` row was made from."""
    params = tuple(
        Param(name, abstract, tuple(deps), combine, rng_op or None, None if const < 0 else const, value)
        for name, abstract, deps, combine, rng_op, const, value in zip(
            row["param_name"], row["param_abstract"], row["param_deps"], row["param_combine"], row["param_rng_op"],
            row["param_const"], row["param_value"]))
    return Problem(
        params=params, sentences=tuple(row["sentences"]), query=row["query"], necessary=frozenset(row["necessary"]),
        order=tuple(row["order"]), fmt=row["fmt"], problem=row["problem"], question=row["question"],
        solution=row["solution"], answer=row["answer"], op=row["op"], categorization=row["categorization"],
        layers=tuple(row["layers"]), bucket=row["bucket"])


def load_problems(path: Path, limit: int | None = None) -> list:
    """`Problem`s of an iGSM Parquet file (the first `limit` rows); DataError if its columns are not FRAME_SCHEMA's."""
    frame = read_parquet(path, FRAME_SCHEMA)
    if limit is not None:
        frame = frame.head(limit)
    return [problem_from_row(row) for row in frame.iter_rows(named=True)]


# ------------------------------------------------------------------------------------ parallel frames


@dataclass(frozen=True)
class _Job:
    """What one generate_frame call makes: problem i of a plain split, or of an eval set."""

    spec: IgsmSpec
    seed: int
    split: str
    force_op: int | None
    eval_set: str | None
    ood_ops: tuple[int, ...] | None

    def problem(self, index: int, knowledge: Knowledge) -> Problem:
        if self.eval_set is None:
            return generate_problem(self.spec, self.seed, index, split=self.split, force_op=self.force_op, knowledge=knowledge)
        return eval_problem(self.spec, self.eval_set, self.seed, index, ood_ops=self.ood_ops, knowledge=knowledge)

    def shard(self, lo: int, hi: int, knowledge: Knowledge) -> pl.DataFrame:
        return problems_frame([self.problem(i, knowledge) for i in range(lo, hi)], range(lo, hi), split=self.split)


_WORKER_KNOWLEDGE: Knowledge | None = None


def _init_worker(knowledge: Knowledge) -> None:
    global _WORKER_KNOWLEDGE
    _WORKER_KNOWLEDGE = knowledge


def _run_shard(task: tuple[_Job, int, int]) -> pl.DataFrame:
    job, lo, hi = task
    return job.shard(lo, hi, _WORKER_KNOWLEDGE)


def _shards(job: _Job, count: int, shard_size: int, workers: int, knowledge: Knowledge) -> Iterator[pl.DataFrame]:
    tasks = [(job, lo, min(lo + shard_size, count)) for lo in range(0, count, shard_size)]
    if workers == 1 or len(tasks) == 1:  # one shard: a pool would only add its start-up (~3 s)
        yield from (job.shard(lo, hi, knowledge) for _, lo, hi in tasks)
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(knowledge,)) as pool:
        yield from pool.imap(_run_shard, tasks)


def generate_frame(spec: IgsmSpec, seed: int, count: int, *, split: str | None = None, force_op: int | None = None,
                   eval_set: str | None = None, ood_ops: Sequence[int] | None = None, workers: int = 1,
                   shard_size: int = 1000, knowledge: Knowledge | None = None, progress: bool = True) -> pl.DataFrame:
    """Problems 0..count-1 of a split (default train) or of an eval set (`EVAL_SETS`, always test), as a
    `problems_frame`. Shards of `shard_size` problems run on `workers` spawned processes (in-process when
    workers is 1 or there is one shard); the frame does not depend on either."""
    if eval_set is not None and (force_op is not None or split not in (None, "test")):
        raise ValueError(f"eval set {eval_set!r} fixes its own split (test) and ops; do not pass split/force_op")
    if eval_set is not None and eval_set not in EVAL_SETS:
        raise ValueError(f"unknown iGSM eval set {eval_set!r}; choose from {', '.join(EVAL_SETS)}")
    if count < 1 or shard_size < 1 or workers < 1:
        raise ValueError(f"count, shard_size and workers must be positive, got {count}, {shard_size}, {workers}")
    split = split or ("test" if eval_set else "train")
    allowed_buckets(spec.split_rule, split)
    job = _Job(spec, seed, split, force_op, eval_set, tuple(ood_ops) if ood_ops else None)
    knowledge = knowledge or load_knowledge()
    frames = []
    with tqdm(total=count, desc=f"igsm {eval_set or split}", unit="problem", mininterval=2.0, disable=not progress) as bar:
        for frame in _shards(job, count, shard_size, workers, knowledge):
            frames.append(frame)
            bar.update(frame.height)
    return pl.concat(frames, rechunk=True)
