"""The capacity world's train step: training measured in exposures (SPEC 6.1, 11.2 items 1 and 7).

A study states `train.exposures` E, the times each person's paragraph is to be trained on; the steps follow from
the data: steps = ceil(E x N x tokens per paragraph / (batch_size x context)), the tokens per paragraph *measured*
on the train split as packed: its windows x context / (N x copies), the window tokens one written paragraph takes
(`packed_tokens`). That is more than the paragraph's own tokens with <bos> and <eos> (`meta.json`'s
`entry_tokens`) because a window's last paragraph is cut and written again whole at the next window's start
(`pack: sentences`); counting only the paragraph's own tokens would leave the realized exposures short by that
share (the showcase: 82.8 of 100). So E / copies passes over the windows; with copies = E, one pass, in which every
writing lies whole in exactly one window. An update's tokens are its batch_size windows of `context` predicted
tokens. Without `exposures`, `steps` stands as the params give it.

Either way the train metrics (detail/train.json, key `exposures`) hold the realized count: over exactly the windows
training consumes (the engine's own batch order, `physlm.train.batch_rows`, for every micro-batch of every update),
how many times each person's paragraph lay whole inside a window (a paragraph cut by a window's end is counted in
`cut`, not as an exposure). A person is told apart by its three name tokens after `<bos>` (names are distinct);
people never seen are counted too (N from `meta.json`). Recorded: requested E, steps (derived and as params gave),
min / mean / max, the histogram {count: people}, passes (updates x batch over the windows there are) and the
writings per person in the split (`copies`: with E > copies, writings repeat).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

import numpy as np

from physlm.errors import DataError, ParamsError
from physlm.io import read_json
from physlm.train import Plan, TrainConfig, batch_rows, load_windows
from physlm.worlds.capacity.params import CapacityTrainParams

ROWS_AT_ONCE = 1 << 15  # windows scanned per block when counting exposures


def derived_steps(exposures: float, people: int, entry_tokens: float, batch_size: int, context: int) -> int:
    """ceil(exposures x people x entry_tokens / (batch_size x context)), rounding off the float's last bits."""
    return max(1, math.ceil(round(exposures * people * entry_tokens / (batch_size * context), 9)))


def packed_tokens(windows: int, context: int, people: int, copies: int) -> float:
    """The window tokens one written paragraph takes in the train split: windows x context / (people x copies)."""
    return windows * context / (people * copies)


def consumed_rows(cfg: TrainConfig, windows: int) -> np.ndarray:
    """How many times training uses each window: every global micro-batch of every update (`batch_rows`)."""
    uses = np.zeros(windows, dtype=np.int64)
    for step in range(cfg.steps):
        for micro in range(cfg.batch_size // cfg.micro_batch_size):
            np.add.at(uses, batch_rows(cfg.seed, step, micro, cfg, windows), 1)
    return uses


def whole_entries(windows: np.ndarray, bos: int, eos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, name key) of every paragraph lying whole in a window (its <bos>, then its <eos> in the same window),
    and per window the paragraph fragments in it (begun before it, or cut by its end). The key packs the three
    name tokens after <bos> into one integer."""
    w = np.asarray(windows, dtype=np.int64)
    rows, width = w.shape
    r, j = np.nonzero(w == bos)
    ends = np.flatnonzero(w.reshape(-1) == eos)
    at = np.minimum(np.searchsorted(ends, r * width + j), len(ends) - 1)  # the first <eos> after each <bos>
    whole = (ends[at] // width == r) & (ends[at] > r * width + j) if len(ends) else np.zeros(len(r), dtype=bool)
    r, j = r[whole], j[whole]
    keys = (w[r, j + 1] * 65536 + w[r, j + 2]) * 65536 + w[r, j + 3]  # token ids are uint16
    fragments = np.bincount(np.nonzero(w == bos)[0], minlength=rows) - np.bincount(r, minlength=rows) + (w[:, 0] != bos)
    return r, keys, fragments


def exposure_counts(windows: np.ndarray, uses: np.ndarray, bos: int, eos: int, people: int) -> dict:
    """The realized exposures of the `people` paragraphs over windows used `uses` times each."""
    seen: Counter[int] = Counter()
    cut = 0
    for lo in range(0, len(windows), ROWS_AT_ONCE):
        block, used = windows[lo : lo + ROWS_AT_ONCE], uses[lo : lo + ROWS_AT_ONCE]
        r, keys, fragments = whole_entries(block, bos, eos)
        for key, n in zip(keys.tolist(), used[r].tolist()):
            if n:
                seen[key] += n
        cut += int((fragments * used).sum())
    if len(seen) > people:
        raise DataError(f"{len(seen)} distinct names in the train windows, more than the dataset's {people} people")
    counts = np.asarray(sorted(seen.values()) + [0] * (people - len(seen)), dtype=np.int64)
    histogram = Counter(counts.tolist())
    return {"min": int(counts.min()), "mean": float(counts.mean()), "max": int(counts.max()),
            "histogram": {str(k): histogram[k] for k in sorted(histogram)}, "never": int((counts == 0).sum()), "cut": cut}


def plan(tokens: Path, params: CapacityTrainParams, base: TrainConfig, seed: int) -> Plan:
    meta = read_json(tokens / "meta.json", ("people", "entry_tokens", "context", "copies", "bos_id", "eos_id"))
    train = load_windows(tokens, "train")
    cfg = base
    packed = packed_tokens(len(train), meta["context"], meta["people"], meta["copies"])
    if params.exposures is not None:
        steps = derived_steps(params.exposures, meta["people"], packed, base.batch_size, meta["context"])
        if base.warmup_steps > steps:
            raise ParamsError(f"train.warmup_steps {base.warmup_steps} exceeds the {steps} steps train.exposures"
                              f" {params.exposures} gives (N {meta['people']}, {packed:.1f} window tokens per paragraph)")
        cfg = dataclasses.replace(base, steps=steps)
    counts = exposure_counts(np.asarray(train), consumed_rows(cfg, len(train)), meta["bos_id"], meta["eos_id"], meta["people"])
    detail = {"requested": params.exposures, "steps": cfg.steps, "params_steps": params.steps, "copies": meta["copies"],
              "entry_tokens": meta["entry_tokens"], "packed_tokens": packed,
              "passes": cfg.steps * cfg.batch_size / len(train), **counts}
    return Plan(train, config=cfg, detail={"exposures": detail})
