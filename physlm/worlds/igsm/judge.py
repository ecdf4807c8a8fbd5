"""The iGSM full-solution checker (Part 2.1, SPEC 2.3): a solution counts only if every step is right.

`judge(problem, solution, answer)` reads a solution written in the contract's format
(`Define {name} as {v}; {steps}so {v} = ... .`, see `physlm.worlds.igsm.types`) sentence by sentence and
accepts ANY valid order of the sentences. For each sentence, in this order, it checks:

- `parse`            the sentence has the format (whitespace runs count as one space);
- `unknown_param`    the defined name is a parameter of the problem (instance or abstract);
- `redefined`        the parameter was not defined before, and every letter it binds (its own and its steps')
                     is new in the solution (the contract makes all letters distinct);
- `undefined_letter` every operand letter is an earlier sentence's parameter or an earlier step of this one;
- `wrong_deps`       the parameters the sentence's value is built from (the leaves of its expression, step
                     letters expanded) are exactly the parameter's dependencies, as a multiset, and its numbers
                     are exactly the RNG constant (or none); every step feeds the final value. So every
                     dependency was computed earlier;
- `arithmetic`       in each step `x op y = xv op yv = r` the shown values are the letters' (or numbers')
                     values and r = xv op yv mod 23 (a copy `so v = u = w` shows u's value w);
- `wrong_value`      the sentence's value is the parameter's true value;
- `wrong_formula`    the expression is the parameter's formula: both, as polynomials mod 23 in the
                     dependencies, are equal. As each dependency and the constant are used exactly once, this
                     accepts exactly the reorderings (q + p, p + (q + r), X + c, products and sums of products
                     in any order) and catches a wrong formula whose value merely coincides (c * p for c + p
                     at p = c = 2); a difference must be p1 - p2.
After the last sentence: `missing_necessary` (a necessary parameter, the query included, is not defined) and
`wrong_answer` (the answer, given separately, is not the query's value; None or text that is not a number
counts as wrong). The first failing check is the verdict's `first_error`; malformed text never raises.

For the level-1 reasoning statistics the verdict counts the parameters defined (before any error) that are
not necessary, and their operations. `tests/test_igsm_judge.py` checks every error code on a hand-solved
problem and, on thousands of generated problems, that the judge accepts the generator's solution and other
valid orders, and rejects mutated solutions exactly when a second decision, made from the independent
oracle's reading of the problem text (`physlm.worlds.igsm.oracle`), rejects them.

Command line: `python -m physlm.worlds.igsm.judge GENERATIONS.parquet [--out verdicts.parquet]`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from physlm.errors import PhyslmError
from physlm.io import atomic_path, read_parquet
from physlm.worlds.igsm.text import parse_generation
from physlm.worlds.igsm.frames import FRAME_SCHEMA, problem_from_row
from physlm.worlds.igsm.types import MOD, Param, Problem

Reason = Literal["parse", "unknown_param", "redefined", "undefined_letter", "wrong_deps", "arithmetic",
                 "wrong_value", "wrong_formula", "missing_necessary", "wrong_answer"]
REASONS: tuple[Reason, ...] = ("parse", "unknown_param", "redefined", "undefined_letter", "wrong_deps", "arithmetic",
                               "wrong_value", "wrong_formula", "missing_necessary", "wrong_answer")


@dataclass(frozen=True)
class JudgeError:
    sentence: int        # 0-based sentence index; the number of sentences for missing_necessary / wrong_answer
    param: str | None    # the parameter concerned, when known
    reason: Reason
    detail: str          # a short human-readable explanation


@dataclass(frozen=True)
class Verdict:
    correct: bool
    first_error: JudgeError | None
    n_sentences: int
    unnecessary_params: int    # parameters defined (before any error) outside the necessary set
    unnecessary_ops: int       # the sum of their op
    parsed_answer: int | None  # the answer as a number 0..22, None if absent or not a number


# ------------------------------------------------------------------------------------------ parsing

Operand = str | int  # a letter or a number


@dataclass(frozen=True)
class Step:
    """`target = left [op right] [= shown] = result` (the final step of a sentence is `so target = ...`)."""

    target: str
    left: Operand
    op: str | None             # "+", "-", "*"; None for a constant `v = 12` or a copy `v = u = 5`
    right: Operand | None
    shown: tuple[int, ...]     # the values written for the operands
    result: int


@dataclass(frozen=True)
class Sentence:
    name: str
    letter: str
    steps: tuple[Step, ...]    # the last one defines `letter`


class _Malformed(Exception):
    """A sentence that does not have the solution format (becomes a `parse` verdict, never escapes)."""

    def __init__(self, detail: str, name: str | None = None) -> None:
        super().__init__(detail)
        self.name = name  # the parameter, when the sentence's head `Define <name> as <letter>;` was readable


def _number(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise _Malformed(f"expected a number, got {text!r}")
    return int(text)


def _operand(text: str) -> Operand:
    return text if re.fullmatch(r"[A-Za-z]", text) else _number(text)


def _step(text: str) -> Step:
    pieces = text.split(" = ")
    target, expr = pieces[0], pieces[1].split(" ") if len(pieces) > 1 else []
    if not re.fullmatch(r"[A-Za-z]", target):
        raise _Malformed(f"step {text!r} does not start with a letter and ' = '")
    if len(expr) == 1:
        left = _operand(expr[0])
        if isinstance(left, int) and len(pieces) == 2:
            return Step(target, left, None, None, (left,), left)
        if isinstance(left, str) and len(pieces) == 3:
            value = _number(pieces[2])
            return Step(target, left, None, None, (value,), value)
    elif len(expr) == 3 and expr[1] in ("+", "-", "*") and len(pieces) == 4:
        shown = pieces[2].split(" ")
        if len(shown) != 3 or shown[1] != expr[1]:
            raise _Malformed(f"step {text!r} does not show its operation's numbers")
        return Step(target, _operand(expr[0]), expr[1], _operand(expr[2]), (_number(shown[0]), _number(shown[2])),
                    _number(pieces[3]))
    raise _Malformed(f"step {text!r} is not 'x = c', 'x = y = v' or 'x = y op z = v op w = r'")


def _parse_sentence(text: str) -> Sentence:
    """One solution sentence without its final '.'; raises `_Malformed`."""
    m = re.fullmatch(r"Define (.+?) as ([A-Za-z]); (.*)", text)
    if m is None:
        raise _Malformed(f"{text[:60]!r} does not start 'Define <parameter> as <letter>; '")
    try:
        *steps, final = m[3].split("; ")
        if not final.startswith("so "):
            raise _Malformed(f"the last step of {text[:60]!r} does not start with 'so '")
        parsed = tuple(_step(s) for s in (*steps, final[len("so "):]))
        if parsed[-1].target != m[2]:
            raise _Malformed(f"{text[:60]!r} defines {m[2]} but concludes 'so {parsed[-1].target}'")
    except _Malformed as err:
        raise _Malformed(str(err), m[1]) from None
    return Sentence(m[1], m[2], parsed)


def _split_sentences(solution: str) -> tuple[list[str], bool]:
    """(sentences without their '.', whether the last one is terminated); whitespace runs count as one space."""
    text = " ".join(solution.split())
    if not text:
        return [], True
    *done, tail = text.split(".")
    return [s.strip() for s in done] + ([tail.strip()] if tail.strip() else []), not tail.strip()


# ------------------------------------------------------------------------- polynomials mod 23

Poly = Mapping[tuple[int, ...], int]  # sorted tuple of parameter indices (a monomial) -> coefficient 1..22


def _poly_add(p: Poly, q: Poly, sign: int = 1) -> Poly:
    out = dict(p)
    for mono, c in q.items():
        out[mono] = (out.get(mono, 0) + sign * c) % MOD
    return {m: c for m, c in out.items() if c}


def _poly_mul(p: Poly, q: Poly) -> Poly:
    out: Poly = {}
    for m1, c1 in p.items():
        for m2, c2 in q.items():
            out = _poly_add(out, {tuple(sorted(m1 + m2)): c1 * c2 % MOD})
    return out


def _apply(op: str, p: Poly, q: Poly) -> Poly:
    return _poly_mul(p, q) if op == "*" else _poly_add(p, q, -1 if op == "-" else 1)


def _const(c: int) -> Poly:
    return {(): c % MOD} if c % MOD else {}


def formula(param: Param) -> Poly:
    """The parameter's value as a polynomial in its dependencies (contract: combine, rng_op, const)."""
    xs = [{(d,): 1} for d in param.deps]
    if param.combine == "const":
        return _const(param.const)  # type: ignore[arg-type]
    base: Poly = {}
    if param.combine == "sumprod":
        for p, q in zip(xs[0::2], xs[1::2]):
            base = _poly_add(base, _poly_mul(p, q))
    elif param.combine == "diff":
        base = _poly_add(xs[0], xs[1], -1)
    else:
        for x in xs:
            base = _poly_add(base, x)
    if param.rng_op is None:
        return base
    return _apply("+" if param.rng_op == "add" else "*", _const(param.const), base)  # type: ignore[arg-type]


def _arith(op: str | None, shown: tuple[int, ...]) -> int:
    if op is None:
        return shown[0]
    x, y = shown
    return (x + y if op == "+" else x - y if op == "-" else x * y) % MOD


# ----------------------------------------------------------------------------------------- judging

@dataclass(frozen=True)
class _Term:
    """What a letter stands for within the current sentence."""

    value: int
    params: Counter     # parameter leaves (indices) of its expression, step letters expanded
    numbers: Counter    # number leaves


class _Checker:
    """The solution's state: which parameters and letters are defined so far."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.index = {p.name: i for i, p in enumerate(problem.params)}
        self.param_of: dict[str, int] = {}   # parameter letter -> parameter index
        self.taken: set[str] = set()         # every letter bound so far (parameters' and steps')
        self.defined: list[int] = []         # parameters in the order defined

    def sentence(self, s: Sentence) -> tuple[Reason, str] | None:
        """Check one sentence and, if it is right, record it; else (reason, detail)."""
        idx = self.index.get(s.name)
        if idx is None:
            return "unknown_param", f"{s.name!r} is not a parameter of the problem"
        if idx in self.defined:
            return "redefined", f"{s.name!r} is defined twice"
        letters = [st.target for st in s.steps]
        clash = [x for x in letters if x in self.taken or letters.count(x) > 1]
        if clash:
            return "redefined", f"letter {clash[0]} is already used"
        terms: dict[str, _Term] = {}
        args: list[list[_Term]] = []  # the operands of each step
        for st in s.steps:
            operands = [x for x in (st.left, st.right) if x is not None]
            missing = [x for x in operands if isinstance(x, str) and x not in terms and x not in self.param_of]
            if missing:
                return "undefined_letter", f"letter {missing[0]} is not defined before its use"
            args.append([self._operand(x, terms) for x in operands])
            terms[st.target] = self._term(st, args[-1])
        error = self._check_deps(s, idx, terms) or self._check_steps(s, args)
        if error:
            return error
        param = self.problem.params[idx]
        final = terms[s.letter]
        if final.value != param.value:
            return "wrong_value", f"{s.name!r} is {param.value}, not {final.value}"
        if self._poly(s) != formula(param):
            return "wrong_formula", f"{s.name!r} is not computed by its formula"
        self.param_of[s.letter] = idx
        self.taken.update(letters)
        self.defined.append(idx)
        return None

    def _operand(self, x: Operand, terms: Mapping[str, _Term]) -> _Term:
        if isinstance(x, int):
            return _Term(x, Counter(), Counter([x]))
        if x in terms:
            return terms[x]
        i = self.param_of[x]
        return _Term(self.problem.params[i].value, Counter([i]), Counter())

    @staticmethod
    def _term(st: Step, args: list[_Term]) -> _Term:
        return _Term(st.result, sum((a.params for a in args), Counter()), sum((a.numbers for a in args), Counter()))

    def _poly(self, s: Sentence) -> Poly:
        """The sentence's expression as a polynomial in parameter indices. Only called once its leaves are known
        to be the dependencies and the constant, each once, so it stays as small as the formula."""
        polys: dict[str, Poly] = {}

        def of(x: Operand) -> Poly:
            return _const(x) if isinstance(x, int) else polys[x] if x in polys else {(self.param_of[x],): 1}

        for st in s.steps:
            left = of(st.left)
            polys[st.target] = left if st.op is None else _apply(st.op, left, of(st.right))  # type: ignore[arg-type]
        return polys[s.letter]

    def _check_deps(self, s: Sentence, idx: int, terms: Mapping[str, _Term]) -> tuple[Reason, str] | None:
        param = self.problem.params[idx]
        used = {x for st in s.steps for x in (st.left, st.right) if isinstance(x, str)}
        idle = [st.target for st in s.steps[:-1] if st.target not in used]
        if idle:
            return "wrong_deps", f"step {idle[0]} of {s.name!r} does not feed its value"
        final = terms[s.letter]
        if final.params != Counter(param.deps):
            used_names = Counter({self.problem.params[i].name: k for i, k in final.params.items()})
            return "wrong_deps", f"{s.name!r} is computed from {_show(used_names)}, not from its dependencies"
        if final.numbers != Counter([] if param.const is None else [param.const]):
            return "wrong_deps", f"{s.name!r} uses the numbers {_show(final.numbers)}, not its constant"
        return None

    @staticmethod
    def _check_steps(s: Sentence, args: list[list[_Term]]) -> tuple[Reason, str] | None:
        for st, terms in zip(s.steps, args):
            for term, shown in zip(terms, st.shown):
                if shown != term.value:
                    return "arithmetic", f"step {st.target} shows {shown} for a value {term.value}"
            if st.result != _arith(st.op, st.shown):
                return "arithmetic", f"step {st.target}: the result is {_arith(st.op, st.shown)}, not {st.result}"
        return None


def _show(leaves: Counter) -> str:
    """A short description of a multiset of leaves (at most 4 named)."""
    items = [f"{x!r}" + (f" x{k}" if k > 1 else "") for x, k in sorted(leaves.items(), key=str)]
    return "{" + ", ".join(items[:4]) + (", ..." if len(items) > 4 else "") + "}"


def parse_answer(answer: int | str | None) -> int | None:
    """An answer as a number 0..22, or None if it is absent or not one."""
    if isinstance(answer, str):
        answer = int(answer.strip()) if re.fullmatch(r"\s*[0-9]{1,2}\s*", answer) else None
    return answer if isinstance(answer, int) and 0 <= answer < MOD else None


def judge(problem: Problem, solution: str, answer: int | str | None) -> Verdict:
    """Check a whole generated solution and its answer against the problem (see the module docstring)."""
    checker = _Checker(problem)
    parsed_answer = parse_answer(answer)
    texts, terminated = _split_sentences(solution)

    def verdict(error: JudgeError | None) -> Verdict:
        extra = [problem.params[i] for i in checker.defined if i not in problem.necessary]
        return Verdict(error is None, error, len(texts), len(extra), sum(p.op for p in extra), parsed_answer)

    for n, text in enumerate(texts):
        try:
            s = _parse_sentence(text)
            if n == len(texts) - 1 and not terminated:
                raise _Malformed(f"the last sentence {text[:60]!r} is not terminated by '.'", s.name)
        except _Malformed as err:
            return verdict(JudgeError(n, err.name, "parse", str(err)))
        error = checker.sentence(s)
        if error:
            return verdict(JudgeError(n, s.name, *error))
    missing = [i for i in (problem.query, *sorted(problem.necessary)) if i not in checker.defined]
    if missing:
        name = problem.params[missing[0]].name
        return verdict(JudgeError(len(texts), name, "missing_necessary", f"{name!r} is necessary but not computed"))
    if parsed_answer != problem.answer:
        query = problem.params[problem.query].name
        return verdict(JudgeError(len(texts), query, "wrong_answer", f"the answer is {problem.answer}, not {str(answer)[:20]!r}"))
    return verdict(None)


# ------------------------------------------------------------------------------------- command line

VERDICT_SCHEMA = {  # one row per input row, in input order; error_* are null for a correct row
    "row": pl.Int64, "op": pl.Int64, "correct": pl.Boolean, "error_reason": pl.String, "error_sentence": pl.Int64,
    "error_param": pl.String, "error_detail": pl.String, "n_sentences": pl.Int64, "unnecessary_params": pl.Int64,
    "unnecessary_ops": pl.Int64, "parsed_answer": pl.Int64,
}


def judge_rows(rows: Sequence[dict], where: str) -> list[dict]:
    """Verdict rows of generation rows (the generator's Parquet columns plus `generation` and optional
    `generated_answer`; without that column the answer is the number after `[ANS]` in the generation).
    A row whose problem columns do not make a problem raises a one-line ValueError naming it."""
    out = []
    for n, row in enumerate(rows):
        solution, answer = parse_generation(row["generation"] or "")
        answer = row.get("generated_answer", answer)
        try:
            problem = problem_from_row(row)
            v = judge(problem, solution, answer)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
            raise ValueError(f"{where}: row {n} is not an iGSM problem ({type(err).__name__}: {err})") from None
        e = v.first_error
        out.append({"row": n, "op": problem.op, "correct": v.correct, "error_reason": e and e.reason,
                    "error_sentence": e and e.sentence, "error_param": e and e.param, "error_detail": e and e.detail,
                    "n_sentences": v.n_sentences, "unnecessary_params": v.unnecessary_params,
                    "unnecessary_ops": v.unnecessary_ops, "parsed_answer": v.parsed_answer})
    return out


def summary(verdicts: Sequence[dict]) -> str:
    """Accuracy overall and by op, the first errors' reasons, and level-1 statistics of correct solutions."""
    n = len(verdicts)
    good = [v for v in verdicts if v["correct"]]
    lines = [f"{n} generations, accuracy {len(good) / max(n, 1):.4f}"]
    for op in sorted({v["op"] for v in verdicts}):
        at = [v["correct"] for v in verdicts if v["op"] == op]
        lines.append(f"  op {op:2d}: {sum(at) / len(at):.4f} of {len(at)}")
    reasons = Counter(v["error_reason"] for v in verdicts if not v["correct"])
    lines.append("first errors: " + (", ".join(f"{r} {reasons[r]}" for r in REASONS if reasons[r]) or "none"))
    if good:
        lines.append(f"per correct solution: {sum(v['unnecessary_params'] for v in good) / len(good):.3f} unnecessary "
                     f"params, {sum(v['unnecessary_ops'] for v in good) / len(good):.3f} unnecessary ops")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physlm.worlds.igsm.judge",
                                     description="Judge generated iGSM solutions (SPEC 2.3) and print a summary.")
    parser.add_argument("generations", type=Path, help="Parquet: the iGSM dataset columns plus `generation` "
                        "(and optionally `generated_answer`)")
    parser.add_argument("--out", type=Path, help="write one verdict per row to this Parquet file")
    args = parser.parse_args(argv)
    try:
        columns = [c for c in FRAME_SCHEMA if c not in ("index", "split")] + ["generation"]
        frame = read_parquet(args.generations, columns)
        if "generated_answer" in pl.read_parquet_schema(args.generations):
            frame = frame.with_columns(read_parquet(args.generations, ["generated_answer"])["generated_answer"])
        verdicts = judge_rows(frame.to_dicts(), str(args.generations))
    except (PhyslmError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.generations}: {summary(verdicts)}")
    if args.out:
        with atomic_path(args.out) as tmp:
            pl.DataFrame(verdicts, schema=VERDICT_SCHEMA).write_parquet(tmp)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
