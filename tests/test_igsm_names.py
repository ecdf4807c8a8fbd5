"""Tests of the iGSM world knowledge `physlm/worlds/igsm/names.json` (SPEC 2.1, contract in
`physlm.worlds.igsm.types`): the schema and the four category chains in order, 5 sub-categories of 18-22
items per category, 1,450-1,700 items in all, and every item name's form: 1-3 Title-Case words of ASCII
letters and hyphens, no template word, no single letter, unique across the file and never a category name.
The name checker is also run on bad names, so it is shown able to fail."""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib.resources import files

import pytest

CHAINS = [
    ["District", "Supermarket", "Product", "Ingredient"],
    ["Zoo", "Enclosure", "Animal", "Bone"],
    ["School", "Classroom", "Backpack", "Stationery"],
    ["Ecosystem", "Creature", "Organ", "Cell"],
]
TEMPLATE_WORDS = frozenset(
    "of and the each equals more than times as much sum difference number how many does have define so "
    "answer a an is in total".split()
)
# A word is ASCII letters starting upper-case; parts after a hyphen may start lower-case.
WORD = r"[A-Z][A-Za-z]*(?:-[A-Za-z]+)*"
NAME = re.compile(rf"{WORD}(?: {WORD}){{0,2}}")


def name_problems(name: object) -> list[str]:
    """Every rule an item name breaks (empty when it is fine)."""
    if not isinstance(name, str):
        return ["not a string"]
    problems = []
    if not NAME.fullmatch(name):
        problems.append("not 1-3 Title-Case words of ASCII letters, single spaces and hyphens")
    parts = [p.lower() for p in re.split(r"[ -]", name)]
    if any(len(p) == 1 for p in parts):
        problems.append("has a single-letter word")
    if TEMPLATE_WORDS.intersection(parts):
        problems.append(f"has template word(s) {sorted(TEMPLATE_WORDS.intersection(parts))}")
    return problems


@pytest.fixture(scope="module")
def world() -> dict:
    return json.loads(files("physlm.worlds.igsm").joinpath("names.json").read_text(encoding="utf-8"))


def all_items(world: dict) -> list[str]:
    return [item for c in world["categorizations"] for layer in c["layers"]
            for sub in layer["subcategories"] for item in sub["items"]]


@pytest.mark.parametrize("bad", ["", " Lion", "Lion ", "Sea  Lion", "lion", "Sea lion", "Sea Lion Rock Pool",
                                 "Lion's Den", "Lion.", "Zoo 7", "Cafe\u00e9", "Lion-", "T-Rex", "Sea X",
                                 "The Lion", "Lion Of Judah", "Half-and-Half", "Total Lion", "Is Bay", None])
def test_name_checker_rejects_bad_names(bad: object) -> None:
    assert name_problems(bad)


@pytest.mark.parametrize("good", ["Lion", "Sea Lion", "Red Blood Cell", "Carry-on Backpack", "Os Cordis"])
def test_name_checker_accepts_good_names(good: str) -> None:
    assert name_problems(good) == []


def test_schema_and_category_chains(world: dict) -> None:
    assert list(world) == ["categorizations"]
    cats = world["categorizations"]
    assert len(cats) == len(CHAINS)
    for c, chain in zip(cats, CHAINS):
        assert set(c) == {"name", "layers"} and isinstance(c["name"], str) and c["name"]
        assert [layer["category"] for layer in c["layers"]] == chain
        for layer in c["layers"]:
            assert set(layer) == {"category", "subcategories"}
            subs = layer["subcategories"]
            assert len(subs) == 5, layer["category"]
            assert len({s["name"] for s in subs}) == 5, layer["category"]
            for sub in subs:
                assert set(sub) == {"name", "items"} and isinstance(sub["name"], str) and sub["name"]
                assert isinstance(sub["items"], list) and 18 <= len(sub["items"]) <= 22, sub["name"]


def test_item_names_are_well_formed(world: dict) -> None:
    bad = {item: p for item in all_items(world) if (p := name_problems(item))}
    assert bad == {}


def test_item_names_unique_and_not_category_names(world: dict) -> None:
    lowered = Counter(item.lower() for item in all_items(world))
    assert sorted(n for n, k in lowered.items() if k > 1) == []
    categories = {cat.lower() for chain in CHAINS for cat in chain}
    assert sorted(categories.intersection(lowered)) == []


def test_total_item_count(world: dict) -> None:
    assert 1450 <= len(all_items(world)) <= 1700
