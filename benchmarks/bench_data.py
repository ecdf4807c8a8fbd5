"""Data throughput of every world's generator and of tokenization, on one core and on all cores.

    python benchmarks/bench_data.py [--sentences 4000] [--problems 2000] [--workers N (default: all cores)]

Rows, each timed with 1 worker (in-process) and with N `spawn` workers over shards, outputs compared:
- cfg generate: `physlm.worlds.cfg.generate.sample_split` on the cfg_demo grammar (params.yaml) and on the paper's
  cfg3f; N workers run it on disjoint index ranges (examples are seeded by index, so the frames concatenate
  to the 1-worker one);
- igsm generate: `physlm.worlds.igsm.generator.generate_frame` with the igsm_demo spec on 1 worker; N workers both as
  shards of `generate_problem` on the warm pool and as `generate_frame(workers=N)` (its own pool, so its
  start-up is paid inside the timing); iGSM tokens/s counts words (white-space split of the training text);
- cfg tokenize: `cfg_encode` of the generated sentences (N workers: per shard), then `pack_windows`
  (context 256, sentences layout), as stages/tokenize.py does;
- igsm tokenize: `igsm_sequence` + `physlm.text.encode_many` (N workers: per shard), then `pack_windows`.
The N-worker rows run on one warm `spawn` pool (its start-up, spawn + imports, is printed on its own and not
timed), except generate_frame's own pool. tqdm progress bars are off (TQDM_DISABLE): no cost, no clutter.
"""

import os

os.environ["TQDM_DISABLE"] = "1"  # before tqdm is imported, and inherited by spawned workers

import argparse
import functools
import multiprocessing
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from physlm.worlds.igsm.params import IgsmGenerateParams
from physlm.worlds.cfg.params import RandomGrammarParams
from physlm.worlds.igsm.generate import igsm_spec
from physlm.worlds.igsm.tokenize import vocabulary
from physlm.worlds.cfg.language import resolve_grammar
from physlm.worlds.cfg.generate import sample_split
from physlm.text import encode_many
from physlm.worlds.igsm.text import igsm_sequence
from physlm.tokenize import Vocab, pack_windows
from physlm.worlds.cfg.tokenize import cfg_encode
from physlm.worlds.cfg import grammar as cfg
from physlm.worlds.igsm.frames import generate_frame, problems_frame
from physlm.worlds.igsm.problems import generate_problem
from physlm.worlds.igsm.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parents[1]
SEED, CONTEXT = 0, 256


@dataclass(frozen=True)
class Rate:
    seconds: float  # wall clock
    cpu: float | None  # CPU seconds of this process: in-process (1-worker) runs only; robust to a loaded machine
    items: int
    tokens: int

    def row(self, what: str, workers: int, unit: str) -> str:
        per_cpu = "-" if self.cpu is None else f"{self.items / self.cpu:,.0f}"
        return (f"| {what} | {workers} | {self.items:,} {unit} | {self.seconds:.2f} | {self.items / self.seconds:,.0f} "
                f"| {self.tokens / self.seconds:,.0f} | {per_cpu} |")


def timed(run: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = run()
    return time.perf_counter() - start, time.process_time() - cpu, out


def shards(count: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, count, parts + 1).astype(int)
    return [(int(lo), int(hi - lo)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]


# ----------------------------------------------------------------------------------- worker functions


def _cfg_shard(task: tuple[cfg.Grammar, int, int]) -> pl.DataFrame:
    grammar, lo, n = task
    return sample_split(grammar, SEED, lo, n, "bench")


def _cfg_encode(tokens: pl.Series) -> np.ndarray:
    return cfg_encode(tokens.explode(empty_as_null=False).to_numpy())


@functools.cache
def _igsm_vocab():  # once per process, as the tokenize stage builds it once
    return vocabulary()


def _igsm_encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return encode_many(_igsm_vocab(), texts)


# ----------------------------------------------------------------------------------------- benchmarks


def bench_cfg_generate(pool, workers: int, grammar: cfg.Grammar, name: str, count: int) -> pl.DataFrame:
    one_s, one_cpu, one = timed(lambda: sample_split(grammar, SEED, 0, count, "bench"))
    tasks = [(grammar, lo, n) for lo, n in shards(count, 4 * workers)]
    many_s, _, parts = timed(lambda: pool.map(_cfg_shard, tasks))
    assert pl.concat(parts).equals(one), "sharded cfg generation differs from one worker"
    tokens = int(one["tokens"].list.len().sum())
    for n, seconds, cpu in ((1, one_s, one_cpu), (workers, many_s, None)):
        print(Rate(seconds, cpu, count, tokens).row(f"cfg generate ({name})", n, "sentences"))
    return one


@functools.cache
def _igsm_spec():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["datasets"]["igsm_demo"]["generate"]
    return igsm_spec(IgsmGenerateParams(**params))


def _igsm_shard(task: tuple[int, int]) -> pl.DataFrame:
    lo, n = task
    spec, world = _igsm_spec(), load_knowledge()
    indices = range(lo, lo + n)
    return problems_frame([generate_problem(spec, SEED, i, knowledge=world) for i in indices], indices, split="train")


def bench_igsm_generate(pool, workers: int, count: int) -> pl.DataFrame:
    """generate_frame on 1 worker; shards of generate_problem on the warm pool; generate_frame on N workers
    (its own pool, start-up included)."""
    spec = _igsm_spec()
    one_s, one_cpu, one = timed(lambda: generate_frame(spec, SEED, count, split="train", workers=1, progress=False))
    warm_s, _, parts = timed(lambda: pool.map(_igsm_shard, shards(count, 4 * workers)))
    own_s, _, own = timed(lambda: generate_frame(spec, SEED, count, split="train", workers=workers, shard_size=250,
                                                 progress=False))
    assert pl.concat(parts).equals(one) and own.equals(one), "iGSM frames differ between 1 and N workers"
    words = sum(len(igsm_sequence(p, s, a).split()) for p, s, a in one.select("problem", "solution", "answer").iter_rows())
    for what, n, seconds, cpu in (("", 1, one_s, one_cpu), (" shards on the warm pool", workers, warm_s, None),
                                  (", generate_frame's own pool", workers, own_s, None)):
        print(Rate(seconds, cpu, count, words).row(f"igsm generate (igsm_demo){what}", n, "problems"))
    return one


def bench_tokenize(pool, workers: int, what: str, pieces: Sequence, encode: Callable, pack_inputs: Callable) -> None:
    """Encode `pieces` (one worker, then shards on the pool), then pack the result into windows."""
    windows = []
    for n in (1, workers):
        def run() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            flat, offsets = pack_inputs([encode(p) for p in pieces] if n == 1 else pool.map(encode, pieces))
            packed = pack_windows(flat, offsets, CONTEXT, bos_id=Vocab.bos_id, eos_id=Vocab.eos_id, pack="sentences")
            return flat, offsets, packed

        seconds, cpu, (flat, offsets, packed) = timed(run)
        windows.append(packed)
        print(Rate(seconds, cpu if n == 1 else None, len(offsets) - 1, len(flat)).row(what, n, "examples"))
    assert np.array_equal(windows[0], windows[1]), f"{what}: windows differ between 1 and N workers"


def cfg_pack_inputs(tokens: Sequence[pl.Series]) -> Callable:
    lengths = np.concatenate([t.list.len().to_numpy() for t in tokens])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return lambda parts: (np.concatenate(parts), offsets)


def igsm_pack_inputs(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.concatenate([f for f, _ in parts])
    lengths = np.concatenate([np.diff(o) for _, o in parts])
    return flat, np.concatenate([[0], np.cumsum(lengths)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=4000, help="cfg sentences per grammar")
    parser.add_argument("--problems", type=int, default=2000, help="iGSM problems")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, 1-min load average {load:.1f} at start; {args.workers} workers")
    print("| what | workers | items | seconds | items/s | tokens/s | items/CPU-s |\n|---|---|---|---|---|---|---|")

    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers, initializer=_warm) as pool:
        pool.map(_cfg_encode, [pl.Series([[1]], dtype=pl.List(pl.UInt16))] * 4 * args.workers)  # wait for the workers
        startup = time.perf_counter() - start
        _warm()
        datasets = yaml.safe_load((ROOT / "params.yaml").read_text())["datasets"]
        demo = RandomGrammarParams(**datasets["cfg_demo"]["generate"]["grammar"])
        frames = {name: bench_cfg_generate(pool, args.workers, resolve_grammar(spec), name, args.sentences)
                  for name, spec in (("cfg_demo", demo), ("cfg3f", "cfg3f"))}
        for name, frame in frames.items():
            tokens = [frame["tokens"].slice(lo, n) for lo, n in shards(len(frame), 4 * args.workers)]
            bench_tokenize(pool, args.workers, f"cfg tokenize ({name})", tokens, _cfg_encode, cfg_pack_inputs(tokens))
        problems = bench_igsm_generate(pool, args.workers, args.problems)
        texts = [igsm_sequence(p, s, a) for p, s, a in problems.select("problem", "solution", "answer").iter_rows()]
        pieces = [texts[lo : lo + n] for lo, n in shards(len(texts), 4 * args.workers)]
        bench_tokenize(pool, args.workers, "igsm tokenize (igsm_demo)", pieces, _igsm_encode, igsm_pack_inputs)
    print(f"spawn pool start-up ({args.workers} workers, imports included): {startup:.2f} s")


def _warm() -> None:
    """Each process loads once what a stage loads once (the iGSM world and its names), outside the timings."""
    _igsm_vocab()
    _igsm_spec()


if __name__ == "__main__":
    main()
