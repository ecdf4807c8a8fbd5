"""Typed, strict views of `params.yaml`, one per pipeline stage, composed from the engine's and the worlds'
params schemas.

`params.yaml` holds shared defaults at the top (`seed`, `model`, `train`, and per-world `probe`/`evaluate`
defaults), a `datasets:` mapping and a `studies:` mapping. A dataset names its `world` and carries its
`generate` and `tokenize` sections (stages generate and tokenize run once per dataset). A study names its
`world` and the dataset it trains on (`data`), plus overrides (possibly empty mappings) of `model`,
`train`, `probe` and `evaluate` (stages train, probe and evaluate run once per study). Several studies can
share one dataset: a study matrix (attention variants, model sizes) trains side by side on the same data.

The schemas live with what they configure: `physlm.params` holds the engine's (`model`, `train`, the base of
`tokenize`), each world's `params.py` its own (`physlm.worlds.<world>.params`, reached through the registry).
Each stage reads exactly the sections listed in `FIELDS` (`declared_params` spells them as `dvc.yaml` must
declare them as the stage's `params`; `tests/test_config.py` checks the two agree), merges study overrides
over the shared defaults, and validates the result with `stage_model(stage, world)`, a frozen pydantic model
that forbids unknown keys. Any problem raises `ParamsError` with one line naming the offending key, before
the stage writes anything.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, create_model

from physlm import worlds
from physlm.errors import ParamsError
from physlm.params import ModelParams, Section

# Where each field of a stage's model comes from: (shared default key, key inside the stage's dataset or
# study entry). A field with both is the shared default deep-merged with the entry's override ("{world}" is
# the entry's world). SCOPE says whether a stage runs per dataset, per study, or once.
FIELDS: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "generate": {"seed": ("seed", None), "world": (None, "world"), "generate": (None, "generate")},
    "tokenize": {"world": (None, "world"), "tokenize": (None, "tokenize")},
    "train": {"seed": ("seed", None), "world": (None, "world"), "model": ("model", "model"), "train": ("train", "train")},
    "probe": {"seed": ("seed", None), "world": (None, "world"), "probe": ("probe.{world}", "probe")},
    "evaluate": {"seed": ("seed", None), "world": (None, "world"), "evaluate": ("evaluate.{world}", "evaluate")},
    "report": {"studies": ("studies", None)},
}
SCOPE: dict[str, str | None] = {"generate": "datasets", "tokenize": "datasets", "train": "studies", "probe": "studies",
                                "evaluate": "studies", "report": None}
STAGES = tuple(FIELDS)
SINGULAR = {"datasets": "dataset", "studies": "study"}
ENTRY_KEYS = {"datasets": {"world", "generate", "tokenize"}, "studies": {"world", "data", "model", "train", "probe", "evaluate"}}


class ReportStage(Section):
    studies: dict[str, Any]


@functools.cache
def stage_model(stage: str, world: str = "") -> type[Section]:
    """The model of `stage` for a dataset or study of `world`: the engine's sections and the world's own
    (`physlm.worlds.WorldParams`), fields in `FIELDS` order."""
    if stage not in FIELDS:
        raise ParamsError(f"unknown stage '{stage}'; stages: {', '.join(FIELDS)}")
    if SCOPE[stage] is None:
        return ReportStage
    own = worlds.get(world).params
    types = {"seed": int, "world": str, "model": ModelParams, "train": own.train, "generate": own.generate,
             "tokenize": own.tokenize, "probe": own.probe, "evaluate": own.evaluate}
    name = f"{world.capitalize()}{stage.capitalize()}Stage"
    return create_model(name, __base__=Section, **{field: (types[field], ...) for field in FIELDS[stage]})


def declared_params(stage: str) -> set[str]:
    """The params keys `stage` must declare in dvc.yaml, spelled as there ("${key}", "${item.world}")."""
    keys: set[str] = set()
    for shared, own in FIELDS[stage].values():
        if shared:
            keys.add(shared.replace("{world}", "${item.world}"))
        if own:
            keys.add(f"{SCOPE[stage]}.${{key}}.{own}")
    return keys


# ---------------------------------------------------------------------------------------------------------
# Loading


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Parse params.yaml; ParamsError if it is missing or not a mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping")
    return data


def lookup(params: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key; ParamsError naming the key if any part is missing."""
    node: Any = params
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"params.yaml: missing key '{'.'.join(dotted.split('.')[: i + 1])}'")
        node = node[part]
    return node


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: override's leaves replace base's; nested mappings merge recursively."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def entry_names(params: dict[str, Any], scope: str) -> list[str]:
    """The names under `datasets:` or `studies:`."""
    entries = lookup(params, scope)
    if not isinstance(entries, dict) or not entries:
        raise ParamsError(f"params.yaml: '{scope}' must be a non-empty mapping")
    return list(entries)


def study_names(params: dict[str, Any]) -> list[str]:
    return entry_names(params, "studies")


def _entry(params: dict[str, Any], scope: str, name: str) -> tuple[str, dict[str, Any]]:
    """(world, entry) of a dataset or study, checking its name, keys, world and (for a study) dataset."""
    names = entry_names(params, scope)
    if name not in names:
        raise ParamsError(f"params.yaml: unknown {SINGULAR[scope]} '{name}'; {scope}: {', '.join(names)}")
    entry = lookup(params, f"{scope}.{name}")
    if not isinstance(entry, dict):
        raise ParamsError(f"params.yaml: '{scope}.{name}' must be a mapping")
    for key in entry:
        if key not in ENTRY_KEYS[scope]:
            raise ParamsError(f"params.yaml: {scope}.{name}.{key}: unknown key; a {SINGULAR[scope]} has {', '.join(sorted(ENTRY_KEYS[scope]))}")
    world = lookup(params, f"{scope}.{name}.world")
    if not isinstance(world, str) or world not in worlds.names():
        raise ParamsError(f"params.yaml: {scope}.{name}.world: unknown world {world!r}; known: {', '.join(worlds.names())}")
    if scope == "studies":
        data = lookup(params, f"studies.{name}.data")
        datasets = entry_names(params, "datasets")
        if data not in datasets:
            raise ParamsError(f"params.yaml: studies.{name}.data: unknown dataset {data!r}; datasets: {', '.join(datasets)}")
        if lookup(params, f"datasets.{data}.world") != world:
            raise ParamsError(f"params.yaml: studies.{name}.world: {world!r} differs from its dataset's world"
                              f" (datasets.{data}.world = {lookup(params, f'datasets.{data}.world')!r})")
    return world, entry


def data_name(study: str, params_path: str | Path = "params.yaml") -> str:
    """The dataset a study trains on (its `data` key), checked."""
    params = read_params(params_path)
    _entry(params, "studies", study)
    return lookup(params, f"studies.{study}.data")


def stage_raw(params: dict[str, Any], stage: str, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged, unvalidated input of a stage for a dataset or study, and for each field path the params.yaml
    key it came from."""
    scope = SCOPE[stage]
    world = _entry(params, scope, name)[0] if scope else ""
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for field, (shared, own) in FIELDS[stage].items():
        shared = shared.format(world=world) if shared else None
        own = f"{scope}.{name}.{own}" if own else None
        if shared and own:
            base, override = lookup(params, shared), lookup(params, own)
            for where, value in ((shared, base), (own, override)):
                if not isinstance(value, dict):
                    raise ParamsError(f"params.yaml: '{where}' must be a mapping (use {{}} for no overrides)")
            raw[field] = merge(base, override)
            origin[field] = own  # unknown keys can only have been written in one of them; blame the entry
            origin |= {f"{field}.{k}": f"{shared}.{k}" for k in base}
            origin |= {f"{field}.{k}": f"{own}.{k}" for k in override}
        else:
            key = shared or own
            raw[field] = lookup(params, key)
            origin[field] = key
    return raw, origin


def _key_name(loc: tuple[Any, ...], origin: dict[str, str]) -> str:
    """Map a pydantic error location to the params.yaml key a user should edit."""
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        head = ".".join(parts[:n])
        if head in origin:
            return ".".join([origin[head], *parts[n:]])
    return ".".join(parts) or "params.yaml"


def load_stage(stage: str, name: str = "", params_path: str | Path = "params.yaml") -> Section:
    """Validate the sections `stage` declares for dataset or study `name` (see SCOPE); ParamsError with one
    line naming the key."""
    if stage not in FIELDS:
        raise ParamsError(f"unknown stage '{stage}'; stages: {', '.join(FIELDS)}")
    params = read_params(params_path)
    raw, origin = stage_raw(params, stage, name)
    world = _entry(params, SCOPE[stage], name)[0] if SCOPE[stage] else ""
    try:
        return stage_model(stage, world).model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(p for p in first["loc"] if not str(p).startswith("function-after"))
        loc = _strip_union(loc)
        value = first.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        raise ParamsError(f"params.yaml: {_key_name(loc, origin)}: {first['msg']}{shown}") from None


def validate_all(params_path: str | Path = "params.yaml") -> dict[str, int]:
    """Validate params.yaml for every stage of every dataset and study, and each study's sections against each
    other (its world's `WorldParams.check`, e.g. probed layers within the model's depth): the `validate` stage,
    upstream of every other, so a bad value stops `dvc repro` before DVC removes any stage's outputs. Returns
    how many datasets and studies were checked; ParamsError (one line naming the key) at the first problem."""
    params = read_params(params_path)
    datasets, studies = entry_names(params, "datasets"), study_names(params)
    for name in datasets:
        for stage in ("generate", "tokenize"):
            load_stage(stage, name, params_path)
    for name in studies:
        sections = {stage: load_stage(stage, name, params_path) for stage in ("train", "probe", "evaluate")}
        check = worlds.get(sections["train"].world).params.check
        if check is not None:
            try:
                check(sections)
            except ValueError as err:
                raise ParamsError(f"params.yaml: studies.{name}: {err}") from None
    load_stage("report", "", params_path)
    return {"datasets": len(datasets), "studies": len(studies)}


def _strip_union(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-branch names ("str", "RandomGrammarParams") from an error location."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or p in ("str", "int", "float"))))
