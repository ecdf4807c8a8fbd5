"""Presets: one command rewrites params.yaml, from the CPU showcase to a paper's settings or to the full
miniature suite.

    python -m physlm.presets                    # list them
    python -m physlm.presets NAME [options]     # rewrite params.yaml, then: dvc repro (or dvc exp run)
    python -m physlm.presets NAME --help        # what NAME does, and its options

Every world carries its own (`physlm/worlds/<world>/presets.py`, `PRESETS`): `part1-paper` (grammars),
`igsm-med` / `igsm-hard` (iGSM), `bio-paper` (biographies); their docstrings say exactly what they set. One
preset is everyone's: `suite` adds every world's `SUITE` (the matrices and extra studies that `dvc repro`'s
showcase leaves out: the attention-variant matrix, the noisy and implicit grammars, more biography regimes)
to params.yaml. A preset replaces or adds only its own world's datasets and studies.

The file is edited in place with its comments kept (a ruamel.yaml round trip), so `git diff params.yaml` and
`dvc params diff` show exactly what the switch changed, and `git checkout params.yaml` switches back. Every
stage of the studies it writes is validated (physlm.config) before the file is replaced; on an error
params.yaml is left as it was.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from physlm import worlds

Options = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Preset:
    """A world's rewrite of params.yaml: its command-line options, and `apply(params, args) -> studies` (it
    edits the ruamel mapping in place and returns the studies it wrote); `then(args)` runs after the file
    is written (e.g. queueing experiments)."""

    help: str  # one line for the listing
    doc: str  # what it sets, in full (`--help`)
    apply: Callable[[Any, argparse.Namespace], list[str]]
    options: Options = lambda parser: None
    then: Callable[[argparse.Namespace], None] | None = None


def gpt2(layers: int, heads: int) -> dict:
    """GPT2-l-h in the papers' notation: l layers, h heads, 64h dims (rotary here), as a `model:` section."""
    return {"depth": layers, "width": 64 * heads, "heads": heads, "pos": "rot", "mlp_ratio": 4, "dropout": 0.0}


def seeded(name: str, study: dict, seeds: Sequence[int]) -> dict[str, dict]:
    """A seed group: `study` once per seed, named `<name>_s<seed>`, with `train.seed` set (physlm/report.py reports
    the group as mean and spread over its seeds, and every seed's value)."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    out = {}
    for seed in seeds:
        entry = copy.deepcopy(study)
        entry["train"] = {**(entry.get("train") or {}), "seed": seed}
        out[f"{name}_s{seed}"] = entry
    return out


def replace_world(params: Any, world: str) -> None:
    """Remove every dataset and study of `world` (a paper preset then writes its own)."""
    for scope in ("datasets", "studies"):
        for name in [n for n, entry in params[scope].items() if entry.get("world") == world]:
            del params[scope][name]


def suite(params: Any, args: argparse.Namespace) -> list[str]:
    """Add every world's SUITE entries (datasets and studies) to params; returns the studies added."""
    added = []
    for name in worlds.names():
        world = worlds.get(name)
        extra = getattr(world.step("presets"), "SUITE", {}) if world.takes_part("presets") else {}
        for scope in ("datasets", "studies"):
            for key, entry in extra.get(scope, {}).items():
                params[scope][key] = copy.deepcopy(entry)  # no shared nested mappings (YAML anchors)
        added += list(extra.get("studies", {}))
    return added


SUITE = Preset("the full miniature suite: every world's extra studies beside the showcase (then: dvc repro)",
               __doc__.split("\n\n")[1], suite)


def presets() -> dict[str, Preset]:
    """Every preset: each world's, and `suite`."""
    found = {"suite": SUITE}
    for name in worlds.names():
        world = worlds.get(name)
        if world.takes_part("presets"):
            found |= world.step("presets").PRESETS
    return found


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments, order and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # long flow-style lines stay as they are
    yaml.representer.add_representer(float, _represent_float)
    return yaml


def _represent_float(representer: Any, value: float) -> Any:
    """Small and huge floats as params.yaml spells them (1.0e-3): ruamel's 1e-06 would be a string to PyYAML
    (YAML 1.1), which DVC and physlm.config read with."""
    if not math.isfinite(value) or value == 0 or 1.0e-2 <= abs(value) < 1.0e15:
        return representer.represent_float(value)
    mantissa, exponent = f"{Decimal(repr(value)):e}".split("e")  # the shortest digits that read back exactly
    mantissa += "" if "." in mantissa else ".0"
    return representer.represent_scalar("tag:yaml.org,2002:float", f"{mantissa}e{exponent}")


def validate(path: Path, studies: Sequence[str]) -> None:
    """Every stage of the preset's studies and their datasets validates (physlm.config); else a one-line exit."""
    from physlm.config import load_stage, read_params
    from physlm.errors import ParamsError

    params = read_params(path)
    datasets = dict.fromkeys(params["studies"][s]["data"] for s in studies)
    try:
        for stage, names in (("generate", datasets), ("tokenize", datasets), ("train", studies), ("probe", studies),
                             ("evaluate", studies), ("report", [""])):
            for name in names:
                load_stage(stage, name, path)
    except ParamsError as err:
        raise SystemExit(f"error: {err}") from None


def _update(target: Any, values: dict) -> None:
    """Deep-update a ruamel mapping; equal values are left alone, so their layout and comments survive."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _update(target[key], value)
        elif target.get(key) != value:  # equal values keep their layout and comments
            target[key] = value


def main(argv: Sequence[str] | None = None) -> None:
    known = presets()
    parser = argparse.ArgumentParser(prog="python -m physlm.presets", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="preset", metavar="PRESET")
    for name, preset in known.items():
        sub = commands.add_parser(name, help=preset.help, description=preset.doc,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--params", default="params.yaml", type=Path)
        preset.options(sub)
    args = parser.parse_args(argv)
    if args.preset is None:
        parser.print_help()
        return
    if not args.params.is_file():
        raise SystemExit(f"error: {args.params}: file not found")
    preset = known[args.preset]
    yaml = _yaml()
    params = yaml.load(args.params.read_text())
    names = preset.apply(params, args)
    tmp = args.params.with_name(args.params.name + ".tmp")
    with tmp.open("w") as fh:
        yaml.dump(params, fh)
    try:
        validate(tmp, names)
    except SystemExit:
        tmp.unlink()
        raise
    tmp.replace(args.params)
    print(f"{args.params}: {args.preset}, studies {', '.join(names)} (see `dvc params diff`)")
    if preset.then is not None:
        preset.then(args)


if __name__ == "__main__":
    sys.exit(main())
