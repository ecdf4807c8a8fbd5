"""An independent reader of iGSM problems (Part 2.1, SPEC 2.1): the test oracle of the generator
(`physlm.worlds.igsm.problems` and the modules it builds on).

It sees only what a person solving the problem would see: the problem TEXT and the world knowledge (the
categorization JSON, read here with `json`), never the generator's data structures, and it shares no code
with the generator. From the text it rebuilds everything the contract (`physlm.worlds.igsm.types`) says a
problem implies:

1. each sentence is parsed into (parameter `a's b`, RNG constant, add/mul, referenced parameters,
   sum/diff) and rendered back; the rendering must equal the sentence, so every accepted sentence is in the
   exact contract format;
2. the structure graph's edges are the stated instance parameters (every edge of G_s is stated); each edge
   must join an item to an item of the next layer of the same categorization;
3. the abstract parameters `a's C` are derived from those edges and the layers' category names: one for
   every layer k > layer(a) that a reaches, depending on a's children (k = layer(a) + 1: `a's b` for every
   child b, summed) or on the pairs (`a's b`, `b's C`) of the children b that reach layer k (sum of products);
4. every computable parameter is evaluated mod 23 by repeatedly evaluating any parameter whose
   dependencies all have values (a topological evaluation that leaves parameters on or below a cycle
   without a value);
5. the necessary set is the query and its ancestors in the whole dependency graph, and the op of the
   shortest solution is the sum over it of max(1, t - 1), t the number of predecessors including the RNG.

Kept simple rather than fast (quadratic evaluation). `tests/test_igsm_judge.py` checks it on a hand-solved
problem and against the generator's values, answers, graphs and ops on thousands of problems. Unparseable
text raises a one-line ValueError naming the offending sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

MOD = 23
DEFAULT_NAMES = Path(__file__).resolve().parent / "names.json"

Combine = Literal["const", "copy", "sum", "diff", "sumprod"]


@dataclass(frozen=True)
class Taxonomy:
    """The world knowledge as the oracle needs it: where each item and category sits."""

    items: Mapping[str, tuple[int, int]]       # item name -> (categorization, layer)
    categories: Mapping[tuple[int, int], str]  # (categorization, layer) -> category name

    @classmethod
    def from_dict(cls, data: Any) -> Taxonomy:
        """From the JSON's schema {"categorizations": [{"name", "layers": [{"category", "subcategories":
        [{"name", "items": [...]}]}]}]}; ValueError on a malformed file or a name used twice."""
        items: dict[str, tuple[int, int]] = {}
        categories: dict[tuple[int, int], str] = {}
        try:
            for c, categorization in enumerate(data["categorizations"]):
                for k, layer in enumerate(categorization["layers"]):
                    categories[c, k] = layer["category"]
                    for sub in layer["subcategories"]:
                        for item in sub["items"]:
                            if item in items:
                                raise ValueError(f"world knowledge: item {item!r} appears twice")
                            items[item] = (c, k)
        except (KeyError, TypeError) as err:
            raise ValueError(f"world knowledge: not the categorization schema ({type(err).__name__}: {err})") from None
        return cls(items, categories)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_NAMES) -> Taxonomy:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read the world knowledge ({type(err).__name__}: {err})") from None


@dataclass(frozen=True)
class Node:
    """One parameter of the whole dependency graph, as read from the text (instance) or derived (abstract)."""

    name: str
    abstract: bool
    deps: tuple[str, ...]             # referenced parameters (sumprod: a's b1, b1's C, a's b2, b2's C, ...)
    combine: Combine
    rng_op: Literal["add", "mul"] | None
    const: int | None                 # the RNG constant, when the RNG is a predecessor

    @property
    def op(self) -> int:
        return max(1, len(self.deps) + (self.const is not None) - 1)


@dataclass(frozen=True)
class Reading:
    """Everything the oracle reads from one problem text."""

    nodes: Mapping[str, Node]         # every parameter: instance ones in sentence order, then abstract ones
    sentences: tuple[str, ...]        # the instance parameters in the order the problem states them
    fmt: Literal["pq", "qp"]
    query: str
    values: Mapping[str, int]         # every computable parameter's value
    necessary: frozenset[str]         # the query and its ancestors
    op: int                           # operations of the shortest solution
    answer: int


# ----------------------------------------------------------------------------------------------- parsing

_STATEMENT = re.compile(r"The number of each (.+?) equals (.+)\.")
_QUESTION = re.compile(r"How many (.+?) does (.+) have\?")


def _split(text: str) -> tuple[list[str], str, Literal["pq", "qp"]]:
    """(statement sentences, question, fmt) of a problem text."""
    pieces = re.findall(r"[^.?]*[.?]", text)
    pieces = [p.strip() for p in pieces]
    if " ".join(pieces) != text:
        raise ValueError(f"problem text is not sentences separated by single spaces: {text[:80]!r}")
    questions = [i for i, p in enumerate(pieces) if p.endswith("?")]
    if len(questions) != 1 or len(pieces) < 2 or questions[0] not in (0, len(pieces) - 1):
        raise ValueError(f"problem text needs one question at its start or end and at least one statement: {text[:80]!r}")
    fmt: Literal["pq", "qp"] = "qp" if questions[0] == 0 else "pq"
    question = pieces.pop(questions[0])
    return pieces, question, fmt


def _refs(text: str) -> tuple[str, ...]:
    """The parameters of `each p` / `each p1, each p2 and each p3` (checked by rendering them back)."""
    if not text.startswith("each "):
        raise ValueError(f"expected 'each <parameter>' in {text!r}")
    refs = tuple(re.split(r", each | and each ", text[len("each "):]))
    if _render_refs(refs) != text:
        raise ValueError(f"malformed parameter list {text!r}")
    return refs


def _render_refs(refs: tuple[str, ...]) -> str:
    each = [f"each {r}" for r in refs]
    return each[0] if len(each) == 1 else ", ".join(each[:-1]) + " and " + each[-1]


def _combination(text: str) -> tuple[Combine, tuple[str, ...]]:
    for prefix, combine in (("the sum of ", "sum"), ("the difference of ", "diff")):
        if text.startswith(prefix):
            refs = _refs(text[len(prefix):])
            if len(refs) < 2 or (combine == "diff" and len(refs) != 2):
                raise ValueError(f"{combine} of {len(refs)} parameter(s) in {text!r}")
            return combine, refs  # type: ignore[return-value]
    return "copy", _refs(text)


def _statement(sentence: str) -> Node:
    m = _STATEMENT.fullmatch(sentence)
    if m is None:
        raise ValueError(f"not a problem sentence: {sentence!r}")
    name, rhs = m.groups()
    if re.fullmatch(r"[0-9]+", rhs):
        node = Node(name, False, (), "const", None, int(rhs))
    elif mm := re.fullmatch(r"([0-9]+) (more than|times as much as) (.+)", rhs):
        combine, refs = _combination(mm[3])
        node = Node(name, False, refs, combine, "add" if mm[2] == "more than" else "mul", int(mm[1]))
    else:
        combine, refs = _combination(rhs)
        node = Node(name, False, refs, combine, None, None)
    low = 1 if node.rng_op == "mul" else 0
    if node.const is not None and not low <= node.const < MOD:
        raise ValueError(f"constant {node.const} out of range {low}..{MOD - 1} in {sentence!r}")
    if _render(node) != sentence:
        raise ValueError(f"not in the canonical format: {sentence!r}")
    for name in (node.name, *node.deps):
        _pair(name)
    return node


def _render(node: Node) -> str:
    """The contract's sentence for an instance parameter (the inverse of `_statement`)."""
    if node.combine == "const":
        rhs = str(node.const)
    else:
        refs = _render_refs(node.deps)
        rhs = refs if node.combine == "copy" else f"the {'sum' if node.combine == 'sum' else 'difference'} of {refs}"
        if node.rng_op is not None:
            rhs = f"{node.const} {'more than' if node.rng_op == 'add' else 'times as much as'} {rhs}"
    return f"The number of each {node.name} equals {rhs}."


def _question(sentence: str) -> str:
    m = _QUESTION.fullmatch(sentence)
    if m is None:
        raise ValueError(f"not a question: {sentence!r}")
    return f"{m[2]}'s {m[1]}"


def _pair(name: str) -> tuple[str, str]:
    """(a, b) of a parameter name `a's b`."""
    parts = name.split("'s ")
    if len(parts) != 2 or not all(re.fullmatch(r"[A-Za-z][A-Za-z -]*", p) for p in parts):
        raise ValueError(f"not a parameter name: {name!r}")
    return parts[0], parts[1]


# ---------------------------------------------------------------------------------------- the structure

def _edges(statements: list[Node], world: Taxonomy) -> dict[str, list[str]]:
    """Children of every item of the structure graph (sorted), checking each edge against the layers."""
    children: dict[str, list[str]] = {}
    cats = set()
    for node in statements:
        a, b = _pair(node.name)
        if a not in world.items or b not in world.items:
            raise ValueError(f"{node.name!r}: {a if a not in world.items else b!r} is not an item of the world")
        (ca, ka), (cb, kb) = world.items[a], world.items[b]
        if ca != cb or kb != ka + 1:
            raise ValueError(f"{node.name!r}: {b!r} is not in the layer below {a!r}'s")
        cats.add(ca)
        children.setdefault(a, []).append(b)
    if len(cats) != 1:
        raise ValueError(f"the problem mixes {len(cats)} categorizations")
    return {a: sorted(bs) for a, bs in children.items()}


def _abstract(children: dict[str, list[str]], world: Taxonomy) -> list[Node]:
    """The abstract parameters implied by the structure graph (contract docstring)."""
    reach: dict[str, frozenset[int]] = {}

    def layers_below(item: str) -> frozenset[int]:
        if item not in reach:
            kids = children.get(item, [])
            reach[item] = frozenset({world.items[b][1] for b in kids}).union(*(layers_below(b) for b in kids))
        return reach[item]

    nodes = []
    for a in sorted(children):
        c, i = world.items[a]
        for k in sorted(layers_below(a)):
            cat = world.categories[c, k]
            if k == i + 1:
                deps = tuple(f"{a}'s {b}" for b in children[a])
                combine: Combine = "copy" if len(deps) == 1 else "sum"
            else:
                deps = tuple(d for b in children[a] if k in layers_below(b) for d in (f"{a}'s {b}", f"{b}'s {cat}"))
                combine = "sumprod"
            nodes.append(Node(f"{a}'s {cat}", True, deps, combine, None, None))
    return nodes


# ------------------------------------------------------------------------------------------- evaluation

def _value(node: Node, values: Mapping[str, int]) -> int:
    xs = [values[d] for d in node.deps]
    if node.combine == "const":
        return node.const % MOD  # type: ignore[operator]
    if node.combine == "sumprod":
        x = sum(p * q for p, q in zip(xs[0::2], xs[1::2]))
    elif node.combine == "diff":
        x = xs[0] - xs[1]
    else:
        x = sum(xs)
    if node.rng_op == "add":
        x = node.const + x  # type: ignore[operator]
    elif node.rng_op == "mul":
        x = node.const * x  # type: ignore[operator]
    return x % MOD


def evaluate(nodes: Mapping[str, Node]) -> dict[str, int]:
    """Values of every computable parameter: sweep until no parameter with all dependencies known is left."""
    values: dict[str, int] = {}
    progress = True
    while progress:
        progress = False
        for name, node in nodes.items():
            if name not in values and all(d in values for d in node.deps):
                values[name] = _value(node, values)
                progress = True
    return values


def ancestors(nodes: Mapping[str, Node], name: str) -> frozenset[str]:
    """`name` and every parameter it depends on, directly or not."""
    seen, stack = {name}, [name]
    while stack:
        for dep in nodes[stack.pop()].deps:
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return frozenset(seen)


def read_problem(text: str, world: Taxonomy) -> Reading:
    """Read one problem text (sentences and question, `pq` or `qp`); ValueError if it is not readable."""
    sentences, question, fmt = _split(text)
    statements = [_statement(s) for s in sentences]
    nodes = {n.name: n for n in statements}
    if len(nodes) != len(statements):
        raise ValueError("a parameter is stated twice")
    nodes.update((n.name, n) for n in _abstract(_edges(statements, world), world))
    unknown = sorted({d for n in statements for d in n.deps} - nodes.keys())
    if unknown:
        raise ValueError(f"the problem refers to {unknown[0]!r}, which is neither stated nor implied")
    query = _question(question)
    if query not in nodes:
        raise ValueError(f"the question asks for {query!r}, which is neither stated nor implied")
    values = evaluate(nodes)
    if query not in values:
        raise ValueError(f"the query {query!r} depends on a cycle")
    necessary = ancestors(nodes, query)
    return Reading(nodes, tuple(n.name for n in statements), fmt, query, values, necessary,
                   sum(nodes[n].op for n in necessary), values[query])
