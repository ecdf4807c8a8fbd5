"""What Part 4.1's playground worlds share (Depo, Brevo, Mano; SPEC 7.3 and 11.1), torch-free: the size
distribution of training instances, multi-token words, and a small table helper for "accuracy by k / n /
length".

- `size_probabilities` / `training_size`: a training instance has n in {low..N} with P(n) proportional to
  1 / (n + sqrt(N)), so small instances are more frequent (the released code's choice; SPEC 7.3). Test
  instances take n = N, which is the caller's business.
- `words`: `count` distinct words of ℓ ~ U{min_len..max_len} symbols each; the first ℓ-1 symbols are drawn
  from 1..vocab, the last from vocab+1..2*vocab, so a word's end is visible in its last symbol (SPEC
  11.1.1). Duplicates are rejected and redrawn, as the released sampler does: when short words are scarce
  (Depo1: 50 one-symbol words) the lengths of the words kept lean long, which is what makes Depo1's test
  instances ~1,460 tokens rather than 1,125 (tests/test_playground.py). Words are drawn in vectorised
  batches; the result is the first `count` distinct words of an i.i.d. stream, in the order drawn, exactly
  the released sampler's law. Symbols are plain integers, which each world maps to its vocabulary strings.
- `accuracy_table`: rows of (group value, correct, total) summed per group value.

numpy and the standard library only, nowhere torch (not even inside a function: tests/test_import_graph.py
reads every import statement), so a world's generator, params and report can use it. Scoring a model's answers
(greedy exact match, teacher forcing) is `physlm/playground_eval.py`.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np


def size_probabilities(N: int, low: int = 3) -> np.ndarray:
    """P(n) for n = low..N (index 0 is n = low): proportional to 1 / (n + sqrt(N))."""
    if not 1 <= low <= N:
        raise ValueError(f"need 1 <= low <= N, got low {low}, N {N}")
    weights = 1.0 / (np.arange(low, N + 1, dtype=np.float64) + math.sqrt(N))
    return weights / weights.sum()


def training_size(rng: np.random.Generator, N: int, low: int = 3) -> int:
    """One training instance's size n, drawn from `size_probabilities(N, low)`."""
    return low + int(rng.choice(N - low + 1, p=size_probabilities(N, low)))


def word_count(vocab: int, min_len: int, max_len: int) -> int:
    """How many distinct words of min_len..max_len symbols exist (vocab ** ℓ of each length ℓ)."""
    return sum(vocab**length for length in range(min_len, max_len + 1))


def words(rng: np.random.Generator, count: int, vocab: int, min_len: int, max_len: int) -> list[tuple[int, ...]]:
    """`count` distinct words, in the order drawn (see the module docstring); ValueError naming the numbers when
    fewer than `count` distinct words exist."""
    if vocab < 1 or not 1 <= min_len <= max_len:
        raise ValueError(f"need vocab >= 1 and 1 <= min_len <= max_len, got vocab {vocab}, lengths {min_len}..{max_len}")
    available = word_count(vocab, min_len, max_len)
    if count > available:
        raise ValueError(f"{count} distinct words asked for, but only {available} exist with vocab {vocab} and "
                         f"lengths {min_len}..{max_len}")
    found: dict[tuple[int, ...], None] = {}  # insertion-ordered set
    while len(found) < count:  # the first `count` distinct words of an i.i.d. stream, drawn in batches
        batch = max(count - len(found), 8)
        lengths = rng.integers(min_len, max_len + 1, size=batch)
        symbols = rng.integers(1, vocab + 1, size=(batch, max_len))
        symbols[np.arange(batch), lengths - 1] += vocab  # the last symbol marks the word's end
        for row, length in zip(symbols.tolist(), lengths.tolist()):
            found.setdefault(tuple(row[:length]), None)
            if len(found) == count:
                break
    return list(found)


def accuracy_table(rows: Iterable[Mapping[str, Any]], by: str) -> list[dict[str, Any]]:
    """Accuracy per value of `by`: each row holds `by`, `correct` (a bool or a count) and optionally `total`
    (default 1: one exact-match answer); returns [{by, "correct", "total", "accuracy"}] sorted by value."""
    sums: dict[Any, list[int]] = {}
    for row in rows:
        acc = sums.setdefault(row[by], [0, 0])
        acc[0] += int(row["correct"])
        acc[1] += int(row.get("total", 1))
    return [{by: key, "correct": c, "total": t, "accuracy": c / t if t else float("nan")}
            for key, (c, t) in sorted(sums.items())]


def _call(chunk: Callable[[], Any]) -> Any:
    return chunk()


def chunked_frame(chunks: list[Callable[[], Any]], total: int, workers: int, desc: str, unit: str) -> Any:
    """One polars DataFrame of `chunks` (picklable no-argument callables, each returning the frame of its rows), run
    in order on `workers` spawned processes (in process for 1 worker or 1 chunk: a pool would only add its
    start-up), with a progress bar over `total` rows. The frame does not depend on the worker count."""
    import polars as pl
    from tqdm import tqdm

    frames = []
    with tqdm(total=total, desc=desc, unit=unit, mininterval=2.0) as bar:
        if workers == 1 or len(chunks) == 1:
            found = (chunk() for chunk in chunks)
        else:
            pool = multiprocessing.get_context("spawn").Pool(min(workers, len(chunks)))
            found = pool.imap(_call, chunks)
        try:
            for frame in found:
                frames.append(frame)
                bar.update(frame.height)
        finally:
            if workers != 1 and len(chunks) != 1:
                pool.terminate()
    return pl.concat(frames)
