"""The capacity world's generate step: `data/<dataset>/raw/people.parquet` (one row per person, columns
`COLUMNS`), `chunks.parquet` (the K diversity sets: one row per attribute and chunk id) and `capacity.json` (the
resolved spec: N0, N, K, C, D, L, T, the pools, the seed, tokens per paragraph), which later steps read.

people.parquet: `person` int64 (index i); `first`, `middle`, `last` str (name parts); `name_index` int64 (among the
N0 candidates); `chunks` list[list[int]] (K lists of C chunk ids, attribute 1 first); `values` list[str] (K value
texts, attribute 1 first, e.g. `v3 v17 , v5 v0`); `order` list[int] (the attribute order of `text`);
`text` str (writing 0 of the paragraph); `tokens` int (its tokens, without <bos>/<eos>).
With `junk_people` N' > 0 (Part 3.3's junk-data study; default 0, and then nothing here changes), also
`junk.parquet`: the N' junk people (`biod`: other people of the same world, names disjoint from the useful ones'),
the same columns (`person` is the junk index j, `text` junk writing 0), and capacity.json gets `junk_people`.
chunks.parquet: `attribute` int (1..K), `chunk` int (0..D-1), `tokens` list[int] (its L value tokens, 0..T-1).
stream.json: what the streamed train split (`train.stream`, the stream step `stream`) is built from: the world, the
seed, the generate section (`physlm.stream.stream_record`) and `capacity`, capacity.json's content.

People are made in chunks of `CHUNK` on spawned processes (`physlm.playground.chunked_frame`); each is a pure
function of (seed, i) and the world (names and sets, drawn from the seed alone), so the files do not depend on
the worker count.

`generate.data` bioS or bioS_simple (`biosn`): `people.parquet` holds the biography people
(`physlm.bios.biographies.people_frame`'s columns, its `id` named `person` as bioD's: first, middle, last, full_name,
birth_year, birth_month, birth_day, birth_date, birth_city, university, major, employer, work_city, pronoun), then
`text` (writing 0, `biosn.writing`) and `tokens` (its word tokens: `tokenize.units` words; values units merge a
value of several words into one); `capacity.json` is `biosn.Spec.resolved()` (data, N0, N, S0 and its factors,
the seven pools, pronouns, seed). The people are drawn in this process (a person's name depends on the names
before it), their writings rendered in chunks on spawned processes. No chunks.parquet, no junk. No torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from physlm.bios.biographies import people_frame as bio_people_frame
from physlm.bios.people import Person, PoolSizes
from physlm.io import write_json
from physlm.playground import chunked_frame
from physlm.stream import RECORD as STREAM_RECORD
from physlm.stream import stream_record
from physlm.text import split_words
from physlm.worlds.capacity import biosn
from physlm.worlds.capacity.biod import (
    Spec,
    World,
    junk_name_indices,
    junk_person,
    make_world,
    order,
    paragraph,
    person,
    value_text,
)
from physlm.worlds.capacity.params import CapacityGenerateParams

CHUNK = 2000
COLUMNS = {"person": pl.Int64, "first": pl.String, "middle": pl.String, "last": pl.String, "name_index": pl.Int64,
           "chunks": pl.List(pl.List(pl.UInt16)), "values": pl.List(pl.String), "order": pl.List(pl.UInt8),
           "text": pl.String, "tokens": pl.Int32}


def spec_of(params: CapacityGenerateParams, seed: int) -> Spec:
    p = params.pools
    return Spec(N=params.N, K=params.K, C=params.C, D=params.D, L=params.L, T=params.T,
                pools=(p.first_names, p.middle_names, p.last_names), seed=seed, junk_people=params.junk_people)


@dataclass(frozen=True)
class _Chunk:
    """People lo .. hi-1; with `junk`, junk people lo .. hi-1, whose name indices are `junk_names` (theirs only, so
    a chunk sent to a worker does not carry all N' of them)."""

    world: World
    lo: int
    hi: int
    junk_names: tuple[int, ...] = ()

    def __call__(self) -> pl.DataFrame:
        s, rows = self.world.spec, []
        junk = bool(self.junk_names)
        for i in range(self.lo, self.hi):
            if junk:
                index = self.junk_names[i - self.lo]
                p = junk_person(self.world, i, index)
            else:
                index, p = self.world.name_indices[i], person(self.world, i)
            attributes = order(s.seed, i, 0, s.K, junk=junk)
            text = paragraph(self.world, p, attributes)
            rows.append((i, *p.name, index, [list(c) for c in p.chunks],
                         [value_text(self.world, a, p.chunks[a - 1]) for a in range(1, s.K + 1)], list(attributes), text,
                         len(text.split(" "))))
        return pl.DataFrame(rows, schema=COLUMNS, orient="row")


def people_frame(world: World, workers: int = 1) -> pl.DataFrame:
    n = world.spec.N
    chunks = [_Chunk(world, lo, min(lo + CHUNK, n)) for lo in range(0, n, CHUNK)]
    return chunked_frame(chunks, n, workers, "capacity people", "person")


def junk_frame(world: World, workers: int = 1) -> pl.DataFrame:
    """The N' junk people (biod's junk_name_indices, junk_person), one row each, people.parquet's columns."""
    names, n = junk_name_indices(world), world.spec.junk_people
    chunks = [_Chunk(world, lo, min(lo + CHUNK, n), names[lo : lo + CHUNK]) for lo in range(0, n, CHUNK)]
    return chunked_frame(chunks, n, workers, "capacity junk people", "person")


def chunks_frame(world: World) -> pl.DataFrame:
    return pl.DataFrame([(a, j, list(c)) for a, dset in enumerate(world.dsets, 1) for j, c in enumerate(dset)],
                        schema={"attribute": pl.UInt16, "chunk": pl.UInt16, "tokens": pl.List(pl.UInt16)}, orient="row")


def bios_spec_of(params: CapacityGenerateParams, seed: int) -> biosn.Spec:
    return biosn.Spec(N=params.N, simple=params.data == "bioS_simple", pools=PoolSizes(**params.pools.model_dump()),
                      pronouns=params.pronouns or "parity", seed=seed)


@dataclass(frozen=True)
class _BioSChunk:
    """The people.parquet rows of these bioS people (their writing 0)."""

    spec: biosn.Spec
    people: tuple[Person, ...]

    def __call__(self) -> pl.DataFrame:
        texts = [biosn.writing(self.spec, p, 0).text for p in self.people]
        return bio_people_frame(self.people).rename({"id": "person"}).with_columns(
            text=pl.Series(texts, dtype=pl.String), tokens=pl.Series([len(split_words(t)) for t in texts], dtype=pl.Int32))


def generate_bios(params: CapacityGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """bioS / bioS_simple: people.parquet and capacity.json (module docstring)."""
    spec = bios_spec_of(params, seed)
    people = biosn.people(spec)
    chunks = [_BioSChunk(spec, tuple(people[lo : lo + CHUNK])) for lo in range(0, spec.N, CHUNK)]
    frame = chunked_frame(chunks, spec.N, params.workers or os.cpu_count() or 1, f"capacity {spec.data} people", "person")
    frame.write_parquet(out_dir / "people.parquet", compression="zstd", statistics=False)
    write_json(out_dir / "capacity.json", spec.resolved())
    write_json(out_dir / STREAM_RECORD, stream_record("capacity", seed, params, capacity=spec.resolved()))
    return {"people": len(frame)}


def generate(params: CapacityGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    if params.data != "bioD":
        return generate_bios(params, seed, out_dir)
    spec = spec_of(params, seed)
    world = make_world(spec)
    workers = params.workers or os.cpu_count() or 1
    frames = {"people": people_frame(world, workers), "chunks": chunks_frame(world)}
    if spec.junk_people:
        frames["junk"] = junk_frame(world, workers)
    for name, frame in frames.items():
        frame.write_parquet(out_dir / f"{name}.parquet", compression="zstd", statistics=False)
    write_json(out_dir / "capacity.json", spec.resolved())
    write_json(out_dir / STREAM_RECORD, stream_record("capacity", seed, params, capacity=spec.resolved()))
    return {name: len(frame) for name, frame in frames.items()}
