"""The world knowledge iGSM problems are written in (SPEC 2.1 "World knowledge"): hierarchical
categorizations of item names, carried as package data (`physlm/worlds/igsm/names.json`), read and checked
once per process. This module never imports torch."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from physlm.errors import DataError

MAX_DEGREE = 4          # most predecessors (RNG included) of an instance parameter: a sub-category's least items
_NAME = re.compile(r"[A-Za-z]+(?:[ -][A-Za-z]+)*")


@dataclass(frozen=True)
class Layer:
    category: str                                          # e.g. "Supermarket"
    subcategories: tuple[tuple[str, tuple[str, ...]], ...]  # (sub-category name, item names)


@dataclass(frozen=True)
class Categorization:
    name: str
    layers: tuple[Layer, ...]  # top layer first


@dataclass(frozen=True)
class Knowledge:
    """The hierarchical categorizations problems are written in (SPEC 2.1 "World knowledge")."""

    categorizations: tuple[Categorization, ...]


def _default_knowledge_path() -> Path:
    return Path(str(resources.files("physlm.worlds.igsm") / "names.json"))


@functools.lru_cache(maxsize=8)
def _load_knowledge_cached(path: str) -> Knowledge:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (the iGSM world knowledge's names)") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    return knowledge_from_dict(data, path)


def load_knowledge(path: str | Path | None = None) -> Knowledge:
    """The knowledge in `path` (default: the package's `physlm/worlds/igsm/names.json`), read once per process."""
    return _load_knowledge_cached(str(Path(path) if path is not None else _default_knowledge_path()))


def knowledge_from_dict(data: dict, where: str = "knowledge") -> Knowledge:
    """Build and validate a Knowledge from the names file's schema; DataError naming the first problem found."""
    try:
        cats = tuple(Categorization(c["name"], tuple(
            Layer(layer["category"], tuple((sub["name"], tuple(sub["items"])) for sub in layer["subcategories"]))
            for layer in c["layers"])) for c in data["categorizations"])
    except (KeyError, TypeError) as err:
        raise DataError(f"{where}: not the iGSM names schema (missing or wrong {err})") from None
    _check_knowledge(Knowledge(cats), where)
    return Knowledge(cats)


def _check_knowledge(knowledge: Knowledge, where: str) -> None:
    if not knowledge.categorizations:
        raise DataError(f"{where}: no categorizations")
    categories = {layer.category for c in knowledge.categorizations for layer in c.layers}
    seen: set[str] = set()
    for c in knowledge.categorizations:
        if len(c.layers) < 4:
            raise DataError(f"{where}: categorization {c.name!r} has {len(c.layers)} layers, needs at least 4")
        for layer in c.layers:
            _check_name(layer.category, where)
            if not layer.subcategories:
                raise DataError(f"{where}: category {layer.category!r} has no sub-categories")
            for sub, items in layer.subcategories:
                if len(items) < MAX_DEGREE:
                    raise DataError(f"{where}: sub-category {sub!r} has {len(items)} items, needs at least {MAX_DEGREE}")
                for item in items:
                    _check_name(item, where)
                    if item in seen or item in categories:
                        raise DataError(f"{where}: item name {item!r} is repeated or is also a category name")
                    seen.add(item)


def _check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataError(f"{where}: name {name!r} is not letters, spaces and hyphens")
