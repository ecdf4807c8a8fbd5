"""Brevo instances as Parquet rows and back (`COLUMNS`, documented in the package docstring), and the dataset's layout
file `brevo.json`. No torch here, and no sampling: what tokenize, probe and evaluate read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import polars as pl

from physlm.errors import DataError
from physlm.io import read_json, read_parquet, write_json
from physlm.worlds.brevo.graph import Instance
from physlm.worlds.brevo.text import Layout

LAYOUT = "brevo.json"
COLUMNS = {"index": pl.Int64, "n": pl.Int16, "vertices": pl.List(pl.Int16), "edge_parent": pl.List(pl.Int16),
           "edge_child": pl.List(pl.Int16), "query": pl.Int16, "answer": pl.List(pl.Int16), "depth": pl.Int16}
WORDS = {"words": pl.List(pl.List(pl.UInt8))}  # Brevo2 only


def columns(layout: Layout) -> dict[str, pl.DataType]:
    return COLUMNS | (WORDS if layout.names == "words" else {})


def frame(instances: list[Instance], start: int, layout: Layout) -> pl.DataFrame:
    data = {"index": range(start, start + len(instances)), "n": [i.n for i in instances],
            "vertices": [list(i.vertices) for i in instances], "edge_parent": [[u for u, _ in i.edges] for i in instances],
            "edge_child": [[v for _, v in i.edges] for i in instances], "query": [i.query for i in instances],
            "answer": [list(i.answer) for i in instances], "depth": [i.depth for i in instances]}
    if layout.names == "words":
        data["words"] = [[list(i.words[v]) for v in i.vertices] for i in instances]
    return pl.DataFrame(data, schema=columns(layout))


def instance_from_row(row: dict) -> Instance:
    """The Instance a `frame` row was made from."""
    parents: dict[int, list[int]] = {v: [] for v in row["vertices"]}
    for u, v in zip(row["edge_parent"], row["edge_child"]):
        parents[v].append(u)
    words = {v: tuple(w) for v, w in zip(row["vertices"], row["words"])} if "words" in row else None
    return Instance(tuple(row["vertices"]), {v: tuple(p) for v, p in parents.items()},
                    tuple(zip(row["edge_parent"], row["edge_child"])), row["query"], tuple(row["answer"]), row["depth"], words)


def write_layout(raw: Path, layout: Layout) -> None:
    write_json(raw / LAYOUT, asdict(layout))


def read_layout(raw: Path) -> Layout:
    """The dataset's layout (raw/brevo.json); DataError when it is missing or not one."""
    found = read_json(raw / LAYOUT, ("names", "N", "word_vocab", "word_min", "word_max"))
    try:
        return Layout(**found)
    except TypeError as err:
        raise DataError(f"{raw / LAYOUT}: not a Brevo layout ({err})") from None


def in_split(path: Path, layout: Layout, instances: Sequence[Instance]) -> list[bool]:
    """Whether each instance is also a row of the Parquet file at `path` (the same vertices, edges, query and
    words): rows whose hash matches one of the instances' (a semi join, so a training split of millions of rows is
    never turned into Python objects), then compared whole."""
    keys = [c for c in ("vertices", "edge_parent", "edge_child", "query", "words") if c in columns(layout)]
    mine = frame(list(instances), 0, layout).select(keys)
    hashed = lambda f: f.with_columns(pl.struct(keys).hash(seed=0).alias("_hash"))  # noqa: E731
    found = hashed(read_parquet(path, {k: columns(layout)[k] for k in keys})).join(hashed(mine).select("_hash"), on="_hash", how="semi")
    seen = set(map(repr, found.select(keys).rows()))
    return [repr(row) in seen for row in mine.rows()]


def read_instances(path: Path, layout: Layout, limit: int | None = None) -> list[Instance]:
    """The first `limit` instances of a Brevo Parquet file; DataError when a column is missing or mistyped."""
    found = read_parquet(path, columns(layout))
    found = found if limit is None else found.head(limit)
    return [instance_from_row(row) for row in found.iter_rows(named=True)]
