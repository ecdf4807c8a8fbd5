"""The capacity world's stream step (`physlm.stream`): the train split streamed in exposure rounds (`rounds`).

Example k of window j is global paragraph n_j + k of the rounds (`rounds`: round r is the seeded permutation pi_r
of the N people; window j's first paragraph n_j comes from the round schedule), i.e. person pi_r[slot]'s writing
r as token ids (no <bos>/<eos>: the engine adds them, and packs with the dataset's `pack`, which must be `sentences`
for training: the train step refuses another, whose windows start inside a paragraph). Writing r is
the text the materialised split's writing c = r is, so writing 0 is people.parquet's text (what evaluation scores)
and a stream of E rounds holds the same writings as the materialised split with copies = E, each person exactly
E times. The rounds go on without end; the engine asks for as many windows as the steps need.

A data kind plugs in with a `Writer` (`writer`): the people N, the vocabulary, `ids(i, r)` (writing r of person i
as token ids) and either one `length` for every paragraph (own tokens, without <bos>/<eos>: the closed-form
schedule `rounds.Constant`) or `lengths(r)` (every person's own tokens of writing r, in person order: the greedy
table `rounds.Greedy`). bioD's paragraphs all have the same length (`BioD`). Nothing is dropped for length: a
paragraph longer than context - 1 tokens is an error (tokenize already refuses it).

Built from stream.json's `capacity` (capacity.json's content, as tokenize reads it) and meta.json: the world
(names, diversity sets) is regenerated in each worker (`biod.make_world`, N draws), a person's values per paragraph
(`biod.person`). The junk-data study's mixture is not streamed (the train step refuses `train.stream` with junk);
with its domain token the streamed paragraphs carry the token, as the test split's.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import polars as pl

from physlm.errors import DataError
from physlm.stream import Example, StreamSpec
from physlm.tokenize import Vocab
from physlm.worlds.capacity import biosn
from physlm.worlds.capacity.biod import (
    Spec,
    entry_tokens,
    make_world,
    order,
    paragraph,
    person,
)
from physlm.worlds.capacity.params import DOMAIN_TOKEN
from physlm.worlds.capacity.rounds import Constant, Greedy, Schedule, permutation
from physlm.worlds.capacity.tokenize import encode_text, spec_of_json, vocabulary


class Writer(Protocol):
    """A data kind's writings (module docstring)."""

    people: int  # N
    vocab: Vocab  # the dataset's (tokens/tokenizer.json)
    length: int | None  # every paragraph's own tokens (without <bos>/<eos>), or None: `lengths`

    def ids(self, i: int, r: int) -> np.ndarray: ...  # writing r of person i, token ids
    def text(self, i: int, r: int) -> str: ...  # the same as text
    def lengths(self, r: int) -> np.ndarray: ...  # [people] own tokens of each person's writing r (person order)


class BioD:
    """bioD's writings: writing r of person i orders its sentences by `biod.order(seed, i, r)` (tokenize's writing
    c = r); every paragraph has `biod.entry_tokens` tokens (one more with the domain token)."""

    def __init__(self, spec: Spec, domain_token: bool) -> None:
        self.spec, self.world, self.people = spec, make_world(spec), spec.N
        self.vocab = vocabulary(spec, domain_token)
        self._ids = {s: k for k, s in enumerate(self.vocab.symbols)}
        self.marker = [self._ids[DOMAIN_TOKEN]] if domain_token else []
        self.length = entry_tokens(spec.K, spec.C, spec.L) + len(self.marker)

    def text(self, i: int, r: int) -> str:
        s = self.spec
        return paragraph(self.world, person(self.world, i), order(s.seed, i, r, s.K))

    def ids(self, i: int, r: int) -> np.ndarray:
        return np.asarray(self.marker + encode_text(self._ids, self.text(i, r), "capacity stream"), dtype=np.int64)

    def lengths(self, r: int) -> np.ndarray:
        return np.full(self.people, self.length, dtype=np.int64)


class BioS:
    """bioS(N) / bioS^simple(N)'s writings (`biosn`): writing r of person i is `biosn.writing(spec, person, r)`, the
    text tokenize's writing c = r is (bioS^simple: the one entry, every round), encoded with the dataset's
    vocabulary (`tokenize.units`); lengths vary, so the schedule is the greedy table, fed by `biosn.Lengths` (token
    counts from the template choices, nothing written). The people are regenerated once per process."""

    length = None

    def __init__(self, spec: biosn.Spec, units: str) -> None:
        self.spec, self.persons, self.people = spec, biosn.people(spec), spec.N
        self.vocab = biosn.vocabulary(spec.pools, units)
        self._lengths = biosn.Lengths(spec, self.persons, self.vocab)
        self._simple: np.ndarray | None = None

    def text(self, i: int, r: int) -> str:
        return biosn.writing(self.spec, self.persons[i], r).text

    def ids(self, i: int, r: int) -> np.ndarray:
        person = self.persons[i]
        return np.asarray(biosn.encode(self.vocab, person, biosn.writing(self.spec, person, r), spans=False)[0], dtype=np.int64)

    def lengths(self, r: int) -> np.ndarray:
        if not self.spec.simple:
            return self._lengths(r)
        if self._simple is None:  # one entry per person: the same lengths every round
            self._simple = self._lengths(0)
        return self._simple


def writer(spec: StreamSpec) -> Writer:
    """The dataset's writings, from stream.json's `capacity` (capacity.json, as tokenize reads it) and meta.json
    (the domain token; bioS's `units`): `BioD` or `BioS` by its `data`."""
    record = spec.record()
    if "capacity" not in record:
        raise DataError("stream.json: no `capacity` spec (rerun the dataset's generate and tokenize stages)")
    found = record["capacity"]
    if found.get("data", "bioD") in biosn.KINDS:
        return BioS(biosn.spec_of_json(found, "stream.json capacity"), spec.tokenization().get("units", "words"))
    return BioD(spec_of_json(found, "stream.json capacity"), "domain_token" in spec.tokenization())


def schedule(w: Writer, seed: int, width: int) -> Schedule:
    """Window j -> its first paragraph: the closed form for one length, else the greedy table over the rounds'
    lengths in slot order (with <bos> and <eos>)."""
    if w.length is not None:
        return Constant(width, w.length + 2)
    return Greedy(w.people, width, lambda r: w.lengths(r)[permutation(seed, r, w.people)] + 2)


class Source:
    drops_long = False

    def __init__(self, spec: StreamSpec) -> None:
        self.writer, self.seed = writer(spec), spec.seed
        self.people, self.vocab_size = self.writer.people, self.writer.vocab.size
        self.schedule = schedule(self.writer, spec.seed, spec.width)

    def paragraph(self, n: int) -> tuple[int, int, int]:
        """Global paragraph n as (round, slot, person)."""
        r, slot = divmod(n, self.people)
        return r, slot, int(permutation(self.seed, r, self.people)[slot])

    def example(self, seed: int, j: int, k: int) -> Example:
        if seed != self.seed:
            raise ValueError(f"capacity stream: seed {seed} is not the dataset's {self.seed}")
        r, slot, i = self.paragraph(self.schedule.start(j) + k)
        return Example(k, self.writer.ids(i, r), (r, slot, i))

    def frame(self, examples: list[Example]) -> pl.DataFrame:
        """index (k), round, slot, person (pi_round[slot]), text (its writing `round`), tokens (without <bos>/<eos>)."""
        rows = [(e.k, *e.payload, self.writer.text(e.payload[2], e.payload[0]), len(e.ids)) for e in examples]
        return pl.DataFrame(rows, schema={"index": pl.Int64, "round": pl.Int64, "slot": pl.Int64, "person": pl.Int64,
                                          "text": pl.String, "tokens": pl.Int32}, orient="row")


def source(spec: StreamSpec) -> Source:
    return Source(spec)
