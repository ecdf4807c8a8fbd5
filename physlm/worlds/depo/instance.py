"""One Depo instance: a random cycle of distinct multi-token words, its edges in random order and k-hop queries
(SPEC 7.3, 11.1.1), and its rendering as vocabulary strings. No torch, no file I/O: the generator, the
tokenizer, the probe and the evaluation all read instances through this module.

An instance of size n: words w_0 .. w_{n-1} in cycle order (w_i -> w_{i+1 mod n}); the edges written in the
random order `edges` (edge j is `w_e w_{e+1}` for e = edges[j]); `queries` distinct sources q (min(queries, n)
of them) with hops k, whose answer is w_{q+k mod n}. Rendered:

    e_0 e_0' e_1 e_1' ... <query_k> q <ans> a <query_k'> q' <ans> a' ...

where each word is its symbols as decimal strings: 1..V inside a word, V+1..2V its last symbol (the implicit
word end, `physlm.playground.words`). The stage's packing adds `<bos>` before and `<eos>` after.

Random choices of one instance, in order, from one `np.random.Generator`: n (training: `training_size`; test:
n = N), the words (`playground.words`), the cycle order (a permutation of the words as drawn: drawing with
rejection makes later draws longer when short words run out, so the drawing order is not used as the cycle),
the edge order, the query sources (without replacement), the hops (training: U{1..K}; test: uniform over
`test_hops`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from physlm.playground import training_size, words
from physlm.worlds.depo.spec import ANS, DepoSpec, query_token


@dataclass(frozen=True)
class Instance:
    words: tuple[tuple[int, ...], ...]  # cycle order
    edges: tuple[int, ...]  # the cycle position of each written edge's source, in written order
    queries: tuple[int, ...]  # cycle positions of the query sources
    hops: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.words)

    @property
    def answers(self) -> tuple[int, ...]:
        """Cycle positions of the answers: q + k mod n."""
        return tuple((q + k) % self.n for q, k in zip(self.queries, self.hops))

    def render(self) -> list[str]:
        """The instance as vocabulary strings (module docstring)."""
        out: list[str] = []
        for e in self.edges:
            out += _spell(self.words[e]) + _spell(self.words[(e + 1) % self.n])
        for q, k, a in zip(self.queries, self.hops, self.answers):
            out += [query_token(k), *_spell(self.words[q]), ANS, *_spell(self.words[a])]
        return out


def _spell(word: tuple[int, ...]) -> list[str]:
    return [str(s) for s in word]


def sample_instance(spec: DepoSpec, rng: np.random.Generator, test: bool) -> Instance:
    """One instance (module docstring for the order of the random choices)."""
    n = spec.N if test else training_size(rng, spec.N)
    drawn = words(rng, n, spec.vocab, spec.min_len, spec.max_len)
    cycle = tuple(drawn[i] for i in rng.permutation(n))
    edges = tuple(int(e) for e in rng.permutation(n))
    queries = tuple(int(q) for q in rng.choice(n, size=min(spec.queries, n), replace=False))
    if test:
        hops = tuple(int(k) for k in rng.choice(np.asarray(spec.test_hops), size=len(queries)))
    else:
        hops = tuple(int(k) for k in rng.integers(1, spec.K + 1, size=len(queries)))
    return Instance(cycle, edges, queries, hops)


SPLITS = {"train": 0, "test": 1}


def instance_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Example `index` of `split`'s own generator: a pure function of (seed, split, index)."""
    return np.random.default_rng([seed % 2**63, SPLITS[split], index])


def example(spec: DepoSpec, seed: int, split: str, index: int) -> Instance:
    return sample_instance(spec, instance_rng(seed, split, index), test=split == "test")
