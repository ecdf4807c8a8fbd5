"""Labels of a problem's solution, pure functions of a `Problem` (no torch): the V-probes' properties and inputs
(Part 2.1, SPEC 2.4: what a frozen GPT trained on iGSM should "know" about a problem's parameters before and
while it writes the solution), and the parts the teacher-forced checks score (`evaluate.teacher_forced`).

Labels (pure functions of a `Problem`, no torch). The *whole* dependency graph has every parameter of
`Problem.params` (every instance parameter of G_s and every abstract one) with an edge A -> B for each B in
`A.deps` (instance deps as the problem states them, abstract deps as their definition sums them; the RNG is
not a vertex). G_d's parameters, from which the probes draw A and B, are every instance parameter plus the
abstract parameters that are necessary or that some G_d parameter depends on (closed under that rule, so
every G_d parameter's predecessors are in G_d). After the first i solution sentences:
- `nece(A)`: A is in the shortest solution (`Problem.necessary`);
- `dep(A, B)`: B is an ancestor of A in the transitive closure of the whole graph;
- `known(A)`: A is among the parameters of the first i sentences (`Problem.order[:i]`);
- `value(A)`: A's value 0..22 if known, else class 23 (24-way);
- `can_next(A)`: every predecessor of A is known and A itself is not. An already-known A is labelled 0:
  "can be computed next" means a new sentence could define it, and the solution never defines a parameter
  twice (the paper's code label only asks that all predecessors be computed; the two differ exactly on
  known parameters, which `known` already probes). A may be unnecessary (then it is never known);
- `nece_next(A)`: can_next(A) and nece(A).

Probe inputs (SPEC 2.4 positions): `<bos> [PROB] prefix [START] A [END]` (dep: `... [START] A [MID] B [END]`)
where the prefix is the problem text truncated at a sentence boundary:
- nece: the whole problem (after the question when pq; after the last sentence when qp);
- dep: the problem's sentences before the question when pq; the whole problem when qp (its end);
- known, value, can_next, nece_next: the whole problem, `[SOL]`, then the first i solution sentences, i
  uniform over 0..len (i = 0 ends at `[SOL]`, the sequence's state before the first sentence).
Per problem and property at most `picks` distinct (position, A[, B]) picks, uniform over the product space,
from a generator seeded by (seed, property, problem index).

The probe that reads them is `physlm.worlds.igsm.vprobe`. Teacher-forced parts: `solution_pieces` cuts the gold
solution into the lookup / operands / values / arithmetic pieces the evaluation scores token by token, and
`next_choice` classifies the parameter a model names next (valid, unnecessary, redefined, not ready, unknown).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from physlm.errors import DataError
from physlm.text import TextVocab
from physlm.tokenize import Vocab
from physlm.worlds.igsm.text import END, MID, PROB, SOL, START, igsm_prompt
from physlm.worlds.igsm.types import MOD, Problem

PROPERTIES = ("nece", "dep", "known", "value", "can_next", "nece_next")
SOLUTION_PROPERTIES = ("known", "value", "can_next", "nece_next")  # probed inside the solution
UNKNOWN = MOD  # value class of a parameter not computed yet


def classes(prop: str) -> int:
    """Number of classes of a property: 24 for value, else 2."""
    return MOD + 1 if prop == "value" else 2


# ---------------------------------------------------------------------------------------------- labels


def ancestors(problem: Problem) -> tuple[frozenset[int], ...]:
    """Transitive closure of the whole dependency graph: per parameter, every parameter it depends on."""
    params = problem.params
    done: dict[int, frozenset[int]] = {}

    def visit(a: int, path: frozenset[int]) -> frozenset[int]:
        if a in path:
            raise DataError(f"dependency cycle through parameter {a} ({params[a].name!r})")
        if a not in done:
            out: set[int] = set()
            for b in params[a].deps:
                if not 0 <= b < len(params):
                    raise DataError(f"parameter {params[a].name!r} depends on index {b}, outside 0..{len(params) - 1}")
                out |= {b} | visit(b, path | {a})
            done[a] = frozenset(out)
        return done[a]

    return tuple(visit(a, frozenset()) for a in range(len(params)))


def gd_params(problem: Problem) -> tuple[int, ...]:
    """G_d's parameters in index order: every instance parameter, every necessary one, and (repeatedly) every
    parameter that one of them depends on."""
    members = {a for a, p in enumerate(problem.params) if not p.abstract} | set(problem.necessary)
    frontier = list(members)
    while frontier:
        for b in problem.params[frontier.pop()].deps:
            if b not in members:
                members.add(b)
                frontier.append(b)
    return tuple(sorted(members))


def nece(problem: Problem, a: int) -> int:
    return int(a in problem.necessary)


def dep(closure: Sequence[frozenset[int]], a: int, b: int) -> int:
    return int(b in closure[a])


def known(problem: Problem, i: int, a: int) -> int:
    return int(a in problem.order[:i])


def value(problem: Problem, i: int, a: int) -> int:
    return problem.params[a].value if known(problem, i, a) else UNKNOWN


def can_next(problem: Problem, i: int, a: int) -> int:
    done = set(problem.order[:i])
    return int(a not in done and problem.ready(a, done))


def nece_next(problem: Problem, i: int, a: int) -> int:
    return can_next(problem, i, a) * nece(problem, a)


@dataclass(frozen=True)
class Pick:
    """One probed (position, parameter[, parameter]): position = solution sentences in the prefix."""

    position: int
    a: int
    b: int | None = None


def label(problem: Problem, closure: Sequence[frozenset[int]], prop: str, pick: Pick) -> int:
    """The class of `prop` at `pick`."""
    if prop == "nece":
        return nece(problem, pick.a)
    if prop == "dep":
        return dep(closure, pick.a, pick.b)
    fn = {"known": known, "value": value, "can_next": can_next, "nece_next": nece_next}[prop]
    return fn(problem, pick.position, pick.a)


def draw_picks(problem: Problem, prop: str, gd: Sequence[int], rng: np.random.Generator, picks: int) -> list[Pick]:
    """Up to `picks` distinct picks, uniform over positions x G_d (x G_d minus A for dep)."""
    n, positions = len(gd), len(problem.order) + 1 if prop in SOLUTION_PROPERTIES else 1
    others = n - 1 if prop == "dep" else 1
    total = positions * n * others
    chosen = rng.choice(total, size=min(picks, total), replace=False) if total else []
    out = []
    for k in map(int, chosen):
        position, rest = divmod(k, n * others)
        a, j = divmod(rest, others)
        b = (j if j < a else j + 1) if prop == "dep" else None
        out.append(Pick(position, gd[a], None if b is None else gd[b]))
    return out


# ---------------------------------------------------------------------------------------------- prompts


def problem_sentences_text(problem: Problem) -> str:
    """The problem text up to the end of its last sentence (pq: without the trailing question)."""
    tail = " " + problem.question
    if problem.fmt == "pq":
        if not problem.problem.endswith(tail):
            raise DataError(f"pq problem text does not end with its question {problem.question!r}")
        return problem.problem[: -len(tail)]
    if not problem.problem.startswith(problem.question + " "):
        raise DataError(f"qp problem text does not start with its question {problem.question!r}")
    return problem.problem


def solution_sentences(problem: Problem) -> list[str]:
    """The solution cut into its sentences, one per parameter of `Problem.order`."""
    sentences = re.split(r"(?<=\.) (?=Define )", problem.solution.strip())
    if len(sentences) != len(problem.order):
        raise DataError(f"solution has {len(sentences)} sentences, its order lists {len(problem.order)} parameters")
    return sentences


def prefix_text(problem: Problem, prop: str, position: int) -> str:
    """The truncated text a probe of `prop` reads (see the module docstring)."""
    if prop == "dep":
        return problem_sentences_text(problem)
    if prop == "nece":
        return problem.problem
    return " ".join([problem.problem, SOL, *solution_sentences(problem)[:position]])


def query_text(a: str, b: str | None = None) -> str:
    """`[START] A [END]`, or `[START] A [MID] B [END]`: what follows the prefix."""
    return f"{START} {a} {END}" if b is None else f"{START} {a} {MID} {b} {END}"


@dataclass(frozen=True)
class VExample:
    """One probe input and its label."""

    tokens: tuple[int, ...]  # <bos> [PROB] prefix [START] A ([MID] B) [END]
    label: int
    problem: int  # index of the problem it came from
    position: int  # solution sentences in the prefix (0 for nece, dep)
    prefix: int  # tokens[:prefix] is `<bos> [PROB] prefix`, tokens[prefix:] the query `[START] ... [END]`


def probe_examples(
    problems: Sequence[Problem],
    vocab: TextVocab,
    prop: str,
    *,
    picks: int,
    seed: int,
    max_tokens: int,
    first_index: int = 0,
) -> list[VExample]:
    """The examples of `prop` from `problems` (indices first_index, first_index + 1, ...); inputs longer
    than max_tokens are skipped. The text is `[PROB] prefix [START] ... [END]`; words never span the space
    before `[START]`, so its tokens are the prefix's tokens followed by the query's."""
    if prop not in PROPERTIES:
        raise ValueError(f"unknown V-probe property {prop!r}; known: {', '.join(PROPERTIES)}")
    out: list[VExample] = []
    for index, problem in enumerate(problems, start=first_index):
        closure, names = ancestors(problem), [p.name for p in problem.params]
        rng = np.random.default_rng([seed, PROPERTIES.index(prop), index])
        heads: dict[int, tuple[int, ...]] = {}  # position -> tokens of `<bos> [PROB] prefix`
        for pick in draw_picks(problem, prop, gd_params(problem), rng, picks):
            if pick.position not in heads:
                text = f"{PROB} {prefix_text(problem, prop, pick.position)}"
                heads[pick.position] = (vocab.bos_id, *vocab.encode(text))
            head = heads[pick.position]
            b = None if pick.b is None else names[pick.b]
            tokens = (*head, *vocab.encode(query_text(names[pick.a], b)))
            if len(tokens) <= max_tokens:
                out.append(VExample(tokens, label(problem, closure, prop, pick), index, pick.position, len(head)))
    return out


# ------------------------------------------------------------------------- teacher-forced steps

PARTS = ("lookup", "operands", "values", "arithmetic")
CHOICES = ("valid", "unnecessary", "redefined", "not_ready", "unknown")
_KINDS = {2: ("lookup",), 3: ("operands", "values"), 4: ("operands", "values", "arithmetic")}  # by ' = ' pieces


def solution_pieces(solution: str) -> list[tuple[str, str]]:
    """The gold solution cut into (part, text) pieces that join back into it; part "" for what is not
    scored (the `Define <name> as <v>;` head, step targets, `=`, punctuation), else one of PARTS."""
    pieces: list[tuple[str, str]] = []
    for sentence in re.split(r"(?<=\.) (?=Define )", solution.strip()):
        m = re.fullmatch(r"(Define .+? as [A-Za-z];) (.*)\.", sentence)
        if m is None:
            raise DataError(f"solution sentence {sentence[:60]!r} is not 'Define <name> as <v>; ... .'")
        pieces.append(("", m[1]))
        steps = m[2].split("; ")
        for k, step in enumerate(steps):
            parts = step.split(" = ")
            kinds = _KINDS.get(len(parts))
            if kinds is None:
                raise DataError(f"solution step {step!r} is not 'v = c', 'v = u = x' or 'v = x op y = a op b = r'")
            pieces.append(("", f"{parts[0]} ="))
            for j, (kind, text) in enumerate(zip(kinds, parts[1:])):
                pieces += [(kind, text), ("", "=" if j < len(kinds) - 1 else ";" if k < len(steps) - 1 else ".")]
    return pieces


@dataclass(frozen=True)
class ForcedProblem:
    """A problem's prompt and gold solution as tokens, with what the teacher-forced checks score."""

    ids: list[int]                       # <bos> [PROB] problem [SOL] solution
    parts: list[tuple[str, int, int]]    # (part, start, end): tokens ids[start:end] are one scored part
    sentence_starts: list[int]           # where each solution sentence's `Define` sits in ids


def forced_problem(problem: Problem, vocab: TextVocab) -> ForcedProblem:
    ids = [Vocab.bos_id, *vocab.encode(igsm_prompt(problem.problem))]
    parts, starts = [], []
    for kind, text in solution_pieces(problem.solution):
        tokens = vocab.encode(text)
        if text.startswith("Define "):
            starts.append(len(ids))
        if kind:
            parts.append((kind, len(ids), len(ids) + len(tokens)))
        ids += tokens
    if not starts or ids[starts[0]:] != vocab.encode(problem.solution):
        raise DataError(f"the solution's pieces do not tokenize like the whole solution: {problem.solution[:60]!r}")
    if len(starts) != len(problem.order):
        raise DataError(f"solution has {len(starts)} sentences, its order lists {len(problem.order)} parameters")
    return ForcedProblem(ids, parts, starts)


def next_choice(problem: Problem, done: set[int], name: str | None) -> str:
    """What writing parameter `name` next after defining `done` is (one of CHOICES)."""
    index = {p.name: i for i, p in enumerate(problem.params)}.get(name or "")
    if index is None:
        return "unknown"
    if index in done:
        return "redefined"
    if not problem.ready(index, done):
        return "not_ready"
    return "valid" if index in problem.necessary else "unnecessary"
