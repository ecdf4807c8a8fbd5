"""The import graph keeps its shape: data flows one way (worlds -> tokenize -> engine -> probes/evaluation ->
metrics -> report), read from the source by tests/imports.py (every import statement, function-level ones
included).

- no import circles among physlm/ and stages/;
- no stage imports another stage, and the library never imports a stage;
- the engine imports no world: outside physlm/worlds/, only the modules that look worlds up by name (the
  registry's users) import physlm.worlds, and none imports a world package;
- a world imports no other world;
- the report (physlm/report.py, stages/report.py, every world's report.py) never imports torch, nor does
  any world's generator, labels or judge (its generate, tokenize, stream steps and what they import);
- no literal world name outside its own package: stages and the engine never branch on a world.
"""

from __future__ import annotations

import ast

import pytest
from imports import closure, files, imports, modules, third_party

from physlm import worlds

WORLDS = worlds.names()
# Modules outside physlm/worlds that look worlds up through the registry (and only through it).
REGISTRY_USERS = {"physlm.config", "physlm.stream", "physlm.report", "physlm.presets", "stages.generate",
                  "stages.tokenize", "stages.train", "stages.probe", "stages.evaluate"}


def world_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["physlm", "worlds"] else None


def test_no_import_circles() -> None:
    graph = {m: imports(m) for m in modules()}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n] if n in path else [m, n]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_stage_imports_a_stage_and_the_library_no_stage() -> None:
    for m in modules():
        stages = {n for n in imports(m) if n.startswith("stages.")}
        assert not stages, f"{m} imports {sorted(stages)}"


def test_the_engine_imports_no_world() -> None:
    for m in modules():
        if world_of(m) is not None or m == "physlm.worlds":
            continue
        found = {n for n in imports(m) if n == "physlm.worlds" or n.startswith("physlm.worlds.")}
        assert not {n for n in found if world_of(n)}, f"{m} imports a world: {sorted(found)}"
        assert not found or m in REGISTRY_USERS, f"{m} uses the world registry; add it to REGISTRY_USERS if it must"


def test_a_world_imports_no_other_world() -> None:
    for m in modules():
        mine = world_of(m)
        if mine is not None:
            others = {world_of(n) for n in imports(m)} - {None, mine}
            assert not others, f"{m} imports the worlds {sorted(others)}"


def torch_users(mods: set[str]) -> set[str]:
    return {m for m in mods if "torch" in third_party(m)}


def test_the_report_never_imports_torch() -> None:
    reports = [f"{worlds.get(w).package}.report" for w in WORLDS]
    found = torch_users(closure("stages.report", "physlm.report", *reports))
    assert not found, f"the report's import closure imports torch in {sorted(found)}"


@pytest.mark.parametrize("world", WORLDS)
def test_generators_labels_and_judges_never_import_torch(world: str) -> None:
    w = worlds.get(world)
    steps = [s for s in ("generate", "tokenize", "stream") if w.takes_part(s)]
    pure = [f"{w.package}.{s}" for s in steps] + [f"{w.package}.{name}" for name in ("labels", "judge", "oracle")
                                                  if f"{w.package}.{name}" in modules()]
    found = torch_users(closure(*pure))
    assert not found, f"{world}: {sorted(files(found))} import torch"


def branches_on(node: ast.AST) -> list[ast.Constant]:
    """String constants a piece of code could branch on: compared, tested for membership, used as a dict key or
    subscript, or passed to the registry."""
    if isinstance(node, ast.Compare):
        parts = [node.left, *node.comparators]
        return [c for p in parts for c in ([p] if isinstance(p, ast.Constant) else
                                           getattr(p, "elts", []) if isinstance(p, (ast.Tuple, ast.List, ast.Set)) else [])
                if isinstance(c, ast.Constant)]
    if isinstance(node, ast.Dict):
        return [k for k in node.keys if isinstance(k, ast.Constant)]
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return [node.slice]
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get" and getattr(node.func.value, "id", "") == "worlds":
        return [a for a in node.args if isinstance(a, ast.Constant)]
    return []


def test_no_world_name_branch_outside_its_package() -> None:
    """Outside a world's package no code compares with, keys on or looks up that world's name."""
    for m, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            for c in branches_on(node):
                if c.value in WORLDS and world_of(m) != c.value:
                    pytest.fail(f"{path.relative_to(path.parents[len(m.split('.')) - 1])}:{c.lineno} branches on the world {c.value!r}")
