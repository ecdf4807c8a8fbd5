"""Data-contract tests of physlm.bios.people (SPEC 4.1), against an independent reading of the data files.

The oracle here never calls the module's renderer: it reads the JSON pools and templates itself, expands each
bioS template for a person with plain string replacement, and parses every bioS sentence by lookup (which
attribute, which template, name or pronoun), and scans every text for all values of every pool with one
regex per pool, so a wrong, missing, duplicated or swapped attribute fails. It also checks the pools against
the SPEC's sizes, QA answers against the people table, template and sentence-order coverage, determinism
(across processes too), and the checks of the bioR import path.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter
from functools import lru_cache
from itertools import permutations
from pathlib import Path

import polars as pl
import pytest

from physlm.errors import DataError
from physlm.bios import biographies
from physlm.bios import people as bio
from physlm.bios.people import BioSpec, PoolSizes, Variant, parse_variant

DATA = Path(__file__).resolve().parents[1] / "physlm" / "bios" / "data"
NAMES = Path(__file__).resolve().parents[1] / "physlm" / "names"
ATTRS = ("birth_date", "birth_city", "university", "major", "employer", "work_city")
SPEC_SIZES = {"first_names": 400, "middle_names": 400, "last_names": 1000, "cities": 200, "universities": 300,
              "majors": 100, "employers": 263}
TEMPLATE_COUNTS = {"birth_date": 46, "birth_city": 49, "university": 49, "major": 52, "employer": 47, "work_city": 48}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DATE = re.compile(r"\b(%s) (\d{1,2}), (\d{4})\b" % "|".join(MONTHS))
PRONOUN = re.compile(r"\b(he|she|they|him|her|them|his|hers|their|theirs)\b", re.IGNORECASE)
N = 600
SPEC = BioSpec(people=N, seed=7)


def raw(name: str):
    """A pool file: the name pools live in physlm/names (shared with the capacity world), the rest in bio's data."""
    where = NAMES if name.endswith("_names.json") else DATA
    return json.loads((where / name).read_text())


RUN = re.compile(r"[A-Za-z0-9]+")


class Scanner:
    """Finds every whole-word occurrence (not preceded or followed by a letter or digit) of a set of values."""

    def __init__(self, values) -> None:
        self.by_head: dict[str, list[str]] = {}
        for v in values:
            self.by_head.setdefault(RUN.match(v).group(), []).append(v)

    def find(self, text: str) -> list[str]:
        found = []
        for run in RUN.finditer(text):  # every run of letters/digits starts a word boundary
            for v in self.by_head.get(run.group(), ()):
                end = run.start() + len(v)
                if text.startswith(v, run.start()) and not text[end:end + 1].isalnum():
                    found.append(v)
        return found


HQ = {e["name"]: e["city"] for e in raw("employers.json")}
SCAN_POOLS = {"city": sorted(set(raw("cities.json")) | set(HQ.values())), "university": raw("universities.json"),
              "major": raw("majors.json"), "employer": list(HQ)}
SCANNERS = {pool: Scanner(values) for pool, values in SCAN_POOLS.items()}
ALL_VALUES = Scanner(v for values in SCAN_POOLS.values() for v in values)
PRONOUNS = {p["subject"]: p for p in raw("pronouns.json")}
TEMPLATES = raw("bios_templates.json")


# ----------------------------------------------------------------------------------------- the oracle


def who(person: dict, mode: str) -> dict:
    name = person["full_name"]
    return PRONOUNS[person["pronoun"]] if mode == "pronoun" else {
        "subject": name, "object": name, "possessive": name + "'s", "plural": False}


@lru_cache(maxsize=None)
def agree(template: str, plural: bool) -> str:
    return re.sub(r"\[([^|\]]*)\|([^\]]*)\]", lambda m: m.group(2 if plural else 1), template)


def expand(template: str, value: str, ref: dict) -> str:
    out = agree(template, ref["plural"]).replace("{V}", value).replace("{S}", ref["subject"])
    out = out.replace("{O}", ref["object"]).replace("{P}", ref["possessive"])
    return out[0].upper() + out[1:]


@lru_cache(maxsize=4096)
def sentence_table(person_key: tuple) -> dict[str, list[tuple[str, int, str]]]:
    """Every bioS sentence this person can have -> [(attribute, template index, "name"/"pronoun")]."""
    person = dict(person_key)
    table: dict[str, list[tuple[str, int, str]]] = {}
    for attr in ATTRS:
        for idx, template in enumerate(TEMPLATES[attr]):
            for mode in ("name", "pronoun"):
                table.setdefault(expand(template, person[attr], who(person, mode)), []).append((attr, idx, mode))
    return table


def scan(text: str, person: dict, fullname_count: int) -> None:
    """Each pool's values in the text are exactly the person's: nothing missing, extra, or from another person."""
    expected = {"city": [person["birth_city"], person["work_city"]], "university": [person["university"]],
                "major": [person["major"]], "employer": [person["employer"]]}
    for pool, scanner in SCANNERS.items():
        assert Counter(scanner.find(text)) == Counter(expected[pool]), (pool, text)
    assert [m.group(0) for m in DATE.finditer(text)] == [person["birth_date"]], text
    assert text.count(person["full_name"]) == fullname_count, text


def check_spans(row: dict, person: dict) -> None:
    for attr in ATTRS:
        start, end = row[f"{attr}_start"], row[f"{attr}_end"]
        assert row["text"][start:end] == person[attr], (attr, row["text"])
    assert row["order"] == sorted(ATTRS, key=lambda a: row[f"{a}_start"])


@lru_cache(maxsize=None)
def contexts(attr: str) -> frozenset[tuple[str, str]]:
    """(text just before, text just after) the value, up to the nearest slot, in every phrase stating ``attr``."""
    phrases = raw("bior_phrases.json")
    texts = TEMPLATES[attr] + [t for kind in ("vp", "lead", "appos") for t in phrases[kind][attr]]
    slot_name = "{" + attr + "}"
    texts += [t.replace(slot_name, "{V}") for ts in phrases["pair"].values() for t in ts if slot_name in t]
    slot = r"\{\w+\}|\[[^\]]*\]"
    return frozenset((re.split(slot, t.split("{V}")[0])[-1], re.split(slot, t.split("{V}")[1])[0]) for t in texts)


def stated_as(attr: str, row: dict) -> bool:
    """Whether the words around the value's span come from a phrase for that attribute (not, say, a work-city
    phrase around the birth city)."""
    text, start, end = row["text"], row[f"{attr}_start"], row[f"{attr}_end"]
    return any(text[:start].lower().endswith(before.lower()) and text[end:].startswith(after)
               for before, after in contexts(attr))


def parse_bios(row: dict, person: dict, fullname: bool) -> list[tuple[str, int, str]]:
    """Parse a bioS entry sentence by sentence; check names/pronouns, spans and pools; return the parse."""
    sentences = re.split(r"(?<=\.) ", row["text"])
    table = sentence_table(tuple(sorted(person.items())))
    parsed = []
    for sentence in sentences:
        hits = table.get(sentence, [])
        assert len(hits) == 1, (sentence, hits)
        parsed.append(hits[0])
    assert sorted(a for a, _, _ in parsed) == sorted(ATTRS), row["text"]
    assert [m for _, _, m in parsed] == ["name"] + ["name" if fullname else "pronoun"] * 5
    assert row["order"] == [a for a, _, _ in parsed]
    starts = [sum(len(s) + 1 for s in sentences[:k]) for k in range(len(sentences))]
    for k, (attr, _, _) in enumerate(parsed):  # the span lies in the sentence that states that attribute
        assert starts[k] <= row[f"{attr}_start"] < starts[k] + len(sentences[k])
    check_spans(row, person)
    scan(row["text"], person, 6 if fullname else 1)
    if fullname:
        assert not PRONOUN.search(row["text"]), row["text"]
    return parsed


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def people() -> list[bio.Person]:
    return bio.make_people(SPEC)


@pytest.fixture(scope="module")
def persons(people) -> dict[int, dict]:
    return {row["id"]: row for row in biographies.people_frame(people).iter_rows(named=True)}


def frame(people, name: str, spec: BioSpec = SPEC) -> pl.DataFrame:
    return biographies.bios_frame(people, spec, parse_variant(name))


# ---------------------------------------------------------------------------------------------- data


def test_world_does_not_import_torch() -> None:
    code = "import sys, physlm.bios.people; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_pool_files_have_the_spec_sizes_and_distinct_values() -> None:
    files = {"first_names": "first_names.json", "middle_names": "middle_names.json", "last_names": "last_names.json",
             "cities": "cities.json", "universities": "universities.json", "majors": "majors.json"}
    for key, name in files.items():
        values = raw(name)
        assert len(values) == SPEC_SIZES[key] == len(set(values)), key
    assert len(HQ) == len(raw("employers.json")) == SPEC_SIZES["employers"]
    assert sum(city == "New York, NY" for city in HQ.values()) / len(HQ) == pytest.approx(0.137, abs=0.002)
    for key in ("first_names", "middle_names", "last_names"):
        assert all(re.fullmatch(r"[A-Z][A-Za-z'-]*", n) and not PRONOUN.fullmatch(n) for n in raw(files[key]))
    assert all(re.fullmatch(r"[A-Za-z -]+, [A-Z]{2}", c) for c in SCAN_POOLS["city"])
    pools = bio.load_pools()
    assert {k: len(getattr(pools, k)) for k in SPEC_SIZES} == SPEC_SIZES
    assert [p.subject for p in pools.pronouns] == ["he", "she", "they"]


def test_no_value_hides_inside_another_value_or_a_template() -> None:
    values = [(pool, v) for pool, vs in SCAN_POOLS.items() for v in vs]
    for pool, v in values:
        assert v.isascii() and "." not in v and (v[0].isupper() or v[0].isdigit()), v
        assert not DATE.search(v) and not PRONOUN.search(v), v
        assert ALL_VALUES.find(v) == [v], v
    phrases = raw("bior_phrases.json")
    literals = [t for ts in TEMPLATES.values() for t in ts]
    literals += [t for kind in phrases.values() for ts in kind.values() for t in ts]
    literals += [t for qa in raw("qa_templates.json").values() for t in qa.values()]
    for template in literals:
        text = re.sub(r"\{\w+\}|\[[^\]]*\]", " ", template)
        assert ALL_VALUES.find(text) == [], template
        assert not PRONOUN.search(text), template
    last = set(raw("last_names.json"))
    for _, v in values:  # nor can a value be read off a full name such as "Ann Lee Lowe's"
        assert not (v.endswith("'s") and v[:-2] in last), v


def test_templates_have_the_paper_counts_and_one_slot_each() -> None:
    assert {a: len(ts) for a, ts in TEMPLATES.items()} == TEMPLATE_COUNTS
    for attr, templates in TEMPLATES.items():
        assert len(set(templates)) == len(templates), attr
        for t in templates:
            assert t.count("{V}") == 1 and len(re.findall(r"\{[SOP]\}", t)) == 1 and t.endswith("."), t
            assert "." not in t[:-1], t
    qa = raw("qa_templates.json")
    assert sorted(qa) == sorted(ATTRS)
    assert all("{N}" in q["question"] and q["answer"] == "Answer: {V}." for q in qa.values())


def test_pool_sizes_shrink_and_reject_growth() -> None:
    small = bio.load_pools(PoolSizes(cities=10, employers=20, first_names=5))
    assert small.cities == tuple(raw("cities.json")[:10]) and len(small.employers) == 20
    assert small.first_names == tuple(raw("first_names.json")[:5])
    with pytest.raises(ValueError, match="cities=201"):
        bio.load_pools(PoolSizes(cities=201))
    people = bio.make_people(BioSpec(people=200, pools=PoolSizes(cities=3, employers=4)))
    assert {p.birth_city for p in people} == set(raw("cities.json")[:3])
    assert {p.employer for p in people} == {e["name"] for e in raw("employers.json")[:4]}


# -------------------------------------------------------------------------------------------- people


def test_people_have_unique_names_and_valid_uniform_attributes(persons) -> None:
    rows = list(persons.values())
    assert len({r["full_name"] for r in rows}) == N
    assert [r["id"] for r in rows] == list(range(N))
    for r in rows:
        assert r["full_name"] == f"{r['first']} {r['middle']} {r['last']}"
        assert r["work_city"] == HQ[r["employer"]]
        assert r["birth_date"] == f"{MONTHS[r['birth_month'] - 1]} {r['birth_day']}, {r['birth_year']}"
        assert 1900 <= r["birth_year"] <= 2099 and 1 <= r["birth_month"] <= 12 and 1 <= r["birth_day"] <= 28
        assert r["birth_city"] in raw("cities.json") and r["university"] in SCAN_POOLS["university"]
        assert r["major"] in SCAN_POOLS["major"]
    assert {r["birth_day"] for r in rows} == set(range(1, 29))
    assert {r["birth_month"] for r in rows} == set(range(1, 13))
    counts = Counter(r["pronoun"] for r in rows)  # 200 expected each, sd ~11.5
    assert set(counts) == {"he", "she", "they"} and all(140 < c < 260 for c in counts.values())


def test_people_do_not_depend_on_n_and_parity_pronouns(people) -> None:
    assert bio.make_people(BioSpec(people=50, seed=7)) == people[:50]
    parity = bio.make_people(BioSpec(people=20, seed=7, pronouns="parity"))
    assert [p.pronoun.subject for p in parity] == ["he", "she"] * 10
    assert [p.full_name for p in parity] == [p.full_name for p in people[:20]]


def test_name_rejection_fills_a_tiny_name_space() -> None:
    tiny = PoolSizes(first_names=2, middle_names=2, last_names=3)
    people = bio.make_people(BioSpec(people=12, pools=tiny))
    assert len({p.full_name for p in people}) == 12
    with pytest.raises(ValueError, match="exceeds the 12 distinct full names"):
        bio.make_people(BioSpec(people=13, pools=tiny))


def test_people_frame_columns(people) -> None:
    assert biographies.people_frame(people[:3]).columns == [
        "id", "first", "middle", "last", "full_name", "birth_year", "birth_month", "birth_day", "birth_date",
        "birth_city", "university", "major", "employer", "work_city", "pronoun"]


# ---------------------------------------------------------------------------------------------- bioS


def test_single_states_every_attribute_once_in_the_fixed_order(people, persons) -> None:
    single = frame(people, "single")
    assert single.columns == ["person", "entry", "text", "order"] + [
        f"{a}_{e}" for a in ATTRS for e in ("start", "end")]
    assert single["person"].to_list() == list(range(N)) and set(single["entry"]) == {0}
    for row in single.iter_rows(named=True):
        parsed = parse_bios(row, persons[row["person"]], fullname=False)
        assert [a for a, _, _ in parsed] == list(ATTRS)
    code = frame(people[:20], "single", BioSpec(people=N, seed=7, order=bio.CODE_ORDER))
    assert code["order"].to_list() == [list(bio.CODE_ORDER)] * 20


def test_multi_redraws_templates_uniformly(people, persons) -> None:
    multi = frame(people, "multi5")
    assert Counter(multi["person"]) == {i: 5 for i in range(N)}
    uses: dict[str, Counter] = {a: Counter() for a in ATTRS}
    for row in multi.iter_rows(named=True):
        for attr, idx, _ in parse_bios(row, persons[row["person"]], fullname=False):
            uses[attr][idx] += 1
    for attr, counts in uses.items():  # 3000 uniform draws from ~50: all used, none over twice its share
        assert len(counts) == TEMPLATE_COUNTS[attr], attr
        assert max(counts.values()) < 2 * 5 * N / TEMPLATE_COUNTS[attr], attr
    assert multi.filter(pl.col("entry") == 0)["text"].to_list() == frame(people, "single")["text"].to_list()


def test_permute_reaches_every_order_and_keeps_the_name_first(people, persons) -> None:
    many = bio.make_people(BioSpec(people=2000, seed=7))
    shuffled = frame(many, "multi5+permute")
    for row in shuffled.head(600).iter_rows(named=True):
        parse_bios(row, persons[row["person"]], fullname=False)  # first sentence carries the full name
    orders = Counter(tuple(o) for o in shuffled["order"])
    assert set(orders) == set(permutations(ATTRS))  # 10,000 uniform draws over 720 orders
    first = Counter(o[0] for o in shuffled["order"])
    assert all(abs(c - 10_000 / 6) < 200 for c in first.values())  # sd ~37


def test_permute_copies_share_templates_and_differ_in_order(people, persons) -> None:
    copies = frame(people[:100], "single+permute5+fullname")
    distinct = 0
    assert copies["entry"].to_list() == list(range(5)) * 100
    for person in range(100):
        rows = list(copies.filter(pl.col("person") == person).iter_rows(named=True))
        parses = [parse_bios(r, persons[person], fullname=True) for r in rows]
        assert len({frozenset((a, i) for a, i, _ in p) for p in parses}) == 1
        distinct += len({tuple(r["order"]) for r in rows}) == 5
    assert distinct >= 90  # 5 uniform orders of 720 are all distinct with probability 0.986


def test_fullname_has_no_pronouns(people, persons) -> None:
    for row in frame(people[:200], "single+fullname").iter_rows(named=True):
        parsed = parse_bios(row, persons[row["person"]], fullname=True)
        assert [a for a, _, _ in parsed] == list(ATTRS)


def test_couple_keeps_pairs_and_shuffles_them(people, persons) -> None:
    couple = frame(people, "multi2+couple")
    pairs = [("birth_date", "birth_city"), ("university", "major"), ("employer", "work_city")]
    seen = set()
    for row in couple.iter_rows(named=True):
        parse_bios(row, persons[row["person"]], fullname=False)
        order = row["order"]
        seen.add(tuple(tuple(order[k:k + 2]) for k in (0, 2, 4)))
    assert seen == set(permutations(pairs))


def test_variant_names_parse_and_round_trip() -> None:
    cases = {"single": Variant(), "multi5": Variant(entries=5), "single+permute1": Variant(permute=True),
             "multi5+permute": Variant(entries=5, permute=True), "single+permute5+fullname":
             Variant(permute=True, copies=5, fullname=True), "multi2+permute+fullname":
             Variant(entries=2, permute=True, fullname=True), "couple": Variant(couple=True),
             "multi5+couple": Variant(entries=5, couple=True), "fullname": Variant(fullname=True),
             "couple3": Variant(couple=True, copies=3)}
    for name, variant in cases.items():
        assert parse_variant(name) == variant, name
        assert parse_variant(variant.name) == variant
    for bad in ("multi", "single5", "single+multi2", "permute+couple", "fullname2", "shuffle", "permute0",
                "single+single", ""):
        with pytest.raises(ValueError, match="bio variant"):
            parse_variant(bad)


# ---------------------------------------------------------------------------------------------- bioR


def test_bior_states_every_attribute_once_in_varied_wording(people, persons) -> None:
    bior = biographies.bior_frame(people, SPEC, parse_variant("multi2"))
    assert Counter(bior["person"]) == {i: 2 for i in range(N)}
    per_sentence: Counter = Counter()
    template_sentences = skeletons = 0
    skeleton_set = set()
    for row in bior.iter_rows(named=True):
        person = persons[row["person"]]
        text = row["text"]
        scan(text, person, fullname_count=1)
        check_spans(row, person)
        assert all(stated_as(attr, row) for attr in ATTRS), text
        sentences = re.split(r"(?<=\.) ", text)
        assert person["full_name"] in sentences[0]
        table = sentence_table(tuple(sorted(person.items())))
        template_sentences += sum(s in table for s in sentences)
        bounds = [sum(len(s) + 1 for s in sentences[:k]) for k in range(len(sentences) + 1)]
        per_sentence.update(sum(lo <= row[f"{a}_start"] < hi for a in ATTRS) for lo, hi in zip(bounds, bounds[1:]))
        skeleton = text
        for attr in sorted(ATTRS, key=lambda a: -len(person[a])):
            skeleton = skeleton.replace(person[attr], "<v>")
        skeleton_set.add(PRONOUN.sub("<p>", skeleton.replace(person["full_name"], "<n>")))
        skeletons += 1
    assert set(per_sentence) == {1, 2}  # one or two attributes per sentence, never zero or three
    assert 0.3 < per_sentence[2] / sum(per_sentence.values()) < 0.7
    assert template_sentences / sum(per_sentence.values()) < 0.4  # mostly beyond the bioS templates
    assert len(skeleton_set) > 0.98 * skeletons
    texts = " ".join(bior["text"])
    for construction in (", who ", "; ", ", and ", "Born ", "Professionally, "):
        assert construction in texts, construction


def test_bior_fullname_and_order_coverage(people, persons) -> None:
    bior = biographies.bior_frame(people, SPEC, parse_variant("fullname"))
    for row in bior.iter_rows(named=True):
        person = persons[row["person"]]
        sentences = re.split(r"(?<=\.) ", row["text"])
        scan(row["text"], person, fullname_count=row["text"].count(person["full_name"]))
        assert all(person["full_name"] in s for s in sentences) and not PRONOUN.search(row["text"]), row["text"]
        check_spans(row, person)
    assert Counter(o[0] for o in bior["order"]).keys() == set(ATTRS)
    with pytest.raises(ValueError, match="bioR supports only multiM and fullname"):
        biographies.bior_frame(people[:2], SPEC, parse_variant("single+permute"))


def twins(people: list[bio.Person]) -> list[bio.Person]:
    """The same people, born in the city where they work: the city then appears twice in every text."""
    return [dataclasses.replace(p, birth_city=p.work_city) for p in people]


def test_birth_city_equal_to_work_city_appears_twice_with_distinct_spans(people) -> None:
    born_at_work = twins(people[:50])
    rows = {r["id"]: r for r in biographies.people_frame(born_at_work).iter_rows(named=True)}
    for row in frame(born_at_work, "multi2+permute").iter_rows(named=True):
        parse_bios(row, rows[row["person"]], fullname=False)  # each city span sits in its own sentence
    for row in biographies.bior_frame(born_at_work, SPEC, parse_variant("multi2")).iter_rows(named=True):
        scan(row["text"], rows[row["person"]], fullname_count=1)
        check_spans(row, rows[row["person"]])
        assert row["birth_city_start"] != row["work_city_start"]


# ------------------------------------------------------------------------------------------------ QA


def test_qa_answers_match_people_and_split_in_halves(people, persons) -> None:
    qa = biographies.qa_frame(people)
    assert qa.columns == ["person", "attribute", "question", "answer", "value", "split"]
    assert Counter(qa["person"]) == {i: 6 for i in range(N)}
    for row in qa.iter_rows(named=True):
        person = persons[row["person"]]
        assert row["value"] == person[row["attribute"]]
        assert row["answer"] == f"Answer: {person[row['attribute']]}."
        assert person["full_name"] in row["question"] and row["question"].endswith("?")
        assert row["split"] == ("P_train" if row["person"] < N // 2 else "P_test")
    assert qa.filter(pl.col("person") == 0)["question"][1] == f"What is the birth city of {persons[0]['full_name']}?"


# -------------------------------------------------------------------------------------- determinism

DIGEST = """
import hashlib, io, sys
from physlm.bios import biographies
from physlm.bios import people as bio
spec = bio.BioSpec(people=300, seed=int(sys.argv[1]))
people = bio.make_people(spec)
frames = [biographies.people_frame(people), biographies.bios_frame(people, spec, bio.parse_variant("multi2+permute")),
          biographies.bior_frame(people, spec, bio.parse_variant("multi2")), biographies.qa_frame(people)]
digest = hashlib.sha256()
for frame in frames:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=False)
    digest.update(buffer.getvalue())
print(digest.hexdigest())
"""


def test_same_seed_gives_byte_identical_parquet() -> None:
    def digest(seed: int, hash_seed: str) -> str:
        env = {"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", DIGEST, str(seed)], capture_output=True, text=True, env=env,
                             check=True)
        return out.stdout.strip()

    first = digest(3, "1")
    assert digest(3, "2") == first
    assert digest(4, "1") != first


# -------------------------------------------------------------------------------------------- import


def write(path: Path, frame: pl.DataFrame) -> Path:
    frame.write_parquet(path)
    return path


def test_import_accepts_good_bios_and_finds_their_spans(people, tmp_path) -> None:
    people = people[:200] + twins(people[200:220])
    generated = biographies.bior_frame(people, SPEC, parse_variant("multi2"))
    path = write(tmp_path / "good.parquet", generated.select("person", "text"))
    imported = biographies.import_bios(path, people)
    assert imported.select("person", "entry", "text").equals(generated.select("person", "entry", "text"))
    shared = 0
    for got, want in zip(imported.iter_rows(named=True), generated.iter_rows(named=True)):
        person = people[got["person"]]
        if person.birth_city == person.work_city:  # which occurrence is which is then unknowable
            shared += 1
            assert got["birth_city_start"] != got["work_city_start"]
            got |= {k: want[k] for k in ("order", *(f"{c}_{e}" for c in ("birth_city", "work_city")
                                                     for e in ("start", "end")))}
        assert got == want
    assert shared == 40


def test_import_rejects_missing_attributes_and_unknown_people(people, tmp_path) -> None:
    good = biographies.bior_frame(people[:10], SPEC, parse_variant("single")).select("person", "text")
    texts = good["text"].to_list()
    texts[3] = texts[3].replace(people[3].major, "Basket Weaving")
    with pytest.raises(DataError, match=r"row 3 \(person 3\): the text lacks the major"):
        biographies.import_bios(write(tmp_path / "bad.parquet", good.with_columns(text=pl.Series(texts))), people)
    stranger = good.with_columns(person=pl.Series(list(range(9)) + [10**6]))
    with pytest.raises(DataError, match=r"row 9: person 1000000 is not in the people table"):
        biographies.import_bios(write(tmp_path / "stranger.parquet", stranger), people)
    with pytest.raises(DataError, match="missing column"):
        biographies.import_bios(write(tmp_path / "cols.parquet", good.rename({"person": "id"})), people)
    nameless = good.with_columns(text=pl.Series([t.replace(people[i].full_name, "Someone")
                                                 for i, t in enumerate(good["text"])]))
    with pytest.raises(DataError, match="row 0 .*lacks the full_name"):
        biographies.import_bios(write(tmp_path / "nameless.parquet", nameless), people)
