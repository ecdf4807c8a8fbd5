"""iGSM problems, one at a time (Part 2.1, SPEC 2.1): `generate_problem` (a training or test problem, a pure
function of its seed, stream and index), `reask` and the eval sets (`EVAL_SETS`: test, opmax, ood, reask), in
the text format of `physlm.worlds.igsm.types`. The steps live in `graph` (1-4), `render` (5-7) and here.

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
orders the new necessary set by uniform choice among the ready parameters, and recomputes the bucket; all
eval sets (`EVAL_SETS`) are test-bucket problems, each from its own RNG stream. The reask set
(`held_out_reask`) redraws (query, order) until the new template is also in a test bucket, as generation
rejection-samples a whole problem on its bucket (moving to a fresh base problem when one has no such
reask), so no eval problem shares a template with a training problem; its op is whatever the new query
needs (up to 52), often above max_op.

Oracles: `tests/test_igsm.py` recomputes every value from the Param facts, checks op == s == number of `;`,
dependencies before use in the order, necessary == query + ancestors, the exact text of each sentence type,
the bucket rule, determinism and worker-count independence, and the Parquet round trip; the independent
text-reading evaluator (`physlm.worlds.igsm.oracle`) and the judge check generated problems from their text.

The package never imports torch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from physlm.worlds.igsm.graph import HARD, LETTERS, IgsmSpec, _build, allowed_buckets, sample_hyper, sample_op
from physlm.worlds.igsm.knowledge import Knowledge, load_knowledge
from physlm.worlds.igsm.render import _assemble, template_bucket
from physlm.worlds.igsm.types import MOD, Param, Problem

MAX_ATTEMPTS = 100_000  # attempts per problem before giving up on an infeasible request
REASK_DRAWS = 64  # (query, order) draws per reask before its base problem counts as unusable
REASK_BASES = 1_000  # base problems a held-out reask tries before giving up
ALL_BUCKETS = frozenset(range(MOD))


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


def _reask(problem: Problem, rng: random.Random, buckets: frozenset[int], draws: int) -> Problem | None:
    """Up to `draws` (query, order) draws until the template's bucket is in `buckets`; None if none is."""
    params = problem.params
    needed = {x: _ancestors(params, x) for x in range(len(params)) if x != problem.query}
    fits = [x for x, need in needed.items() if sum(params[y].op for y in need) <= len(LETTERS)]
    if not fits:
        return None
    for _ in range(draws):
        query = fits[rng.randrange(len(fits))]
        order = _random_order(params, needed[query], rng)
        bucket = template_bucket(params, problem.sentences, query, order)
        if bucket in buckets:
            return _assemble(params, problem.sentences, query, order, problem.fmt, problem.categorization,
                             problem.layers, rng.sample(LETTERS, sum(params[x].op for x in order)), bucket)
    return None


def reask(problem: Problem, rng: random.Random, buckets: frozenset[int] = ALL_BUCKETS) -> Problem:
    """The same problem sentences asking for another parameter: new necessary set, order, solution, answer, op
    and bucket. The query is uniform among the other parameters whose solution fits the 52 letters, the order
    uniform among the ready parameters (`_random_order`); (query, order) is redrawn until the template's bucket
    is in `buckets` (default: any), up to REASK_DRAWS times."""
    found = _reask(problem, rng, buckets, REASK_DRAWS)
    if found is None:
        raise ValueError(f"reask: no other parameter with a solution of at most {len(LETTERS)} operations and a template in"
                         f" buckets {sorted(buckets)} in {REASK_DRAWS} draws")
    return found


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
    "ood" op = ood_ops[index % len(ood_ops)]; "reask" a test-bucket reask of an op = max_op problem."""
    if name not in EVAL_SETS:
        raise ValueError(f"unknown iGSM eval set {name!r}; choose from {', '.join(EVAL_SETS)}")
    if name == "test":
        return generate_problem(spec, seed, index, split="test", stream=name, knowledge=knowledge)
    if name == "ood":
        ops = tuple(ood_ops) if ood_ops else default_ood_ops(spec)
        return generate_problem(spec, seed, index, split="test", force_op=ops[index % len(ops)], stream=name, knowledge=knowledge)
    if name == "opmax":
        return generate_problem(spec, seed, index, split="test", force_op=spec.max_op, stream=name, knowledge=knowledge)
    return held_out_reask(spec, seed, index, knowledge=knowledge)


def held_out_reask(spec: IgsmSpec, seed: int, index: int, *, knowledge: Knowledge | None = None) -> Problem:
    """Reask problem `index`: an op = max_op test-bucket base problem (RNG stream "reask", then "reask:1",
    "reask:2", ... while a base has no usable reask) asked about another parameter whose template is also in a
    test bucket (`reask`), so no reask problem shares a template with a training problem. Its op can exceed
    max_op (the new query may need more operations): the evaluation reports both op ranges."""
    test = allowed_buckets(spec.split_rule, "test")
    for attempt in range(REASK_BASES):
        salt = "" if attempt == 0 else f":{attempt}"
        base = generate_problem(spec, seed, index, split="test", force_op=spec.max_op, stream=f"reask{salt}", knowledge=knowledge)
        found = _reask(base, random.Random(f"igsm:reask-query:{seed}:{index}{salt}"), test, REASK_DRAWS)
        if found is not None:
            return found
    raise ValueError(f"no iGSM reask problem with a test-bucket template from {REASK_BASES} op={spec.max_op} base problems")
