"""Brevo instances, one at a time (Part 4.1, SPEC 7.3 and 11.1.2): a random DAG, a query, and the answer (every
vertex the query recursively depends on, then the query, in a topological order). No torch here.

One instance of n vertices, step by step:
1. Vertex ids: n distinct ids from 1..N in a uniform random order, the creation order.
2. The first L ~ U{1..⌊(n−1)/4⌋+1} vertices are leaves (no parents).
3. Each later vertex takes U{1..min(c, 4)} distinct parents, uniformly among the c earlier vertices whose
   out-degree is still below 4 (none when c = 0: it stays a leaf). In- and out-degrees are at most 4.
4. The query: uniform among the vertices of the last quarter of the creation order (`nodes[3n//4:]`, the
   paper's rule) that have at least one parent; `query="last"` takes the last vertex, as the released code does
   in effect (`max(3n//4, n−1)`). When no candidate has a parent the DAG is drawn again (same RNG).
5. The answer: the query's ancestors and the query, in a topological order (every parent before its child)
   drawn by a randomised Kahn pass run backwards from the query, as the released code does: starting from the
   query, the next vertex is uniform among those whose children inside the ancestor set are all placed; the
   list is then reversed, so the query comes last. Any other topological order is an equally right answer
   (`checker.py`).
6. The edges: every (parent, child) pair of the whole DAG, in a uniform random order (`sample.py`).
`depth` is the query's shortest distance to a leaf of its ancestor set (the released code's `token_type`),
for the probe.

`make_graph` does steps 1-5 with a numpy Generator; `physlm.worlds.brevo.sample` draws the size, Brevo2's words
and the edge order (step 6) and builds the `Instance`.

tests/test_brevo.py re-derives every answer set by brute force, checks the degree bounds, the leaf counts and
the statistics SPEC 11.1.2 measured on the released generator.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAX_DEGREE = 4
QUERY_RULES = ("quarter", "last")


@dataclass(frozen=True)
class Instance:
    """One Brevo instance. Vertices are ids 1..N; `parents` maps every vertex (creation order) to its parents."""

    vertices: tuple[int, ...]  # creation order
    parents: Mapping[int, tuple[int, ...]]
    edges: tuple[tuple[int, int], ...]  # (parent, child), in the written order
    query: int
    answer: tuple[int, ...]  # the query's ancestors in a topological order, then the query
    depth: int  # the query's shortest distance to a leaf of its ancestor set
    words: Mapping[int, tuple[int, ...]] | None = None  # Brevo2: each vertex's word (symbols 1..2V)

    @property
    def n(self) -> int:
        return len(self.vertices)


def make_dag(rng: np.random.Generator, n: int, N: int) -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Steps 1-3: the vertices in creation order and each one's parents."""
    vertices = [int(v) + 1 for v in rng.choice(N, size=n, replace=False)]
    leaves = int(rng.integers(1, (n - 1) // 4 + 2))
    out_degree = dict.fromkeys(vertices, 0)
    parents: dict[int, tuple[int, ...]] = {v: () for v in vertices}
    for i in range(leaves, n):
        open_ = [u for u in vertices[:i] if out_degree[u] < MAX_DEGREE]
        if not open_:
            continue
        count = int(rng.integers(1, min(len(open_), MAX_DEGREE) + 1))
        chosen = tuple(open_[int(k)] for k in rng.choice(len(open_), size=count, replace=False))
        for u in chosen:
            out_degree[u] += 1
        parents[vertices[i]] = chosen
    return vertices, parents


def ancestors(parents: Mapping[int, Sequence[int]], vertex: int) -> set[int]:
    """`vertex` and every vertex it recursively depends on."""
    found, todo = {vertex}, [vertex]
    while todo:
        for u in parents[todo.pop()]:
            if u not in found:
                found.add(u)
                todo.append(u)
    return found


def backward_order(rng: np.random.Generator, parents: Mapping[int, Sequence[int]], query: int) -> list[int]:
    """Step 5: the randomised backward Kahn pass over the query's ancestor set, reversed (the query last)."""
    members = ancestors(parents, query)
    waiting = dict.fromkeys(members, 0)  # children inside the set not yet placed
    for v in members:
        for u in parents[v]:
            waiting[u] += 1
    ready, order = [query], []
    while ready:
        v = ready.pop(int(rng.integers(len(ready))))
        order.append(v)
        for u in parents[v]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    return order[::-1]


def depth(parents: Mapping[int, Sequence[int]], query: int) -> int:
    """The query's shortest distance (in edges) to a vertex without parents, following parents."""
    distance, todo = {query: 0}, deque([query])
    while todo:
        v = todo.popleft()
        if not parents[v]:
            return distance[v]
        for u in parents[v]:
            if u not in distance:
                distance[u] = distance[v] + 1
                todo.append(u)
    raise AssertionError("a finite DAG always reaches a leaf")


def pick_query(rng: np.random.Generator, vertices: Sequence[int], parents: Mapping[int, Sequence[int]], rule: str) -> int | None:
    """Step 4: the query, or None when no candidate has a parent."""
    n = len(vertices)
    start = 3 * n // 4 if rule == "quarter" else n - 1
    candidates = [v for v in vertices[start:] if parents[v]]
    return candidates[int(rng.integers(len(candidates)))] if candidates else None


def make_graph(rng: np.random.Generator, n: int, N: int, query: str = "quarter") -> tuple[list[int], dict[int, tuple[int, ...]], int, list[int]]:
    """Steps 1-5 for n vertices named from 1..N: (vertices in creation order, parents, query, gold answer)."""
    if not 3 <= n <= N:
        raise ValueError(f"an instance has 3..N = {N} vertices, got {n}")
    if query not in QUERY_RULES:
        raise ValueError(f"unknown query rule {query!r}; rules: {', '.join(QUERY_RULES)}")
    while True:
        vertices, parents = make_dag(rng, n, N)
        q = pick_query(rng, vertices, parents, query)
        if q is not None:
            return vertices, parents, q, backward_order(rng, parents, q)
