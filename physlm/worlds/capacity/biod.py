"""bioD(N, K, C, D, L, T), Part 3.3's knowledge-capacity data (SPEC 6.1), one person at a time. No torch here.

The world: N people whose full names are drawn *without replacement* from the N0 = first x middle x last
candidates of the shared name pools (`physlm.names`, the biography world's; 400 x 400 x 1000 in full); K
attributes "ID 1" .. "ID K" (tokens `ID_1` .. `ID_K`); T value tokens `v0` .. `v{T-1}`; for each attribute a
diversity set of D distinct chunks, each a string of L value tokens (D distinct members of T^L); and each
person's value of each attribute is C chunks, each uniform from that attribute's set.

Randomness, all from the study seed:
- the names: Floyd's sampler (`sample_without_replacement`) takes N of the N0 name indices from
  `random.Random(f"capacity-names:{seed}")`, sorts them and shuffles them with the same RNG; person i gets
  the i-th (an index n is first `n // (M * L)`, middle `n // L % M`, last `n % L` for pools of F, M, L names);
- attribute a's diversity set: Floyd's sampler over the T^L chunk indices (a chunk index written in base T is
  its L tokens, most significant first) from `random.Random(f"capacity-dset:{seed}:{a}")`, sorted, shuffled;
  chunk id j of attribute a is the set's j-th member;
- person i's values: `random.Random(f"capacity-person:{seed}:{i}")` draws C chunk ids for attribute 1, then
  for attribute 2, ...; so with the names and the sets (`World`), any person is regenerated alone
  (`person`);
- writing c of person i (c = 0 is the one the Parquet file holds; the tokenize step writes copies 0 .. copies-1
  into the train split) orders the K sentences by `random.Random(f"capacity-order:{seed}:{i}:{c}")`.

Junk people (Part 3.3's junk-data study, `Spec.junk_people` N', default 0: none, and nothing below is drawn): N'
other people of the same world, the same format, the same K diversity sets (the paper's junk is bioS(N') beside
bioS(N): other people of the same generator, so values from the same domains), but their own names and values:
- names: Floyd's sampler takes N' of the N0 - N indices *not* the N useful people's from
  `random.Random(f"capacity-junk-names:{seed}")`, sorted then shuffled; index k is the k-th name index outside
  the useful set (`complement_indices`), so junk and useful names never coincide, and the useful people are the
  ones a dataset without junk has;
- junk person j's values from `random.Random(f"capacity-junk-person:{seed}:{j}")`, writing c's order from
  `random.Random(f"capacity-junk-order:{seed}:{j}:{c}")` (`junk_person`, `order(..., junk=True)`).

A paragraph (`paragraph`): the first sentence names the person, the later ones say `Their`, e.g. with K = 2,
C = 2, L = 2:

    Ann Lee Smith 's ID_2 is v3 v17 , v5 v0 . Their ID_1 is v9 v9 , v1 v4 .

Every token is separated by one space (the tokenizer splits on spaces). The pronoun is one fixed word, so it
holds no information about the person: the only person-specific tokens are the three name tokens, which
come first, right after `<bos>` (so p1, the loss of generating the name, is the loss of those three tokens), and
the C x L value tokens of each attribute (p2; the first L of them are p3's). Every paragraph of a dataset has
the same number of tokens, 3 + K (C L + C + 3) (`entry_tokens`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

import numpy as np

from physlm import names

PRONOUN = "Their"  # every sentence after the first (one word, the same for everyone: no bits outside the formula)
POSSESSIVE, VERB, COMMA, STOP = "'s", "is", ",", "."
WORDS = (POSSESSIVE, VERB, COMMA, STOP, PRONOUN)  # the template's own tokens


def attribute_token(a: int) -> str:
    """The token of attribute a (1-based): `ID_7` is "ID 7"."""
    return f"ID_{a}"


def value_token(t: int) -> str:
    return f"v{t}"


@dataclass(frozen=True)
class Spec:
    """bioD's six numbers, the pools, the seed and the junk people: everything the data is a function of."""

    N: int  # people
    K: int  # attributes
    C: int  # chunks per value
    D: int  # diversity: distinct chunks per attribute
    L: int  # tokens per chunk
    T: int  # value tokens
    pools: tuple[int, int, int] = (400, 400, 1000)  # first, middle, last names used (the first k of each pool)
    seed: int = 0
    junk_people: int = 0  # N': other people of the same world whose paragraphs are the junk (0: none)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pools", tuple(self.pools))
        for key in ("N", "K", "C", "D", "L", "T"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} = {getattr(self, key)} must be at least 1")
        for kind, size in zip(names.PARTS, self.pools):
            names.pool(kind, size)  # ValueError naming the pool
        if self.N > self.N0:
            raise ValueError(f"N = {self.N} exceeds N0 = {self.N0}, the distinct full names of pools {list(self.pools)}")
        if self.junk_people < 0:
            raise ValueError(f"junk_people = {self.junk_people} must not be negative")
        if self.N + self.junk_people > self.N0:
            raise ValueError(f"N + junk_people = {self.N} + {self.junk_people} exceeds N0 = {self.N0}, the distinct full names"
                             f" of pools {list(self.pools)} (junk names are other people's)")
        if self.D > self.T**self.L:
            raise ValueError(f"D = {self.D} exceeds T^L = {self.T}^{self.L} = {self.T**self.L}, the distinct chunks")

    @property
    def N0(self) -> int:
        return prod(self.pools)

    def name_pools(self) -> tuple[tuple[str, ...], ...]:
        return tuple(names.pool(kind, size) for kind, size in zip(names.PARTS, self.pools))

    def resolved(self) -> dict:
        """capacity.json: the resolved spec the later steps read (N0 computed from the pools used); `junk_people`
        only where there are junk people (so a dataset without them has the file it had before the option)."""
        out = {"N0": self.N0, "N": self.N, "K": self.K, "C": self.C, "D": self.D, "L": self.L, "T": self.T,
               "pools": dict(zip(names.PARTS, self.pools)), "seed": self.seed, "entry_tokens": entry_tokens(self.K, self.C, self.L)}
        return out | ({"junk_people": self.junk_people} if self.junk_people else {})


def entry_tokens(K: int, C: int, L: int) -> int:
    """Tokens of every paragraph (without <bos>/<eos>): 3 name tokens, then per sentence its opener ('s or Their),
    the attribute, `is`, C chunks of L tokens with C - 1 commas, and the full stop."""
    return 3 + K * (C * L + C + 3)


def sample_without_replacement(rng: random.Random, population: int, count: int) -> list[int]:
    """`count` distinct integers of range(population), uniform over subsets (Floyd's algorithm, count draws
    whatever the population's size), sorted then shuffled by `rng`."""
    chosen: set[int] = set()
    for j in range(population - count, population):
        t = rng.randrange(j + 1)
        chosen.add(j if t in chosen else t)
    out = sorted(chosen)
    rng.shuffle(out)
    return out


def chunk_tokens(index: int, T: int, L: int) -> tuple[int, ...]:
    """Chunk index (0 .. T^L - 1) as its L value tokens, most significant first."""
    digits = []
    for _ in range(L):
        index, digit = divmod(index, T)
        digits.append(digit)
    return tuple(reversed(digits))


@dataclass(frozen=True)
class World:
    """What every person shares: the N name indices and the K diversity sets (each D chunks of L tokens)."""

    spec: Spec
    name_indices: tuple[int, ...]  # person i's index among the N0 candidates
    dsets: tuple[tuple[tuple[int, ...], ...], ...]  # dsets[a - 1][j]: chunk j of attribute a, L value tokens

    def name(self, i: int) -> tuple[str, str, str]:
        return name_parts(self.spec, self.name_indices[i])


def name_parts(spec: Spec, n: int) -> tuple[str, str, str]:
    """The full name of name index n among the N0 (first n // (M L), middle n // L % M, last n % L)."""
    first, middle, last = spec.name_pools()
    return first[n // (len(middle) * len(last))], middle[n // len(last) % len(middle)], last[n % len(last)]


def make_world(spec: Spec) -> World:
    rng = random.Random(f"capacity-names:{spec.seed}")
    people = tuple(sample_without_replacement(rng, spec.N0, spec.N))
    dsets = []
    for a in range(1, spec.K + 1):
        drawn = sample_without_replacement(random.Random(f"capacity-dset:{spec.seed}:{a}"), spec.T**spec.L, spec.D)
        dsets.append(tuple(chunk_tokens(index, spec.T, spec.L) for index in drawn))
    return World(spec, people, tuple(dsets))


@dataclass(frozen=True)
class Person:
    index: int
    name: tuple[str, str, str]
    chunks: tuple[tuple[int, ...], ...]  # chunks[a - 1]: the C chunk ids of attribute a


def person(world: World, i: int) -> Person:
    """Person i, a pure function of (seed, i) and the world."""
    s = world.spec
    rng = random.Random(f"capacity-person:{s.seed}:{i}")
    return Person(i, world.name(i), tuple(tuple(rng.randrange(s.D) for _ in range(s.C)) for _ in range(s.K)))


def order(seed: int, i: int, copy: int, K: int, junk: bool = False) -> tuple[int, ...]:
    """The attribute order (1-based attributes) of writing `copy` of person i (junk person i with `junk`)."""
    attributes = list(range(1, K + 1))
    random.Random(f"capacity-{'junk-' if junk else ''}order:{seed}:{i}:{copy}").shuffle(attributes)
    return tuple(attributes)


def complement_indices(taken: Sequence[int], ks: Sequence[int]) -> list[int]:
    """The k-th (0-based) integer not in `taken` (distinct non-negative integers), for each k of `ks`: with `taken`
    sorted as u, the k-th free integer is k + #{i: u_i - i <= k} (u_i - i integers below u_i are free)."""
    u = np.sort(np.asarray(taken, dtype=np.int64))
    free_below = u - np.arange(len(u), dtype=np.int64)
    k = np.asarray(ks, dtype=np.int64)
    return (k + np.searchsorted(free_below, k, side="right")).tolist()


def junk_name_indices(world: World) -> tuple[int, ...]:
    """The N' junk people's name indices: N' of the N0 - N names not the useful people's (module docstring)."""
    s = world.spec
    drawn = sample_without_replacement(random.Random(f"capacity-junk-names:{s.seed}"), s.N0 - s.N, s.junk_people)
    return tuple(complement_indices(world.name_indices, drawn))


def junk_person(world: World, j: int, name_index: int) -> Person:
    """Junk person j (name index `name_index`, junk_name_indices' j-th): values from the same diversity sets, from
    its own RNG."""
    s = world.spec
    rng = random.Random(f"capacity-junk-person:{s.seed}:{j}")
    return Person(j, name_parts(s, name_index), tuple(tuple(rng.randrange(s.D) for _ in range(s.C)) for _ in range(s.K)))


def value_text(world: World, a: int, chunk_ids: Sequence[int]) -> str:
    """Attribute a's value: its chunks' tokens, chunks separated by commas (`v3 v17 , v5 v0`)."""
    return f" {COMMA} ".join(" ".join(value_token(t) for t in world.dsets[a - 1][j]) for j in chunk_ids)


def paragraph(world: World, p: Person, attributes: Sequence[int]) -> str:
    """The person's paragraph with its sentences in the order `attributes` (module docstring)."""
    sentences = []
    for k, a in enumerate(attributes):
        opener = " ".join((*p.name, POSSESSIVE)) if k == 0 else PRONOUN
        sentences.append(f"{opener} {attribute_token(a)} {VERB} {value_text(world, a, p.chunks[a - 1])} {STOP}")
    return " ".join(sentences)


def value_positions(attributes: Sequence[int], K: int, C: int, L: int) -> dict[int, list[int]]:
    """{attribute: the token positions (in the paragraph, without <bos>) of its C x L value tokens, in order}."""
    out, at = {}, 3  # after the three name tokens
    for a in attributes:
        at += 3  # 's / Their, ID_a, is
        out[a] = [at + c * (L + 1) + t for c in range(C) for t in range(L)]
        at += C * L + C  # the chunks, their commas and the full stop
    return out
