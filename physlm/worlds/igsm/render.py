"""iGSM's text (SPEC 2.1 steps 5-7): problem sentences, question and shortest solution in the contract
format of `physlm.worlds.igsm.types`, the template text and its hash bucket (the train/test split), and the
`Problem` assembled from them. This module never imports torch."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from physlm.worlds.igsm.graph import LETTERS
from physlm.worlds.igsm.types import MOD, Param, Problem


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
