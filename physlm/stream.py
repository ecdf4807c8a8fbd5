"""Training windows streamed from the world generator, as the papers train on fresh samples (issue 6, item 5).

Window j (j = 0, 1, 2, ...) is a pure function of the dataset's seed, its generate section and its
tokenization, and of j alone: example k of window j (k = 0, 1, ...) is drawn from its own RNG seeded by
(seed, "stream", j, k) — iGSM: `generate_problem(..., split="train", stream=f"stream{j}")`, so only
training-split templates (the materialized train split's template-hash rule) and an RNG stream disjoint from
the materialized splits'; grammars: `random.Random(f"cfg-stream:{seed}:{j}:{k}")` drives sampling, then the
perturbation and the implicit emission the dataset asks for. Text examples longer than `context - 1` tokens
are dropped (as tokenize's `drop_long`). The examples are packed by `physlm.tokenize.pack_windows` with the
dataset's `tokenize.pack` until one window of `context + 1` tokens is full: with `sentences` the window starts
at the first example's `<bos>`; with `stream`, whose materialized windows start anywhere, it starts at a
uniform position of the first example's `<bos> s <eos>` (drawn from `random.Random(f"stream-cut:{seed}:{j}")`),
and the rest of the last example is dropped. Windows are independent, so any number of worker processes
gives the same windows.

Files: the generate stage writes `raw/stream.json` (`stream_record`: world, seed, generate section, the
grammar text and bags of a grammar dataset); tokenize copies it to `tokens/stream.json` and writes
`tokens/stream_sample.parquet` (`sample_frame`: the examples of the first `generate.stream_sample` windows,
with their window, k and cut), so the train stage builds the stream from `data/<ds>/tokens` alone.

`Stream` is what `physlm.train.train` takes instead of a window array: `open(rows)` returns a `Producer`
making each micro-batch's windows on a pool of spawned processes, a bounded number ahead, handed out in order.

Tests (tests/test_stream.py): 1 and 2 workers give equal windows; window j is a pure function of (seed, j);
streamed iGSM problems are training-split problems whose decoded text the judge accepts; streamed grammar
sentences pass the membership check; the sample equals the first windows; train() resumes exactly on the
stream; the train stage end to end; bio + stream is a one-line error. Speed: benchmarks/bench_stream.py.
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
from typing import Any

import numpy as np
import polars as pl

from physlm.errors import DataError
from physlm.io import read_json
from physlm.tokenize import pack_windows

STREAMABLE = ("cfg", "igsm")  # a biography population is fixed knowledge, not a stream
RECORD = "stream.json"
SAMPLE = "stream_sample.parquet"
MAX_DROPPED = 10_000  # over-long examples one window may skip before the stream gives up


def stream_record(world: str, seed: int, generate: Any, grammar_text: str = "", bags_json: str = "") -> dict:
    """raw/stream.json's content: what a stream of this dataset needs beyond its tokenization."""
    return {"world": world, "seed": seed, "generate": generate.model_dump(mode="json"), "grammar": grammar_text,
            "bags": bags_json}


@dataclass(frozen=True)
class Example:
    """One streamed example: its index k in the window, token ids (no <bos>/<eos>) and world payload."""

    k: int
    ids: np.ndarray
    payload: Any  # iGSM: the Problem; grammar: (Sentence, terminals, tokens, perturbed)


@dataclass(frozen=True)
class Packed:
    window: np.ndarray  # [context + 1] uint16
    examples: list[Example]  # those packed into it, in order (the last may be cut off)
    cut: int  # tokens of the first example's <bos> s <eos> skipped (always 0 for pack "sentences")


@dataclass(frozen=True)
class StreamSpec:
    """Everything window j depends on besides j (hashable and small: it is sent to every worker)."""

    world: str
    seed: int
    generate: str  # the dataset's generate section, JSON
    grammar: str  # grammar datasets: grammar.txt's text
    bags: str  # implicit grammars: bags.json's text
    units: str  # iGSM vocabulary units
    context: int
    pack: str
    bos_id: int
    eos_id: int
    vocab_size: int

    @classmethod
    def load(cls, tokens: Path) -> StreamSpec:
        """The stream of a tokenized dataset (tokens/stream.json and meta.json); DataError if it has none."""
        path = Path(tokens) / RECORD
        if not path.is_file():
            raise DataError(f"{path}: file not found; streaming needs a cfg or igsm dataset generated and"
                            " tokenized by this version (rerun its generate and tokenize stages)")
        record, meta = read_json(path), read_json(Path(tokens) / "meta.json")
        if record["world"] not in STREAMABLE or record["world"] != meta["world"]:
            raise DataError(f"{path}: world {record['world']!r} cannot stream (streamable: {', '.join(STREAMABLE)})")
        spec = cls(world=record["world"], seed=record["seed"], generate=json.dumps(record["generate"], sort_keys=True),
                   grammar=record["grammar"], bags=record["bags"], units=meta.get("units", ""), context=meta["context"],
                   pack=meta["pack"], bos_id=meta["bos_id"], eos_id=meta["eos_id"], vocab_size=meta["vocab_size"])
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
            examples.append(example)
            total += len(example.ids) + 2
        flat = np.concatenate([e.ids for e in examples])
        offsets = np.concatenate([[0], np.cumsum([len(e.ids) for e in examples])])
        row = pack_windows(flat, offsets, self.context + cut, self.bos_id, self.eos_id, pack="stream")[0]
        return Packed(row[cut:], examples, cut)

    def window(self, j: int) -> np.ndarray:
        return self.packed(j).window

    def windows(self, js: Sequence[int]) -> np.ndarray:
        """Windows [len(js), context + 1] (uint16)."""
        return np.stack([self.window(j) for j in js])

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


class _IgsmSource:
    drops_long = True

    def __init__(self, spec: StreamSpec) -> None:
        from physlm.config import IgsmGenerateParams
        from physlm.generate import igsm_spec, igsm_vocabulary
        from physlm.worlds.igsm.generator import load_world

        self.spec, self.world = igsm_spec(IgsmGenerateParams.model_validate_json(spec.generate)), load_world()
        self.vocab = igsm_vocabulary(spec.units)
        self.vocab_size = self.vocab.size

    def example(self, seed: int, j: int, k: int) -> Example:
        from physlm.text import igsm_sequence
        from physlm.worlds.igsm.generator import generate_problem

        problem = generate_problem(self.spec, seed, k, split="train", stream=f"stream{j}", world=self.world)
        ids = self.vocab.encode(igsm_sequence(problem.problem, problem.solution, problem.answer))
        return Example(k, np.asarray(ids, dtype=np.int64), problem)

    def frame(self, examples: list[Example]) -> pl.DataFrame:
        from physlm.worlds.igsm.generator import problems_frame

        return problems_frame([e.payload for e in examples], [e.k for e in examples], split="train")


class _CfgSource:
    drops_long = False

    def __init__(self, spec: StreamSpec) -> None:
        from physlm.config import CfgGenerateParams
        from physlm.tokenize import cfg_vocab
        from physlm.worlds.cfg.grammar import parse_grammar
        from physlm.worlds.cfg.implicit import bags_from_json

        self.perturb = CfgGenerateParams.model_validate_json(spec.generate).perturb
        self.grammar = parse_grammar(spec.grammar, "stream.json grammar")
        self.bags = bags_from_json(spec.bags, "stream.json bags") if spec.bags else None
        self.vocab_size = cfg_vocab(len(self.grammar.terminals) if self.bags is None else self.bags.vocab_size).size

    def example(self, seed: int, j: int, k: int) -> Example:
        from physlm.worlds.cfg.grammar import sample_sentence
        from physlm.worlds.cfg.corrupt import perturb_sentence
        from physlm.worlds.cfg.implicit import emit

        rng = random.Random(f"cfg-stream:{seed}:{j}:{k}")
        sentence = sample_sentence(self.grammar, rng)
        terminals, hit = sentence.tokens, False
        if self.perturb is not None:  # the materialized train split's rule (physlm.generate), on this RNG
            p = self.perturb
            terminals, hit = perturb_sentence(terminals, rng, fraction=p.fraction, rate=p.rate,
                                              num_terminals=len(self.grammar.terminals), kind=p.kind)
        tokens = emit(self.bags, terminals, rng) if self.bags is not None else None
        ids = np.asarray(terminals if tokens is None else tokens, dtype=np.int64) + 1  # physlm.tokenize.cfg_encode
        return Example(k, ids, (sentence, terminals, tokens, hit))

    def frame(self, examples: list[Example]) -> pl.DataFrame:
        from physlm.generate import cfg_frame

        sentences, terminals, tokens, hits = zip(*(e.payload for e in examples))
        frame = cfg_frame(list(sentences), 0, list(terminals), None if self.bags is None else list(tokens), list(hits))
        return frame.with_columns(index=pl.Series([e.k for e in examples], dtype=pl.Int64))


@functools.lru_cache(maxsize=4)
def _source(spec: StreamSpec) -> _IgsmSource | _CfgSource:
    """The world's example maker for a spec, built once per process (vocabulary, grammar, iGSM world)."""
    return _IgsmSource(spec) if spec.world == "igsm" else _CfgSource(spec)


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

    def identity(self) -> str:
        return self.spec.identity()

    def open(self, rows: Iterator[list[int]]) -> Producer:
        return Producer(self.spec, rows, self.workers)


_WORKER_SPEC: StreamSpec | None = None


def _init_worker(spec: StreamSpec) -> None:
    global _WORKER_SPEC
    _WORKER_SPEC = spec


def _make(js: list[int]) -> np.ndarray:
    return _WORKER_SPEC.windows(js)


class Producer:
    """The windows [len(js), context + 1] of each list js of `rows`, in order, made on `workers` spawned
    processes with at most `ahead` (default 2 per worker) lists in flight; the pool starts on the first
    request. An error in a worker is raised by `__next__`. `close` cancels what is pending and joins the pool."""

    def __init__(self, spec: StreamSpec, rows: Iterator[list[int]], workers: int, ahead: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be positive, got {workers}")
        self.spec, self.rows, self.workers = spec, iter(rows), workers
        self.ahead = ahead or 2 * workers
        self._pending: collections.deque[Future] = collections.deque()
        self._pool: ProcessPoolExecutor | None = None

    def __iter__(self) -> Producer:
        return self

    def __next__(self) -> np.ndarray:
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
