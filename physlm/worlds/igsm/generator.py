"""The iGSM problem generator of "Physics of Language Models" Part 2.1 (SPEC 2.1), writing the text format of
`physlm.worlds.igsm.types`.

One problem, step by step (SPEC 2.1; `generate_problem`):
1. Hyper-parameters (`sample_hyper`, the released code's `gen_param_light`): op target s = min(t0, t1),
   t ~ U{1..max_op} (or a forced s); n = max of two U{1..s}; m ~ U{n..s}; d, t0', t1' from a softmax over
   {2, 3, 4} with logits -(r - c)^2, c in {0.2, 0.5, 0.8}, r = (s - 1) / (max_edge - 1); w0/w1 = min/max of
   t0', t1'; p ~ U(0, 1); e = min of two U{(d-1)·w0 .. max_edge}.
2. Structure graph G_s (`sample_structure`): d consecutive layers of one random categorization, one random
   sub-category per layer and distinct items from it. e is clipped to (d-1)·w1²; layers start at w0 items and
   grow one random non-full layer at a time, forced while Σ l_i·l_{i+1} < e, stopped once the items below the
   top layer number e (one more would need more than e edges), else with probability p. Every item of layer
   i+1 gets one uniform parent in layer i, then uniform extra edges up to e.
3. Parameters: one instance parameter per edge; one abstract parameter `a's C` per item a and layer k > i
   that a reaches, with the dependencies the contract fixes (`Param.deps`).
4. Dependency graph G_d (`_build`), in the SPEC's stages:
   - stage 1: necessary abstract parameters, each with its whole closure (its dependencies, recursively),
     while the closure's op fits the budget n; among the abstract parameters that fit, one of the highest
     level (k - i) is drawn uniformly. Op of an instance parameter counts as 1 here.
   - stage 2: uniform further instance parameters while the total op is below m.
   - stage 3: a random topological order built backwards from the query, a uniform sink of the chosen set.
     `Next` is the set of unplaced parameters that a placed one depends on (so all of them are needed); the
     next parameter is uniform among those of `Next` whose dependents are all placed. After placing an
     instance parameter x, an edge y -> x is added if no parameter of `Next` can be placed (y among the
     placeable ones), else with probability p0 ~ U(0, 1) (y among all unplaced ones); y is drawn with
     probability ∝ exp((1[y abstract] + 1[y in Next])·|g|), g ~ N(0, 1) once per problem. A dead end
     (nothing of `Next` placeable after an abstract parameter) rejects the attempt.
   - stage 4: the op missing to reach s is spread in single units over uniform instance parameters, each up to
     in-degree min(4, 1 + #earlier parameters); an instance parameter of op 1 gets in-degree 1 or 2 (½ each).
     New sources are the RNG (½, or when the earlier parameters run out) and uniform earlier parameters; the
     dependency list is then shuffled. Too little or too much op rejects the attempt, so op == s exactly.
   - stage 5: the other instance parameters, in uniform order, as unnecessary ones: with probability ½ only
     on earlier *independent* unnecessary ones (those that made this choice), else on any defined parameter
     (necessary, unnecessary, or an abstract parameter whose dependencies are all defined); the number of
     sources starts at 1 and grows by one with probability ½ up to min(4, pool + 1); all of the pool plus the
     RNG at that maximum, else the RNG with probability ½ and uniform pool members.
5. Sentences: RNG only -> a constant 0..22; RNG + parameters -> add (0..22) or multiply (1..22), ½ each;
   two parameters -> sum or difference, ½ each; one -> copy; three or more -> sum. Values mod 23.
6. Text: all instance sentences in a uniform order, the question at the end (pq) or start (qp); the shortest
   solution in the stage-3 order with uniform distinct letters (a-z, A-Z).
7. Template hash (`template_text`): the problem (sentences, then the question, whatever the fmt) and the
   solution, with every number written 0, the solution letters renamed a, b, c, ... in order of first
   appearance, every parameter name written `Inst` / `Inter`, and the question written
   `How many Inst?` / `How many Inter?`; bucket = SHA-256 of it mod 23. Attempts repeat (new
   hyper-parameters, same s, same RNG) until one succeeds with a bucket of the requested split.

Choices where the SPEC is silent: the budgets and tie-breaks above; s is drawn once per problem and every
rejection redraws the other hyper-parameters (as the released code's op check does); the hash does not
depend on fmt, so the pq and qp versions of a problem share a bucket; `reask` draws the new query uniformly,
orders the new necessary set by uniform choice among the ready parameters, and recomputes the bucket
without filtering on it; all eval sets (`EVAL_SETS`) are test-bucket problems, each from its own RNG stream.

Oracles: `tests/test_igsm.py` recomputes every value from the Param facts, checks op == s == number of `;`,
dependencies before use in the order, necessary == query + ancestors, the exact text of each sentence type,
the bucket rule, determinism and worker-count independence, and the Parquet round trip; the independent
text-reading evaluator (`physlm.worlds.igsm.oracle`) and the judge check generated problems from their text.

This module never imports torch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import multiprocessing
import random
import re
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import polars as pl
from tqdm import tqdm

from physlm.errors import DataError
from physlm.worlds.igsm.types import MOD, Param, Problem

__all__ = [
    "World", "Layer", "Categorization", "load_world", "world_from_dict",
    "IgsmSpec", "MED", "HARD", "Hyper", "sample_op", "sample_hyper", "Structure", "sample_structure",
    "allowed_buckets", "generate_problem", "reask", "EVAL_SETS", "default_ood_ops", "eval_problem",
    "render_sentence", "render_question", "render_solution", "template_text", "template_bucket",
    "problems_frame", "problem_from_row", "generate_frame", "FRAME_SCHEMA",
]

LETTERS = string.ascii_lowercase + string.ascii_uppercase
MAX_DEGREE = 4          # most predecessors (RNG included) of an instance parameter
MAX_ATTEMPTS = 100_000  # attempts per problem before giving up on an infeasible request
_NAME = re.compile(r"[A-Za-z]+(?:[ -][A-Za-z]+)*")
_SOFTMAX_CENTRES = (0.2, 0.5, 0.8)


# ----------------------------------------------------------------------------------------------- world


@dataclass(frozen=True)
class Layer:
    category: str                                          # e.g. "Supermarket"
    subcategories: tuple[tuple[str, tuple[str, ...]], ...]  # (sub-category name, item names)


@dataclass(frozen=True)
class Categorization:
    name: str
    layers: tuple[Layer, ...]  # top layer first


@dataclass(frozen=True)
class World:
    """The hierarchical categorizations problems are written in (SPEC 2.1 "World knowledge")."""

    categorizations: tuple[Categorization, ...]


def _default_world_path() -> Path:
    return Path(str(resources.files("physlm.worlds.igsm") / "names.json"))


@functools.lru_cache(maxsize=8)
def _load_world_cached(path: str) -> World:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (the iGSM world's names)") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    return world_from_dict(data, path)


def load_world(path: str | Path | None = None) -> World:
    """The world in `path` (default: the package's `physlm/worlds/igsm/names.json`), read once per process."""
    return _load_world_cached(str(Path(path) if path is not None else _default_world_path()))


def world_from_dict(data: dict, where: str = "world") -> World:
    """Build and validate a World from the names file's schema; DataError naming the first problem found."""
    try:
        cats = tuple(Categorization(c["name"], tuple(
            Layer(layer["category"], tuple((sub["name"], tuple(sub["items"])) for sub in layer["subcategories"]))
            for layer in c["layers"])) for c in data["categorizations"])
    except (KeyError, TypeError) as err:
        raise DataError(f"{where}: not the iGSM names schema (missing or wrong {err})") from None
    _check_world(World(cats), where)
    return World(cats)


def _check_world(world: World, where: str) -> None:
    if not world.categorizations:
        raise DataError(f"{where}: no categorizations")
    categories = {layer.category for c in world.categorizations for layer in c.layers}
    seen: set[str] = set()
    for c in world.categorizations:
        if len(c.layers) < 4:
            raise DataError(f"{where}: categorization {c.name!r} has {len(c.layers)} layers, needs at least 4")
        for layer in c.layers:
            _check_name(layer.category, where)
            if not layer.subcategories:
                raise DataError(f"{where}: category {layer.category!r} has no sub-categories")
            for sub, items in layer.subcategories:
                if len(items) < MAX_DEGREE:
                    raise DataError(f"{where}: sub-category {sub!r} has {len(items)} items, needs at least {MAX_DEGREE}")
                for item in items:
                    _check_name(item, where)
                    if item in seen or item in categories:
                        raise DataError(f"{where}: item name {item!r} is repeated or is also a category name")
                    seen.add(item)


def _check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataError(f"{where}: name {name!r} is not letters, spaces and hyphens")


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


def sample_structure(world: World, h: Hyper, rng: random.Random, names: int = 0) -> Structure:
    """A structure graph of `h`'s shape; items from the first `names` of a sub-category (0 = all of them)."""
    e = min(h.e, (h.d - 1) * h.w1 ** 2)
    sizes = _layer_sizes(h, e, rng)
    c = rng.randrange(len(world.categorizations))
    cat = world.categorizations[c]
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


def _build(world: World, h: Hyper, rng: random.Random, names: int = 0) -> tuple[Structure, tuple[Param, ...], list[int]] | None:
    """One attempt at G_s and G_d; None when a stage fails."""
    st = sample_structure(world, h, rng, names)
    g = _parameters(st)
    chosen = _choose_necessary(g, h, rng)
    order = _order(g, chosen, rng)
    if order is None or not _raise_degrees(g, order, h.s, rng):
        return None
    topo = _add_unnecessary(g, order, rng)
    return st, _params(g, topo, rng), order


# ------------------------------------------------------------------------------------------- rendering

Namer = Callable[[int], str]  # parameter index -> how the text writes its name


def _template_namer(params: Sequence[Param]) -> Namer:
    return lambda x: "Inter" if params[x].abstract else "Inst"


def _zero(_: int) -> str:
    return "0"


def render_sentence(params: Sequence[Param], x: int, name: Namer | None = None, num: Callable[[int], str] = str) -> str:
    """The problem sentence of instance parameter x (contract format)."""
    name = name or (lambda y: params[y].name)
    p = params[x]
    head = f"The number of each {name(x)} equals "
    if p.combine == "const":
        return f"{head}{num(p.const)}."
    each = [f"each {name(y)}" for y in p.deps]
    if p.combine == "copy":
        mention = each[0]
    elif p.combine == "diff":
        mention = f"the difference of {each[0]} and {each[1]}"
    else:
        mention = f"the sum of {', '.join(each[:-1])} and {each[-1]}"
    if p.rng_op == "add":
        return f"{head}{num(p.const)} more than {mention}."
    if p.rng_op == "mul":
        return f"{head}{num(p.const)} times as much as {mention}."
    return f"{head}{mention}."


def render_question(p: Param) -> str:
    owner, what = p.name.split("'s ", 1)
    return f"How many {what} does {owner} have?"


Operand = tuple[str, int]  # ("p", parameter) | ("c", constant) | ("t", earlier step)


def _plan(p: Param) -> list[tuple[Operand, str, Operand]]:
    """The binary steps of p's solution sentence, in the contract's order (empty for a plain copy)."""
    steps: list[tuple[Operand, str, Operand]] = []

    def step(a: Operand, sym: str, b: Operand) -> Operand:
        steps.append((a, sym, b))
        return ("t", len(steps) - 1)

    terms = [("p", y) for y in p.deps]
    if p.combine == "sumprod":
        terms = [step(terms[i], "*", terms[i + 1]) for i in range(0, len(terms), 2)]
    if p.combine == "diff":
        acc = step(terms[0], "-", terms[1])
    else:
        acc = terms[0]
        for term in terms[1:]:
            acc = step(acc, "+", term)
    if p.rng_op is not None:
        step(("c", p.const), "+" if p.rng_op == "add" else "*", acc)
    return steps


_APPLY = {"+": lambda a, b: (a + b) % MOD, "-": lambda a, b: (a - b) % MOD, "*": lambda a, b: a * b % MOD}


def render_solution(params: Sequence[Param], order: Sequence[int], letters: Sequence[str], name: Namer | None = None,
                    num: Callable[[int], str] = str) -> str:
    """The solution: one sentence per parameter of `order`; letters are taken in order of first appearance."""
    name = name or (lambda y: params[y].name)
    fresh = iter(letters)
    letter: dict[int, str] = {}
    out = []
    for x in order:
        p = params[x]
        v = letter[x] = next(fresh)
        head = f"Define {name(x)} as {v}; "
        if p.combine == "const":
            out.append(f"{head}so {v} = {num(p.const)}.")
            continue
        steps = _plan(p)
        if not steps:
            u = p.deps[0]
            out.append(f"{head}so {v} = {letter[u]} = {num(params[u].value)}.")
            continue
        results: list[Operand] = []

        def show(a: Operand) -> tuple[str, int]:
            kind, i = a
            if kind == "p":
                return letter[i], params[i].value
            return (num(i), i) if kind == "c" else results[i]

        parts = [head]
        for k, (a, sym, b) in enumerate(steps):
            (at, av), (bt, bv) = show(a), show(b)
            r = _APPLY[sym](av, bv)
            last = k == len(steps) - 1
            t = v if last else next(fresh)
            results.append((t, r))
            parts.append(f"{'so ' if last else ''}{t} = {at} {sym} {bt} = {num(av)} {sym} {num(bv)} = {num(r)}{'.' if last else '; '}")
        out.append("".join(parts))
    return " ".join(out)


def template_text(params: Sequence[Param], sentences: Sequence[int], query: int, order: Sequence[int]) -> str:
    """The problem (sentences, question last) and solution with numbers 0, letters a, b, ... and names Inst/Inter."""
    name = _template_namer(params)
    problem = " ".join(render_sentence(params, x, name, _zero) for x in sentences)
    question = f"How many {name(query)}?"
    return f"{problem} {question} {render_solution(params, order, LETTERS, name, _zero)}"


def template_bucket(params: Sequence[Param], sentences: Sequence[int], query: int, order: Sequence[int]) -> int:
    digest = hashlib.sha256(template_text(params, sentences, query, order).encode()).digest()
    return int.from_bytes(digest, "big") % MOD


def _assemble(params: tuple[Param, ...], sentences: Sequence[int], query: int, order: Sequence[int], fmt: str,
              categorization: int, layers: tuple[int, ...], letters: Sequence[str], bucket: int) -> Problem:
    body = " ".join(render_sentence(params, x) for x in sentences)
    question = render_question(params[query])
    solution = render_solution(params, order, letters)
    return Problem(
        params=params, sentences=tuple(sentences), query=query, necessary=frozenset(order), order=tuple(order),
        fmt=fmt, problem=f"{body} {question}" if fmt == "pq" else f"{question} {body}", question=question,
        solution=solution, answer=params[query].value, op=sum(params[x].op for x in order),
        categorization=categorization, layers=layers, bucket=bucket)


# ------------------------------------------------------------------------------------------ generation


def _check_op(op: int) -> None:
    if not 1 <= op <= len(LETTERS):
        raise ValueError(f"force_op must be 1..{len(LETTERS)} (one solution letter per operation), got {op}")


def generate_problem(spec: IgsmSpec, seed: int, index: int, *, split: str = "train", force_op: int | None = None,
                     stream: str | None = None, world: World | None = None) -> Problem:
    """Problem `index` of the RNG stream `stream` (default: the split's name): a pure function of the arguments.

    Its op is `force_op` or drawn as SPEC 2.1; its bucket is one `split` allows under `spec.split_rule`."""
    world = world or load_world()
    allowed = allowed_buckets(spec.split_rule, split)
    rng = random.Random(f"igsm:{stream or split}:{seed}:{index}")
    s = sample_op(rng, spec.max_op) if force_op is None else force_op
    _check_op(s)
    for _ in range(MAX_ATTEMPTS):
        built = _build(world, sample_hyper(rng, spec, s), rng, spec.names)
        if built is None:
            continue
        st, params, order = built
        sentences = [x for x, p in enumerate(params) if not p.abstract]
        rng.shuffle(sentences)
        bucket = template_bucket(params, sentences, order[-1], order)
        if bucket in allowed:
            return _assemble(params, sentences, order[-1], order, spec.fmt, st.categorization, st.layers,
                             rng.sample(LETTERS, s), bucket)
    raise ValueError(f"no iGSM problem with op={s} (max_edge={spec.max_edge}, {split} buckets) in {MAX_ATTEMPTS} attempts")


def _ancestors(params: Sequence[Param], x: int) -> set[int]:
    seen = {x}
    stack = [x]
    while stack:
        for y in params[stack.pop()].deps:
            if y not in seen:
                seen.add(y)
                stack.append(y)
    return seen


def _random_order(params: Sequence[Param], members: set[int], rng: random.Random) -> list[int]:
    """A topological order of `members` (closed under deps), the next one uniform among the ready ones."""
    waiting = {x: len(params[x].deps) for x in members}
    users: dict[int, list[int]] = {x: [] for x in members}
    for x in sorted(members):
        for y in params[x].deps:
            users[y].append(x)
    ready = sorted(x for x, n in waiting.items() if n == 0)
    order = []
    while ready:
        x = ready.pop(rng.randrange(len(ready)))
        order.append(x)
        for u in users[x]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    return order


def reask(problem: Problem, rng: random.Random) -> Problem:
    """The same problem sentences asking for another parameter (uniform; one needing more than 52 letters is
    redrawn): new necessary set, order, solution, answer, op and bucket (recomputed, not filtered)."""
    params = problem.params
    candidates = [x for x in range(len(params)) if x != problem.query]
    while candidates:
        query = candidates.pop(rng.randrange(len(candidates)))
        needed = _ancestors(params, query)
        op = sum(params[x].op for x in needed)
        if op <= len(LETTERS):
            order = _random_order(params, needed, rng)
            bucket = template_bucket(params, problem.sentences, query, order)
            return _assemble(params, problem.sentences, query, order, problem.fmt, problem.categorization,
                             problem.layers, rng.sample(LETTERS, op), bucket)
    raise ValueError("reask: the problem has no other parameter with a solution of at most 52 operations")


# ------------------------------------------------------------------------------------------- eval sets

EVAL_SETS = ("test", "opmax", "ood", "reask")  # each is also the RNG stream's salt, disjoint from "train"


def default_ood_ops(spec: IgsmSpec) -> tuple[int, ...]:
    """SPEC 2.1's OOD ops: hard (21, 28) -> 28..32; otherwise max_op+5 .. max_op+8 (med: 20..23)."""
    if (spec.max_op, spec.max_edge) == (HARD.max_op, HARD.max_edge):
        return tuple(range(28, 33))
    return tuple(range(spec.max_op + 5, spec.max_op + 9))


def eval_problem(spec: IgsmSpec, name: str, seed: int, index: int, *, ood_ops: Sequence[int] | None = None,
                 world: World | None = None) -> Problem:
    """Problem `index` of eval set `name` (all from test buckets): "test" in-distribution; "opmax" op = max_op;
    "ood" op = ood_ops[index % len(ood_ops)]; "reask" a reask of an op = max_op problem."""
    if name not in EVAL_SETS:
        raise ValueError(f"unknown iGSM eval set {name!r}; choose from {', '.join(EVAL_SETS)}")
    if name == "test":
        return generate_problem(spec, seed, index, split="test", stream=name, world=world)
    if name == "ood":
        ops = tuple(ood_ops) if ood_ops else default_ood_ops(spec)
        return generate_problem(spec, seed, index, split="test", force_op=ops[index % len(ops)], stream=name, world=world)
    base = generate_problem(spec, seed, index, split="test", force_op=spec.max_op, stream=name, world=world)
    return base if name == "opmax" else reask(base, random.Random(f"igsm:reask-query:{seed}:{index}"))


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

    def problem(self, index: int, world: World) -> Problem:
        if self.eval_set is None:
            return generate_problem(self.spec, self.seed, index, split=self.split, force_op=self.force_op, world=world)
        return eval_problem(self.spec, self.eval_set, self.seed, index, ood_ops=self.ood_ops, world=world)

    def shard(self, lo: int, hi: int, world: World) -> pl.DataFrame:
        return problems_frame([self.problem(i, world) for i in range(lo, hi)], range(lo, hi), split=self.split)


_WORKER_WORLD: World | None = None


def _init_worker(world: World) -> None:
    global _WORKER_WORLD
    _WORKER_WORLD = world


def _run_shard(task: tuple[_Job, int, int]) -> pl.DataFrame:
    job, lo, hi = task
    return job.shard(lo, hi, _WORKER_WORLD)


def _shards(job: _Job, count: int, shard_size: int, workers: int, world: World) -> Iterator[pl.DataFrame]:
    tasks = [(job, lo, min(lo + shard_size, count)) for lo in range(0, count, shard_size)]
    if workers == 1 or len(tasks) == 1:  # one shard: a pool would only add its start-up (~3 s)
        yield from (job.shard(lo, hi, world) for _, lo, hi in tasks)
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(world,)) as pool:
        yield from pool.imap(_run_shard, tasks)


def generate_frame(spec: IgsmSpec, seed: int, count: int, *, split: str | None = None, force_op: int | None = None,
                   eval_set: str | None = None, ood_ops: Sequence[int] | None = None, workers: int = 1,
                   shard_size: int = 1000, world: World | None = None, progress: bool = True) -> pl.DataFrame:
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
    world = world or load_world()
    frames = []
    with tqdm(total=count, desc=f"igsm {eval_set or split}", unit="problem", mininterval=2.0, disable=not progress) as bar:
        for frame in _shards(job, count, shard_size, workers, world):
            frames.append(frame)
            bar.update(frame.height)
    return pl.concat(frames, rechunk=True)
