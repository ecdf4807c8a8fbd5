"""The repository's import graph, read from the source (every import statement, function-level ones included):
what tests/test_import_graph.py and tests/test_dvc_deps.py check."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("physlm", "stages")


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of physlm/ and stages/ by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _absolute(module: str, name: str | None, level: int) -> str:
    """The absolute name of `from <level dots><name> import ...` written in `module`."""
    if not level:
        return name or ""
    package = module.split(".") if modules()[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


@functools.cache
def imports(module: str) -> frozenset[str]:
    """The repo modules `module` imports directly (anywhere in it), with the packages their import runs."""
    known, out = modules(), set()
    for node in ast.walk(ast.parse(known[module].read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
            base = _absolute(module, node.module, node.level)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name in known:  # importing a.b.c runs a and a.b too (but not a module's own packages: running)
                out |= {name, *(p for p in _parents(name) if p in known and not module.startswith(p + "."))}
    return frozenset(out - {module})


def third_party(module: str) -> frozenset[str]:
    """The top-level names of everything else `module` imports (torch, polars, ...)."""
    out = set()
    for node in ast.walk(ast.parse(modules()[module].read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return frozenset(out - set(PACKAGES))


def closure(*starts: str) -> set[str]:
    """Every repo module that importing `starts` can import, transitively (the starts included)."""
    seen, todo = set(), [m for s in starts for m in (s, *_parents(s)) if m in modules()]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += imports(m)
    return seen


def files(mods: set[str]) -> set[str]:
    """The repo-relative paths of modules."""
    return {modules()[m].relative_to(ROOT).as_posix() for m in mods}
