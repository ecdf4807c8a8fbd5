"""The iGSM judge and the independent oracle (SPEC 2.1, 2.3).

(a) A hand-solved problem covers every sentence type (constant, add, multiply with a three-term sum,
difference, copy of an abstract parameter, abstract sums and sums of products) and every judge error code.
(b) On generated problems: the oracle reads back the generator's values, answers, graphs and ops from the
text alone; the judge accepts the generator's solution, a re-lettered valid reordering and a brute-force
(level-0) solution rendered here from the oracle's graph, and rejects mutations with the expected reason,
always agreeing with a second decision made from the oracle's reading.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from physlm.worlds.igsm.judge import REASONS, Verdict, judge
from physlm.worlds.igsm.oracle import MOD, Node, Reading, Taxonomy, read_problem
from physlm.worlds.igsm.types import Param, Problem

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

# ------------------------------------------------------------------------------ the hand-solved problem

WORLD = Taxonomy.from_dict({"categorizations": [{"name": "Zoo Animals", "layers": [
    {"category": "Zoo", "subcategories": [{"name": "Zoos", "items": ["Oak Zoo", "Pine Zoo"]}]},
    {"category": "Enclosure", "subcategories": [{"name": "Houses", "items": ["Reptile House", "Bird Hall"]}]},
    {"category": "Animal", "subcategories": [{"name": "Pets", "items": ["Lizard", "Parrot"]}]},
    {"category": "Bone", "subcategories": [{"name": "Long", "items": ["Femur"]}]},
]}, {"name": "Other", "layers": [{"category": "Town", "subcategories": [{"name": "Towns", "items": ["Elm Town"]}]}]}]})

STATEMENTS = [
    "The number of each Oak Zoo's Bird Hall equals each Bird Hall's Animal.",
    "The number of each Bird Hall's Lizard equals the difference of each Bird Hall's Parrot and each Reptile House's Lizard.",
    "The number of each Pine Zoo's Bird Hall equals the sum of each Oak Zoo's Bird Hall and each Bird Hall's Parrot.",
    "The number of each Reptile House's Lizard equals 2.",
    "The number of each Oak Zoo's Reptile House equals 4 times as much as the sum of each Bird Hall's Parrot, "
    "each Bird Hall's Lizard and each Reptile House's Lizard.",
    "The number of each Bird Hall's Parrot equals 2 more than each Reptile House's Lizard.",
]
QUESTION = "How many Animal does Oak Zoo have?"
TEXT = " ".join(STATEMENTS + [QUESTION])
# Values by hand: RH's Lizard a = 2; BH's Parrot b = 2 + a = 4; BH's Lizard c = b - a = 2; BH's Animal
# d = b + c = 6; RH's Animal e = a = 2; OZ's RH f = 4 * (b + c + a) = 32 = 9; OZ's BH g = d = 6;
# OZ's Animal h = f * e + g * d = 18 + 36 = 8; PZ's BH = g + b = 10; OZ's Enclosure = f + g = 15;
# PZ's Enclosure = 10; PZ's Animal = 10 * 6 = 14. op = 1+1+1+1+1+3+1+3 = 12.
SOLUTION = [
    "Define Reptile House's Lizard as a; so a = 2.",
    "Define Bird Hall's Parrot as b; so b = 2 + a = 2 + 2 = 4.",
    "Define Bird Hall's Lizard as c; so c = b - a = 4 - 2 = 2.",
    "Define Bird Hall's Animal as d; so d = b + c = 4 + 2 = 6.",
    "Define Reptile House's Animal as e; so e = a = 2.",
    "Define Oak Zoo's Reptile House as f; i = b + c = 4 + 2 = 6; j = i + a = 6 + 2 = 8; so f = 4 * j = 4 * 8 = 9.",
    "Define Oak Zoo's Bird Hall as g; so g = d = 6.",
    "Define Oak Zoo's Animal as h; k = f * e = 9 * 2 = 18; l = g * d = 6 * 6 = 13; so h = k + l = 18 + 13 = 8.",
]
# name, abstract, deps, combine, rng_op, const, value
PARAMS = [
    ("Oak Zoo's Reptile House", False, (3, 4, 2), "sum", "mul", 4, 9),
    ("Oak Zoo's Bird Hall", False, (8,), "copy", None, None, 6),
    ("Reptile House's Lizard", False, (), "const", None, 2, 2),
    ("Bird Hall's Parrot", False, (2,), "copy", "add", 2, 4),
    ("Bird Hall's Lizard", False, (3, 2), "diff", None, None, 2),
    ("Pine Zoo's Bird Hall", False, (1, 3), "sum", None, None, 10),
    ("Oak Zoo's Enclosure", True, (1, 0), "sum", None, None, 15),
    ("Oak Zoo's Animal", True, (0, 9, 1, 8), "sumprod", None, None, 8),
    ("Bird Hall's Animal", True, (3, 4), "sum", None, None, 6),
    ("Reptile House's Animal", True, (2,), "copy", None, None, 2),
    ("Pine Zoo's Enclosure", True, (5,), "copy", None, None, 10),
    ("Pine Zoo's Animal", True, (5, 8), "sumprod", None, None, 14),
]
NECESSARY = frozenset({0, 1, 2, 3, 4, 7, 8, 9})


def hand_problem() -> Problem:
    params = tuple(Param(n, a, d, c, r, k, v) for n, a, d, c, r, k, v in PARAMS)
    return Problem(params=params, sentences=(1, 4, 5, 2, 0, 3), query=7, necessary=NECESSARY, order=(2, 3, 4, 8, 9, 0, 1, 7),
                   fmt="pq", problem=TEXT, question=QUESTION, solution=" ".join(SOLUTION), answer=8, op=12,
                   categorization=0, layers=(0, 1, 2), bucket=0)


def test_oracle_reads_the_hand_problem() -> None:
    problem = hand_problem()
    for text, fmt in ((TEXT, "pq"), (" ".join([QUESTION] + STATEMENTS), "qp")):
        r = read_problem(text, WORLD)
        assert (r.fmt, r.query, r.answer, r.op) == (fmt, "Oak Zoo's Animal", 8, 12)
        assert_reading_matches(r, dataclasses.replace(problem, fmt=fmt))
    assert read_problem(TEXT, WORLD).sentences == tuple(s[len("The number of each "):s.index(" equals")] for s in STATEMENTS)


@pytest.mark.parametrize("text, message", [
    (TEXT.replace(" and each Reptile House's Lizard.", ", each Reptile House's Lizard."), "malformed parameter list"),
    (TEXT.replace("Lizard and each Reptile", "Lizard, and each Reptile"), "not a parameter name"),
    (TEXT.replace("equals 2.", "equals 02."), "canonical"),
    (TEXT.replace("equals 2.", "equals 23."), "out of range"),
    (TEXT.replace("4 times as much", "0 times as much"), "out of range"),
    (TEXT.replace("Pine Zoo's Bird Hall equals", "Pine Zoo's Lizard equals"), "layer below"),
    (TEXT.replace("Pine Zoo's Bird Hall equals", "Elm Town's Bird Hall equals"), "layer below"),
    (TEXT.replace("Pine Zoo's Bird Hall equals", "Fir Zoo's Bird Hall equals"), "not an item"),
    (TEXT.replace("of each Oak Zoo's Bird Hall and", "of each Pine Zoo's Lizard and"), "neither stated nor implied"),
    (TEXT.replace("How many Animal does Oak Zoo", "How many Bone does Oak Zoo"), "neither stated nor implied"),
    (TEXT.replace(" How many Animal does Oak Zoo have?", ""), "one question"),
    (TEXT.replace("Animal. The", "Animal.  The"), "single spaces"),
    (" ".join(STATEMENTS + [STATEMENTS[3], QUESTION]), "stated twice"),
    (TEXT.replace("equals 2.", "equals each Oak Zoo's Reptile House."), "cycle"),
    (TEXT.replace("equals the difference of", "is the difference of"), "not a problem sentence"),
])
def test_oracle_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        read_problem(text, WORLD)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("world, message", [
    ({"categorizations": [{"layers": [{"category": "A", "subcategories": [{"items": ["Ox", "Ox"]}]}]}]}, "appears twice"),
    ({"categorizations": [{"layers": [{"subcategories": []}]}]}, "not the categorization schema"),
    ([], "not the categorization schema"),
])
def test_taxonomy_rejects_malformed_worlds(world, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Taxonomy.from_dict(world)


def test_judge_accepts_the_hand_solution() -> None:
    problem = hand_problem()
    v = judge(problem, " ".join(SOLUTION), 8)
    assert v == Verdict(True, None, 8, 0, 0, 8)
    assert judge(problem, "\n".join(SOLUTION) + "\n", " 8 ").correct
    reordered = [SOLUTION[i] for i in (0, 4, 1, 2, 5, 3, 6, 7)]  # another topological order
    reordered[5] = reordered[5].replace("so d = b + c = 4 + 2", "so d = c + b = 2 + 4")  # commuted
    reordered[4] = reordered[4].replace("i = b + c = 4 + 2 = 6; j = i + a = 6 + 2 = 8; so f = 4 * j = 4 * 8",
                                        "i = a + c = 2 + 2 = 4; j = b + i = 4 + 4 = 8; so f = j * 4 = 8 * 4")
    assert judge(problem, " ".join(reordered), 8).correct


def test_judge_counts_unnecessary_parameters() -> None:
    problem = hand_problem()
    extra = ["Define Oak Zoo's Enclosure as m; so m = f + g = 9 + 6 = 15.",
             "Define Pine Zoo's Bird Hall as n; so n = g + b = 6 + 4 = 10.",
             "Define Pine Zoo's Animal as o; so o = n * d = 10 * 6 = 14."]
    v = judge(problem, " ".join(SOLUTION + extra), 8)
    assert (v.correct, v.unnecessary_params, v.unnecessary_ops) == (True, 3, 3)
    v = judge(problem, " ".join(SOLUTION[:7] + extra[:1] + SOLUTION[7:]), 8)
    assert (v.correct, v.unnecessary_params, v.unnecessary_ops) == (True, 1, 1)


def _edit(index: int, old: str, new: str) -> str:
    sentences = list(SOLUTION)
    assert old in sentences[index]
    sentences[index] = sentences[index].replace(old, new)
    return " ".join(sentences)


S = " ".join(SOLUTION)
SQUARED = "amnopqrstuvwxyzABCDEFGHIJ"  # a, then 24 letters each the square of the one before


ERROR_CASES = [  # (solution, answer, reason, sentence index, parameter)
    (S.replace("as a;", "a;"), 8, "parse", 0, None),
    (S.replace("so h = k + l = 18 + 13 = 8.", "so h = k + l = 18 + 13 = 8"), 8, "parse", 7, "Oak Zoo's Animal"),
    (_edit(1, "2 + a = 2 + 2", "2 + a = 2 * 2"), 8, "parse", 1, "Bird Hall's Parrot"),
    (_edit(1, "so b", "so z"), 8, "parse", 1, "Bird Hall's Parrot"),
    (_edit(1, "so b = ", "b = "), 8, "parse", 1, "Bird Hall's Parrot"),
    (_edit(0, "so a = 2", "so a = 2222222222222"), 8, "parse", 0, "Reptile House's Lizard"),
    (S.replace(".", ". Answer: 8.", 1), 8, "parse", 1, None),
    ("Define Oak Zoo's Lizard as z; so z = 1. " + S, 8, "unknown_param", 0, "Oak Zoo's Lizard"),
    (" ".join(SOLUTION[:2] + ["Define Bird Hall's Parrot as z; so z = 2 + a = 2 + 2 = 4."] + SOLUTION[2:]), 8,
     "redefined", 2, "Bird Hall's Parrot"),
    (_edit(7, "l = g * d = 6 * 6 = 13; so h = k + l", "i = g * d = 6 * 6 = 13; so h = k + i"), 8, "redefined", 7,
     "Oak Zoo's Animal"),
    (_edit(2, "as c; so c", "as a; so a"), 8, "redefined", 2, "Bird Hall's Lizard"),
    (_edit(3, "so d = b + c", "so d = b + x"), 8, "undefined_letter", 3, "Bird Hall's Animal"),
    (_edit(7, "l = g * d = 6 * 6 = 13; so h = k + l = 18 + 13 = 8", "so h = k + i = 18 + 6 = 1"), 8, "undefined_letter", 7,
     "Oak Zoo's Animal"),
    (_edit(3, "so d = b + c = 4 + 2 = 6", "so d = b + d = 4 + 2 = 6"), 8, "undefined_letter", 3, "Bird Hall's Animal"),
    (_edit(3, "so d = b + c = 4 + 2", "so d = b + a = 4 + 2"), 8, "wrong_deps", 3, "Bird Hall's Animal"),
    (_edit(4, "so e = a = 2", "so e = c = 2"), 8, "wrong_deps", 4, "Reptile House's Animal"),
    (_edit(1, "2 + a = 2 + 2 = 4", "3 + a = 3 + 2 = 5"), 8, "wrong_deps", 1, "Bird Hall's Parrot"),
    (_edit(0, "so a = 2", "so a = 3"), 8, "wrong_deps", 0, "Reptile House's Lizard"),
    (_edit(5, "j = i + a = 6 + 2 = 8; so f = 4 * j = 4 * 8 = 9", "so f = 4 * i = 4 * 6 = 1"), 8, "wrong_deps", 5,
     "Oak Zoo's Reptile House"),
    (_edit(5, "so f = 4 * j = 4 * 8 = 9", "m = 4 * a = 4 * 2 = 8; so f = 4 * j = 4 * 8 = 9"), 8, "wrong_deps", 5,
     "Oak Zoo's Reptile House"),
    (_edit(1, "so b = 2 + a = 2 + 2 = 4", "; ".join(f"{x} = {w} * {w} = 2 * 2 = 4" for w, x in zip(SQUARED, SQUARED[1:]))
           + "; so b = J + J = 4 + 4 = 8"), 8, "wrong_deps", 1, "Bird Hall's Parrot"),  # 2^25 leaves: must stay cheap
    (_edit(7, "so h = k + l = 18 + 13 = 8", "so h = k + l = 18 + 13 = 9"), 8, "arithmetic", 7, "Oak Zoo's Animal"),
    (_edit(7, "k = f * e = 9 * 2 = 18", "k = f * e = 9 * 3 = 4"), 8, "arithmetic", 7, "Oak Zoo's Animal"),
    (_edit(6, "so g = d = 6", "so g = d = 7"), 8, "arithmetic", 6, "Oak Zoo's Bird Hall"),
    (_edit(1, "2 + a = 2 + 2", "2 + a = 3 + 2"), 8, "arithmetic", 1, "Bird Hall's Parrot"),
    (_edit(2, "so c = b - a = 4 - 2 = 2", "so c = a - b = 2 - 4 = 21"), 8, "wrong_value", 2, "Bird Hall's Lizard"),
    (_edit(7, "so h = k + l = 18 + 13 = 8", "so h = k * l = 18 * 13 = 4"), 8, "wrong_value", 7, "Oak Zoo's Animal"),
    (_edit(1, "so b = 2 + a = 2 + 2 = 4", "so b = 2 * a = 2 * 2 = 4"), 8, "wrong_formula", 1, "Bird Hall's Parrot"),
    (" ".join(SOLUTION[:7]), 8, "missing_necessary", 7, "Oak Zoo's Animal"),
    (" ".join(SOLUTION[:3] + SOLUTION[4:]), 8, "undefined_letter", 5, "Oak Zoo's Bird Hall"),
    (" ".join(SOLUTION[:4] + SOLUTION[5:]), 8, "undefined_letter", 6, "Oak Zoo's Animal"),
    ("", 8, "missing_necessary", 0, "Oak Zoo's Animal"),
    (S, 7, "wrong_answer", 8, "Oak Zoo's Animal"),
    (S, None, "wrong_answer", 8, "Oak Zoo's Animal"),
    (S, "eight", "wrong_answer", 8, "Oak Zoo's Animal"),
    (S, 31, "wrong_answer", 8, "Oak Zoo's Animal"),
]


@pytest.mark.parametrize("solution, answer, reason, sentence, param", ERROR_CASES)
def test_judge_error_codes(solution: str, answer, reason: str, sentence: int, param: str | None) -> None:
    v = judge(hand_problem(), solution, answer)
    assert not v.correct
    assert v.first_error is not None
    assert (v.first_error.reason, v.first_error.sentence, v.first_error.param) == (reason, sentence, param), v.first_error


def test_every_reason_is_exercised() -> None:
    assert {case[2] for case in ERROR_CASES} == set(REASONS)


def test_judge_never_raises_on_garbage() -> None:
    problem = hand_problem()
    rng = random.Random(0)
    tokens = S.replace(".", " .").replace(";", " ;").split() + ["=", "+", "*", "-", "so", "Define", "as", ".", "99", "'s"]
    texts = [S[:k] for k in range(0, len(S), 7)] + [S[:k] + S[k + 3:] for k in range(0, len(S), 11)]
    texts += [" ".join(rng.choice(tokens) for _ in range(rng.randint(1, 60))) for _ in range(300)]
    for text in texts:
        v = judge(problem, text, rng.choice([8, None, "x"]))
        assert v.correct == (text == S and v.parsed_answer == 8)
        if not v.correct:
            assert v.first_error is not None and v.first_error.reason in REASONS


def assert_reading_matches(r: Reading, problem: Problem) -> None:
    """The oracle's reading of the problem text equals the generator's facts (names, graph, values, sets)."""
    names = [p.name for p in problem.params]
    assert set(r.nodes) == set(names)
    for p in problem.params:
        node = r.nodes[p.name]
        assert (node.abstract, node.combine, node.rng_op, node.const) == (p.abstract, p.combine, p.rng_op, p.const), p.name
        assert Counter(node.deps) == Counter(names[d] for d in p.deps) and r.values[p.name] == p.value, p.name
    assert r.query == names[problem.query] and r.answer == problem.answer and r.op == problem.op
    assert r.necessary == {names[i] for i in problem.necessary}
    assert r.sentences == tuple(names[i] for i in problem.sentences) and r.fmt == problem.fmt


# -------------------------------------------------------------------------------- generated problems

def split_solution(solution: str) -> list[str]:
    return re.split(r"(?<=\.) ", solution) if solution else []


def defined_name(sentence: str) -> str:
    return sentence[len("Define "):sentence.index(" as ")]


def arith(op: str, x: int, y: int) -> int:
    return (x + y if op == "+" else x - y if op == "-" else x * y) % MOD


def reference_ok(r: Reading, solution: str, answer: int | None) -> bool:
    """A second decision, from the oracle's reading alone: run every step; each sentence must use exactly its
    parameter's dependencies (the oracle's graph) and constant, show and compute every number right and reach
    the oracle's value; the solution must cover the necessary set, and the answer be the oracle's."""
    param_of: dict[str, str] = {}  # parameter letter -> parameter name
    taken: set[str] = set()        # every letter bound so far
    for sentence in split_solution(solution):
        m = re.fullmatch(r"Define (.+) as ([A-Za-z]); (.+)\.", sentence)
        if m is None or m[1] not in r.nodes or m[1] in param_of.values() or not m[3].split("; ")[-1].startswith(f"so {m[2]} = "):
            return False
        steps: dict[str, tuple[int, Counter]] = {}  # this sentence's letters -> (value, leaves)
        used: set[str] = set()
        for part in m[3].split("; "):
            target, expr, *shown = part.removeprefix("so ").split(" = ")
            operands, ops = expr.split()[0::2], expr.split()[1::2]
            if target in taken or target in steps or not all(o.isdigit() or o in steps or o in param_of for o in operands):
                return False
            values = [int(o) if o.isdigit() else steps[o][0] if o in steps else r.values[param_of[o]] for o in operands]
            result = arith(ops[0], *values) if ops else values[0]
            want = [f"{values[0]} {ops[0]} {values[1]}", str(result)] if ops else [] if operands[0].isdigit() else [str(result)]
            if shown != want:
                return False
            used.update(operands)
            leaves = [steps[o][1] if o in steps else Counter([param_of.get(o, o)]) for o in operands]
            steps[target] = (result, sum(leaves, Counter()))
        node = r.nodes[m[1]]
        value, leaves = steps[m[2]]
        if value != r.values[m[1]] or leaves != Counter(node.deps) + Counter([] if node.const is None else [str(node.const)]) \
                or set(steps) - used != {m[2]}:
            return False
        param_of[m[2]] = m[1]
        taken.update(steps)
    return r.necessary <= set(param_of.values()) and answer == r.answer


def render(node: Node, letter: dict[str, str], values: dict[str, int], fresh: Iterator[str], rng: random.Random) -> str:
    """A correct solution sentence for `node`, its operands in a random valid order; binds node's letter."""
    plan: list[tuple[str | int, str, str | int]] = []  # (left, op, right): letters, numbers (as text), step indices

    def step(x: str | int, op: str, y: str | int) -> int:
        plan.append((y, op, x) if op != "-" and rng.random() < 0.5 else (x, op, y))
        return len(plan) - 1

    xs: list[str | int] = [letter[d] for d in node.deps]
    if node.combine == "sumprod":
        xs = [step(p, "*", q) for p, q in zip(xs[0::2], xs[1::2])]
    if node.combine == "diff":
        acc = step(xs[0], "-", xs[1])
    else:
        rng.shuffle(xs)
        acc = functools.reduce(lambda a, b: step(a, "+", b), xs) if xs else None
    if node.rng_op is not None:
        step(str(node.const), "+" if node.rng_op == "add" else "*", acc)  # type: ignore[arg-type]
    v = letter[node.name] = next(fresh)
    head = f"Define {node.name} as {v}; "
    if not plan:
        return head + (f"so {v} = {node.const}." if node.combine == "const" else f"so {v} = {acc} = {values[node.deps[0]]}.")
    names = [next(fresh) for _ in plan[:-1]] + [v]
    shown = {letter[d]: values[d] for d in node.deps}
    parts = []
    for k, (x, op, y) in enumerate(plan):
        x, y = (names[o] if isinstance(o, int) else o for o in (x, y))
        xv, yv = (int(o) if o.isdigit() else shown[o] for o in (x, y))
        shown[names[k]] = arith(op, xv, yv)
        parts.append(f"{names[k]} = {x} {op} {y} = {xv} {op} {yv} = {shown[names[k]]}")
    return head + "; ".join(parts[:-1] + ["so " + parts[-1]]) + "."


def random_order(names: list[str], r: Reading, rng: random.Random) -> list[str]:
    """A uniform-choice topological order of `names` under the oracle's dependencies."""
    left, out = list(names), []
    while left:
        ready = [n for n in left if all(d in out or d not in left for d in r.nodes[n].deps)]
        out.append(rng.choice(ready))
        left.remove(out[-1])
    return out


def letters_of(sentences: list[str]) -> dict[str, str]:
    """Parameter name -> its letter in a solution."""
    return {defined_name(s): s[s.index(" as ") + 4] for s in sentences}


def reletter(sentences: list[str], rng: random.Random) -> list[str]:
    """The same sentences with every letter renamed by one random permutation of the 52 letters."""
    perm = dict(zip(LETTERS, rng.sample(LETTERS, len(LETTERS))))
    cut = [s.index(" as ") + 4 for s in sentences]
    return [s[:c] + re.sub(r"\b[A-Za-z]\b", lambda m: perm[m[0]], s[c:]) for s, c in zip(sentences, cut)]


TAXONOMY = Taxonomy.load()


@pytest.fixture(scope="module")
def generated() -> list[tuple[Problem, Reading]]:
    """2,000 iGSM-med problems (a quarter qp), 300 iGSM-hard ones (a third at the OOD ops 28..32) and 100 med
    `reask` problems (another query: unnecessary parameters become necessary, ops up to 52)."""
    from physlm.worlds.igsm.graph import IgsmSpec
    from physlm.worlds.igsm.problems import eval_problem, generate_problem
    from physlm.worlds.igsm.knowledge import load_knowledge

    world = load_knowledge()
    med, hard = IgsmSpec(max_op=15, max_edge=20), IgsmSpec(max_op=21, max_edge=28)
    med_qp = dataclasses.replace(med, fmt="qp")
    problems = [generate_problem(med if i % 4 else med_qp, 11, i, split="train", knowledge=world) for i in range(2000)]
    problems += [generate_problem(hard, 12, i, split="test", force_op=28 + i % 5 if i % 3 == 0 else None, knowledge=world)
                 for i in range(300)]
    problems += [eval_problem(med, "reask", 13, i, knowledge=world) for i in range(100)]
    return [(p, read_problem(p.problem, TAXONOMY)) for p in problems]


def test_oracle_reads_generated_problems(generated) -> None:
    for problem, reading in generated:
        assert_reading_matches(reading, problem)
    assert {p.fmt for p, _ in generated} == {"pq", "qp"} and max(p.op for p, _ in generated) > 32


def test_judge_accepts_generated_and_reordered_solutions(generated) -> None:
    rng = random.Random(1)
    for problem, r in generated:
        sentences = split_solution(problem.solution)
        assert judge(problem, problem.solution, problem.answer) == Verdict(True, None, len(sentences), 0, 0, problem.answer)
        assert reference_ok(r, problem.solution, problem.answer)
        by_name = dict(zip(map(defined_name, sentences), sentences))
        other = " ".join(reletter([by_name[n] for n in random_order(list(by_name), r, rng)], rng))
        assert judge(problem, other, problem.answer).correct and reference_ok(r, other, problem.answer), other


def test_judge_counts_inserted_unnecessary_sentences(generated) -> None:
    rng = random.Random(2)
    inserted = brute = 0
    for k, (problem, r) in enumerate(generated):
        sentences = split_solution(problem.solution)
        letter = letters_of(sentences)
        used = set(re.findall(r"\b[A-Za-z]\b", problem.solution.replace("'s", "")))
        free = [x for x in LETTERS if x not in used]
        extra = [n for n, node in r.nodes.items() if n not in r.necessary and set(node.deps) <= r.necessary]
        if extra:  # one unnecessary, computable sentence at a random place after its dependencies
            node = r.nodes[rng.choice(extra)]
            if node.op <= len(free):
                after = max((i + 1 for i, s in enumerate(sentences) if defined_name(s) in node.deps), default=0)
                at = rng.randint(after, len(sentences))
                sentence = render(node, dict(letter), dict(r.values), iter(rng.sample(free, len(free))), rng)
                text = " ".join(sentences[:at] + [sentence] + sentences[at:])
                v = judge(problem, text, problem.answer)
                assert (v.correct, v.unnecessary_params, v.unnecessary_ops) == (True, 1, node.op), (text, v)
                assert reference_ok(r, text, problem.answer)
                inserted += 1
        if k % 3 == 0 and sum(node.op for node in r.nodes.values()) <= len(LETTERS):  # level 0: every parameter, any order
            fresh, letter = iter(rng.sample(LETTERS, len(LETTERS))), {}
            text = " ".join(render(r.nodes[n], letter, dict(r.values), fresh, rng) for n in random_order(list(r.nodes), r, rng))
            v = judge(problem, text, problem.answer)
            unnecessary = [node for n, node in r.nodes.items() if n not in r.necessary]
            want = (True, len(unnecessary), sum(n.op for n in unnecessary))
            assert (v.correct, v.unnecessary_params, v.unnecessary_ops) == want, (text, v)
            assert reference_ok(r, text, problem.answer)
            brute += 1
    assert inserted > len(generated) // 3 and brute > len(generated) // 9, (inserted, brute)


def mutations(problem: Problem, r: Reading, rng: random.Random) -> Iterator[tuple[str, int | None, tuple[str, int, str]]]:
    """(solution, answer, expected (reason, sentence, parameter)) for each mutation, expected from the oracle."""
    sentences = split_solution(problem.solution)
    names = [defined_name(s) for s in sentences]
    n = len(sentences)
    steps = [(i, j) for i, s in enumerate(sentences) for j, part in enumerate(s[:-1].split("; ")) if part.count(" = ") >= 2]
    if steps:  # one arithmetic result changed
        i, j = rng.choice(steps)
        parts = sentences[i][:-1].split("; ")
        head, result = parts[j].rsplit(" = ", 1)
        parts[j] = f"{head} = {(int(result) + rng.randint(1, MOD - 1)) % MOD}"
        yield " ".join(sentences[:i] + ["; ".join(parts) + "."] + sentences[i + 1:]), problem.answer, ("arithmetic", i, names[i])
    i = rng.randrange(n)  # a sentence dropped: its first user now refers to an undefined letter, or it was the query
    users = [j for j in range(i + 1, n) if names[i] in r.nodes[names[j]].deps]
    expected = ("undefined_letter", users[0] - 1, names[users[0]]) if users else ("missing_necessary", n - 1, names[i])
    yield " ".join(sentences[:i] + sentences[i + 1:]), problem.answer, expected
    pairs = [(i, j) for j in range(n) for i in range(j) if names[i] in r.nodes[names[j]].deps]
    if pairs:  # a sentence swapped with one it depends on
        i, j = rng.choice(pairs)
        swapped = list(sentences)
        swapped[i], swapped[j] = sentences[j], sentences[i]
        yield " ".join(swapped), problem.answer, ("undefined_letter", i, names[j])
    yield problem.solution, (r.answer + rng.randint(1, MOD - 1)) % MOD, ("wrong_answer", n, r.query)


def test_judge_rejects_mutations(generated) -> None:
    rng = random.Random(3)
    seen = Counter()
    for problem, r in generated:
        for text, answer, expected in mutations(problem, r, rng):
            v = judge(problem, text, answer)
            assert not v.correct and v.first_error is not None
            assert (v.first_error.reason, v.first_error.sentence, v.first_error.param) == expected, (text, v)
            assert not reference_ok(r, text, answer)
            seen[expected[0]] += 1
    assert set(seen) == {"arithmetic", "undefined_letter", "missing_necessary", "wrong_answer"}
    assert seen["arithmetic"] > len(generated) // 2, seen


# ------------------------------------------------------------------------------------- command line

def _generations(tmp_path, *, with_answers: bool = True):
    import polars as pl

    from physlm.worlds.igsm.text import ANS
    from physlm.worlds.igsm.graph import MED
    from physlm.worlds.igsm.problems import generate_problem
    from physlm.worlds.igsm.frames import problems_frame

    problems = [generate_problem(MED, 5, i) for i in range(4)]
    first = split_solution(problems[1].solution)
    texts = [problems[0].solution, " ".join(first[1:] + first[:1]) if len(first) > 1 else "", problems[2].solution, "so so ="]
    answers = [problems[0].answer, problems[1].answer, (problems[2].answer + 1) % MOD, None]
    frame = problems_frame(problems, range(4), split="test")
    if with_answers:
        frame = frame.with_columns(pl.Series("generation", texts), pl.Series("generated_answer", answers, dtype=pl.Int64))
    else:
        frame = frame.with_columns(pl.Series("generation", [f"{t} {ANS} {a}" for t, a in zip(texts, answers)]))
    path = tmp_path / "generations.parquet"
    frame.write_parquet(path)
    return path, problems


@pytest.mark.parametrize("with_answers", [True, False])
def test_cli_judges_a_parquet_file(tmp_path, capsys, with_answers: bool) -> None:
    import polars as pl

    from physlm.worlds.igsm.judge import main

    path, problems = _generations(tmp_path, with_answers=with_answers)
    out = tmp_path / "verdicts.parquet"
    assert main([str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 generations, accuracy 0.2500" in printed and "wrong_answer 1" in printed and "parse 1" in printed
    verdicts = pl.read_parquet(out)
    assert verdicts["correct"].to_list() == [True, False, False, False]
    assert verdicts["error_reason"].to_list() == [None, "undefined_letter" if problems[1].op > 1 else "missing_necessary",
                                                  "wrong_answer", "parse"]
    assert verdicts["op"].to_list() == [p.op for p in problems]
    assert verdicts["parsed_answer"].to_list()[:3] == [problems[0].answer, problems[1].answer, (problems[2].answer + 1) % MOD]


def test_cli_bad_files_fail_in_one_line(tmp_path) -> None:
    import polars as pl

    path, _ = _generations(tmp_path)
    bad = {"not_parquet.parquet": None, "no_generation.parquet": pl.read_parquet(path).drop("generation"),
           "broken_graph.parquet": pl.read_parquet(path).with_columns(pl.Series("query", [999] * 4, dtype=pl.Int16))}
    for name, frame in bad.items():
        target = tmp_path / name
        if frame is None:
            target.write_text("not a parquet file")
        else:
            frame.write_parquet(target)
        out = tmp_path / f"{name}.verdicts.parquet"
        run = subprocess.run([sys.executable, "-m", "physlm.worlds.igsm.judge", str(target), "--out", str(out)],
                             capture_output=True, text=True)
        assert run.returncode == 1 and run.stdout == "", (name, run)
        assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, (name, run.stderr)
        assert not out.exists() and [p.name for p in tmp_path.iterdir() if "verdicts" in p.name] == []
