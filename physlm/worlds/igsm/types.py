"""The iGSM world's data model and text format (Part 2.1, SPEC 2.1): the contract shared by the generator
(`physlm.worlds.igsm.problems`), the solution judge (`physlm.worlds.igsm.judge`), the independent text-reading
evaluator (`physlm.worlds.igsm.oracle`), tokenization and the V-probes. No torch.

World knowledge (`physlm/worlds/igsm/names.json`, loaded by `load_world`): 4 categorizations, each a chain of
4 category layers (e.g. District -> Supermarket -> Product -> Ingredient); each category has 5
sub-categories of about 20 item names. Names are letters, spaces and hyphens only, unique across the file,
and no name is also a category name.

Parameters. A problem's structure graph G_s picks d consecutive layers of one categorization and items in
each; an edge a -> b (a in layer i, b in layer i+1) is an *instance* parameter "number of each b in each a",
written `a's b`. An *abstract* parameter is "total number of items of category C_k in item a" for a layer
k > i that a reaches through G_s, written `a's C` (C the category name of layer k); it is never stated,
only implied:
- k = i + 1: the sum over a's children b of `a's b`;
- k > i + 1: the sum over a's children b that reach layer k of `a's b` * `b's C`.

Text format. Tokens are separated by single spaces except that `.`, `;`, `,`, `?` and the possessive `'s`
attach to the previous word (the word-level tokenizer splits them off again):

Problem: one sentence per instance parameter of the dependency graph, fully shuffled; the question sits at
the end (`pq`) or the start (`qp`), separated from the sentences by one space.
- RNG only:                    `The number of each {a}'s {b} equals {c}.`
- RNG + parameters, add:       `The number of each {a}'s {b} equals {c} more than {X}.`
- RNG + parameters, multiply:  `The number of each {a}'s {b} equals {c} times as much as {X}.`
- parameters only:             `The number of each {a}'s {b} equals {X}.`
  where {X} is `each {p}` for one parameter; `the sum of each {p} and each {q}` or
  `the difference of each {p} and each {q}` for two; `the sum of each {p}, each {q} and each {r}` for
  three or more (commas between all but the last two). {p} is a parameter's name (`a's b` or `a's C`).
  Constants: 0..22 for RNG-only and add, 1..22 for multiply.
- question: `How many {b} does {a} have?` for the query parameter `a's b` (b an item or a category name).

Solution: the necessary parameters in a topological order, one sentence each; every defined parameter and
every intermediate result gets its own letter (a-z, A-Z, all distinct within a solution):
`Define {name} as {v}; {steps}so {v} = {expr} = {numbers} = {value}.`
- a constant (RNG only):  `Define {name} as {v}; so {v} = {c}.`
- a copy of one parameter:  `Define {name} as {v}; so {v} = {u} = {value}.`
- otherwise every binary operation is one step `{t} = {x} {op} {y} = {x_val} {op} {y_val} = {result}; `
  with op one of `+ - *`, the last one written `so {v} = ...` instead of `{t} = ...`. Operands are letters
  of earlier definitions or of earlier steps of the same sentence, or the constant itself (written as a
  number, on the left: `so {v} = 12 + {t} = 12 + 20 = 9.`). The order of steps:
  * sum of k >= 2 parameters: a left fold, ((p1 + p2) + p3) + ...;
  * difference: p1 - p2;
  * add / multiply with a constant: first the combination of the parameters (as above, when there are two
    or more), then `{c} + X` or `{c} * X` as the final step;
  * abstract k > i+1 sum of m products: the m products first (in the order of the dependencies), then a
    left fold of their sum.
  A sentence has exactly op(A) = max(1, t - 1) semicolons, t the number of A's predecessors (the RNG counts
  as one), and the solution's op is the number of `;` in it.
- after the last sentence: ` Answer: {answer}.` is NOT part of the solution text; the answer is a
  separate field (the training sequence appends it after a marker, see `physlm.igsm_tokenize`).

All arithmetic is mod 23.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

MOD = 23

Combine = Literal["const", "copy", "sum", "diff", "sumprod"]


@dataclass(frozen=True)
class Param:
    """One parameter of the whole dependency graph (every instance parameter of G_s and every abstract one)."""

    name: str                 # "a's b" (instance) or "a's C" (abstract); unique within a problem
    abstract: bool
    deps: tuple[int, ...]     # predecessor parameters (indices into Problem.params; RNG excluded), in the
                              # order the sentence lists them / the formula uses them (sumprod: b1, B1, b2, B2, ...
                              # alternating `a's b_j` and `b_j's C`)
    combine: Combine          # how the deps combine: const (no deps), copy (one), sum, diff (two); an abstract
                              # parameter of the next layer down is copy/sum, a deeper one sumprod
    rng_op: Literal["add", "mul"] | None  # instance only: how the RNG constant enters (None: no RNG, or RNG only)
    const: int | None         # the RNG constant (instance parameters with the RNG as a predecessor)
    value: int                # 0..22

    @property
    def has_rng(self) -> bool:
        return self.const is not None

    @property
    def op(self) -> int:
        """Operations of this parameter's solution sentence: max(1, t - 1), t = predecessors incl. RNG."""
        return max(1, len(self.deps) + self.has_rng - 1)


@dataclass(frozen=True)
class Problem:
    """One generated problem with every fact the judge and the probes need."""

    params: tuple[Param, ...]      # instance parameters first (all of them are stated in the problem), then abstract ones
    sentences: tuple[int, ...]     # the problem's sentence order: a permutation of the instance parameters
    query: int                     # the parameter asked for
    necessary: frozenset[int]      # parameters the shortest solution computes (the query and its ancestors)
    order: tuple[int, ...]         # the solution's order of the necessary parameters (topological, ends at query)
    fmt: Literal["pq", "qp"]
    problem: str                   # the full problem text (sentences and question, as `fmt` says)
    question: str                  # the question sentence alone
    solution: str                  # the shortest chain-of-thought solution
    answer: int                    # value of the query
    op: int                        # operations of the solution (= number of ';' in it)
    categorization: int            # index of the categorization used
    layers: tuple[int, ...]        # the category layers used (consecutive)
    bucket: int                    # template hash mod 23 (the train/test split, SPEC 2.1)

    @property
    def num_instance(self) -> int:
        return len(self.sentences)

    def ready(self, a: int, done: AbstractSet[int]) -> bool:
        """Whether every predecessor of parameter `a` is among `done` (a may itself be in done)."""
        return all(b in done for b in self.params[a].deps)
