"""Brevo instances drawn whole (`instance`): the size, the graph (`graph.make_graph`), Brevo2's words and the order
the edges are written in. No torch here.

Instance `index` of split `split` uses its own numpy Generator, `rng(seed, split, index)` (`physlm.playground`
draws training sizes and words with one), so it is a pure function of those: training n comes from
`physlm.playground.training_size` (P(n) ∝ 1/(n + √N), n = 3..N), test n = N, the sizes set cycles through its
sizes. Then the graph (steps 1-5 of `graph.py`); for Brevo2 (`word_shape` = (V, min_len, max_len)) the vertices,
in creation order, get `playground.words` (distinct words, drawn per instance, as the released code does); last,
the edges of the whole DAG in a uniform random order (step 6).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from physlm.playground import training_size, words
from physlm.worlds.brevo.graph import Instance, depth, make_graph

SPLITS = ("train", "test", "sizes")


def rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The RNG of instance `index` of `split`."""
    return np.random.default_rng([seed, zlib.crc32(f"brevo:{split}".encode()), index])


def instance_size(split: str, index: int, rng: np.random.Generator, N: int, sizes: Sequence[int]) -> int:
    """n of instance `index` of `split`: training sizes drawn from the instance's RNG, test N, the sizes set cycled."""
    if split == "train":
        return training_size(rng, N)
    if split == "test":
        return N
    if split == "sizes":
        return sizes[index % len(sizes)]
    raise ValueError(f"unknown Brevo split {split!r}; splits: {', '.join(SPLITS)}")


def make_instance(rng: np.random.Generator, n: int, N: int, *, query: str = "quarter",
                  word_shape: tuple[int, int, int] | None = None) -> Instance:
    """An instance of n vertices named from 1..N; `word_shape` = (vocab, min_len, max_len) for Brevo2."""
    vertices, parents, q, answer = make_graph(rng, n, N, query)
    names = dict(zip(vertices, words(rng, n, *word_shape))) if word_shape is not None else None
    edges = [(u, v) for v in vertices for u in parents[v]]
    edges = [edges[int(k)] for k in rng.permutation(len(edges))]
    return Instance(tuple(vertices), parents, tuple(edges), q, tuple(answer), depth(parents, q), names)


def instance(seed: int, split: str, index: int, *, N: int, query: str = "quarter",
             word_shape: tuple[int, int, int] | None = None, sizes: Sequence[int] = ()) -> Instance:
    """Instance `index` of `split`: a pure function of the arguments (its own RNG)."""
    r = rng(seed, split, index)
    return make_instance(r, instance_size(split, index, r, N, sizes), N, query=query, word_shape=word_shape)
