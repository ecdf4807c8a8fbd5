"""The capacity world on bioS(N) and bioS^simple(N) (`generate.data`; physlm/worlds/capacity/biosn.py).

- every paragraph read back by a parser written here: regular expressions built from the template file
  (physlm/bios/data/bios_templates.json, read as JSON) and the pool files, not physlm's renderer: the full name first
  (the first sentence's template opens with the person), each of the six attributes stated exactly once with the
  person's value, the person's pronoun (and verb number) in every later sentence;
- the template file's own contract the writings rely on (one value and one person slot per template, no pronoun in
  the literal words, the verb after the person);
- writings of one person differ across w for bioS and are one text for bioS^simple; a writing is a pure function
  of (seed, i, w); the files do not depend on the worker count (generate and tokenize);
- N0 and S0 re-derived from the files and the pool files (the paper's S0 at the full pools);
- tokenize: the train split decodes to `copies` writings of every person, the test split to writing 0;
- the token spans pick exactly the value tokens (located here by searching each value's own tokens) and the first
  pronoun; the evaluation's p1 / p2 on a scripted model that knows exactly those tokens, or all but them;
- the bioS bound's known answers; a tiny study through generate, tokenize, train, probe, evaluate and report;
- bad params and the presets' bioS grids.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from pydantic import ValidationError
from test_capacity_stages import Scripted
from test_presets import assert_every_stage_validates

from physlm.bios.people import PoolSizes
from physlm.errors import DataError
from physlm.worlds.capacity import biosn
from physlm.worlds.capacity.bits import bios_stored_bits, bios_upper_bound
from physlm.worlds.capacity.evaluate import bios_losses, measure, token_losses
from physlm.worlds.capacity.generate import generate
from physlm.worlds.capacity.params import CapacityGenerateParams, CapacityTokenizeParams
from physlm.worlds.capacity.tokenize import tokenize

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "physlm" / "bios" / "data"
NAMES = ROOT / "physlm" / "names"
TEMPLATES: dict[str, list[str]] = json.loads((DATA / "bios_templates.json").read_text())
PRONOUN_SETS: list[dict] = json.loads((DATA / "pronouns.json").read_text())
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
          "December")
ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "employer", "work_city")
POOLS = {"first_names": 10, "middle_names": 8, "last_names": 12, "cities": 9, "universities": 11, "majors": 7, "employers": 20}
GEN = {"data": "bioS", "N": 150, "pools": POOLS, "workers": 1}
PERSON_SLOT = re.compile(r"\{([SOP])\}")
SLOT = re.compile(r"\{(V|S|O|P)\}|\[(\w+)\|(\w+)\]")
GIVEN_NAME = r"[A-Z][A-Za-z'-]*"


# ------------------------------------------------------------------------------------------ the parser


@functools.cache
def pool_values(sizes: tuple[tuple[str, int], ...]) -> dict[str, list[str]]:
    """The values each attribute can take (the first k of each pool file) and the name pools."""
    k = dict(sizes)
    read = {f: json.loads((DATA / f"{f}.json").read_text()) for f in ("cities", "universities", "majors", "employers")}
    employers = read["employers"][: k["employers"]]
    out = {"birth_city": read["cities"][: k["cities"]], "university": read["universities"][: k["universities"]],
           "major": read["majors"][: k["majors"]], "employer": [e["name"] for e in employers],
           "work_city": [e["city"] for e in employers]}
    return out | {kind: json.loads((NAMES / f"{kind}.json").read_text())[: k[kind]] for kind in ("first_names", "middle_names", "last_names")}


def value_pattern(attribute: str, values: dict[str, list[str]]) -> str:
    if attribute == "birth_date":
        return rf"(?:{'|'.join(MONTHS)}) (?:[1-9]|1[0-9]|2[0-8]), (?:19[0-9]{{2}}|20[0-9]{{2}})"
    return "|".join(re.escape(v) for v in sorted(set(values[attribute]), key=len, reverse=True))


@functools.cache
def sentence_regex(template: str, attribute: str, sizes: tuple, who: int | None) -> re.Pattern:
    """A sentence of `template` as written: the person as the full name (`who` None: the first sentence) or as
    pronoun set `who` (pronouns.json), capitalised at the sentence's start; [singular|plural] by the referent; the
    value one of the attribute's pool; a full stop."""
    values = pool_values(sizes)
    out, last = [], 0
    for m in SLOT.finditer(template):
        out.append(re.escape(template[last : m.start()]))
        if m[1] == "V":
            out.append(f"(?P<value>{value_pattern(attribute, values)})")
        elif m[1]:
            if who is None:
                name = rf"(?P<name>{GIVEN_NAME} {GIVEN_NAME} {GIVEN_NAME})"
                out.append(name + ("'s" if m[1] == "P" else ""))
            else:
                word = PRONOUN_SETS[who][{"S": "subject", "O": "object", "P": "possessive"}[m[1]]]
                out.append(re.escape(word[:1].upper() + word[1:] if m.start() == 0 else word))
        else:
            plural = who is not None and PRONOUN_SETS[who]["plural"]
            out.append(re.escape(m[3] if plural else m[2]))
        last = m.end()
    out.append(re.escape(template[last:]))
    return re.compile("".join(out) + ("" if template.endswith(".") else r"\."))


def parse(text: str, sizes: tuple, pronoun: str) -> tuple[str, dict[str, str], list[str]]:
    """(full name, {attribute: value} in the order of the sentences, the first sentence's templates) of one paragraph of a person whose pronoun set
    is `pronoun` (he, she, they); AssertionError unless every sentence is one template's, the first naming the
    person and opening with it, the others the pronoun, each attribute exactly once."""
    who = next(k for k, p in enumerate(PRONOUN_SETS) if p["subject"] == pronoun)
    sentences = re.split(r"(?<=\.) ", text)
    assert len(sentences) == 6, text
    name, values, first = None, {}, []
    for k, sentence in enumerate(sentences):
        found = [(a, t, m) for a, bank in TEMPLATES.items() for t in bank
                 if (m := sentence_regex(t, a, sizes, None if k == 0 else who).fullmatch(sentence))]
        assert len({a for a, _, _ in found}) == 1, (sentence, [a for a, _, _ in found])
        a, template, m = found[0]
        assert a not in values, f"{a} stated twice: {text}"
        values[a] = m["value"]
        if k == 0:
            name, first = m["name"], [t for _, t, _ in found]
            assert sentence.startswith(name), sentence  # the paragraph opens with the person
    return name, values, first


def check_paragraph(text: str, row: dict, sizes: tuple) -> list[str]:
    name, values, first = parse(text, sizes, row["pronoun"])
    assert name == f"{row['first']} {row['middle']} {row['last']}" == row["full_name"]
    assert values == {a: row[a] for a in ATTRIBUTES}
    return first


def test_the_parser_can_fail() -> None:
    sizes = sizes_of(POOLS)
    values = pool_values(sizes)
    row = {"first": values["first_names"][0], "middle": values["middle_names"][0], "last": values["last_names"][0],
           "pronoun": "she", "birth_date": "May 3, 1990", "birth_city": values["birth_city"][0],
           "university": values["university"][0], "major": values["major"][0], "employer": values["employer"][0],
           "work_city": values["work_city"][0]}
    row["full_name"] = f"{row['first']} {row['middle']} {row['last']}"
    good = (f"{row['full_name']} was born on May 3, 1990. She was born in {row['birth_city']}. She studied at"
            f" {row['university']}. She majored in {row['major']}. She works for {row['employer']}. She works in"
            f" {row['work_city']}.")
    check_paragraph(good, row, sizes)
    broken = [good.replace("She studied", "He studied"),  # another person's pronoun
              good.replace("She majored", f"{row['full_name']} majored"),  # the name after the first sentence
              good.replace(f"She works for {row['employer']}.", f"She majored in {row['major']}."),  # a fact twice
              good.replace("May 3, 1990", "May 30, 1990"),  # no such day
              good.replace(row["major"], values["major"][1]),  # another value of the pool
              good.replace("She works in", "She work in"),  # the verb's number
              good.replace(f"{row['full_name']} was born on May 3, 1990.", f"On May 3, 1990, {row['full_name']} was born.")]
    for text in broken:
        with pytest.raises(AssertionError):
            check_paragraph(text, row, sizes)


# -------------------------------------------------------------------------------------------- fixtures


def sizes_of(pools: dict) -> tuple:
    return tuple(sorted(pools.items()))


@pytest.fixture(scope="module", params=["bioS", "bioS_simple", "random"])
def raw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A small dataset: bioS, bioS_simple (both pronouns by parity), and bioS with random pronouns."""
    gen = GEN | ({"data": "bioS", "pronouns": "random"} if request.param == "random" else {"data": request.param})
    out = tmp_path_factory.mktemp(request.param)
    generate(CapacityGenerateParams(**gen), 5, out)
    return out, gen


def test_the_template_file_keeps_the_writings_contract() -> None:
    """Every template states one value and refers to the person once; its own words hold no pronoun, and a verb
    that agrees with the person comes after it (nothing before the first pronoun tells the gender); every attribute
    has templates that open with the person (the first sentence's)."""
    pronouns = {w.lower() for p in PRONOUN_SETS for w in (p["subject"], p["object"], p["possessive"])}
    for attribute, bank in TEMPLATES.items():
        for t in bank:
            assert t.count("{V}") == 1 and len(PERSON_SLOT.findall(t)) == 1, t
            assert not {w.lower() for w in re.findall(r"[A-Za-z]+", SLOT.sub(" ", t))} & pronouns, t
            verbs = [m.start() for m in SLOT.finditer(t) if m[2]]
            assert all(v > PERSON_SLOT.search(t).start() for v in verbs), t
        opening = [t for t in bank if t.startswith(("{S}", "{P}"))]
        renamed = tuple(t.replace("{V}", "{" + attribute + "}") for t in opening)  # the kit names the value slot
        assert opening and renamed == biosn.opening(attribute) and len(opening) < len(bank)


def test_every_paragraph_reads_back(raw: tuple[Path, dict]) -> None:
    out, gen = raw
    people = pl.read_parquet(out / "people.parquet")
    assert people["person"].to_list() == list(range(gen["N"]))
    firsts = Counter()
    for row in people.iter_rows(named=True):
        firsts.update(check_paragraph(row["text"], row, sizes_of(POOLS)))
        assert row["tokens"] == len(re.findall(r"'s\b|[.;,?:]|(?:[^\s.;,?:']|'(?!s\b))+", row["text"]))
    values = pool_values(sizes_of(POOLS))
    hq = dict(zip(values["employer"], values["work_city"]))
    assert all(hq[e] == c for e, c in people.select("employer", "work_city").iter_rows())  # the derived work city
    assert len(set(zip(people["first"], people["middle"], people["last"]))) == gen["N"]  # distinct names
    assert all(t.startswith(("{S}", "{P}")) for t in firsts)
    if gen["data"] == "bioS":
        assert len(firsts) > 30  # the first sentence's templates vary (150 people)


def encoded_train(out: Path, copies: int, units: str = "words") -> tuple:
    t = tokenize(out, CapacityTokenizeParams(context=128, pack="sentences", copies=copies, units=units))
    flat, offsets = t.splits["train"]()
    return t, [flat[a:b] for a, b in pairwise(offsets)]


def test_writings_differ_for_bios_and_are_one_text_for_simple(raw: tuple[Path, dict]) -> None:
    """The train split holds `copies` writings of every person, each reads back with that person's facts; bioS's
    differ (templates and order re-drawn), bioS^simple's are one text in the paper's order."""
    out, gen = raw
    people = {r["full_name"]: r for r in pl.read_parquet(out / "people.parquet").iter_rows(named=True)}
    t, rows = encoded_train(out, copies=4)
    by_person = defaultdict(list)
    for ids in rows:
        text = t.vocab.decode(ids)
        name = " ".join(t.vocab.symbols[i] for i in ids[:3])  # the name's three tokens first
        check_paragraph(text, people[name], sizes_of(POOLS))
        by_person[name].append(text)
    assert {len(v) for v in by_person.values()} == {4} and len(by_person) == gen["N"]
    assert len({" ".join(t.vocab.symbols[i] for i in ids[:3]) for ids in rows[:4]}) > 1  # shuffled, not grouped
    distinct = Counter(len(set(v)) for v in by_person.values())
    orders = {tuple(parse(v[0], sizes_of(POOLS), people[n]["pronoun"])[1]) for n, v in by_person.items()}
    if gen["data"] == "bioS_simple":
        assert distinct == {1: gen["N"]} and orders == {ATTRIBUTES}  # one entry, in the paper's order
    else:
        assert distinct == {4: gen["N"]} and len(orders) > 50  # re-drawn templates and orders


def test_a_writing_is_a_pure_function_of_seed_person_and_w(raw: tuple[Path, dict]) -> None:
    out, gen = raw
    spec = biosn.Spec(N=gen["N"], simple=gen["data"] == "bioS_simple", pools=PoolSizes(**POOLS),
                      pronouns=gen.get("pronouns", "parity"), seed=5)
    few = biosn.people(biosn.Spec(N=20, simple=spec.simple, pools=spec.pools, pronouns=spec.pronouns, seed=5))
    everyone = biosn.people(spec)
    assert few == everyone[:20]  # person i does not depend on N
    texts = pl.read_parquet(out / "people.parquet")["text"]
    for p in few:
        assert biosn.writing(spec, p, 0).text == texts[p.id]
        assert biosn.writing(spec, p, 3) == biosn.writing(spec, p, 3)
    other = biosn.Spec(N=20, simple=spec.simple, pools=spec.pools, pronouns=spec.pronouns, seed=6)
    assert [biosn.writing(other, p, 0).text for p in few] != [biosn.writing(spec, p, 0).text for p in few]


def test_files_do_not_depend_on_the_worker_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import physlm.worlds.capacity.generate as gen_module
    import physlm.worlds.capacity.tokenize as tok_module

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    generate(CapacityGenerateParams(**GEN), 5, one)
    monkeypatch.setattr(gen_module, "CHUNK", 40)
    generate(CapacityGenerateParams(**(GEN | {"workers": 2})), 5, two)  # 4 chunks on 2 processes
    for name in ("people.parquet", "capacity.json"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    _, alone = encoded_train(one, copies=2)
    monkeypatch.setattr(tok_module, "PEOPLE_AT_ONCE", 40)  # 4 blocks on spawned processes (one per core)
    _, pooled = encoded_train(one, copies=2)
    assert len(alone) == len(pooled) and all(np.array_equal(a, b) for a, b in zip(alone, pooled))


def test_n0_and_s0_rederived_from_the_files(raw: tuple[Path, dict]) -> None:
    out, gen = raw
    spec = json.loads((out / "capacity.json").read_text())
    people = pl.read_parquet(out / "people.parquet")
    values = pool_values(sizes_of(POOLS))
    n0 = math.prod(len(values[k]) for k in ("first_names", "middle_names", "last_names"))
    pronouns = people["pronoun"].n_unique()
    assert pronouns == (3 if gen.get("pronouns") == "random" else 2)
    assert set(people["pronoun"]) <= {p["subject"] for p in PRONOUN_SETS}
    s0 = 12 * 28 * 200 * math.prod(len(set(values[a])) for a in ("birth_city", "university", "major", "employer")) * pronouns
    assert (spec["N0"], spec["S0"], spec["N"], spec["data"]) == (n0, s0, gen["N"], gen["data"])
    assert spec["pools"] == POOLS and spec["pronouns"] == gen.get("pronouns", "parity")
    assert all(set(people[a]) <= set(values[a]) for a in ("birth_city", "university", "major", "employer"))
    assert set(people["first"]) <= set(values["first_names"]) and set(people["last"]) <= set(values["last_names"])


def test_the_papers_s0_at_the_full_pools(tmp_path: Path) -> None:
    generate(CapacityGenerateParams(data="bioS", N=3, workers=1), 0, tmp_path)
    spec = json.loads((tmp_path / "capacity.json").read_text())
    assert spec["S0"] == 2 * (12 * 28 * 200) * 200 * 300 * 100 * 263 and spec["N0"] == 400 * 400 * 1000
    assert math.log2(spec["S0"]) == pytest.approx(47.59, abs=0.005)  # SPEC 6.2's 47.6 bits per person


def test_tokenize_round_trip(raw: tuple[Path, dict]) -> None:
    out, gen = raw
    people = pl.read_parquet(out / "people.parquet")
    mean = {}
    for units in ("words", "values"):
        t, rows = encoded_train(out, copies=2, units=units)
        mean[units] = t.meta["entry_tokens"]["mean"]
        lengths = [len(r) + 2 for r in rows]
        assert t.meta["entry_tokens"] == {"mean": pytest.approx(np.mean(lengths)), "min": min(lengths), "max": max(lengths)}
        assert (t.meta["data"], t.meta["units"], t.meta["people"], t.meta["copies"]) == (gen["data"], units, gen["N"], 2)
        assert t.meta["writings"] == (1 if gen["data"] == "bioS_simple" else 2)
        assert t.meta["used_tokens"] == len({0, 1} | {int(i) for r in rows for i in r}) <= t.vocab.size
        assert all(t.vocab.encode(t.vocab.decode(r)) == r.tolist() for r in rows)
        flat, offsets = t.splits["test"]()
        assert [t.vocab.decode(flat[a:b]) for a, b in pairwise(offsets)] == people["text"].to_list()
    assert mean["values"] < mean["words"]  # a value of several words is one token


def independent_positions(vocab, ids: list[int], row: dict) -> set[int]:
    """The token positions of the six values (each value's own tokens searched for in the paragraph) and of the
    first pronoun (the first pronoun word after the first full stop), found without the spans."""
    found: set[int] = set()
    for a in ATTRIBUTES:
        value = vocab.encode(row[a])
        hits = [k for k in range(3, len(ids) - len(value) + 1) if ids[k : k + len(value)] == value]
        assert hits, (a, row[a])
        found |= {k + j for k in hits for j in range(len(value))}
    forms = {w for p in PRONOUN_SETS for f in ("subject", "object", "possessive") for w in (p[f], p[f].capitalize())}
    stop = ids.index(vocab.id("."))
    found.add(next(k for k in range(stop, len(ids)) if vocab.symbols[ids[k]] in forms))
    return found


@pytest.mark.parametrize("units", ["words", "values"])
def test_spans_pick_the_value_tokens_and_the_losses_sum_them(raw: tuple[Path, dict], units: str) -> None:
    out, gen = raw
    spec = biosn.Spec(N=gen["N"], simple=gen["data"] == "bioS_simple", pools=PoolSizes(**POOLS),
                      pronouns=gen.get("pronouns", "parity"), seed=5)
    vocab = biosn.vocabulary(spec.pools, units)
    rows = pl.read_parquet(out / "people.parquet").head(40).to_dicts()
    paragraphs, spans = [], []
    for p, row in zip(biosn.people(spec, 40), rows):
        ids, where = biosn.encode(vocab, p, biosn.writing(spec, p, 0))
        assert vocab.decode(ids[slice(*where[biosn.NAME])]) == row["full_name"] and where[biosn.NAME] == (0, 3)
        assert {a: vocab.decode(ids[slice(*where[a])]) for a in ATTRIBUTES} == {a: row[a] for a in ATTRIBUTES}
        pronoun = vocab.decode(ids[slice(*where[biosn.PRONOUN])])
        assert pronoun.lower() in {f for s in PRONOUN_SETS if s["subject"] == row["pronoun"] for f in s.values() if isinstance(f, str)}
        positions = {k for part in biosn.PARTS for k in range(*where[part])}
        assert positions == independent_positions(vocab, ids, row)
        assert len(positions) == sum(b - a for part, (a, b) in where.items() if part != biosn.NAME)  # no overlap
        paragraphs.append(ids)
        spans.append(where)
    lnv = math.log(vocab.size)
    parts = [{k for part in biosn.PARTS for k in range(*s[part])} for s in spans]
    knows_values = Scripted(paragraphs, parts, vocab.size)  # knows exactly the p2 tokens
    nll = token_losses(knows_values, [np.asarray(p) for p in paragraphs], bos=0, batch_size=7)
    assert np.isnan(nll).any() and all(np.isfinite(nll[n, : len(p)]).all() for n, p in enumerate(paragraphs))
    losses = bios_losses(nll, spans)
    assert np.allclose(losses.p1, 3 * lnv) and np.allclose(losses.parts, 0.0, atol=1e-6)
    everything_else = [set(range(len(p))) - s for p, s in zip(paragraphs, parts)]
    losses = bios_losses(token_losses(Scripted(paragraphs, everything_else, vocab.size), paragraphs, 0, 16), spans)
    widths = np.asarray([[s[part][1] - s[part][0] for part in biosn.PARTS] for s in spans])
    assert np.allclose(losses.p1, 0.0, atol=1e-6) and np.allclose(losses.parts, widths * lnv)
    measured = measure(losses, spec, {"paper": 1000, "physlm": 2000})
    assert measured["p2"] == pytest.approx(float(widths.sum(axis=1).mean() * lnv))
    want = bios_stored_bits(measured["p1"], measured["p2"], N0=spec.N0, N=spec.N, S0=spec.S0)
    assert measured["bits"]["total"] == pytest.approx(want.total) and measured["R_paper"] == pytest.approx(want.total / 1000)
    assert set(measured["p2_parts"]) == set(biosn.PARTS)


def test_the_bios_bound_known_answers() -> None:
    N0, N, S0 = 400 * 400 * 1000, 10_000, 2 * (12 * 28 * 200) * 200 * 300 * 100 * 263
    best = bios_stored_bits(math.log(N), 0.0, N0=N0, N=N, S0=S0)
    upper = bios_upper_bound(N0=N0, N=N, S0=S0)
    assert best.total == pytest.approx(upper.total) and upper.diversity == 0.0
    assert upper.total / N == pytest.approx(61.6, abs=0.05)  # SPEC 11.2 item 2: 61.6 bits per person at N 10K
    assert bios_stored_bits(math.log(N), math.log(S0), N0=N0, N=N, S0=S0).value == pytest.approx(0.0, abs=1e-6)
    assert bios_stored_bits(math.log(N0), 0.0, N0=N0, N=N, S0=S0).name == pytest.approx(0.0, abs=1e-6)
    assert bios_stored_bits(math.log(N), math.log(S0) + 1.0, N0=N0, N=N, S0=S0).value < 0  # worse than knowing nothing
    with pytest.raises(ValueError, match="not a bioS spec"):
        bios_stored_bits(0.0, 0.0, N0=10, N=11, S0=5)


# ------------------------------------------------------------------------------------------ a tiny study


PROBE = {"people": 40, "attributes": 6, "train_fraction": 0.5, "steps": 10, "lr": 5.0e-2, "batch_size": 16, "control": True}
EVALUATE = {"people": 0, "batch_size": 16, "control": True, "quantize": ["int8"]}
TRAIN = {"steps": 1000, "exposures": 3, "batch_size": 4, "micro_batch_size": 2, "eval_every": 4, "checkpoint_every": 4,
         "log_every": 2, "warmup_steps": 1, "eval_batches": 1}


def tiny_bios_params(data: str) -> dict:
    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    shared = {k: repo[k] for k in ("seed", "nproc", "model", "train", "probe", "evaluate")}
    shared["probe"]["capacity"], shared["evaluate"]["capacity"] = dict(PROBE), dict(EVALUATE)
    generate_params = {"data": data, "N": 40, "pools": dict(POOLS), "workers": 1}
    return shared | {"datasets": {"bios_tiny": {"world": "capacity", "generate": generate_params,
                                                "tokenize": {"context": 128, "pack": "sentences", "copies": 3}}},
                     "studies": {"bios_tiny": {"world": "capacity", "data": "bios_tiny",
                                               "model": {"depth": 1, "width": 32, "heads": 2}, "train": dict(TRAIN),
                                               "probe": {}, "evaluate": {}}}}


@pytest.mark.parametrize("data", ["bioS", "bioS_simple"])
def test_a_tiny_bios_study_runs_every_stage(data: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    import generations

    import stages.evaluate
    import stages.generate
    import stages.probe
    import stages.report
    import stages.tokenize
    import stages.train
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_bios_params(data), sort_keys=False))
    for stage, module, name in (("generate", stages.generate, "bios_tiny"), ("tokenize", stages.tokenize, "bios_tiny"),
                                ("train", stages.train, "bios_tiny"), ("probe", stages.probe, "bios_tiny"),
                                ("evaluate", stages.evaluate, "bios_tiny"), ("report", stages.report, None)):
        run_stage(stage, module.main, [name] if name else [])
    metrics = tmp_path / "metrics/bios_tiny"
    meta = json.loads((tmp_path / "data/bios_tiny/tokens/meta.json").read_text())
    assert meta["data"] == data and meta["people"] == 40 and set(meta["entry_tokens"]) == {"mean", "min", "max"}
    exposures = json.loads((metrics / "detail/train.json").read_text())["exposures"]
    assert sum(exposures["histogram"].values()) == 40 and exposures["requested"] == 3
    assert 2 <= exposures["min"] and exposures["max"] <= 4 and abs(exposures["mean"] - 3) <= 0.2, exposures  # names read after <bos>
    evaluated = json.loads((metrics / "detail/evaluate.json").read_text())
    spec = json.loads((tmp_path / "data/bios_tiny/raw/capacity.json").read_text())
    assert evaluated["data"] == data and evaluated["spec"] == {"N0": spec["N0"], "N": 40, "S0": spec["S0"]}
    upper = bios_upper_bound(N0=spec["N0"], N=40, S0=spec["S0"])
    assert evaluated["upper_bound"]["total"] == pytest.approx(upper.total)
    for name in ("trained", "control", "quantized/int8"):
        p = generations.node(evaluated, name)
        bits = bios_stored_bits(p["p1"], p["p2"], N0=spec["N0"], N=40, S0=spec["S0"])
        assert p["bits"]["total"] == pytest.approx(bits.total) and "p3" not in p
        assert p["p2"] == pytest.approx(sum(p["p2_parts"].values()))
    assert evaluated["trained"]["p1"] < evaluated["control"]["p1"] and evaluated["control"]["bits"]["total"] < 0
    frame = generations.read(tmp_path, "bios_tiny", {"p1": pl.Float64, "p2": pl.Float64, "p2_parts": pl.List(pl.Float64)},
                             generated=False)
    assert frame.height == 3 * 40 and (frame["p2_parts"].list.len() == 7).all()
    trained = frame.filter(pl.col("set") == "trained")
    assert trained["p2"].mean() == pytest.approx(evaluated["trained"]["p2"])
    assert trained["prompt"].to_list() == pl.read_parquet(tmp_path / "data/bios_tiny/raw/people.parquet")["text"].to_list()
    headline = json.loads((metrics / "evaluate.json").read_text())
    assert {"bits", "R_paper", "p1", "p2", "bits_int8"} <= set(headline) and "p3" not in headline
    probe = pl.read_csv(metrics / "probe/probe.csv")
    assert probe.height == 2 * 2 * 6 and set(probe["attribute"]) == set(ATTRIBUTES)
    summary = json.loads((metrics / "detail/probe.json").read_text())
    assert summary["classes"] == {"birth_date": 12, "birth_city": 9, "university": 11, "major": 7, "employer": 20,
                                  "work_city": len(set(pool_values(sizes_of(POOLS))["work_city"]))}
    report = (tmp_path / "reports/summary.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| bios_tiny |"))
    assert f"| {data} |" in row and f"{math.log2(spec['S0']):.1f} bits" in row and "| S0 |" in report


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("bad", "message"), [
    ({"K": 3}, "data bioS takes no K"),
    ({"junk_people": 5}, "junk-data study is built on bioD only"),
    ({"N": 10 * 8 * 12 + 1}, "exceeds N0 = 960"),
    ({"pools": POOLS | {"cities": 201}}, "less than or equal to 200"),
    ({"pronouns": "they"}, "'parity' or 'random'"),
    ({"data": "bioR"}, "'bioD', 'bioS' or 'bioS_simple'"),
    ({"data": "bioD"}, "data bioD needs K, C, D, L, T"),
    ({"data": "bioD", "K": 1, "C": 1, "D": 2, "L": 1, "T": 2, "pools": {"cities": 5}}, "pools.cities: bioS data only"),
    ({"data": "bioD", "K": 1, "C": 1, "D": 2, "L": 1, "T": 2, "pools": {}, "pronouns": "parity"}, "pronouns: bioS data only"),
])
def test_bad_generate_params_are_one_line_errors(bad: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        CapacityGenerateParams(**(GEN | bad))


def test_bad_tokenize_and_probe_inputs(raw: tuple[Path, dict], tmp_path: Path) -> None:
    out, gen = raw
    for bad in ({"junk_fraction": 0.5}, {"junk_fraction": 0.5, "domain_token": True}):
        with pytest.raises(DataError, match="junk-data study is built on bioD only"):
            tokenize(out, CapacityTokenizeParams(context=128, pack="sentences", **bad))
    with pytest.raises(DataError, match="exceed a window"):
        tokenize(out, CapacityTokenizeParams(context=32, pack="sentences"))
    biod = tmp_path / "biod"
    biod.mkdir()
    generate(CapacityGenerateParams(N=5, K=1, C=1, D=2, L=1, T=2, pools={"first_names": 3, "middle_names": 3, "last_names": 3},
                                    workers=1), 0, biod)
    with pytest.raises(DataError, match="tokenize.units is for bioS data"):
        tokenize(biod, CapacityTokenizeParams(context=32, pack="sentences", units="words"))
    assert tokenize(biod, CapacityTokenizeParams(context=32, pack="sentences")).meta.keys() == \
        {"people", "copies", "entry_tokens", "used_tokens"}  # bioD's meta as before
    changed = out / "people.parquet"
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "capacity.json").write_bytes((out / "capacity.json").read_bytes())
    frame = pl.read_parquet(changed)
    frame.with_columns(text=pl.when(pl.col("person") == 3).then(pl.lit("x")).otherwise(pl.col("text"))).write_parquet(stale / "people.parquet")
    with pytest.raises(DataError, match="not its person's writing 0"):
        tokenize(stale, CapacityTokenizeParams(context=128, pack="sentences"))
    from physlm.worlds.capacity.probe import bios_targets
    from physlm.worlds.capacity.tokenize import read_spec

    with pytest.raises(DataError, match="exceeds the 6 bioS attributes"):
        bios_targets(out, read_spec(out), 10, 7)
    _, labels, what = bios_targets(out, read_spec(out), 10, 6)
    people = pl.read_parquet(out / "people.parquet").head(10)
    assert labels.shape == (10, 6) and (labels[:, 0] == people["birth_month"].to_numpy() - 1).all()
    values = pool_values(sizes_of(POOLS))
    assert [values["major"][k] for k in labels[:, 3]] == people["major"].to_list()
    assert [values["employer"][k] for k in labels[:, 4]] == people["employer"].to_list()


# ---------------------------------------------------------------------------------------------- presets


def test_capacity_paper_writes_the_bios_grids(tmp_path: Path) -> None:
    import shutil

    from physlm.presets import main
    from physlm.worlds.capacity import presets as cp

    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    main(["capacity-paper", "--params", str(path), "--data", "bioS", "--sizes", "2-2,4-4", "--split", "materialised"])
    after = yaml.safe_load(path.read_text())
    datasets = {n: d for n, d in after["datasets"].items() if d["world"] == "capacity"}
    studies = {n: s for n, s in after["studies"].items() if s["world"] == "capacity"}
    per = cp.bios_paragraph_tokens("bioS")
    assert 50 < per < 70  # word tokens of a bioS paragraph with <bos> and <eos>
    # the splits up to 2B tokens: N x E x per <= 2e9
    assert set(datasets) == {"p33_bios_N10K_E1000", "p33_bios_N20K_E1000", "p33_bios_N50K_E100", "p33_bios_N100K_E100",
                             "p33_bios_N200K_E100"}
    for name, study in studies.items():
        data = datasets[study["data"]]
        E, N, tr = study["train"]["exposures"], data["generate"]["N"], study["train"]
        assert data["generate"] == {"data": "bioS", "N": N, "pronouns": "parity", "workers": 0}
        assert data["tokenize"] == {"context": 512, "pack": "sentences", "copies": E, "units": "words"}
        lrs, wd, batch = cp.PAPER_TABLE[E][N]
        assert (tr["lr"], tr["weight_decay"], tr["batch_size"]) == (lrs[0], wd, batch)  # the per-N table
        assert tr["steps"] == math.ceil(E * N * per / (batch * 512))
    assert len(studies) == 5 * 2
    assert_every_stage_validates(path)

    # the default for bioS: the streamed split (exposure rounds), one stored writing per person, so every N of the table
    shutil.copy(ROOT / "params.yaml", path)
    main(["capacity-paper", "--params", str(path), "--data", "bioS", "--sizes", "2-2"])
    after = yaml.safe_load(path.read_text())
    datasets = {n: d for n, d in after["datasets"].items() if d["world"] == "capacity"}
    studies = {n: s for n, s in after["studies"].items() if s["world"] == "capacity"}
    assert {(d["generate"]["N"], int(n.rsplit("_E", 1)[1])) for n, d in datasets.items()} == \
        {(N, E) for E, table in cp.PAPER_TABLE.items() for N in table}
    assert all(d["tokenize"]["copies"] == 1 for d in datasets.values())
    assert all(s["train"]["stream"] is True for s in studies.values())
    assert len(studies) == sum(len(r[0]) for table in cp.PAPER_TABLE.values() for r in table.values())
    assert_every_stage_validates(path)
    with pytest.raises(SystemExit, match="unknown --split"):
        main(["capacity-paper", "--params", str(path), "--data", "bioS", "--split", "disk"])

    shutil.copy(ROOT / "params.yaml", path)
    main(["capacity-paper", "--params", str(path), "--data", "bios_simple", "--N", "10000,1000000", "--sizes", "2-2",
          "--recipe", "biod"])
    after = yaml.safe_load(path.read_text())
    datasets = {n: d for n, d in after["datasets"].items() if d["world"] == "capacity"}
    assert set(datasets) == {"p33_bios_simple_N10K_E1000", "p33_bios_simple_N1M_E1000", "p33_bios_simple_N1M_E100"}
    assert all(d["tokenize"]["copies"] == 1 and d["generate"]["data"] == "bioS_simple" for d in datasets.values())
    studies = {n: s for n, s in after["studies"].items() if s["world"] == "capacity"}
    assert {(s["train"]["lr"], s["train"]["batch_size"]) for s in studies.values()} == {(5.0e-4, 192)}
    assert_every_stage_validates(path)


def test_the_bios_token_guard(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    proc = subprocess.run([sys.executable, "-m", "physlm.presets", "capacity-paper", "--params", str(path), "--data", "bioS",
                           "--N", "50000", "--schedules", "1000", "--split", "materialised"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and proc.stderr.startswith("error: N 50,000 x 1000 exposures x 57.") and proc.stderr.count("\n") == 1
    assert path.read_bytes() == (ROOT / "params.yaml").read_bytes()
