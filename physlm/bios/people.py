"""The people of the biography world (Part 3.1): their attributes, and the pools and templates they are
written with.

Reproduces SPEC section 4.1. N individuals get independently uniform attributes: a unique full name from
first/middle/last pools of 400/400/1000 (rejection), a birth date (year 1900-2099, month 1-12, day 1-28,
written "October 2, 1996"), a birth city (200 US cities, "Princeton, NJ"), a university (300), a major (100)
and an employer (263); the work city is the employer's headquarters (36 of the 263 are in New York, NY: the
13.7% trivial baseline), and a pronoun set (paper: he/she/they at random; ``pronouns="parity"`` gives the
released code's he for even ids, she for odd ids). The pools, the bioS templates (46/49/49/52/47/48 per
attribute as in the paper), the 6 QA templates and the bioR phrase banks are package data in
``physlm/bios/data/*.json``, written by us (the first/middle/last name pools, which the capacity world
shares, in ``physlm/names``); ``PoolSizes`` takes the first k values of each pool.

Randomness: person i's attributes come from ``random.Random(f"bio-person:{seed}:{i}")`` and its name draws
from ``random.Random(f"bio-name:{seed}:{i}")``, re-drawn while the name is taken by a lower id (so person i
never depends on N). bioS entry e draws its templates from ``f"bioS:{seed}:{i}:{e}"`` (entry 0 of multi5 is
the single entry) and copy c its order from ``f"bioS-order:{seed}:{i}:{e}:{c}"``; bioR entry e uses
``f"bioR:{seed}:{i}:{e}"``.

People, pools and templates only; the texts and tables are `physlm.bios.biographies`. This module never
imports torch.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from math import prod
from types import MappingProxyType
from typing import Any

from physlm import names

ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "employer", "work_city")
SPLITS = ("P_train", "P_test")  # people whose questions QA training sees, and those it never does (qa's `split`)
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
    return json.loads(resources.files("physlm.bios").joinpath("data", name).read_text(encoding="utf-8"))


def _take(values: Sequence[Any], size: int, what: str) -> tuple[Any, ...]:
    if not 1 <= size <= len(values):
        raise ValueError(f"PoolSizes.{what}={size} must be between 1 and {len(values)} (the values in data/bio)")
    return tuple(values[:size])


def _names(kind: str, size: int) -> tuple[str, ...]:
    try:
        return names.pool(kind, size)
    except ValueError:
        raise ValueError(f"PoolSizes.{kind}={size} must be between 1 and {names.SIZES[kind]} (the names in physlm/names)") from None


@functools.lru_cache(maxsize=8)
def load_pools(sizes: PoolSizes = PoolSizes()) -> Pools:
    employers = _take(_data("employers.json"), sizes.employers, "employers")
    return Pools(
        first_names=_names("first_names", sizes.first_names),
        middle_names=_names("middle_names", sizes.middle_names),
        last_names=_names("last_names", sizes.last_names),
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
