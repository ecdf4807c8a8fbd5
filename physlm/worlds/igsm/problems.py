"""iGSM problems, one at a time: `generate_problem` (a training or test problem, a pure function of its
seed, stream and index), `reask` and the eval sets (`EVAL_SETS`: test, opmax, ood, reask). This module never
imports torch."""

from __future__ import annotations

import random
from collections.abc import Sequence

from physlm.worlds.igsm.graph import HARD, LETTERS, IgsmSpec, _build, allowed_buckets, sample_hyper, sample_op
from physlm.worlds.igsm.knowledge import Knowledge, load_knowledge
from physlm.worlds.igsm.render import _assemble, template_bucket
from physlm.worlds.igsm.types import Param, Problem

MAX_ATTEMPTS = 100_000  # attempts per problem before giving up on an infeasible request


# ------------------------------------------------------------------------------------------ generation


def _check_op(op: int) -> None:
    if not 1 <= op <= len(LETTERS):
        raise ValueError(f"force_op must be 1..{len(LETTERS)} (one solution letter per operation), got {op}")


def generate_problem(spec: IgsmSpec, seed: int, index: int, *, split: str = "train", force_op: int | None = None,
                     stream: str | None = None, knowledge: Knowledge | None = None) -> Problem:
    """Problem `index` of the RNG stream `stream` (default: the split's name): a pure function of the arguments.

    Its op is `force_op` or drawn as SPEC 2.1; its bucket is one `split` allows under `spec.split_rule`."""
    knowledge = knowledge or load_knowledge()
    allowed = allowed_buckets(spec.split_rule, split)
    rng = random.Random(f"igsm:{stream or split}:{seed}:{index}")
    s = sample_op(rng, spec.max_op) if force_op is None else force_op
    _check_op(s)
    for _ in range(MAX_ATTEMPTS):
        built = _build(knowledge, sample_hyper(rng, spec, s), rng, spec.names)
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
                 knowledge: Knowledge | None = None) -> Problem:
    """Problem `index` of eval set `name` (all from test buckets): "test" in-distribution; "opmax" op = max_op;
    "ood" op = ood_ops[index % len(ood_ops)]; "reask" a reask of an op = max_op problem."""
    if name not in EVAL_SETS:
        raise ValueError(f"unknown iGSM eval set {name!r}; choose from {', '.join(EVAL_SETS)}")
    if name == "test":
        return generate_problem(spec, seed, index, split="test", stream=name, knowledge=knowledge)
    if name == "ood":
        ops = tuple(ood_ops) if ood_ops else default_ood_ops(spec)
        return generate_problem(spec, seed, index, split="test", force_op=ops[index % len(ops)], stream=name, knowledge=knowledge)
    base = generate_problem(spec, seed, index, split="test", force_op=spec.max_op, stream=name, knowledge=knowledge)
    return base if name == "opmax" else reask(base, random.Random(f"igsm:reask-query:{seed}:{index}"))
