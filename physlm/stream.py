"""Training windows streamed from the world generator, as the papers train on fresh samples.

Window j (j = 0, 1, 2, ...) is a pure function of the dataset's seed, its generate section and its
tokenization, and of j alone: example k of window j (k = 0, 1, ...) comes from the world's stream step
(`physlm/worlds/<world>/stream.py`, `source(spec).example(seed, j, k)`), each from its own RNG seeded by
(seed, j, k) and disjoint from the materialized splits' streams (the worlds' modules say how). Examples
longer than `context - 1` tokens are dropped where the world drops them at tokenize (`drops_long`). The
examples are packed by `physlm.tokenize.pack_windows` with the dataset's `tokenize.pack` until one window of
`context + 1` tokens is full: with `sentences` the window starts at the first example's `<bos>`; with
`stream`, whose materialized windows start anywhere, it starts at a uniform position of the first example's
`<bos> s <eos>` (drawn from `random.Random(f"stream-cut:{seed}:{j}")`), and the rest of the last example is
dropped. Windows are independent, so any number of worker processes gives the same windows.

Loss masks: where the tokenized train split has one (tokens/meta.json's `loss_mask`), every streamed example
carries its mask (`Example.loss`, one 0/1 per id), packed as the ids by `physlm.tokenize.pack_loss` with the
dataset's `eos_loss` (`Packed.loss`), and the stream hands out `Windows` (ids and mask) instead of bare arrays:
the same (ids, mask) as tokenize's packing of the same examples.

Files: the generate stage of a world that streams writes `raw/stream.json` (`stream_record`: world, seed,
generate section, and what else its source reads, e.g. a grammar's text); tokenize copies it to
`tokens/stream.json` and writes `tokens/stream_sample.parquet` (`sample_frame`: the examples of the first
`generate.stream_sample` windows, with their window, k and cut), so the train stage builds the stream from
`data/<ds>/tokens` alone.

`Stream` is what `physlm.train.train` takes instead of a window array: `open(rows)` returns a `Producer`
making each micro-batch's windows on a pool of spawned processes, a bounded number ahead, handed out in order.

Tests (tests/test_stream.py): 1 and 2 workers give equal windows; window j is a pure function of (seed, j);
a masked stream's (ids, mask) equal tokenize's packing of its examples, in both layouts;
streamed iGSM problems are training-split problems whose decoded text the judge accepts; streamed grammar
sentences pass the membership check; the sample equals the first windows; train() resumes exactly on the
stream; the train stage end to end; streaming a world without a stream step is a one-line error. Speed:
benchmarks/bench_stream.py.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import multiprocessing
import os
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from physlm import worlds
from physlm.errors import DataError
from physlm.io import read_json
from physlm.tokenize import Windows, pack_loss, pack_windows

RECORD = "stream.json"
SAMPLE = "stream_sample.parquet"
COUNTS = ("windows", "tokens", "dropped_too_long", "loss_mask")  # meta.json's counts: not part of the tokenization
MAX_DROPPED = 10_000  # over-long examples one window may skip before the stream gives up


def stream_record(world: str, seed: int, generate: Any, **extra: Any) -> dict:
    """raw/stream.json's content: what a stream of this dataset needs beyond its tokenization: the world, the
    seed, the generate section and whatever else the world's source reads (`extra`, e.g. a grammar's text)."""
    return {"world": world, "seed": seed, "generate": generate.model_dump(mode="json"), **extra}


@dataclass(frozen=True)
class Example:
    """One streamed example: its index k in the window, token ids (no <bos>/<eos>) and world payload, and its
    loss mask where the dataset has one (1: the token is a training target, 0: context only)."""

    k: int
    ids: np.ndarray
    payload: Any  # iGSM: the Problem; grammar: (Sentence, terminals, tokens, perturbed)
    loss: np.ndarray | None = None  # one 0/1 per id (a masked dataset's examples), None: every id a target


@dataclass(frozen=True)
class Packed:
    window: np.ndarray  # [context + 1] uint16
    examples: list[Example]  # those packed into it, in order (the last may be cut off)
    cut: int  # tokens of the first example's <bos> s <eos> skipped (always 0 for pack "sentences")
    loss: np.ndarray | None = None  # [context + 1] uint8: the window's loss mask, where the stream has masks


@dataclass(frozen=True)
class StreamSpec:
    """Everything window j depends on besides j (hashable and small: it is sent to every worker)."""

    world: str
    seed: int
    generate: str  # the dataset's generate section, JSON
    extra: str  # the rest of stream.json (what the world wrote beside its generate section), JSON
    tokens: str  # tokens/meta.json without its counts (the tokenization: units, pack, context, ...), JSON
    context: int
    pack: str
    bos_id: int
    eos_id: int
    vocab_size: int
    loss: bool = False  # the examples carry loss masks (the tokenized train split has one)
    eos_loss: bool = False  # with loss masks: each example's <eos> is a target (`Tokenized.eos_loss`)

    @classmethod
    def load(cls, tokens: Path) -> StreamSpec:
        """The stream of a tokenized dataset (tokens/stream.json and meta.json); DataError if it has none."""
        path = Path(tokens) / RECORD
        if not path.is_file():
            raise DataError(f"{path}: file not found; streaming needs a cfg or igsm dataset generated and"
                            " tokenized by this version (rerun its generate and tokenize stages)")
        record, meta = read_json(path), read_json(Path(tokens) / "meta.json")
        world = worlds.get(record["world"])
        if not world.takes_part("stream") or record["world"] != meta["world"]:
            raise DataError(f"{path}: world {record['world']!r} of tokens/meta.json's {meta['world']!r} cannot stream")
        extra = {k: v for k, v in record.items() if k not in ("world", "seed", "generate")}
        tokenization = {k: v for k, v in meta.items() if k not in COUNTS}
        spec = cls(world=record["world"], seed=record["seed"], generate=json.dumps(record["generate"], sort_keys=True),
                   extra=json.dumps(extra, sort_keys=True), tokens=json.dumps(tokenization, sort_keys=True),
                   context=meta["context"], pack=meta["pack"], bos_id=meta["bos_id"], eos_id=meta["eos_id"],
                   vocab_size=meta["vocab_size"], loss="train" in meta.get("loss_mask", {}),
                   eos_loss=meta.get("eos_loss", False))
        if _source(spec).vocab_size != spec.vocab_size:
            raise DataError(f"{path}: the stream's vocabulary differs from tokens/meta.json's vocab_size {spec.vocab_size}")
        return spec

    @property
    def width(self) -> int:
        return self.context + 1

    @property
    def sample_windows(self) -> int:
        return json.loads(self.generate)["stream_sample"]

    def identity(self) -> str:
        """Hash of the fields: a checkpoint resumes only on the same stream."""
        return hashlib.blake2b(json.dumps(asdict(self), sort_keys=True).encode(), digest_size=16).hexdigest()

    def packed(self, j: int) -> Packed:
        """Window j and the examples in it (module docstring)."""
        source, need, cut = _source(self), self.width, 0
        examples: list[Example] = []
        total, k = 0, 0
        while total < need:
            example = source.example(self.seed, j, k)
            k += 1
            if source.drops_long and len(example.ids) > self.context - 1:
                if k - len(examples) > MAX_DROPPED:
                    raise DataError(f"stream window {j}: over {MAX_DROPPED} examples longer than context - 1 = {self.context - 1} tokens")
                continue
            if not examples and self.pack == "stream":
                cut = random.Random(f"stream-cut:{self.seed}:{j}").randrange(len(example.ids) + 2)
                need += cut
            if (example.loss is not None) != self.loss:
                raise DataError(f"stream window {j}: example {k - 1} {'lacks' if self.loss else 'has'} a loss mask, but"
                                f" the tokenized train split {'has' if self.loss else 'has none'}")
            examples.append(example)
            total += len(example.ids) + 2
        flat = np.concatenate([e.ids for e in examples])
        offsets = np.concatenate([[0], np.cumsum([len(e.ids) for e in examples])])
        row = pack_windows(flat, offsets, self.context + cut, self.bos_id, self.eos_id, pack="stream")[0]
        if not self.loss:
            return Packed(row[cut:], examples, cut)
        loss = np.concatenate([e.loss for e in examples])
        if len(loss) != len(flat):
            raise DataError(f"stream window {j}: a loss mask's length differs from its example's")
        mask = pack_loss(loss, offsets, self.context + cut, pack="stream", eos_loss=self.eos_loss)[0]
        return Packed(row[cut:], examples, cut, mask[cut:])

    def record(self) -> dict[str, Any]:
        """stream.json's keys beside world, seed and generate (what the world's source reads)."""
        return json.loads(self.extra)

    def tokenization(self) -> dict[str, Any]:
        """tokens/meta.json without its counts (a text world reads its `units` there)."""
        return json.loads(self.tokens)

    def window(self, j: int) -> np.ndarray:
        return self.packed(j).window

    def windows(self, js: Sequence[int]) -> np.ndarray:
        """Windows [len(js), context + 1] (uint16)."""
        return np.stack([self.window(j) for j in js])

    def batch(self, js: Sequence[int]) -> np.ndarray | Windows:
        """What training takes for windows js: `windows(js)`, or, for a masked stream, `Windows` of them and
        their loss masks [len(js), context + 1] (uint8)."""
        if not self.loss:
            return self.windows(js)
        packed = [self.packed(j) for j in js]
        return Windows(np.stack([p.window for p in packed]), np.stack([p.loss for p in packed]))

    def sample_frame(self, count: int | None = None) -> pl.DataFrame:
        """The examples of windows 0 .. count-1 (default `generate.stream_sample`): the world's Parquet columns
        (`index` = k) after `window` and `cut`."""
        count = self.sample_windows if count is None else count
        source = _source(self)
        frames = []
        for j in range(count):
            packed = self.packed(j)
            frame = source.frame(packed.examples)
            frames.append(frame.select(pl.lit(j, pl.Int64).alias("window"), pl.lit(packed.cut, pl.Int32).alias("cut"),
                                       pl.all()))
        return pl.concat(frames)


class ExampleSource(Protocol):
    """What a world's stream step makes for a spec (`source(spec)`): its examples, one RNG each."""

    vocab_size: int  # must equal the tokenized dataset's (tokens/meta.json)
    drops_long: bool  # skip examples longer than context - 1 tokens (as tokenize's drop_long)

    def example(self, seed: int, j: int, k: int) -> Example: ...  # example k of window j, a pure function of (seed, j, k)
    def frame(self, examples: list[Example]) -> pl.DataFrame: ...  # their rows in the world's Parquet columns


@functools.lru_cache(maxsize=4)
def _source(spec: StreamSpec) -> ExampleSource:
    """The world's example maker for a spec, built once per process (vocabulary, grammar, knowledge)."""
    return worlds.get(spec.world).step("stream").source(spec)


# ---------------------------------------------------------------------------------------------------------
# Producing micro-batches ahead on worker processes


@dataclass(frozen=True)
class Stream:
    """A window source for `physlm.train.train`: the spec's windows made on `workers` spawned processes."""

    spec: StreamSpec
    workers: int = 1

    @property
    def width(self) -> int:
        return self.spec.width

    @property
    def masked(self) -> bool:
        return self.spec.loss

    def identity(self) -> str:
        return self.spec.identity()

    def open(self, rows: Iterator[list[int]]) -> Producer:
        return Producer(self.spec, rows, self.workers)


_WORKER_SPEC: StreamSpec | None = None


def _init_worker(spec: StreamSpec) -> None:
    global _WORKER_SPEC
    _WORKER_SPEC = spec


def _make(js: list[int]) -> np.ndarray | Windows:
    return _WORKER_SPEC.batch(js)


class Producer:
    """The windows [len(js), context + 1] of each list js of `rows` (`StreamSpec.batch`), in order, made on
    `workers` spawned processes with at most `ahead` (default 2 per worker) lists in flight; the pool starts on
    the first request. An error in a worker is raised by `__next__`. `close` cancels what is pending and joins the pool."""

    def __init__(self, spec: StreamSpec, rows: Iterator[list[int]], workers: int, ahead: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be positive, got {workers}")
        self.spec, self.rows, self.workers = spec, iter(rows), workers
        self.ahead = ahead or 2 * workers
        self._pending: collections.deque[Future] = collections.deque()
        self._pool: ProcessPoolExecutor | None = None

    def __iter__(self) -> Producer:
        return self

    def __next__(self) -> np.ndarray | Windows:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.spec,))
        while len(self._pending) < self.ahead:
            js = next(self.rows, None)
            if js is None:
                break
            self._pending.append(self._pool.submit(_make, list(js)))
        if not self._pending:
            raise StopIteration
        return self._pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()


def all_cores(processes: int = 1) -> int:
    """Workers per process when `processes` share the machine (`train.stream_workers: 0`)."""
    return max(1, (os.cpu_count() or 1) // processes)


def write_stream_files(raw: Path, tokens: Path) -> None:
    """Tokenize's part: copy raw/stream.json into the tokens directory (beside its meta.json) and write the
    sample of the stream there."""
    (Path(tokens) / RECORD).write_text((Path(raw) / RECORD).read_text())
    frame = StreamSpec.load(tokens).sample_frame()
    frame.write_parquet(Path(tokens) / SAMPLE, compression="zstd", statistics=False)
