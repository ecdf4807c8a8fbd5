"""Synthetic worlds, one package each, behind one interface (`World`) and a registry.

A world is one synthetic data family with ground-truth labels and an exact judge: Part 1's context-free
grammars (`cfg`), Part 2.1's grade-school math (`igsm`), Part 3.1's biographies (`bio`). Everything that is a
world's lives in its package `physlm/worlds/<name>/`: knowledge and data files, generator and labels, judge,
text and tokenizer, probes, evaluation, params schemas, report section and figures, paper presets. The
package's `__init__` defines `WORLD`, a `World`, and its docstring is the world's short README (what it
reproduces, its Parquet columns, its studies, its oracle tests).

The stages in `stages/` look a world up by name (`get`) and call the module of the step they run; nothing
outside a world's package names it. A step the world takes part in is the module of its package named after
the step, holding one function:

| step       | module          | function                                                         | used by    |
|------------|-----------------|------------------------------------------------------------------|------------|
| `generate` | `generate.py`   | `generate(params, seed, out_dir) -> {file: rows}`                | generate   |
| `tokenize` | `tokenize.py`   | `tokenize(raw_dir, params) -> Tokenized`                         | tokenize   |
| `stream`   | `stream.py`     | `source(spec: StreamSpec) -> physlm.stream.ExampleSource`        | tokenize, train |
| `train`    | `train.py`      | `plan(tokens_dir, train_params, train_cfg, seed) -> physlm.train.Plan` | train |
| `probe`    | `probe.py`      | `probe(paths, cfg, device) -> Probed`                            | probe      |
| `evaluate` | `evaluate.py`   | `evaluate(paths, cfg, device) -> Evaluated`                      | evaluate   |
| `report`   | `report.py`     | `section(found: {study: StudyMetrics}, out_dir) -> markdown`     | report     |
| `presets`  | `presets.py`    | `PRESETS: {name: physlm.presets.Preset}`                         | `python -m physlm.presets` |

`generate`, `tokenize`, `probe`, `evaluate` and `report` are every world's. `World.steps` names the optional
ones a world takes part in; where it takes no part the stage says so and does the plain thing: a world
without `stream` cannot train on streamed windows (`train.stream: true` is a one-line error), a world
without `train` trains on its tokenized train split with no second phase, a world without `presets` has no
paper-scale switch. A world's extra outputs are its own: the grammar world's probe writes attention tables
beside its probe table, the others write none (no empty placeholder files).

Registry: every sub-package of `physlm/worlds/` is a world, found without importing it (`names`); adding a
world is adding its package, nothing else (tests/test_toy_world.py proves it with a tests-only world).
`register` adds a world that lives elsewhere (a test, a plugin) to this process only.

This module imports neither torch, polars nor any world: `get` imports the one world asked for.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from physlm.errors import ParamsError
from physlm.params import Section, TrainParams

if TYPE_CHECKING:
    import polars as pl

REQUIRED = ("generate", "tokenize", "probe", "evaluate", "report")
OPTIONAL = ("stream", "train", "presets")
STEPS = REQUIRED + OPTIONAL


@dataclass(frozen=True)
class WorldParams:
    """A world's params schemas, one per section its stages read (`physlm.config` composes them)."""

    generate: type[Section]  # datasets.<d>.generate
    tokenize: type[Section]  # datasets.<d>.tokenize (a subclass of physlm.params.TokenizeParams)
    probe: type[Section]  # probe.<world>, deep-merged with studies.<s>.probe
    evaluate: type[Section]  # evaluate.<world>, deep-merged with studies.<s>.evaluate
    train: type[Section] = TrainParams  # train, deep-merged with studies.<s>.train (a subclass adds the world's keys)
    # checks across a study's validated sections ({"train", "probe", "evaluate"} -> stage model), run by the
    # validate stage before any output is touched: raise ValueError("<params key>: why") (e.g. a probed layer
    # deeper than the model)
    check: Callable[[Mapping[str, Any]], None] | None = None


@dataclass(frozen=True)
class World:
    """What the pipeline knows of a world: its name, what it reproduces, its params and the steps it takes
    part in; `step` imports the module that implements one."""

    name: str  # the `world:` of its datasets and studies, and its package's name
    title: str  # what it reproduces, e.g. "Part 1: context-free grammars"
    spec: str  # where ../shared/SPEC.md describes it, e.g. "SPEC 1"
    demo: str  # what its showcase demo shows, in one line
    params: WorldParams
    package: str  # the module holding the step modules (its own __name__)
    steps: frozenset[str] = field(default_factory=frozenset)  # the optional steps it takes part in (OPTIONAL)

    def __post_init__(self) -> None:
        unknown = set(self.steps) - set(OPTIONAL)
        if unknown:
            raise ValueError(f"world {self.name!r}: unknown optional steps {sorted(unknown)}; optional: {', '.join(OPTIONAL)}")

    def takes_part(self, step: str) -> bool:
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
        return step in REQUIRED or step in self.steps

    def step(self, step: str) -> ModuleType:
        """The module implementing `step`; ValueError if the world takes no part in it."""
        if not self.takes_part(step):
            raise ValueError(f"world {self.name!r} takes no part in step {step!r}")
        return importlib.import_module(f"{self.package}.{step}")


@dataclass(frozen=True)
class Tokenized:
    """A tokenize step's result. The stage packs each split into windows of `tokenize.context + 1` tokens
    (`physlm.tokenize.pack_windows`) and writes `<split>.npy`, `tokenizer.json` and `meta.json`.

    Loss masks: a split may return `(flat ids, offsets, loss)`, `loss` a uint8/bool array of len(flat ids):
    1 where the token is a training target (the model is trained to predict it), 0 where it is context only.
    The stage packs it exactly as the tokens into `<split>.loss.npy` (`physlm.tokenize.pack_loss`); the `<bos>`
    packing puts before each example is never a target, the `<eos>` after it is one when `eos_loss`. Training
    then takes the loss only on the targets (`physlm.train`). A split returning `(flat ids, offsets)` has no
    mask: every token is a target (and `eos_loss` does not matter)."""

    vocab: Any  # a physlm.tokenize.Vocab
    splits: Mapping[str, Any]  # split name -> a no-argument callable returning (flat ids, offsets[, loss]), encoded lazily
    meta: Mapping[str, Any] = field(default_factory=dict)  # world-specific keys added to meta.json
    drop_long: bool = False  # drop examples longer than context - 1 tokens (text worlds; SPEC 2.2), counted in meta
    eos_loss: bool = False  # with loss masks: the <eos> packing appends after each example is a target


@dataclass(frozen=True)
class Probed:
    """A probe step's result: `headline` -> metrics/<study>/probe.json (the DVC metrics: a few flat headline
    numbers, what `dvc exp show` lists), `summary` -> metrics/<study>/detail/probe.json (everything the report
    reads), each table -> metrics/<study>/probe/<name>.csv (a world writes the tables it has, no empty ones),
    `log` -> the MLflow run, `line` -> the stage's last printed line. Nothing here may be a wall-clock time:
    these files are in git and must not change when no result does (timings go to `log`)."""

    summary: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    log: dict[str, Any]
    line: str
    headline: dict[str, float]


@dataclass(frozen=True)
class Evaluated:
    """An evaluate step's result: `headline` -> metrics/<study>/evaluate.json (DVC metrics, flat, a few numbers),
    `metrics` -> metrics/<study>/detail/evaluate.json, `log` -> MLflow, `line` -> stdout, `generations` ->
    generations/<study>/evaluate.parquet (a DVC-cached output, not in git): one row per sample the step judged,
    so a researcher can read and re-judge them (built by `generations_table`). Its columns: `set` (the key, "/"-joined
    when nested, of the metrics entry whose accuracy the rows make up: "test", "control", "pretrained/P_test"),
    `index` (where the sample comes from: its row in the eval file, or its number), `prompt` (what the model was
    given after `<bos>`, decoded) and, for a world that generates, `output` (what it wrote, decoded; null when
    nothing judgeable came back), `verdict` (judged correct) and `error` (the judge's first error; null when
    correct); then the world's own columns (docs/<world>.md). A world that generates nothing (capacity, which
    scores losses) has no output/verdict/error and says what its rows hold instead."""

    metrics: dict[str, Any]
    log: dict[str, Any]
    line: str
    headline: dict[str, float]
    generations: pl.DataFrame


# the columns (and their polars dtypes) of every world's generations table, then those of a world that generates
COMMON_COLUMNS = {"set": "String", "index": "Int64", "prompt": "String"}
GENERATED_COLUMNS = {"output": "String", "verdict": "Boolean", "error": "String"}


def generations_table(rows: list[dict[str, Any]], columns: Mapping[str, Any], *, generated: bool = True) -> pl.DataFrame:
    """An `Evaluated.generations` table from rows ({column: value}): the common columns (with `generated`, also
    output, verdict and error), then the world's `columns` ({name: polars dtype}), each of its dtype whatever the
    values (a column of nulls stays a String column)."""
    import polars as pl

    common = COMMON_COLUMNS | (GENERATED_COLUMNS if generated else {})
    return pl.DataFrame(rows, schema={c: getattr(pl, t) for c, t in common.items()} | dict(columns), orient="row")


def pick(data: Mapping[str, Any], paths: Mapping[str, tuple[str, ...]]) -> dict[str, float]:
    """A flat headline from a nested summary: {name: (key, subkey, ...)} -> {name: value} for the paths present
    (a study without a control or a multi-head probe simply has fewer headline numbers)."""
    out: dict[str, float] = {}
    for name, path in paths.items():
        node: Any = data
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            out[name] = node
    return out


_REGISTERED: dict[str, World] = {}


def names() -> list[str]:
    """Every world: the sub-packages of physlm/worlds (not imported) and any `register`ed here."""
    found = {m.name for m in pkgutil.iter_modules(__path__) if m.ispkg}
    return sorted(found | set(_REGISTERED))


def get(name: str) -> World:
    """The world called `name`; ParamsError naming the known worlds if there is none."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in names():
        raise ParamsError(f"unknown world {name!r}; known: {', '.join(names())}")
    return _load(name)


@functools.cache
def _load(name: str) -> World:
    world = getattr(importlib.import_module(f"{__name__}.{name}"), "WORLD", None)
    if not isinstance(world, World) or world.name != name:
        raise TypeError(f"physlm/worlds/{name}/__init__.py must define WORLD = World(name={name!r}, ...)")
    return world


def register(world: World) -> None:
    """Make `world` known to this process (a world whose package lives outside physlm/worlds)."""
    _REGISTERED[world.name] = world


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)

