"""Brevo's exact checker: is a generated answer every vertex the query recursively depends on, and the query, each
once, in an order where every vertex comes after all its parents? No partial credit; any valid order is accepted
(the query, the one vertex of the set every other one leads to, is then necessarily last). No torch here.

`check(parents, query, answer)` works on vertices; `judge(layout, inst, generated)` reads a generation after
`<ans>` first (`text.Layout.read_answer`: cut at the first `<eos>`). The reason of a rejection is the first of
`REASONS` that applies:
- `malformed`: no `<eos>`, a special token inside the answer, or (Brevo2) a word left unfinished;
- `unknown`: a well-formed name that is no vertex of the graph;
- `duplicate`: a vertex listed twice;
- `extra`: a vertex the query does not depend on;
- `missing`: a vertex the query depends on (or the query itself) not listed;
- `order`: a vertex listed before one of its parents.

tests/test_brevo.py checks it against a brute-force re-derivation (ancestor sets by transitive closure, every
order's validity by pairwise reachability) on generated instances, their reorderings and hand-made faults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from physlm.worlds.brevo.graph import Instance, ancestors
from physlm.worlds.brevo.text import Layout

REASONS = ("malformed", "unknown", "duplicate", "extra", "missing", "order")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str  # "" when correct, else one of REASONS


RIGHT = Verdict(True, "")


def check(parents: Mapping[int, Sequence[int]], query: int, answer: Sequence[int | None]) -> Verdict:
    """The verdict on an answer given as vertices (None: a name that is no vertex)."""
    if any(v is None or v not in parents for v in answer):
        return Verdict(False, "unknown")
    if len(set(answer)) != len(answer):
        return Verdict(False, "duplicate")
    needed = ancestors(parents, query)
    if set(answer) - needed:
        return Verdict(False, "extra")
    if needed - set(answer):
        return Verdict(False, "missing")
    placed: set[int] = set()
    for v in answer:
        if any(u not in placed for u in parents[v]):
            return Verdict(False, "order")
        placed.add(v)
    return RIGHT


def judge(layout: Layout, inst: Instance, generated: Sequence[int]) -> Verdict:
    """The verdict on the token ids a model wrote after `<ans>`."""
    answer = layout.read_answer(generated, inst)
    return Verdict(False, "malformed") if answer is None else check(inst.parents, inst.query, answer)
