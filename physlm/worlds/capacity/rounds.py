"""Exposure rounds: the order of the capacity world's streamed train split, and which paragraphs each streamed window
holds (SPEC 6.1, 11.2; issue 20: 1000 exposures without 1000 stored copies). No torch, no world knowledge here.

Rounds: round r (r = 0, 1, ...) is a permutation pi_r of the N people (`permutation`, numpy, keyed by (seed, r)),
and the paragraphs of the stream are round 0's N in pi_0 order, then round 1's, ...: global paragraph n is slot
n mod N of round n // N, person pi_r[slot]'s writing r (the world's writing function says what writing r is). E
rounds hold every person exactly E times, each time a new writing.

Windows (the engine's `pack: sentences` for a stream, `physlm.stream.StreamSpec.packed`): window j starts at the
<bos> of paragraph n_j and holds paragraphs n_j, n_j + 1, ... whole until the next would pass its `width` =
context + 1 tokens; that one is cut by the window's end (unless the whole ones fill it exactly), and window j + 1
starts with it whole: n_{j+1} = n_j + (paragraphs whole in window j). A paragraph's window tokens are its own plus
<bos> and <eos>; one longer than the width is an error (no window could hold it). A `Schedule` maps j to n_j:
- `Constant`, every paragraph `length` window tokens (bioD): n_j = j q, q = width // length, in closed form;
- `Greedy`, lengths varying by person and writing (`lengths(r)`: the window tokens of round r's paragraphs in slot
  order): a per-round table built sequentially once per process, as far as asked, holding for each round the
  windows that start before it, where its first window starts (the carry from the round before) and the cut
  windows before it; window j is then found by a binary search over the rounds and, inside its round, over the
  round's window starts (recomputed for the two rounds last asked, which is where an in-order reader is).
  Cost of a round: `lengths(r)`, one vectorised binary search per paragraph (the next window's start from each
  paragraph) and one Python step per window; at paper scale (N 1M x 1000 rounds, ~50 tokens a paragraph, 513-token
  windows) that is 1e9 binary-search lookups and 1e8 Python steps over the whole run, done again in each stream
  worker and in the train step; memory: a few arrays of one round (~100 MB at N 1M) and three integers per round.

Exposures (`exposures`): windows 0 .. W-1 hold paragraphs 0 .. n_W - 1 whole, each in one window, and nothing else
whole; so with R, x = divmod(n_W, N) every person was trained on R times and the x people pi_R[0 .. x-1] once more,
without any window being made. Tests: tests/test_capacity_stream.py (the closed form against the table on constant
lengths, the table on random lengths against a plain sequential packer, the counts against the windows themselves).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol

import numpy as np

from physlm.errors import DataError

ROUND_KEY = 0x726F756E64  # "round" in ASCII: the rounds' numpy seeds differ from every other use of (seed, r)


@functools.lru_cache(maxsize=4)
def permutation(seed: int, r: int, people: int) -> np.ndarray:
    """pi_r: round r's order of the people (slot -> person), a pure function of (seed, r, people)."""
    if r < 0:
        raise ValueError(f"round {r} must not be negative")
    out = np.random.default_rng([ROUND_KEY, seed, r]).permutation(people)
    out.flags.writeable = False
    return out


class Schedule(Protocol):
    """Window j -> the global index n_j of its first paragraph (module docstring)."""

    def start(self, j: int) -> int: ...  # n_j
    def windows(self, paragraphs: int) -> int: ...  # #{j : n_j < paragraphs}: the windows holding paragraphs 0 .. paragraphs-1 whole
    def cut(self, windows: int) -> int: ...  # of windows 0 .. windows-1, those whose last paragraph is cut by their end


def _fits(length: int, width: int) -> None:
    if length > width:
        raise DataError(f"a paragraph of {length} window tokens (with <bos> and <eos>) exceeds a window of {width}"
                        " tokens (tokenize.context + 1): no window could hold it")


class Constant:
    """Every paragraph `length` window tokens: q = width // length whole in every window, n_j = j q."""

    def __init__(self, width: int, length: int) -> None:
        if length < 1:
            raise ValueError(f"paragraph length {length} must be positive")
        _fits(length, width)
        self.q, self.cuts = width // length, width % length != 0

    def start(self, j: int) -> int:
        return j * self.q

    def windows(self, paragraphs: int) -> int:
        return -(-paragraphs // self.q)

    def cut(self, windows: int) -> int:
        return windows if self.cuts else 0


class Greedy:
    """n_j for paragraph lengths varying by person and round: `lengths(r)` -> [people] the window tokens of round r's
    paragraphs in slot order (module docstring: the table, its cost)."""

    def __init__(self, people: int, width: int, lengths: Callable[[int], np.ndarray]) -> None:
        if people < 1:
            raise ValueError(f"people {people} must be positive")
        self.people, self.width, self._lengths_of = people, width, lengths
        # per round r: windows starting before round r, the slot its first window starts at (>= people when the
        # window starting before it runs past all of it), windows cut before round r
        self.first, self.carry, self.cuts = [0], [0], [0]
        self.lengths = functools.lru_cache(maxsize=4)(self._lengths)
        self.in_round = functools.lru_cache(maxsize=2)(self._in_round)

    def _lengths(self, r: int) -> np.ndarray:
        """Round r's window tokens per slot, checked."""
        found = np.asarray(self._lengths_of(r))
        if found.shape != (self.people,) or found.dtype.kind not in "iu":
            raise DataError(f"round {r}: lengths must be {self.people} integers, got {found.dtype} {list(found.shape)}")
        if found.size and found.min() < 1:
            raise DataError(f"round {r}: a paragraph of {int(found.min())} window tokens (at least 1)")
        _fits(int(found.max()), self.width)
        return found.astype(np.int64)

    def _in_round(self, r: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(slots where round r's windows start, whether each is cut, the carry into round r + 1); rounds before r
        must be in the table."""
        carry, n = self.carry[r], self.people
        if carry >= n:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), carry - n
        parts, tail, nxt_round = [self.lengths(r)[carry:]], 0, r + 1
        while tail < self.width:  # enough of the rounds after r to finish its last window
            parts.append(self.lengths(nxt_round))
            tail += int(parts[-1].sum())
            nxt_round += 1
        ends = np.concatenate([[0], np.cumsum(np.concatenate(parts))])
        m = n - carry  # round r's paragraphs from the carry on
        following = np.searchsorted(ends, ends[:m] + self.width, side="right") - 1  # the next window's start from each
        nxt, starts, p = following.tolist(), [], 0
        while p < m:
            starts.append(p)
            p = nxt[p]
        at = np.asarray(starts, dtype=np.int64)
        cut = ends[following[at]] - ends[at] < self.width
        return at + carry, cut, p - m

    def _extend(self, r: int) -> None:
        """The table through round r (first, carry and cuts of rounds 0 .. r)."""
        while len(self.first) <= r:
            k = len(self.first) - 1
            starts, cut, carry = self.in_round(k)
            self.first.append(self.first[k] + len(starts))
            self.carry.append(carry)
            self.cuts.append(self.cuts[k] + int(cut.sum()))

    def _locate(self, j: int) -> int:
        """The round window j starts in (the table extended until it holds it)."""
        if j < 0:
            raise ValueError(f"window {j} must not be negative")
        while self.first[-1] <= j:
            self._extend(len(self.first))
        return int(np.searchsorted(self.first, j, side="right")) - 1

    def start(self, j: int) -> int:
        r = self._locate(j)
        return r * self.people + int(self.in_round(r)[0][j - self.first[r]])

    def windows(self, paragraphs: int) -> int:
        r, slot = divmod(paragraphs, self.people)
        self._extend(r)
        return self.first[r] + (int(np.searchsorted(self.in_round(r)[0], slot)) if slot else 0)

    def cut(self, windows: int) -> int:
        if windows == 0:
            return 0
        r = self._locate(windows - 1)
        return self.cuts[r] + int(self.in_round(r)[1][: windows - self.first[r]].sum())


def exposures(schedule: Schedule, people: int, windows: int) -> dict:
    """The realized exposures over stream windows 0 .. windows-1 (module docstring): min / mean / max, the histogram
    {count: people}, the people never seen, the windows whose last paragraph is cut (`cut`: a cut paragraph is no
    exposure), `paragraphs` (n_W, those lying whole in them) and `rounds` (the rounds they reach into)."""
    trained = schedule.start(windows)
    full, extra = divmod(trained, people)
    histogram = {full: people - extra, full + 1: extra}
    return {"min": full, "mean": trained / people, "max": full + (extra > 0),
            "histogram": {str(k): v for k, v in histogram.items() if v}, "never": histogram[0] if full == 0 else 0,
            "cut": schedule.cut(windows), "paragraphs": trained, "rounds": -(-trained // people)}


def person_counts(seed: int, people: int, paragraphs: int) -> np.ndarray:
    """[people] how many of global paragraphs 0 .. paragraphs-1 are each person's (a check of `exposures`)."""
    full, extra = divmod(paragraphs, people)
    counts = np.full(people, full, dtype=np.int64)
    counts[permutation(seed, full, people)[:extra]] += 1
    return counts
