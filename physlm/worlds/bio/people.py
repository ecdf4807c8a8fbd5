"""The biography world of "Physics of Language Models" Part 3.1: bioS / bioR biographies and their QA.

Reproduces SPEC section 4.1. N individuals get independently uniform attributes: a unique full name from
first/middle/last pools of 400/400/1000 (rejection), a birth date (year 1900-2099, month 1-12, day 1-28,
written "October 2, 1996"), a birth city (200 US cities, "Princeton, NJ"), a university (300), a major (100)
and an employer (263); the work city is the employer's headquarters (36 of the 263 are in New York, NY: the
13.7% trivial baseline), and a pronoun set (paper: he/she/they at random; ``pronouns="parity"`` gives the
released code's he for even ids, she for odd ids). The pools, the bioS templates (46/49/49/52/47/48 per
attribute as in the paper), the 6 QA templates and the bioR phrase banks are package data in
``physlm/worlds/bio/data/*.json``, written by us; ``PoolSizes`` takes the first k values of each pool.

bioS: one sentence per attribute, the full name in the first sentence and the pronoun afterwards.
``Variant`` (``parse_variant("multi5+permute+fullname")``) selects: ``entries`` M (multiM: templates
re-drawn per entry), ``permute`` (shuffled sentence order), ``copies`` P (permuteP: P shuffled copies of each
entry), ``fullname`` (the name instead of every pronoun) and ``couple`` (the ordered pairs birth date ->
birth city, university -> major, employer -> work city, the pairs shuffled). Un-permuted entries use
``BioSpec.order``: the paper's order by default, ``CODE_ORDER`` for the release's (work city before
employer, SPEC 9.3). bioR (the paper's LLM rewrites cannot be reproduced offline): ``bior_frame`` writes
paraphrases from phrase banks (shuffled attribute order, two attributes merged into one sentence,
connectives, relative clauses, appositions, fronted phrases, and the bioS templates), and ``import_bios``
reads externally written biographies, checking that each states its person's name and attributes verbatim.

Template syntax: ``{V}`` is the value (pair phrases name the attribute, ``{major}``); ``{S}``, ``{O}``, ``{P}``
the person as subject, object, possessive: the full name ("Anya Briar Forger", "Anya Briar Forger's") or the
pronoun set; ``[is|are]`` the verb form after a singular / plural subject (a name is singular, "they" plural).
Templates contain no other reference to the person, so a fullname entry contains no pronoun at all.

Tables (polars):
- people, one row per person: ``id`` (0..N-1), ``first``, ``middle``, ``last``, ``full_name``,
  ``birth_year``, ``birth_month``, ``birth_day``, ``birth_date`` (the text), ``birth_city``, ``university``,
  ``major``, ``employer``, ``work_city``, ``pronoun`` (subject form: he, she or they).
- bios, one row per biography: ``person`` (id), ``entry`` (0.. per person; bioS: entry e, copy c is
  e * P + c), ``text`` (sentences joined by one space), ``order`` (the attributes in order of appearance: for
  bioS the sentence order), and for each attribute ``<attribute>_start`` / ``<attribute>_end``: the character
  span of its value in ``text`` (every attribute appears exactly once in a generated entry; P-probing reads the
  token before ``_start``).
- qa, six rows per person: ``person``, ``attribute``, ``question`` ("What is the birth city of Anya Briar
  Forger?"), ``answer`` ("Answer: Princeton, NJ."), ``value`` (the bare value, for exact match) and ``split``:
  ``P_train`` for the first half of the ids (id < N // 2), ``P_test`` for the rest.

Randomness: person i's attributes come from ``random.Random(f"bio-person:{seed}:{i}")`` and its name draws
from ``random.Random(f"bio-name:{seed}:{i}")``, re-drawn while the name is taken by a lower id (so person i
never depends on N). bioS entry e draws its templates from ``f"bioS:{seed}:{i}:{e}"`` (entry 0 of multi5 is
the single entry) and copy c its order from ``f"bioS-order:{seed}:{i}:{e}:{c}"``; bioR entry e uses
``f"bioR:{seed}:{i}:{e}"``.

Oracles: ``tests/test_bio.py`` parses every bioS sentence with its own template matcher and every bioR text
with a pool scan (each value of the person present, no other value of any pool), and checks spans, QA,
template and order coverage, the pools, and the import checks. This module never imports torch.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from math import prod
from pathlib import Path
from types import MappingProxyType
from typing import Any

import polars as pl

from physlm.errors import DataError
from physlm.io import read_parquet

__all__ = [
    "ATTRIBUTES", "PAPER_ORDER", "CODE_ORDER", "COUPLES", "MONTHS", "PoolSizes", "BioSpec", "Variant",
    "parse_variant", "Referent", "Pools", "Templates", "Person", "Text", "load_pools", "load_templates",
    "make_people", "render", "bios_entry", "bior_entry", "people_frame", "bios_frame", "bior_frame", "qa_frame",
    "import_bios",
]

ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "employer", "work_city")
PAPER_ORDER = ATTRIBUTES
CODE_ORDER = ("birth_date", "birth_city", "university", "major", "work_city", "employer")
COUPLES = (("birth_date", "birth_city"), ("university", "major"), ("employer", "work_city"))
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
FIRST_YEAR, LAST_YEAR, DAYS = 1900, 2099, 28


# ------------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class PoolSizes:
    """How many values of each pool to use: the first k of each data file (SPEC 4.1 sizes by default)."""

    first_names: int = 400
    middle_names: int = 400
    last_names: int = 1000
    cities: int = 200  # birth cities; work cities are the employers' headquarters
    universities: int = 300
    majors: int = 100
    employers: int = 263


@dataclass(frozen=True)
class BioSpec:
    """Who lives in the world and how un-permuted bioS entries are ordered."""

    people: int  # N individuals, ids 0..N-1
    seed: int = 0
    pools: PoolSizes = field(default_factory=PoolSizes)
    pronouns: str = "random"  # "random": he/she/they uniformly (paper); "parity": he for even ids, she for odd (code)
    order: tuple[str, ...] = PAPER_ORDER  # sentence order of un-permuted bioS (CODE_ORDER: the release's)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(self.order))  # a list from YAML is fine too
        if self.people < 1:
            raise ValueError(f"BioSpec.people={self.people} must be >= 1")
        if self.pronouns not in ("random", "parity"):
            raise ValueError(f"BioSpec.pronouns={self.pronouns!r} must be 'random' or 'parity'")
        if sorted(self.order) != sorted(ATTRIBUTES):
            raise ValueError(f"BioSpec.order={self.order} must be a permutation of {ATTRIBUTES}")


@dataclass(frozen=True)
class Variant:
    """A bioS augmentation (SPEC 4.1); bioR uses only ``entries`` and ``fullname``."""

    entries: int = 1  # M: entries per person, templates re-drawn for each (multiM)
    permute: bool = False  # shuffle the sentence order of every copy
    copies: int = 1  # P: differently ordered copies of each entry (permuteP, coupleP)
    fullname: bool = False  # the full name instead of every pronoun
    couple: bool = False  # ordered pairs (COUPLES), the pairs shuffled

    def __post_init__(self) -> None:
        if self.entries < 1 or self.copies < 1:
            raise ValueError(f"bio variant: entries={self.entries} and copies={self.copies} must be >= 1")
        if self.permute and self.couple:
            raise ValueError("bio variant: permute and couple exclude each other (couple already shuffles the pairs)")
        if self.copies > 1 and not (self.permute or self.couple):
            raise ValueError(f"bio variant: copies={self.copies} needs permute or couple (copies differ in order only)")

    @property
    def name(self) -> str:
        """The canonical name, which ``parse_variant`` reads back."""
        parts = ["single" if self.entries == 1 else f"multi{self.entries}"]
        count = "" if self.copies == 1 else str(self.copies)
        parts += [f"permute{count}"] if self.permute else []
        parts += [f"couple{count}"] if self.couple else []
        return "+".join(parts + (["fullname"] if self.fullname else []))


_VARIANT_PART = re.compile(r"(single|multi|permute|couple|fullname)(\d*)")
_COUNTED = {"multi": True, "single": False, "fullname": False}  # whether the part must carry a number


def parse_variant(name: str) -> Variant:
    """``"single"``, ``"multi5+permute"``, ``"single+permute5+fullname"``, ``"multi2+couple"``, ... as a Variant."""
    fields: dict[str, Any] = {}
    seen: set[str] = set()
    for part in name.split("+"):
        match = _VARIANT_PART.fullmatch(part.strip())
        word, count = match.groups() if match else ("", "")
        if not match or (word in _COUNTED and _COUNTED[word] != bool(count)):
            raise ValueError(f"bio variant {name!r}: bad part {part!r}; use single, multiM, permute[P], "
                             "couple[P] or fullname joined by '+'")
        kind = "entries" if word in ("single", "multi") else word
        if kind in seen:
            raise ValueError(f"bio variant {name!r}: {part!r} repeats or contradicts an earlier part")
        seen.add(kind)
        if kind == "entries":
            fields["entries"] = int(count or 1)
        elif kind == "fullname":
            fields["fullname"] = True
        else:
            fields[kind] = True
            fields["copies"] = int(count or 1)
    return Variant(**fields)


# -------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Referent:
    """How a sentence refers to a person: a pronoun set, or the full name (singular)."""

    subject: str
    object: str
    possessive: str
    plural: bool = False

    @classmethod
    def named(cls, name: str) -> Referent:
        return cls(name, name, f"{name}'s")


@dataclass(frozen=True)
class Pools:
    first_names: tuple[str, ...]
    middle_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    universities: tuple[str, ...]
    majors: tuple[str, ...]
    employers: tuple[str, ...]
    headquarters: Mapping[str, str]  # employer -> its headquarters city (the work city)
    pronouns: tuple[Referent, ...]  # he, she, they


@dataclass(frozen=True)
class Templates:
    """Template banks; every ``{V}`` is already renamed to its attribute (``{birth_city}``)."""

    bios: Mapping[str, tuple[str, ...]]  # attribute -> bioS sentence templates
    qa: Mapping[str, tuple[str, str]]  # attribute -> (question with {N}, answer with {V})
    vp: Mapping[str, tuple[str, ...]]  # bioR: verb phrases after a subject
    lead: Mapping[str, tuple[str, ...]]  # bioR: fronted phrases ("Born in X, she ...")
    appos: Mapping[str, tuple[str, ...]]  # bioR: set off after the name ("Anya Forger, a native of X, ...")
    connective: Mapping[str, tuple[str, ...]]  # bioR: sentence openers ("Professionally,")
    pairs: Mapping[tuple[str, str], tuple[str, ...]]  # bioR: one verb phrase stating two attributes


def _data(name: str) -> Any:
    return json.loads(resources.files("physlm.worlds.bio").joinpath("data", name).read_text(encoding="utf-8"))


def _take(values: Sequence[Any], size: int, what: str) -> tuple[Any, ...]:
    if not 1 <= size <= len(values):
        raise ValueError(f"PoolSizes.{what}={size} must be between 1 and {len(values)} (the values in data/bio)")
    return tuple(values[:size])


@functools.lru_cache(maxsize=8)
def load_pools(sizes: PoolSizes = PoolSizes()) -> Pools:
    employers = _take(_data("employers.json"), sizes.employers, "employers")
    return Pools(
        first_names=_take(_data("first_names.json"), sizes.first_names, "first_names"),
        middle_names=_take(_data("middle_names.json"), sizes.middle_names, "middle_names"),
        last_names=_take(_data("last_names.json"), sizes.last_names, "last_names"),
        cities=_take(_data("cities.json"), sizes.cities, "cities"),
        universities=_take(_data("universities.json"), sizes.universities, "universities"),
        majors=_take(_data("majors.json"), sizes.majors, "majors"),
        employers=tuple(e["name"] for e in employers),
        headquarters=MappingProxyType({e["name"]: e["city"] for e in employers}),
        pronouns=tuple(Referent(**p) for p in _data("pronouns.json")),
    )


def _named(bank: Mapping[str, Sequence[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({a: tuple(t.replace("{V}", "{" + a + "}") for t in bank[a]) for a in ATTRIBUTES})


@functools.lru_cache(maxsize=1)
def load_templates() -> Templates:
    qa, bior = _data("qa_templates.json"), _data("bior_phrases.json")
    return Templates(
        bios=_named(_data("bios_templates.json")),
        qa=MappingProxyType({a: (qa[a]["question"], qa[a]["answer"]) for a in ATTRIBUTES}),
        vp=_named(bior["vp"]), lead=_named(bior["lead"]), appos=_named(bior["appos"]),
        connective=MappingProxyType({a: tuple(bior["connective"][a]) for a in ATTRIBUTES}),
        pairs=MappingProxyType({tuple(k.split("+")): tuple(v) for k, v in bior["pair"].items()}),
    )


# ------------------------------------------------------------------------------------------ people


@dataclass(frozen=True)
class Person:
    id: int
    first: str
    middle: str
    last: str
    birth_year: int
    birth_month: int
    birth_day: int
    birth_city: str
    university: str
    major: str
    employer: str
    work_city: str
    pronoun: Referent

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.middle} {self.last}"

    @property
    def birth_date(self) -> str:
        return f"{MONTHS[self.birth_month - 1]} {self.birth_day}, {self.birth_year}"

    def value(self, attribute: str) -> str:
        """The text of an attribute (one of ATTRIBUTES, or "full_name")."""
        return getattr(self, attribute)


def make_people(spec: BioSpec) -> list[Person]:
    """People 0..N-1; person i depends only on (seed, i) and on the names taken by people 0..i-1."""
    pools = load_pools(spec.pools)
    sizes = (len(pools.first_names), len(pools.middle_names), len(pools.last_names))
    if spec.people > prod(sizes):
        raise ValueError(f"BioSpec.people={spec.people} exceeds the {prod(sizes)} distinct full names of the pools")
    taken: set[tuple[int, ...]] = set()
    return [_person(spec, pools, i, _unique_name(spec.seed, i, sizes, taken)) for i in range(spec.people)]


def _unique_name(seed: int, i: int, sizes: tuple[int, ...], taken: set[tuple[int, ...]]) -> tuple[int, ...]:
    rng = random.Random(f"bio-name:{seed}:{i}")
    while True:
        name = tuple(rng.randrange(n) for n in sizes)
        if name not in taken:
            taken.add(name)
            return name


def _person(spec: BioSpec, pools: Pools, i: int, name: tuple[int, ...]) -> Person:
    rng = random.Random(f"bio-person:{spec.seed}:{i}")
    year, month, day = rng.randint(FIRST_YEAR, LAST_YEAR), rng.randint(1, 12), rng.randint(1, DAYS)
    city, university, major = rng.choice(pools.cities), rng.choice(pools.universities), rng.choice(pools.majors)
    employer = rng.choice(pools.employers)
    pronoun = rng.choice(pools.pronouns) if spec.pronouns == "random" else pools.pronouns[i % 2]
    return Person(id=i, first=pools.first_names[name[0]], middle=pools.middle_names[name[1]],
                  last=pools.last_names[name[2]], birth_year=year, birth_month=month, birth_day=day,
                  birth_city=city, university=university, major=major, employer=employer,
                  work_city=pools.headquarters[employer], pronoun=pronoun)


# ---------------------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Text:
    """Rendered text and the character span of each attribute value in it."""

    text: str
    spans: Mapping[str, tuple[int, int]] = field(default_factory=dict)


_SLOT = re.compile(r"\{(\w+)\}|\[([^|\]]*\|[^\]]*)\]")
_PERSON = {"S": "subject", "O": "object", "P": "possessive"}


@functools.lru_cache(maxsize=None)
def _parse(template: str) -> tuple[tuple[str, str, str], ...]:
    """(literal before the slot, slot kind, slot argument) triples; the last one has kind ''."""
    out, last = [], 0
    for match in _SLOT.finditer(template):
        name, verbs = match.groups()
        kind, arg = ("verb", verbs) if verbs is not None else ("person", _PERSON[name]) if name in _PERSON \
            else ("value", name)
        out.append((template[last:match.start()], kind, arg))
        last = match.end()
    return (*out, (template[last:], "", ""))


def render(template: str, ref: Referent, values: Mapping[str, str]) -> Text:
    """Fill a template's slots: the person as ``ref`` refers to it, ``{attribute}`` from ``values``."""
    parts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    size = 0
    for literal, kind, arg in _parse(template):
        filled = ""
        if kind == "value":
            filled = values[arg]
            spans[arg] = (size + len(literal), size + len(literal) + len(filled))
        elif kind == "person":
            filled = getattr(ref, arg)
        elif kind == "verb":
            filled = arg.split("|")[ref.plural]
        parts += [literal, filled]
        size += len(literal) + len(filled)
    return Text("".join(parts), spans)


def _join(parts: Sequence[Text | str], sep: str = "") -> Text:
    chunks: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    size = -len(sep)
    for part in parts:
        size += len(sep)
        if isinstance(part, str):
            chunks.append(part)
            size += len(part)
            continue
        for a, (start, end) in part.spans.items():
            spans[a] = (size + start, size + end)
        chunks.append(part.text)
        size += len(part.text)
    return Text(sep.join(chunks), spans)


def _sentence(*parts: Text | str) -> Text:
    """Parts joined and capitalised; a final period added unless present."""
    joined = parts[0] if len(parts) == 1 and isinstance(parts[0], Text) else _join(parts)
    text = joined.text[:1].upper() + joined.text[1:]
    return Text(text if text.endswith(".") else text + ".", joined.spans)


# --------------------------------------------------------------------------------------------- bioS


def bios_entry(person: Person, chosen: Mapping[str, str], order: Sequence[str], fullname: bool) -> Text:
    """One bioS entry: ``chosen[attribute]`` rendered in ``order``; the full name first, then the pronoun."""
    name = Referent.named(person.full_name)
    return _join([_sentence(render(chosen[a], name if k == 0 or fullname else person.pronoun, {a: person.value(a)}))
                  for k, a in enumerate(order)], " ")


def _bios_order(variant: Variant, fixed: Sequence[str], rng: random.Random) -> tuple[str, ...]:
    if variant.couple:
        pairs = list(COUPLES)
        rng.shuffle(pairs)
        return tuple(a for pair in pairs for a in pair)
    order = list(fixed)
    if variant.permute:
        rng.shuffle(order)
    return tuple(order)


def bios_frame(people: Sequence[Person], spec: BioSpec, variant: Variant) -> pl.DataFrame:
    """The bioS table (module docstring) of ``variant`` for ``people``."""
    templates = load_templates()
    rows = []
    for person in people:
        for e in range(variant.entries):
            rng = random.Random(f"bioS:{spec.seed}:{person.id}:{e}")
            chosen = {a: rng.choice(templates.bios[a]) for a in ATTRIBUTES}
            for c in range(variant.copies):
                order = _bios_order(variant, spec.order, random.Random(f"bioS-order:{spec.seed}:{person.id}:{e}:{c}"))
                rows.append((person.id, e * variant.copies + c, bios_entry(person, chosen, order, variant.fullname)))
    return _bio_frame(rows)


# --------------------------------------------------------------------------------------------- bioR


def _groups(order: Sequence[str], rng: random.Random) -> list[tuple[str, ...]]:
    """Consecutive attributes, each group of one or (with probability 1/2) two becomes one sentence."""
    groups: list[tuple[str, ...]] = []
    k = 0
    while k < len(order):
        size = 2 if k + 1 < len(order) and rng.random() < 0.5 else 1
        groups.append(tuple(order[k:k + size]))
        k += size
    return groups


def _one(a: str, person: Person, t: Templates, rng: random.Random, main: Referent) -> Text:
    values = {a: person.value(a)}
    if rng.random() < 0.4:
        return _sentence(render(rng.choice(t.bios[a]), main, values))
    opener = rng.choice(t.connective[a]) + " " if rng.random() < 0.4 else ""
    return _sentence(opener, render("{S} " + rng.choice(t.vp[a]), main, values))


def _two(a: str, b: str, person: Person, t: Templates, rng: random.Random, main: Referent, later: Referent,
         named: bool) -> Text:
    values = {a: person.value(a), b: person.value(b)}
    vp_a, vp_b = rng.choice(t.vp[a]), rng.choice(t.vp[b])
    forms = [
        lambda: _sentence(render(f"{{S}} {vp_a} and {vp_b}", main, values)),
        lambda: _sentence(render(f"{{S}} {vp_a}", main, values), ", and ", render(f"{{S}} {vp_b}", later, values)),
        lambda: _sentence(render(f"{{S}} {vp_a}", main, values), "; ", render(f"{{S}} {vp_b}", later, values)),
        lambda: _sentence(render(rng.choice(t.lead[a]), main, values), ", ", render(f"{{S}} {vp_b}", main, values)),
    ]
    if named:  # the subject is the full name: a relative clause or an apposition may follow it
        forms += [lambda: _sentence(render(f"{{S}}, who {vp_a}, {vp_b}", main, values)),
                  lambda: _sentence(render(f"{{S}}, {rng.choice(t.appos[a])}, {vp_b}", main, values))]
    pair = t.pairs.get((a, b)) or t.pairs.get((b, a))
    if pair:
        forms.append(lambda: _sentence(render("{S} " + rng.choice(pair), main, values)))
    return rng.choice(forms)()


def bior_entry(person: Person, rng: random.Random, fullname: bool = False) -> Text:
    """One bioR paraphrase: attributes in random order, one or two per sentence, every value exactly once and
    verbatim; the full name in the first sentence (and everywhere with ``fullname``), the pronoun elsewhere."""
    t = load_templates()
    name = Referent.named(person.full_name)
    later = name if fullname else person.pronoun
    order = list(ATTRIBUTES)
    rng.shuffle(order)
    sentences = []
    for k, group in enumerate(_groups(order, rng)):
        main = name if k == 0 else later
        sentences.append(_one(group[0], person, t, rng, main) if len(group) == 1
                         else _two(*group, person, t, rng, main, later, named=k == 0 or fullname))
    return _join(sentences, " ")


def bior_frame(people: Sequence[Person], spec: BioSpec, variant: Variant) -> pl.DataFrame:
    """The bioR table (bios columns) of ``variant`` (multiM and fullname only) for ``people``."""
    if variant.permute or variant.couple:
        raise ValueError(f"bioR variant {variant.name!r}: bioR supports only multiM and fullname")
    return _bio_frame([(p.id, e, bior_entry(p, random.Random(f"bioR:{spec.seed}:{p.id}:{e}"), variant.fullname))
                       for p in people for e in range(variant.entries)])


# ------------------------------------------------------------------------------------------- tables


def people_frame(people: Sequence[Person]) -> pl.DataFrame:
    text = ("first", "middle", "last", "full_name", "birth_date", *ATTRIBUTES[1:])
    columns: dict[str, list[Any]] = {"id": [p.id for p in people]}
    columns |= {c: [p.value(c) for p in people] for c in text}
    columns |= {c: [getattr(p, c) for p in people] for c in ("birth_year", "birth_month", "birth_day")}
    columns["pronoun"] = [p.pronoun.subject for p in people]
    schema = {"id": pl.Int64, **{c: pl.Utf8 for c in text}, "birth_year": pl.Int16, "birth_month": pl.Int8,
              "birth_day": pl.Int8, "pronoun": pl.Utf8}
    order = ["id", "first", "middle", "last", "full_name", "birth_year", "birth_month", "birth_day", "birth_date",
             *ATTRIBUTES[1:], "pronoun"]
    return pl.DataFrame(columns, schema=schema).select(order)


def _bio_frame(rows: Sequence[tuple[int, int, Text]]) -> pl.DataFrame:
    texts = [t for _, _, t in rows]
    columns: dict[str, list[Any]] = {
        "person": [p for p, _, _ in rows], "entry": [e for _, e, _ in rows], "text": [t.text for t in texts],
        "order": [sorted(t.spans, key=t.spans.__getitem__) for t in texts]}
    schema: dict[str, Any] = {"person": pl.Int64, "entry": pl.Int32, "text": pl.Utf8, "order": pl.List(pl.Utf8)}
    for a in ATTRIBUTES:
        columns[f"{a}_start"] = [t.spans[a][0] for t in texts]
        columns[f"{a}_end"] = [t.spans[a][1] for t in texts]
        schema |= {f"{a}_start": pl.Int32, f"{a}_end": pl.Int32}
    return pl.DataFrame(columns, schema=schema)


def qa_frame(people: Sequence[Person]) -> pl.DataFrame:
    """Six questions per person; ids below len(people) // 2 are P_train, the rest P_test."""
    templates = load_templates().qa
    half = len(people) // 2
    rows = [(p.id, a, templates[a][0].replace("{N}", p.full_name), templates[a][1].replace("{V}", p.value(a)),
             p.value(a), "P_train" if p.id < half else "P_test") for p in people for a in ATTRIBUTES]
    names = ["person", "attribute", "question", "answer", "value", "split"]
    return pl.DataFrame(rows, schema={"person": pl.Int64, **{n: pl.Utf8 for n in names[1:]}}, orient="row")


# ------------------------------------------------------------------------------------------- import


def _find(value: str, text: str, start: int = 0) -> int:
    """Start of the first whole-word occurrence of ``value`` in ``text`` at or after ``start``, or -1."""
    match = re.compile(r"(?<![A-Za-z0-9])" + re.escape(value) + r"(?![A-Za-z0-9])").search(text, start)
    return match.start() if match else -1


def _locate(person: Person, text: str) -> dict[str, tuple[int, int]]:
    """Span of each attribute's first occurrence; attributes sharing a value (birth city = work city) take
    successive occurrences when there are several."""
    spans: dict[str, tuple[int, int]] = {}
    for a in ATTRIBUTES:
        value = person.value(a)
        after = max((s + 1 for b, (s, _) in spans.items() if person.value(b) == value), default=0)
        start = _find(value, text, after)
        start = start if start >= 0 else _find(value, text)
        spans[a] = (start, start + len(value))
    return spans


def import_bios(path: str | Path, people: Sequence[Person]) -> pl.DataFrame:
    """Biographies written elsewhere (a Parquet file with columns ``person``, ``text``) as a bios table.

    Every text must contain its person's full name and all six attribute values verbatim (as whole words);
    otherwise DataError names the first bad row. ``entry`` numbers a person's texts in file order.
    """
    frame = read_parquet(path, ["person", "text"])
    by_id = {p.id: p for p in people}
    rows, entries = [], Counter[int]()
    for k, (pid, text) in enumerate(frame.iter_rows()):
        person = by_id.get(pid)
        if person is None or not isinstance(text, str):
            what = f"person {pid!r} is not in the people table" if person is None else "the text is missing"
            raise DataError(f"{path}: row {k}: {what}")
        missing = next((a for a in ("full_name", *ATTRIBUTES) if _find(person.value(a), text) < 0), None)
        if missing is not None:
            raise DataError(f"{path}: row {k} (person {pid}): the text lacks the {missing} "
                            f"{person.value(missing)!r} (every attribute must appear verbatim)")
        rows.append((pid, entries[pid], Text(text, _locate(person, text))))
        entries[pid] += 1
    return _bio_frame(rows)
