"""Attention patterns of a trained GPT on grammar sentences (Part 1, SPEC 1.4).

The paper reports two kinds of heads: position-based ones, whose weight is mostly a function of the distance
i - j, and boundary-to-boundary ones: from an NT-end token, attention concentrates on the nearest NT-end tokens
of the same or an adjacent level (read as the transition function of a dynamic program). This module measures
both on held-out sentences, streaming over them: one batch of maps is alive at a time, and the statistics
are running sums (the largest is the sentence-averaged map, [depth, heads, n_max, n_max] float32).

Conventions
-----------
* Input: each sequence is ``<bos>`` followed by the sentence's token ids (see `cfg_inputs`). Model position p
  holds ``<bos>`` for p = 0 and sentence token p - 1 otherwise: label position i is model position i + 1.
* Queries: every sentence position, i.e. model positions 1 .. n-1. The ``<bos>`` position is never a query
  (its row is trivially all on itself). Keys: every position j <= i, ``<bos>`` included (heads often park
  weight there, and that weight counts in every statistic). ``<bos>`` is never an NT-end, so it is never the
  key of a boundary statistic.
* Distances are d = i - j in positions (the same in model and label positions); d = 0 is the query itself.
* Layers are numbered 1..depth (block l, as in the probe's "after block l") and heads 1..heads.

Definitions
-----------
Distance profile ``P[layer, head, d]``: the mean, over all queries i >= d of all sentences, of the weight
that query i puts on key i - d. (``queries[d]`` is how many queries that mean is over; NaN where none.)

Share explained by distance ``S[layer, head]``: for every query i let ``Q_i(d) = P[d] / sum_{d' <= i} P[d']``,
d = 0..i, be the profile restricted to the keys query i can see, renormalised. Then
``S = 1 - mean_i TV(w_i, Q_i)`` with ``TV(a, b) = 1/2 sum_d |a(d) - b(d)|`` and w_i the query's actual row.
S = 1: the head's every row is its distance profile (a purely positional head, up to the renormalisation at
the start of the sequence); S near 0: rows are far from the profile (content-dependent attention).

Boundary statistics, for a query level l and a key level l' (NT levels 1..L, 1 = just below the root) and a
query kind (``end``: queries that are the last token of their level-l subtree, ``boundaries[l-1][i] == 1``;
``non_end``: the other queries): the key of query i is the nearest previous level-l' NT-end, the largest
j < i with ``boundaries[l'-1][j] == 1``; queries without one are skipped. Then
``mass`` = mean over those queries of the weight on that key,
``expected`` = mean over the same queries of ``P[i - j]`` (what a head attending by distance alone puts at
that distance), and ``lift = mass / expected`` (NaN when expected is 0). Lift >> 1 for end queries and ~1
for non-end ones: the head looks for NT boundaries, not for a distance.

``P[d]`` averages over all queries i >= d, including the short ones near the start, which spread their weight
over fewer keys; a content-free head therefore gets lift somewhat below 1 (about 0.8 for a uniform causal
average). The second baseline removes that: ``expected_position`` = mean over the same (query i, key j)
pairs of ``M[i, j]``, the weight at absolute positions (i, j) averaged over every sentence that has position i
(the head's mean map), and ``lift_position = mass / expected_position``. It is exactly 1 for a head whose map
does not depend on the input ("pos", "uni"), so it isolates the content-dependent part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from tqdm import tqdm

from physlm.io import number

KINDS = ("end", "non_end")  # query kinds of the boundary statistics, in the order of their last axis


# ---------------------------------------------------------------------------------------------- inputs


def cfg_inputs(tokens: Sequence[Sequence[int]], boundaries: Sequence[Sequence[Sequence[int]]], context: int,
               ) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Model inputs and aligned labels for grammar sentences: ``<bos>`` + encoded tokens, both cut to fit.

    tokens[k]: sentence k's terminals; boundaries[k][l-1]: its level-l NT-end labels (one per token). Each
    sentence keeps its first ``context - 1`` tokens (room for ``<bos>``), and its labels the same positions.
    """
    from physlm.tokenize import Vocab
    from physlm.worlds.cfg.tokenize import cfg_encode

    keep = context - 1
    sequences = [np.concatenate([[Vocab.bos_id], cfg_encode(np.asarray(t[:keep]))]).astype(np.int64) for t in tokens]
    labels = [[np.asarray(level[:keep], dtype=np.int64) for level in sent] for sent in boundaries]
    return sequences, labels


# ------------------------------------------------------------------------------------------------ maps


def attention_maps(model: torch.nn.Module, sequences: Sequence[np.ndarray], *, batch_size: int = 16,
                   pad_id: int = 1) -> Iterator[np.ndarray]:
    """Yield each sequence's attention weights ``[depth, heads, n, n]`` (float32, n = len(sequence)), in order.

    Sequences are right-padded within a batch (as in `physlm.probing.hidden_states`); causal attention keeps the
    padding at the end of a row from reaching the real positions, and the padded rows and columns are cut
    off. Only one batch of maps is alive at a time. The model is put in eval mode while this runs.
    """
    cfg = getattr(model, "cfg", None)
    if cfg is not None and not getattr(cfg, "causal", True):
        raise ValueError("attention analysis needs a causal model (cfg.causal=True)")
    try:
        device = next(model.parameters()).device
    except (AttributeError, StopIteration):
        device = torch.device("cpu")
    was_training = bool(getattr(model, "training", False))
    if was_training:
        model.eval()
    try:
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            longest = max(len(s) for s in batch)
            idx = torch.full((len(batch), longest), pad_id, dtype=torch.long)
            for row, seq in enumerate(batch):
                idx[row, : len(seq)] = torch.as_tensor(np.asarray(seq, dtype=np.int64))
            with torch.no_grad():  # not held across the yields below: the caller's grad mode is its own
                weights = model.attention_weights(idx.to(device)).float().cpu().numpy()  # [L, B, H, T, T]
            for row, seq in enumerate(batch):
                n = len(seq)
                yield np.ascontiguousarray(weights[:, row, :, :n, :n])
            del weights
    finally:
        if was_training:
            model.train()


@lru_cache(maxsize=64)
def _distance_index(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays that turn an [n, n] map into [query i, distance d]: rows, key columns max(i-d, 0), d <= i."""
    i = np.arange(n)[:, None]
    j = i - np.arange(n)[None, :]
    return i, np.maximum(j, 0), j >= 0


def by_distance(w: np.ndarray) -> np.ndarray:
    """``out[..., i, d] = w[..., i, i - d]`` for d <= i and 0 for d > i (a map indexed by query and distance)."""
    rows, cols, valid = _distance_index(w.shape[-1])
    return np.where(valid, w[..., rows, cols], 0.0)


def _check_map(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"an attention map must be [depth, heads, n, n], got shape {w.shape}")
    return w


# --------------------------------------------------------------------------------------- distance profile


class _Profile:
    """Running sums for the distance profile: weight per (layer, head, distance) and queries per distance."""

    def __init__(self) -> None:
        self.sums: np.ndarray | None = None  # [L, H, D] float64
        self.counts = np.zeros(0, dtype=np.int64)  # [D]

    def add(self, w: np.ndarray) -> None:
        w = _check_map(w)
        n = w.shape[-1]
        if self.sums is None:
            self.sums = np.zeros((*w.shape[:2], 0))
        if w.shape[:2] != self.sums.shape[:2]:
            raise ValueError(f"maps disagree on [depth, heads]: {w.shape[:2]} vs {self.sums.shape[:2]}")
        if n > self.counts.size:
            self.sums = _pad_last(self.sums, n)
            self.counts = _pad_last(self.counts, n)
        if n < 2:
            return  # <bos> alone: no queries
        self.sums[:, :, :n] += by_distance(w)[:, :, 1:, :].sum(axis=2)
        # queries i in 1..n-1 with i >= d: n - 1 of them for d = 0, n - d for d >= 1
        self.counts[:n] += n - np.maximum(np.arange(n), 1)

    def profile(self, size: int | None = None) -> np.ndarray:
        """[L, H, size] mean weights, NaN at distances no query reached (default size: longest sequence)."""
        if self.sums is None:
            raise ValueError("no attention maps were given")
        size = self.counts.size if size is None else size
        sums, counts = _pad_last(self.sums, size)[..., :size], _pad_last(self.counts, size)[:size]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _pad_last(a: np.ndarray, size: int) -> np.ndarray:
    """a zero-padded on its last axis to at least `size`."""
    missing = size - a.shape[-1]
    if missing <= 0:
        return a
    return np.concatenate([a, np.zeros((*a.shape[:-1], missing), dtype=a.dtype)], axis=-1)


def distance_profile(maps: Iterable[np.ndarray], max_distance: int | None = None) -> np.ndarray:
    """``[depth, heads, max_distance + 1]``: P[l, h, d], the mean weight a query i puts on key i - d, over all
    queries i >= d (model positions 1..n-1 of every map; the ``<bos>`` row is not a query). NaN at distances
    no query reached. Default max_distance: the longest map's n - 1."""
    acc = _Profile()
    for w in maps:
        acc.add(w)
    return acc.profile(None if max_distance is None else max_distance + 1)


def distance_share(maps: Iterable[np.ndarray], profile: np.ndarray) -> np.ndarray:
    """``[depth, heads]``: S = 1 - mean over queries of TV(row, profile restricted to d <= i, renormalised).

    `profile` must be the full profile (covering every distance of every map, as `distance_profile` returns
    with max_distance=None). Queries are model positions 1..n-1; S = 1 iff every row equals the head's
    renormalised distance profile."""
    profile = np.nan_to_num(np.asarray(profile, dtype=np.float64))
    tv_sum = np.zeros(profile.shape[:2])
    queries = 0
    for w in maps:
        w = _check_map(w)
        n = w.shape[-1]
        if n < 2:
            continue
        if profile.shape[-1] < n:
            raise ValueError(f"profile covers distances < {profile.shape[-1]}, a map has {n} positions")
        _, _, valid = _distance_index(n)
        rows = by_distance(w)[:, :, 1:, :]  # [L, H, n-1, n]: queries 1..n-1 by distance
        restricted = np.where(valid[1:], profile[:, :, None, :n], 0.0)  # profile on the keys each query sees
        total = restricted.sum(-1, keepdims=True)
        restricted = np.divide(restricted, total, out=np.zeros_like(restricted), where=total > 0)
        tv_sum += 0.5 * np.abs(rows - restricted).sum(-1).sum(-1)
        queries += n - 1
    if queries == 0:
        raise ValueError("no queries: every map has fewer than 2 positions")
    return 1.0 - tv_sum / queries


# -------------------------------------------------------------------------------------- boundary statistics


@dataclass(frozen=True)
class BoundaryStats:
    """Boundary-to-boundary attention; arrays are [depth, heads, levels, levels, 2] indexed
    [layer-1, head-1, query level l - 1, key level l' - 1, kind] with kind as in `KINDS` ("end", "non_end")."""

    mass: np.ndarray               # mean weight on the nearest previous level-l' NT-end
    expected: np.ndarray           # mean distance-profile weight P[i - j] at the same distances
    lift: np.ndarray               # mass / expected (NaN where expected is 0 or there were no queries)
    expected_position: np.ndarray  # mean over the same (i, j) of the sentence-averaged map's weight at (i, j)
    lift_position: np.ndarray      # mass / expected_position (exactly 1 for a content-free head)
    queries: np.ndarray            # [levels, levels, 2] how many queries each cell averages over
    profile: np.ndarray            # [depth, heads, D] the full distance profile of the same maps


def previous_end(boundary: Sequence[int]) -> np.ndarray:
    """For each position i, the largest j < i with boundary[j] == 1, or -1 if none."""
    b = np.asarray(boundary).astype(bool)
    if b.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = np.maximum.accumulate(np.where(b, np.arange(b.size), -1))  # largest j <= i with b[j]
    return np.concatenate([[-1], last[:-1]]).astype(np.int64)


class _Boundary:
    """Running sums for `BoundaryStats`: the weight on each cell's keys, the (query, key) model positions of
    each cell's pairs, the distance profile and the sentence-averaged map (for the two baselines).

    The averaged map is [depth, heads, D, D] float32 (D = longest sequence): 150 MB for 144 heads at D = 512."""

    def __init__(self) -> None:
        self.profile = _Profile()
        self.levels: int | None = None
        self.mass: np.ndarray | None = None  # [L, H, levels, levels, 2] summed weights
        self.map_sums = np.zeros((0, 0, 0, 0), dtype=np.float32)  # [L, H, D, D] summed maps
        self.map_counts = np.zeros(0, dtype=np.int64)  # [D] maps that have query position i
        self.pairs: dict[tuple[int, int, int], list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(self, w: np.ndarray, boundaries: Sequence[Sequence[int]], index: int = 0) -> None:
        w = _check_map(w)
        self.profile.add(w)
        n = w.shape[-1]
        levels = [np.asarray(b).astype(np.int64) for b in boundaries]
        if self.levels is None:
            self.levels = len(levels)
            self.mass = np.zeros((*w.shape[:2], self.levels, self.levels, 2))
            self.map_sums = np.zeros((*w.shape[:2], 0, 0), dtype=np.float32)
        if len(levels) != self.levels:
            raise ValueError(f"sentence {index}: {len(levels)} boundary levels, earlier sentences have {self.levels}")
        for level, b in enumerate(levels, start=1):
            if b.size != n - 1:
                raise ValueError(f"sentence {index}: level-{level} boundaries have {b.size} labels for {n - 1} "
                                 "tokens (a map has <bos> + one position per token)")
        if n > self.map_counts.size:
            grown = np.zeros((*w.shape[:2], n, n), dtype=np.float32)
            size = self.map_counts.size
            grown[:, :, :size, :size] = self.map_sums
            self.map_sums, self.map_counts = grown, _pad_last(self.map_counts, n)
        self.map_sums[:, :, :n, :n] += w
        self.map_counts[:n] += 1
        prev = [previous_end(b) for b in levels]
        for lq, bq in enumerate(levels):
            for kind, wanted in enumerate((1, 0)):
                for lk in range(self.levels):
                    i = np.flatnonzero((bq == wanted) & (prev[lk] >= 0)) + 1  # model positions of the queries
                    if i.size == 0:
                        continue
                    j = prev[lk][i - 1] + 1  # model positions of their keys
                    self.mass[:, :, lq, lk, kind] += w[:, :, i, j].sum(-1)
                    self.pairs.setdefault((lq, lk, kind), []).append((i, j))

    def result(self) -> BoundaryStats:
        if self.mass is None:
            raise ValueError("no attention maps were given")
        profile = self.profile.profile()
        p = np.nan_to_num(profile)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_map = self.map_sums / np.maximum(self.map_counts, 1)[:, None]
        L, H = self.mass.shape[:2]
        shape = (self.levels, self.levels, 2)
        queries = np.zeros(shape, dtype=np.int64)
        expected = np.full((L, H, *shape), np.nan)
        expected_position = np.full((L, H, *shape), np.nan)
        size = self.map_counts.size
        for cell, found in self.pairs.items():
            i = np.concatenate([f[0] for f in found])
            j = np.concatenate([f[1] for f in found])
            queries[cell] = i.size
            per_distance = np.bincount(i - j, minlength=size)
            at = (slice(None), slice(None), *cell)
            expected[at] = p[:, :, :size] @ per_distance / i.size
            flat, count = np.unique(i * size + j, return_counts=True)  # distinct (i, j) pairs, weighted
            expected_position[at] = mean_map[:, :, flat // size, flat % size] @ count / i.size
        with np.errstate(invalid="ignore", divide="ignore"):
            mass = self.mass / queries
            lift = np.where(expected > 0, mass / expected, np.nan)
            lift_position = np.where(expected_position > 0, mass / expected_position, np.nan)
        return BoundaryStats(mass=mass, expected=expected, lift=lift, expected_position=expected_position,
                             lift_position=lift_position, queries=queries, profile=profile)


def boundary_stats(maps: Iterable[np.ndarray], boundaries: Sequence[Sequence[Sequence[int]]]) -> BoundaryStats:
    """Boundary statistics (module docstring) of maps[k] (``[depth, heads, n, n]``, position 0 = ``<bos>``)
    with boundaries[k][l-1] the level-l NT-end labels of sentence k's n - 1 tokens. One pass; `expected`
    uses the distance profile of the same maps."""
    acc = _Boundary()
    for k, (w, b) in enumerate(zip(maps, boundaries, strict=True)):
        acc.add(w, b, k)
    return acc.result()


# -------------------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class AttentionAnalysis:
    profile: np.ndarray   # [depth, heads, D] full distance profile (D = longest sequence), NaN if unreached
    queries: np.ndarray   # [D] queries behind each distance
    share: np.ndarray     # [depth, heads] share of attention explained by distance
    boundary: BoundaryStats


def analyze_maps(make_maps: Callable[[], Iterable[np.ndarray]], boundaries: Sequence[Sequence[Sequence[int]]],
                 desc: str | None = None) -> AttentionAnalysis:
    """Both analyses from a map source that can be iterated twice (`make_maps()` is called twice: pass 1
    accumulates the profile and boundary sums, pass 2 the share, which needs the finished profile). `desc`
    names a progress bar per pass (None: none)."""

    def passing(k: int) -> Iterable[np.ndarray]:
        return tqdm(make_maps(), total=len(boundaries), desc=f"{desc} (pass {k}/2)", unit="seq", mininterval=1.0, leave=False,
                    disable=desc is None)

    acc = _Boundary()
    for k, (w, b) in enumerate(zip(passing(1), boundaries, strict=True)):
        acc.add(w, b, k)
    stats = acc.result()
    share = distance_share(passing(2), stats.profile)
    return AttentionAnalysis(profile=stats.profile, queries=acc.profile.counts.copy(), share=share, boundary=stats)


def analyze_attention(model: torch.nn.Module, sequences: Sequence[np.ndarray],
                      boundaries: Sequence[Sequence[Sequence[int]]], *, batch_size: int = 16, pad_id: int = 1,
                      desc: str | None = None) -> AttentionAnalysis:
    """Distance profile, share explained by distance and boundary statistics of `model` on `sequences`
    (``<bos>`` + tokens, see `cfg_inputs`) with their per-level NT-end labels. Two forward passes; `desc`
    names a progress bar per pass (None: none)."""
    return analyze_maps(lambda: attention_maps(model, sequences, batch_size=batch_size, pad_id=pad_id), boundaries, desc)


# ------------------------------------------------------------------------------------------------ rows


def distance_rows(analysis: AttentionAnalysis, max_distance: int = 64) -> list[dict]:
    """One row per layer, head and distance 0..max_distance (cut at the longest sequence): layer, head (1-based),
    distance, weight (P[d], NaN if unreached), queries, share (the head's share explained by distance)."""
    depth, heads, size = analysis.profile.shape
    rows: list[dict] = []
    for layer in range(depth):
        for head in range(heads):
            share = float(analysis.share[layer, head])
            for d in range(min(max_distance + 1, size)):
                rows.append({"layer": layer + 1, "head": head + 1, "distance": d,
                             "weight": float(analysis.profile[layer, head, d]),
                             "queries": int(analysis.queries[d]), "share": share})
    return rows


def boundary_rows(stats: BoundaryStats) -> list[dict]:
    """One row per layer, head, query kind, query level and key level: mass, expected, lift,
    expected_position, lift_position, queries (NaN where undefined)."""
    depth, heads, levels, _, _ = stats.mass.shape
    rows: list[dict] = []
    for layer in range(depth):
        for head in range(heads):
            for kind, name in enumerate(KINDS):
                for lq in range(levels):
                    for lk in range(levels):
                        at = (layer, head, lq, lk, kind)
                        rows.append({"layer": layer + 1, "head": head + 1, "query": name, "query_level": lq + 1,
                                     "key_level": lk + 1, "mass": float(stats.mass[at]),
                                     "expected": float(stats.expected[at]), "lift": float(stats.lift[at]),
                                     "expected_position": float(stats.expected_position[at]),
                                     "lift_position": float(stats.lift_position[at]),
                                     "queries": int(stats.queries[lq, lk, kind])})
    return rows


def _clean(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def summarize(dist_rows: Sequence[dict], bound_rows: Sequence[dict]) -> dict:
    """Small JSON-ready summary (NaN -> null), from rows (or the CSVs read back).

    Per layer: ``distance_share`` = mean over heads of S; ``<lift>_same_level_<kind>`` = mean over levels l of
    the max over heads of lift(l, l) for that query kind (heads with NaN lift skipped), for <lift> in "lift"
    (distance baseline) and "lift_position" (mean-map baseline); ``<lift>_best_head_<kind>`` = the head most
    often giving that max. Overall: ``distance_share`` (mean over all heads) and ``<lift>_same_level_<kind>``
    (max over layers) with ``<lift>_same_level_<kind>_layer``, the layer it comes from."""
    shares: dict[tuple[int, int], float] = {}
    for r in dist_rows:
        shares[(int(r["layer"]), int(r["head"]))] = number(r["share"])
    layers = sorted({k[0] for k in shares} | {int(r["layer"]) for r in bound_rows})
    per_layer = []
    for layer in layers:
        mine = [s for (lay, _), s in shares.items() if lay == layer]
        entry: dict = {"layer": layer, "distance_share": _clean(np.mean(mine)) if mine else None}
        for column in ("lift", "lift_position"):
            for kind in KINDS:
                best: dict[int, tuple[float, int]] = {}  # level -> (max lift over heads, head)
                for r in bound_rows:
                    if int(r["layer"]) != layer or r["query"] != kind or int(r["query_level"]) != int(r["key_level"]):
                        continue
                    lift, level = number(r.get(column)), int(r["query_level"])
                    if np.isfinite(lift) and (level not in best or lift > best[level][0]):
                        best[level] = (lift, int(r["head"]))
                heads = [v[1] for v in best.values()]
                entry[f"{column}_same_level_{kind}"] = _clean(np.mean([v[0] for v in best.values()])) if best else None
                entry[f"{column}_best_head_{kind}"] = max(sorted(set(heads)), key=heads.count) if heads else None
        per_layer.append(entry)
    out: dict = {"layers": per_layer, "distance_share": _clean(np.mean(list(shares.values()))) if shares else None}
    for column in ("lift", "lift_position"):
        for kind in KINDS:
            key = f"{column}_same_level_{kind}"
            found = [(e[key], e["layer"]) for e in per_layer if e[key] is not None]
            top = max(found, key=lambda f: f[0]) if found else (None, None)  # ties: the first layer
            out[key], out[f"{key}_layer"] = top
    return out
