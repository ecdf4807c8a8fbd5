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

With junk (the junk-data study, tokenize.junk_fraction f: meta.json's `junk`) nothing changes in the steps: the
window tokens per useful paragraph measured as above then include the junk's share (about 1 / (1 - f) times a
paragraph's own), so E / copies passes still give each useful person E exposures, and the junk is trained on
besides. The histogram counts the useful people only: a paragraph is useful when its name is one of the N useful
people's (regenerated from meta.json's `junk.spec`, `biod.make_world`; junk names are disjoint from them), its name
read after the domain token where the paragraph has one (tokenize.domain_token). The junk's realized exposures go
to `junk`: the junk paragraphs lying whole in trained windows, the distinct junk people among them, and the most
any junk person got.

With `train.stream` (the stream step `stream`: the train split streamed in exposure rounds, `rounds`) nothing is
estimated and no window is made: steps = ceil(W_E / batch_size), W_E the stream windows that hold the E x N
paragraphs of E rounds whole (the round schedule's n_j), and training consumes stream windows 0 .. steps x
batch_size - 1, which hold paragraphs 0 .. n_W - 1 whole, so each person is trained on E times and the `overshoot`
= n_W - E x N people of round E, in the last update's windows beyond W_E, once more (`rounds.exposures`). The
detail holds the keys above, with `copies` the rounds the trained paragraphs reach into (each a new writing),
`packed_tokens` the window tokens trained per whole paragraph, `passes` the paragraphs trained / N, and also
`stream` true, `rounds` (= copies) and `overshoot` (null without `exposures`). The junk-data mixture is not
streamed: `train.stream` with junk is a one-line error, and so is a dataset tokenized with `pack` other than
`sentences`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

import numpy as np

from physlm.errors import DataError, ParamsError
from physlm.io import read_json
from physlm.stream import StreamSpec
from physlm.tokenize import Vocab
from physlm.train import Plan, TrainConfig, batch_rows, load_windows
from physlm.worlds.capacity.biod import make_world
from physlm.worlds.capacity.params import CapacityTrainParams
from physlm.worlds.capacity.rounds import exposures
from physlm.worlds.capacity.stream import Source
from physlm.worlds.capacity.tokenize import spec_of_json

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


def name_key(first: np.ndarray, middle: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A full name's three token ids packed into one integer (token ids are uint16)."""
    return (np.asarray(first, dtype=np.int64) * 65536 + middle) * 65536 + last


def whole_entries(windows: np.ndarray, bos: int, eos: int, marker: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, name key) of every paragraph lying whole in a window (its <bos>, then its <eos> in the same window),
    and per window the paragraph fragments in it (begun before it, or cut by its end). The key packs the three
    name tokens after <bos> (after <bos> and the domain token `marker`, where a paragraph has it) into one integer."""
    w = np.asarray(windows, dtype=np.int64)
    rows, width = w.shape
    r, j = np.nonzero(w == bos)
    ends = np.flatnonzero(w.reshape(-1) == eos)
    at = np.minimum(np.searchsorted(ends, r * width + j), len(ends) - 1)  # the first <eos> after each <bos>
    whole = (ends[at] // width == r) & (ends[at] > r * width + j) if len(ends) else np.zeros(len(r), dtype=bool)
    r, j = r[whole], j[whole]
    if marker is not None:
        j = j + (w[r, j + 1] == marker)  # the name comes after the domain token
    keys = name_key(w[r, j + 1], w[r, j + 2], w[r, j + 3])
    fragments = np.bincount(np.nonzero(w == bos)[0], minlength=rows) - np.bincount(r, minlength=rows) + (w[:, 0] != bos)
    return r, keys, fragments


def exposure_counts(windows: np.ndarray, uses: np.ndarray, bos: int, eos: int, people: int, useful: set[int] | None = None,
                    marker: int | None = None, junk_people: int = 0) -> dict:
    """The realized exposures of the `people` paragraphs over windows used `uses` times each. With `useful` (the
    useful people's name keys, the train split holding junk too), those people's; the others' (at most
    `junk_people` distinct) are summed under `junk`. `marker`: the domain token, where paragraphs have it."""
    seen: Counter[int] = Counter()
    cut = 0
    for lo in range(0, len(windows), ROWS_AT_ONCE):
        block, used = windows[lo : lo + ROWS_AT_ONCE], uses[lo : lo + ROWS_AT_ONCE]
        r, keys, fragments = whole_entries(block, bos, eos, marker)
        for key, n in zip(keys.tolist(), used[r].tolist()):
            if n:
                seen[key] += n
        cut += int((fragments * used).sum())
    junk = {}
    if useful is not None:
        others = {k: n for k, n in seen.items() if k not in useful}
        if len(others) > junk_people:
            raise DataError(f"{len(others)} distinct names in the train windows that are no useful person's, more than the"
                            f" dataset's {junk_people} junk people")
        seen = Counter({k: n for k, n in seen.items() if k in useful})
        junk = {"junk": {"paragraphs": sum(others.values()), "people_seen": len(others), "max": max(others.values(), default=0)}}
    if len(seen) > people:
        raise DataError(f"{len(seen)} distinct names in the train windows, more than the dataset's {people} people")
    counts = np.asarray(sorted(seen.values()) + [0] * (people - len(seen)), dtype=np.int64)
    histogram = Counter(counts.tolist())
    return {"min": int(counts.min()), "mean": float(counts.mean()), "max": int(counts.max()),
            "histogram": {str(k): histogram[k] for k in sorted(histogram)}, "never": int((counts == 0).sum()), "cut": cut} | junk


def useful_keys(tokens: Path, junk: dict) -> set[int]:
    """The N useful people's name keys: their names regenerated from the dataset's spec (meta.json's `junk.spec`,
    capacity.json as tokenize read it), as token ids of the dataset's tokenizer.json."""
    spec = spec_of_json(junk["spec"], str(tokens / "meta.json"))
    world = make_world(spec)
    vocab = Vocab.load(tokens / "tokenizer.json")
    ids = {s: i for i, s in enumerate(vocab.symbols)}
    try:
        names = np.asarray([[ids[part] for part in world.name(i)] for i in range(spec.N)], dtype=np.int64)
    except KeyError as err:
        raise DataError(f"{tokens / 'tokenizer.json'}: name part {err} of a useful person is not in the vocabulary (rerun tokenize)") from None
    return set(name_key(names[:, 0], names[:, 1], names[:, 2]).tolist())


def with_steps(base: TrainConfig, steps: int, params: CapacityTrainParams, people: int, per_paragraph: float) -> TrainConfig:
    """The loop's settings with the steps `train.exposures` gives; ParamsError when the warmup is longer."""
    if base.warmup_steps > steps:
        raise ParamsError(f"train.warmup_steps {base.warmup_steps} exceeds the {steps} steps train.exposures"
                          f" {params.exposures} gives (N {people}, {per_paragraph:.1f} window tokens per paragraph)")
    return dataclasses.replace(base, steps=steps)


def stream_plan(tokens: Path, meta: dict, params: CapacityTrainParams, base: TrainConfig) -> Plan:
    """`train.stream`: the train split streamed in exposure rounds (module docstring); no window is made here."""
    if meta.get("junk"):
        raise ParamsError("train.stream: the junk-data study's mixture (tokenize.junk_fraction) is not streamed;"
                          " train it on the materialised split (train.stream: false)")
    if meta.get("pack") != "sentences":
        raise ParamsError(f"train.stream: tokenize.pack {meta.get('pack')!r}; the exposure rounds need pack: sentences"
                          " (every window starts at a paragraph, every paragraph lies whole in one window)")
    source = Source(StreamSpec.load(tokens))
    people, schedule, cfg = meta["people"], source.schedule, base
    requested = None
    if params.exposures is not None:
        requested = math.ceil(round(params.exposures * people, 9))  # the paragraphs E rounds hold
        windows = schedule.windows(requested)
        cfg = with_steps(base, max(1, math.ceil(windows / base.batch_size)), params, people,
                         windows * meta["context"] / requested)
    counts = exposures(schedule, people, cfg.steps * cfg.batch_size)
    trained = counts.pop("paragraphs")
    detail = {"requested": params.exposures, "steps": cfg.steps, "params_steps": params.steps, "copies": counts["rounds"],
              "entry_tokens": meta["entry_tokens"], "packed_tokens": cfg.steps * cfg.batch_size * meta["context"] / trained,
              "passes": trained / people, **counts, "stream": True,
              "overshoot": None if requested is None else trained - requested}
    return Plan(None, config=cfg, detail={"exposures": detail})


def plan(tokens: Path, params: CapacityTrainParams, base: TrainConfig, seed: int) -> Plan:
    meta = read_json(tokens / "meta.json", ("people", "entry_tokens", "context", "copies", "bos_id", "eos_id"))
    if params.stream:
        return stream_plan(tokens, meta, params, base)
    train = load_windows(tokens, "train")
    cfg = base
    packed = packed_tokens(len(train), meta["context"], meta["people"], meta["copies"])
    if params.exposures is not None:
        steps = derived_steps(params.exposures, meta["people"], packed, base.batch_size, meta["context"])
        cfg = with_steps(base, steps, params, meta["people"], packed)
    junk = meta.get("junk")
    counts = exposure_counts(np.asarray(train), consumed_rows(cfg, len(train)), meta["bos_id"], meta["eos_id"], meta["people"],
                             useful_keys(tokens, junk) if junk else None, meta.get("domain_token"), junk["people"] if junk else 0)
    detail = {"requested": params.exposures, "steps": cfg.steps, "params_steps": params.steps, "copies": meta["copies"],
              "entry_tokens": meta["entry_tokens"], "packed_tokens": packed,
              "passes": cfg.steps * cfg.batch_size / len(train), **counts}
    return Plan(train, config=cfg, detail={"exposures": detail})
