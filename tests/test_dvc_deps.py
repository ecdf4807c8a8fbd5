"""dvc.yaml's deps cannot go stale: for every stage and every world, each file the stage's code can import
(tests/imports.py: the stage script, its launcher, the world's package and the step modules the stage calls,
transitively) is covered by a declared dep, and every declared code dep is imported by some world's run of
the stage. A world's package is one dep (`physlm/worlds/${item.world}`), so an edit inside one world reruns
only that world's stages (and the report, which reads every world's section)."""

from __future__ import annotations

import pytest
import yaml
from imports import ROOT, closure, files

from physlm import worlds

# What a stage runs: its command's modules, and the world steps it calls (when the world takes part).
ENTRY = {"generate": ("stages.generate",), "tokenize": ("stages.tokenize",), "train": ("physlm.distributed", "stages.train"),
         "probe": ("stages.probe",), "evaluate": ("stages.evaluate",), "report": ("stages.report",),
         "validate": ("stages.validate",)}
STEPS = {"generate": ("generate",), "tokenize": ("tokenize", "stream"), "train": ("train", "stream"), "probe": ("probe",),
         "evaluate": ("evaluate",), "report": ("report",), "validate": ()}
EVERY_WORLD = ("report", "validate")  # stages that read every world (its report section; its params schemas)
CODE = ("physlm/", "stages/")


def declared(stage: str, world: str) -> list[str]:
    body = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    body = body.get("do", body)
    return [d.replace("${item.world}", world) for d in body["deps"]]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def world_modules(world: str, stage: str) -> list[str]:
    w = worlds.get(world)
    return [w.package, *(f"{w.package}.{s}" for s in STEPS[stage] if w.takes_part(s))]


def needed(stage: str, world: str) -> set[str]:
    """The repo files one run of `stage` on a dataset or study of `world` can import (the report and validate
    read every world)."""
    mods = [m for w in worlds.names() for m in world_modules(w, stage)] if stage in EVERY_WORLD else world_modules(world, stage)
    return files(closure(*ENTRY[stage], *mods))


@pytest.mark.parametrize("stage", list(ENTRY))
@pytest.mark.parametrize("world", worlds.names())
def test_every_imported_file_is_a_declared_dep(stage: str, world: str) -> None:
    deps = declared(stage, world)
    missing = sorted(f for f in needed(stage, world) if not covered(f, deps))
    assert not missing, f"{stage} on a {world} study imports files dvc.yaml does not declare: {missing}"


@pytest.mark.parametrize("stage", list(ENTRY))
def test_every_declared_code_dep_is_imported(stage: str) -> None:
    used = set().union(*(needed(stage, w) for w in worlds.names()))
    for dep in declared(stage, "{world}"):
        if dep.startswith(CODE) and "{world}" not in dep:
            assert any(covered(f, [dep]) for f in used), f"{stage}: dvc.yaml declares {dep}, which no world's run imports"


def test_a_world_dep_covers_exactly_its_package() -> None:
    """The per-world dep of the per-world stages is the world's package directory, nothing wider."""
    for stage in ("generate", "tokenize", "train", "probe", "evaluate"):
        deps = declared(stage, "{world}")
        assert "physlm/worlds/{world}" in deps and "physlm/worlds" not in deps, stage
