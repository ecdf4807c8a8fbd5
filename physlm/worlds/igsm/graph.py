"""iGSM's hyper-parameters, structure graph G_s, parameters and dependency graph G_d: steps 1-4 of the
generator (SPEC 2.1; `problems`' docstring walks through every step). Every choice takes the problem's
`random.Random`. This module never imports torch."""

from __future__ import annotations

import math
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from physlm.worlds.igsm.knowledge import MAX_DEGREE, Knowledge
from physlm.worlds.igsm.types import MOD, Param

LETTERS = string.ascii_lowercase + string.ascii_uppercase  # solution letters: one per operation, so max_op <= 52
_SOFTMAX_CENTRES = (0.2, 0.5, 0.8)


# ------------------------------------------------------------------------------------ hyper-parameters


@dataclass(frozen=True)
class IgsmSpec:
    """A difficulty preset and text/split options (SPEC 2.1)."""

    max_op: int = 15                          # largest training op (med 15, hard 21)
    max_edge: int = 20                        # most instance parameters, ip_max (med 20, hard 28)
    fmt: Literal["pq", "qp"] = "pq"           # question after (pq) or before (qp) the problem sentences
    split_rule: Literal["paper", "code", "none"] = "paper"  # buckets of train/test: <17 / >=17, 0-15 / 16-22, all
    max_layers: int = 4                       # d in 2..max_layers (the paper: 4); smaller worlds for CPU demos
    max_items: int = 4                        # items per layer in 2..max_items (the paper: 4)
    names: int = 0                            # items drawn from the first `names` of each sub-category (0 = all)

    def __post_init__(self) -> None:
        if not 1 <= self.max_op <= len(LETTERS):
            raise ValueError(f"IgsmSpec.max_op must be 1..{len(LETTERS)}, got {self.max_op}")
        for name in ("max_layers", "max_items"):
            if not 2 <= getattr(self, name) <= 4:
                raise ValueError(f"IgsmSpec.{name} must be 2..4, got {getattr(self, name)}")
        if self.names and self.names < self.max_items:
            raise ValueError(f"IgsmSpec.names must be 0 (all) or at least max_items = {self.max_items}, got {self.names}")
        least = (self.max_layers - 1) * self.max_items
        if self.max_edge < least:
            raise ValueError(f"IgsmSpec.max_edge must be at least {least} ({self.max_layers - 1} edges between"
                             f" {self.max_layers} layers of {self.max_items}), got {self.max_edge}")
        if self.fmt not in ("pq", "qp"):
            raise ValueError(f"IgsmSpec.fmt must be 'pq' or 'qp', got {self.fmt!r}")
        if self.split_rule not in ("paper", "code", "none"):
            raise ValueError(f"IgsmSpec.split_rule must be 'paper', 'code' or 'none', got {self.split_rule!r}")


MED = IgsmSpec(max_op=15, max_edge=20)
HARD = IgsmSpec(max_op=21, max_edge=28)


@dataclass(frozen=True)
class Hyper:
    s: int        # op target
    n: int        # op budget of stage 1 (necessary abstract parameters)
    m: int        # op budget of stages 1-2 (necessary parameters)
    d: int        # layers
    w0: int       # least items per layer
    w1: int       # most items per layer
    e: int        # edges (instance parameters), before clipping
    p: float      # probability of growing a layer once feasible


def sample_op(rng: random.Random, max_op: int) -> int:
    return min(rng.randint(1, max_op), rng.randint(1, max_op))


def _softmax_choice(rng: random.Random, weights: Sequence[float], most: int = 4) -> int:
    """A draw from {2, .., most} with the first weights (the paper: {2, 3, 4})."""
    return rng.choices(range(2, most + 1), weights[: most - 1])[0]


def sample_hyper(rng: random.Random, spec: IgsmSpec, s: int) -> Hyper:
    """Everything but s, as SPEC 2.1 (the released `gen_param_light`)."""
    n = max(rng.randint(1, s), rng.randint(1, s))
    m = rng.randint(n, s)
    r = (s - 1) / (spec.max_edge - 1)
    weights = [math.exp(-(r - c) ** 2) for c in _SOFTMAX_CENTRES]
    d = _softmax_choice(rng, weights, spec.max_layers)
    t0, t1 = _softmax_choice(rng, weights, spec.max_items), _softmax_choice(rng, weights, spec.max_items)
    p = rng.random()
    low = (d - 1) * min(t0, t1)
    e = min(rng.randint(low, spec.max_edge), rng.randint(low, spec.max_edge))
    return Hyper(s, n, m, d, min(t0, t1), max(t0, t1), e, p)


def allowed_buckets(split_rule: str, split: str) -> frozenset[int]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    cut = {"paper": 17, "code": 16, "none": None}[split_rule]
    if cut is None:
        return frozenset(range(MOD))
    return frozenset(range(cut) if split == "train" else range(cut, MOD))


# ------------------------------------------------------------------------------------- structure graph


@dataclass(frozen=True)
class Structure:
    """G_s: d layers of items and the edges between consecutive layers."""

    categorization: int
    layers: tuple[int, ...]                            # category layers used
    categories: tuple[str, ...]                        # category name per layer
    items: tuple[tuple[str, ...], ...]                 # item names per layer
    children: tuple[tuple[tuple[int, ...], ...], ...]  # children[i][j]: sorted indices in layer i+1


def _layer_sizes(h: Hyper, e: int, rng: random.Random) -> list[int]:
    sizes = [h.w0] * h.d
    while True:
        most = sum(a * b for a, b in zip(sizes, sizes[1:]))
        if most >= e and sum(sizes[1:]) == e:
            return sizes
        open_ = [i for i, size in enumerate(sizes) if size < h.w1]
        if most < e or (open_ and rng.random() < h.p):
            sizes[rng.choice(open_)] += 1
        else:
            return sizes


def sample_structure(knowledge: Knowledge, h: Hyper, rng: random.Random, names: int = 0) -> Structure:
    """A structure graph of `h`'s shape; items from the first `names` of a sub-category (0 = all of them)."""
    e = min(h.e, (h.d - 1) * h.w1 ** 2)
    sizes = _layer_sizes(h, e, rng)
    c = rng.randrange(len(knowledge.categorizations))
    cat = knowledge.categorizations[c]
    top = rng.randint(0, len(cat.layers) - h.d)
    layers = tuple(range(top, top + h.d))
    items = tuple(tuple(rng.sample(rng.choice(cat.layers[k].subcategories)[1][: names or None], size))
                  for k, size in zip(layers, sizes))
    edges = {(i, rng.randrange(sizes[i]), k) for i in range(h.d - 1) for k in range(sizes[i + 1])}
    free = [(i, j, k) for i in range(h.d - 1) for j in range(sizes[i]) for k in range(sizes[i + 1]) if (i, j, k) not in edges]
    edges.update(rng.sample(free, e - len(edges)))
    children = tuple(tuple(tuple(k for k in range(sizes[i + 1]) if (i, j, k) in edges) for j in range(sizes[i]))
                     for i in range(h.d - 1))
    return Structure(c, layers, tuple(cat.layers[k].category for k in layers), items, children)


# ------------------------------------------------------------------------------------------ parameters


@dataclass
class _Graph:
    """Every parameter of G_s (instance ones first) with its fixed facts; G_d's choices go in `preds`."""

    names: list[str]
    abstract: list[bool]
    level: list[int]               # k - i of an abstract parameter, 0 for an instance one
    preds: list[list[int]]         # abstract: fixed by G_s; instance: filled by stages 3-5
    has_rng: list[bool]
    users: list[list[int]]         # abstract parameters that depend on each parameter
    num_instance: int
    base_op: list[int]             # op before stage 4: max(1, #deps - 1) if abstract, else 1


def _reach(st: Structure) -> list[list[int]]:
    """reach[i][j]: the deepest layer item j of layer i reaches."""
    d = len(st.items)
    reach = [[d - 1] * len(st.items[-1])]
    for i in range(d - 2, -1, -1):
        below = reach[0]
        reach.insert(0, [max((below[k] for k in kids), default=i) for kids in st.children[i]])
    return reach


def _parameters(st: Structure) -> _Graph:
    inst = {(i, j, k): None for i, kids_i in enumerate(st.children) for j, kids in enumerate(kids_i) for k in kids}
    ids = {key: n for n, key in enumerate(inst)}
    names = [f"{st.items[i][j]}'s {st.items[i + 1][k]}" for i, j, k in inst]
    preds: list[list[int]] = [[] for _ in inst]
    level = [0] * len(inst)
    reach = _reach(st)
    absid: dict[tuple[int, int, int], int] = {}
    for i in range(len(st.children) - 1, -1, -1):  # deeper items first, so `b's C` exists before `a's C`
        for j, kids in enumerate(st.children[i]):
            for k in range(i + 1, reach[i][j] + 1):
                absid[(i, j, k)] = len(names)
                names.append(f"{st.items[i][j]}'s {st.categories[k]}")
                level.append(k - i)
                if k == i + 1:
                    preds.append([ids[(i, j, b)] for b in kids])
                else:
                    preds.append([x for b in kids if reach[i + 1][b] >= k for x in (ids[(i, j, b)], absid[(i + 1, b, k)])])
    n = len(names)
    users: list[list[int]] = [[] for _ in range(n)]
    for x in range(len(inst), n):
        for y in preds[x]:
            users[y].append(x)
    base_op = [1] * len(inst) + [max(1, len(preds[x]) - 1) for x in range(len(inst), n)]
    return _Graph(names, [x >= len(inst) for x in range(n)], level, preds, [False] * n, users, len(inst), base_op)


# ------------------------------------------------------------------------------------ dependency graph


def _closures(g: _Graph) -> dict[int, list[int]]:
    """Each abstract parameter with everything it needs (itself included)."""
    closure: dict[int, list[int]] = {}
    for x in sorted(range(g.num_instance, len(g.names)), key=lambda y: g.level[y]):
        members = {x}
        for y in g.preds[x]:
            members.update(closure.get(y, (y,)))
        closure[x] = sorted(members)
    return closure


def _choose_necessary(g: _Graph, h: Hyper, rng: random.Random) -> list[int]:
    """Stages 1-2: the necessary parameters (in the order they were chosen)."""
    chosen: list[int] = []
    member = [False] * len(g.names)
    closure = _closures(g)
    budget = h.n
    base = g.base_op
    while True:
        fits = []
        for x, group in closure.items():
            if not member[x]:
                cost = sum([base[y] for y in group if not member[y]])
                if cost <= budget:
                    fits.append((g.level[x], x, cost))
        if not fits:
            break
        top = max(f[0] for f in fits)
        _, x, cost = rng.choice([f for f in fits if f[0] == top])
        budget -= cost
        for y in closure[x]:
            if not member[y]:
                member[y] = True
                chosen.append(y)
    total = h.n - budget
    spare = [x for x in range(g.num_instance) if not member[x]]
    rng.shuffle(spare)
    take = max(0, min(h.m - total, len(spare)))
    return chosen + spare[:take]


def _order(g: _Graph, chosen: list[int], rng: random.Random) -> list[int] | None:
    """Stage 3: a topological order ending at the query, adding edges so that every parameter is needed."""
    out = {x: 0 for x in chosen}
    for x in chosen:
        for y in g.preds[x]:
            out[y] += 1
    ready = [x for x in chosen if out[x] == 0]
    nxt: set[int] = set()
    unplaced = set(chosen)
    p0, bias = rng.random(), abs(rng.gauss(0.0, 1.0))
    backwards = []
    x = rng.choice(ready)
    while True:
        backwards.append(x)
        unplaced.discard(x)
        ready.remove(x)
        nxt.discard(x)
        for y in g.preds[x]:
            out[y] -= 1
            if out[y] == 0:
                ready.append(y)
            nxt.add(y)
        if not unplaced:
            return backwards[::-1]
        if not g.abstract[x]:
            stuck = not any(y in nxt for y in ready)
            if stuck or rng.random() < p0:
                pool = ready if stuck else sorted(unplaced)
                weights = [math.exp((g.abstract[y] + (y in nxt)) * bias) for y in pool]
                y = rng.choices(pool, weights)[0]
                g.preds[x].append(y)
                nxt.add(y)
        placeable = [y for y in ready if y in nxt]
        if not placeable:
            return None
        x = rng.choice(placeable)


def _spread_op(g: _Graph, order: list[int], s: int, rng: random.Random) -> dict[int, int] | None:
    """Stage 4's op per instance parameter, summing with the abstract ones to exactly s (None if impossible)."""
    extra = s - sum(g.base_op[x] for x in order)
    room = {x: max(1, min(MAX_DEGREE, i + 1) - 1) - 1 for i, x in enumerate(order) if not g.abstract[x]}
    if extra < 0 or extra > sum(room.values()):
        return None
    ops = dict.fromkeys(room, 1)
    open_ = [x for x in room if room[x] > 0]
    for _ in range(extra):
        x = rng.choice(open_)
        ops[x] += 1
        if ops[x] == room[x] + 1:
            open_.remove(x)
    return ops


def _raise_degrees(g: _Graph, order: list[int], s: int, rng: random.Random) -> bool:
    """Stage 4: in-degrees of the necessary instance parameters so that their op sums to s."""
    ops = _spread_op(g, order, s, rng)
    if ops is None:
        return False
    for i, x in enumerate(order):
        if g.abstract[x]:
            continue
        degree = ops[x] + 1 if ops[x] > 1 else min(rng.choice((1, 2)), i + 1)
        preds = g.preds[x]
        need = max(degree, len(preds)) - len(preds)
        pool = [y for y in order[:i] if y not in preds]
        if need > len(pool) or (need > 0 and rng.random() < 0.5):
            g.has_rng[x] = True
            need -= 1
        preds.extend(rng.sample(pool, need))
        rng.shuffle(preds)
    return True


def _define(g: _Graph, x: int, defined: list[int], waiting: list[int]) -> None:
    """Mark x defined, then every abstract parameter whose dependencies are now all defined."""
    stack = [x]
    while stack:
        y = stack.pop()
        defined.append(y)
        for a in g.users[y]:
            waiting[a] -= 1
            if waiting[a] == 0:
                stack.append(a)


def _add_unnecessary(g: _Graph, order: list[int], rng: random.Random) -> list[int]:
    """Stage 5: every other instance parameter; returns a topological order of the whole graph."""
    waiting = [len(p) if a else 0 for p, a in zip(g.preds, g.abstract)]
    defined: list[int] = []
    for x in order:
        if not g.abstract[x]:
            _define(g, x, defined, waiting)
    necessary = set(order)
    rest = [x for x in range(g.num_instance) if x not in necessary]
    rng.shuffle(rest)
    independent: list[int] = []
    for x in rest:
        alone = rng.random() < 0.5
        pool = independent if alone else defined
        _draw_sources(g, x, pool, rng)
        _define(g, x, defined, waiting)
        if alone:
            independent.append(x)
    return defined


def _draw_sources(g: _Graph, x: int, pool: list[int], rng: random.Random) -> None:
    top = min(len(pool) + 1, MAX_DEGREE)
    count = 1
    while count < top and rng.random() < 0.5:
        count += 1
    if count == len(pool) + 1:
        g.has_rng[x], g.preds[x] = True, rng.sample(pool, len(pool))
        return
    if rng.random() < 0.5:
        g.has_rng[x] = True
        count -= 1
    g.preds[x] = rng.sample(pool, count)


def _sentence_kind(n_params: int, has_rng: bool, rng: random.Random) -> tuple[str, str | None, int | None]:
    """(combine, rng_op, const) of an instance parameter's sentence."""
    if n_params == 0:
        return "const", None, rng.randrange(MOD)
    combine = "copy" if n_params == 1 else "sum" if n_params > 2 else rng.choice(("sum", "diff"))
    if not has_rng:
        return combine, None, None
    if rng.random() < 0.5:
        return combine, "add", rng.randrange(MOD)
    return combine, "mul", rng.randrange(1, MOD)


def _combine_values(combine: str, vals: list[int]) -> int:
    if combine == "diff":
        return (vals[0] - vals[1]) % MOD
    if combine == "sumprod":
        return sum(a * b for a, b in zip(vals[::2], vals[1::2])) % MOD
    return sum(vals) % MOD


def _params(g: _Graph, topo: list[int], rng: random.Random) -> tuple[Param, ...]:
    """Sentence kinds for the instance parameters, then every value in topological order."""
    kinds = [_sentence_kind(len(g.preds[x]), g.has_rng[x], rng) if not g.abstract[x] else
             ("sumprod" if g.level[x] > 1 else "copy" if len(g.preds[x]) == 1 else "sum", None, None)
             for x in range(len(g.names))]
    values = [0] * len(g.names)
    for x in topo:
        combine, rng_op, const = kinds[x]
        if combine == "const":
            values[x] = const
            continue
        v = _combine_values(combine, [values[y] for y in g.preds[x]])
        values[x] = v if rng_op is None else (const + v) % MOD if rng_op == "add" else const * v % MOD
    return tuple(Param(g.names[x], g.abstract[x], tuple(g.preds[x]), kinds[x][0], kinds[x][1], kinds[x][2], values[x])
                 for x in range(len(g.names)))


def _build(knowledge: Knowledge, h: Hyper, rng: random.Random, names: int = 0) -> tuple[Structure, tuple[Param, ...], list[int]] | None:
    """One attempt at G_s and G_d; None when a stage fails."""
    st = sample_structure(knowledge, h, rng, names)
    g = _parameters(st)
    chosen = _choose_necessary(g, h, rng)
    order = _order(g, chosen, rng)
    if order is None or not _raise_degrees(g, order, h.s, rng):
        return None
    topo = _add_unnecessary(g, order, rng)
    return st, _params(g, topo, rng), order
