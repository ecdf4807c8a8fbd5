"""The capacity world's data (physlm/worlds/capacity/): every paragraph read back by a parser written here (a regex
and plain Python, not the generator's code), the files' contract, the formula's inputs re-derived from the files,
determinism and worker-count independence, the train split's writings, and bad params.

- each paragraph: the full name first (then `'s`), `Their` after; every attribute 1..K stated exactly once; its
  value C chunks of L tokens over v0..v{T-1}, each chunk one of the attribute's D-set (chunks.parquet) and the
  one the person's `chunks` column names; the text has the `tokens` column's length;
- names: distinct, each part from the first k names of its pool file (physlm/names/*.json, read here as JSON),
  name_index consistent with the parts;
- N0, N, K, C, D, L, T re-derived from the Parquet files and the pool files, equal to capacity.json's;
- chunk ids spread over the D-set (no id starved), sentence orders vary;
- the same seed gives byte-identical files for 1 and 2 worker processes; a person regenerates alone;
- the train split holds every person exactly `copies` times (decoded and parsed back), the test split once.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from physlm.tokenize import pack_windows
from physlm.worlds.capacity import biod
from physlm.worlds.capacity.generate import generate
from physlm.worlds.capacity.params import CapacityGenerateParams, CapacityTokenizeParams
from physlm.worlds.capacity.tokenize import tokenize

NAMES = Path(__file__).resolve().parents[1] / "physlm" / "names"
POOLS = {"first_names": 12, "middle_names": 9, "last_names": 15}
GEN = {"N": 300, "K": 3, "C": 2, "D": 6, "L": 2, "T": 5, "pools": POOLS, "workers": 1}
SENTENCE = re.compile(r"(?P<who>[A-Z][A-Za-z'-]* [A-Z][A-Za-z'-]* [A-Z][A-Za-z'-]* 's|Their) ID_(?P<a>\d+) is"
                      r" (?P<value>v\d+(?: v\d+)*(?: , v\d+(?: v\d+)*)*) \.")


def parse(text: str) -> tuple[str, dict[int, list[tuple[int, ...]]]]:
    """(full name, {attribute: [chunk as value-token numbers]}) of one paragraph; AssertionError if it is not
    sentences of the template, the name only in the first, each attribute once."""
    found = list(SENTENCE.finditer(text))
    assert found and " ".join(m.group(0) for m in found) == text, text
    assert found[0]["who"] != "Their" and all(m["who"] == "Their" for m in found[1:]), text
    values: dict[int, list[tuple[int, ...]]] = {}
    for m in found:
        a = int(m["a"])
        assert a not in values, f"attribute {a} stated twice: {text}"
        values[a] = [tuple(int(t[1:]) for t in chunk.split(" ")) for chunk in m["value"].split(" , ")]
    return found[0]["who"][: -len(" 's")], values


def pool(kind: str) -> list[str]:
    return json.loads((NAMES / f"{kind}.json").read_text())


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    generate(CapacityGenerateParams(**GEN), 11, out)
    return out


def test_every_paragraph_reads_back(raw: Path) -> None:
    people = pl.read_parquet(raw / "people.parquet")
    sets = pl.read_parquet(raw / "chunks.parquet")
    dset = {(a, j): tuple(t) for a, j, t in sets.iter_rows()}
    members = {a: {c for (b, _), c in dset.items() if b == a} for a in {a for a, _ in dset}}
    spec = json.loads((raw / "capacity.json").read_text())
    for row in people.iter_rows(named=True):
        name, values = parse(row["text"])
        assert name == f"{row['first']} {row['middle']} {row['last']}"
        assert sorted(values) == list(range(1, spec["K"] + 1))
        for a, chunks in values.items():
            assert len(chunks) == spec["C"] and all(len(c) == spec["L"] and max(c) < spec["T"] for c in chunks)
            assert all(c in members[a] for c in chunks)  # from the attribute's own D-set
            assert chunks == [dset[a, j] for j in row["chunks"][a - 1]]  # the chunks the row names
            assert row["values"][a - 1] == " , ".join(" ".join(f"v{t}" for t in c) for c in chunks)
        assert row["tokens"] == len(row["text"].split(" ")) and list(row["order"]) == [int(a) for a in re.findall(r"ID_(\d+)", row["text"])]


def test_names_are_distinct_and_from_the_pools(raw: Path) -> None:
    people = pl.read_parquet(raw / "people.parquet")
    first, middle, last = (pool(k)[:n] for k, n in POOLS.items())
    triples = list(people.select("first", "middle", "last").iter_rows())
    assert len(set(triples)) == len(triples) == GEN["N"]
    for (f, m, la), index in zip(triples, people["name_index"]):
        assert index == (first.index(f) * len(middle) + middle.index(m)) * len(last) + last.index(la)


def test_the_formula_inputs_rederived_from_the_files(raw: Path) -> None:
    people = pl.read_parquet(raw / "people.parquet")
    sets = pl.read_parquet(raw / "chunks.parquet")
    parsed = [parse(t)[1] for t in people["text"]]
    chunks = [c for p in parsed for value in p.values() for c in value]
    spec = json.loads((raw / "capacity.json").read_text())
    derived = {"N0": int(np.prod([len(pool(k)[: spec["pools"][k]]) for k in POOLS])), "N": people.height,
               "K": len({a for p in parsed for a in p}), "C": len(parsed[0][1]), "L": len(chunks[0]),
               "D": int(sets.group_by("attribute").len()["len"].max()), "T": None}
    assert {len({tuple(c) for c in s}) for s in sets.group_by("attribute").agg(pl.col("tokens"))["tokens"].to_list()} == {derived["D"]}
    used = {t for c in chunks for t in c}
    assert max(used) < spec["T"] and len(used) == spec["T"]  # at this size every value token occurs
    derived["T"] = max(used) + 1
    assert derived == {k: spec[k] for k in derived} and spec["pools"] == POOLS


def test_chunks_and_orders_spread(raw: Path) -> None:
    people = pl.read_parquet(raw / "people.parquet")
    ids = Counter(j for value in people["chunks"].to_list() for chunks in value for j in chunks)
    expected = GEN["N"] * GEN["K"] * GEN["C"] / GEN["D"]
    assert set(ids) == set(range(GEN["D"])) and all(abs(n - expected) < 0.25 * expected for n in ids.values())
    assert len({tuple(o) for o in people["order"].to_list()}) == 6  # all 3! orders occur


def test_deterministic_worker_independent_and_one_person_alone(raw: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    two.mkdir()
    generate(CapacityGenerateParams(**(GEN | {"workers": 2})), 11, two)  # one chunk at this N; the next test splits it
    for name in ("people.parquet", "chunks.parquet", "capacity.json"):
        assert (two / name).read_bytes() == (raw / name).read_bytes(), name
    spec = biod.Spec(N=GEN["N"], K=3, C=2, D=6, L=2, T=5, pools=tuple(POOLS.values()), seed=11)
    world = biod.make_world(spec)
    row = pl.read_parquet(raw / "people.parquet").row(123, named=True)
    alone = biod.person(world, 123)
    assert alone.name == (row["first"], row["middle"], row["last"]) and [list(c) for c in alone.chunks] == row["chunks"]
    other = biod.make_world(biod.Spec(N=GEN["N"], K=3, C=2, D=6, L=2, T=5, pools=tuple(POOLS.values()), seed=12))
    assert other.name_indices != world.name_indices and other.dsets != world.dsets


def test_worker_chunks_really_split(monkeypatch: pytest.MonkeyPatch, raw: Path, tmp_path: Path) -> None:
    """With chunks of 70 people on 2 processes the file is still the same bytes."""
    import physlm.worlds.capacity.generate as gen

    monkeypatch.setattr(gen, "CHUNK", 70)
    spec = gen.spec_of(CapacityGenerateParams(**GEN), 11)
    frame = gen.people_frame(biod.make_world(spec), workers=2)
    assert frame.equals(pl.read_parquet(raw / "people.parquet"))


def test_train_split_holds_every_person_copies_times(raw: Path) -> None:
    t = tokenize(raw, CapacityTokenizeParams(context=64, pack="sentences", copies=4))
    people = pl.read_parquet(raw / "people.parquet")
    expected = {f"{f} {m} {la}": parse(text)[1] for f, m, la, text in people.select("first", "middle", "last", "text").iter_rows()}
    flat, offsets = t.splits["train"]()
    texts = [" ".join(t.vocab.symbols[i] for i in flat[a:b]) for a, b in pairwise(offsets)]
    seen = Counter()
    for text in texts:
        name, values = parse(text)
        assert values == expected[name]
        seen[name] += 1
    assert set(seen.values()) == {4} and len(seen) == GEN["N"]
    assert len(set(texts)) > GEN["N"]  # the writings differ in order
    assert len({texts[i] for i in range(4)}) == 4 and parse(texts[0])[0] != parse(texts[1])[0]  # shuffled, not grouped
    test_flat, test_offsets = t.splits["test"]()
    assert [" ".join(t.vocab.symbols[i] for i in test_flat[a:b]) for a, b in pairwise(test_offsets)] == \
        people["text"].to_list()
    assert t.meta["entry_tokens"] == people["tokens"][0] + 2 == 3 + 3 * (2 * 2 + 2 + 3) + 2
    assert t.meta["used_tokens"] <= t.vocab.size and t.vocab.size == 2 + 5 + 3 + 5 + len(
        dict.fromkeys(n for k, size in POOLS.items() for n in pool(k)[:size]))
    assert pack_windows(flat, offsets, 64, 0, 1, "sentences").shape[1] == 65


@pytest.mark.parametrize(("bad", "message"), [
    ({"N": 12 * 9 * 15 + 1}, "exceeds N0 = 1620"),
    ({"D": 26}, r"D = 26 exceeds T\^L = 5\^2"),
    ({"pools": {"first_names": 401}}, "less than or equal to 400"),
    ({"K": 0}, "greater than 0"),
])
def test_bad_params_are_one_line_errors(bad: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CapacityGenerateParams(**(GEN | bad))
    with pytest.raises(ValueError):
        biod.Spec(**{"N": 10, "K": 1, "C": 1, "D": 2, "L": 1, "T": 2, "pools": (2, 2, 2)} | ({"N": 9} if "N" in bad else {"D": 3}))


def test_the_parser_can_fail() -> None:
    good = "Ann Lee Smith 's ID_1 is v1 v2 , v3 v4 . Their ID_2 is v0 v0 , v1 v1 ."
    assert parse(good)[1] == {1: [(1, 2), (3, 4)], 2: [(0, 0), (1, 1)]}
    for broken in (good.replace("Their ID_2", "Their ID_1"), good.replace("Their", "Ann Lee Smith 's"),
                   good.replace(" .", " ,", 1), "Their ID_1 is v1 ."):
        with pytest.raises(AssertionError):
            parse(broken)
