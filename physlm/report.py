"""The report: every study's metrics files -> reports/summary.md and PNG figures. Reads only metrics files
(JSON and CSV) and never imports torch (tests/test_import_graph.py checks).

For each study it gathers `StudyMetrics`: detail/{train,probe,evaluate}.json (each stage's whole summary; the
study's <stage>.json files are their DVC headline numbers), loss.csv and the probe stage's tables. It holds no
wall-clock time: the report is a DVC output, and a rerun that changes no result must reproduce it byte for byte
(timings are in MLflow and logs/). The studies are grouped by world, in the order params.yaml lists them; each world's section
(its `report` step, physlm/worlds/<world>/report.py) writes its tables and draws its figures. The report
itself adds the training table, `loss.png` (training and validation loss of every study) and, where params.yaml
has seed groups, their table.

Seeds as an axis: outcomes that are bimodal across seeds (a model learns a task or stays near chance) need
several seeds per cell. A seed group is two or more studies whose params.yaml entries are equal but for
`train.seed` (`physlm.presets.seeded` writes them: name_s1, name_s2, ...); each is an ordinary study with its
own cached stages, so `dvc exp run --queue` or several GPUs run them side by side. The report's "Seed groups"
section gives every headline number of a group (the studies' <stage>.json) as mean, standard deviation, min
and max over its seeds, then each seed's value; each study's `group` and `seed` are in its StudyMetrics for the
world sections (a world may draw a group's spread).
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from physlm import worlds
from physlm.errors import DataError
from physlm.figures import fmt, plt
from physlm.io import read_csv, read_json

StudyMetrics = dict[str, Any]  # train, probe, evaluate (JSON), loss (rows), tables ({name: rows}), headline
# ({stage: {name: number}}), seed (the training seed), group (its seed group's name, or None)


# what the report itself reads of each stage's detail file (a world's section reads its own keys)
KEYS = {"train": ("final_loss", "final_val_loss", "tokens_seen", "params", "device", "seed"), "probe": (), "evaluate": ()}


def gather(studies: list[str], metrics_dir: Path) -> dict[str, StudyMetrics]:
    """{study: StudyMetrics} for the studies' directories under `metrics_dir`; DataError, naming the file, when
    one is missing (its stage has not run), unreadable, or not what its stage writes."""
    out = {}
    for study in studies:
        d = metrics_dir / study
        out[study] = {}
        for stage, keys in KEYS.items():
            path = d / "detail" / f"{stage}.json"
            found = read_json(path, keys)
            if not isinstance(found, dict):
                raise DataError(f"{path}: expected a JSON object, got {type(found).__name__}")
            out[study][stage] = found
        tables = {p.stem: read_csv(p) for p in sorted((d / "probe").glob("*.csv"))}
        out[study] |= {"loss": read_csv(d / "loss.csv", ("step", "loss", "val_loss")), "tables": tables,
                       "headline": {stage: _headline(d / f"{stage}.json") for stage in KEYS}, "seed": out[study]["train"]["seed"]}
    return out


def _headline(path: Path) -> dict[str, float]:
    """A stage's DVC metrics file: a flat mapping of names to numbers (or null)."""
    found = read_json(path)
    if not isinstance(found, dict) or not all(v is None or isinstance(v, (int, float)) for v in found.values()):
        raise DataError(f"{path}: expected a flat JSON object of numbers")
    return found


SEED_NAME = re.compile(r"^(?P<stem>.+?)[_-]s(?P<seed>\d+)$")


def seed_groups(studies: dict[str, Any], seeds: dict[str, int]) -> dict[str, list[str]]:
    """{group name: its studies in params.yaml order}: the studies whose entries are equal but for `train.seed`,
    two or more with distinct seeds (`seeds`: each study's training seed). A group is named after its studies'
    common stem (depo_canon for depo_canon_s1, depo_canon_s2) or, failing that, its first study."""
    buckets: dict[str, list[str]] = {}
    for name, entry in studies.items():
        entry = dict(entry or {})
        entry["train"] = {k: v for k, v in (entry.get("train") or {}).items() if k != "seed"}
        buckets.setdefault(json.dumps(entry, sort_keys=True, default=str), []).append(name)
    groups: dict[str, list[str]] = {}
    for members in buckets.values():
        if len(members) < 2 or len({seeds[m] for m in members}) < len(members):
            continue
        stems = {m.group("stem") if (m := SEED_NAME.match(name)) else name for name in members}
        name = stems.pop() if len(stems) == 1 else members[0]
        while name in groups or (name in studies and name not in members):
            name += "+"
        groups[name] = members
    return groups


def seeds_markdown(groups: dict[str, list[str]], found: dict[str, StudyMetrics]) -> str:
    """Per seed group, each headline number: mean, std (n-1), min, max over its seeds, then every seed's value."""
    lines = ["## Seed groups", ""]
    for group, members in groups.items():
        seeds = [found[m]["seed"] for m in members]
        lines += [f"### {group} ({len(members)} seeds: {', '.join(members)})", "",
                  "| stage | number | mean | std | min | max | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|---|---|---|---|---|---|" + "---|" * len(seeds)]
        for stage in KEYS:
            names = list(dict.fromkeys(k for m in members for k in found[m]["headline"][stage]))
            for key in names:
                values = [found[m]["headline"][stage].get(key) for m in members]
                known = [float(v) for v in values if v is not None]
                if not known:
                    continue
                std = statistics.stdev(known) if len(known) > 1 else None
                lines.append(f"| {stage} | {key} | {fmt(statistics.fmean(known))} | {fmt(std)} | {fmt(min(known))} | "
                             f"{fmt(max(known))} | " + " | ".join(fmt(v) for v in values) + " |")
        lines.append("")
    return "\n".join(lines)


def training_markdown(found: dict[str, StudyMetrics]) -> str:
    lines = ["## Training", "", "| study | params | seed | final loss | final val loss | tokens | device |",
             "|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        t = m["train"]
        if t:
            lines.append(f"| {study} | {t['params']} | {t['seed']} | {fmt(t['final_loss'])} | {fmt(t['final_val_loss'])} | "
                         f"{t['tokens_seen']} | {t['device']} |")
    return "\n".join(lines + ["", "Figure: `loss.png`. Wall-clock times and throughput: `mlflow ui` (or logs/<study>/).", ""])


def plot_loss(found: dict[str, dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for study, m in found.items():
        rows = m["loss"]
        ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], label=f"{study} train")
        val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r.get("val_loss")]
        if val:
            ax.plot(*zip(*val), "o--", label=f"{study} val")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", yscale="log", title="Training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(studies: dict[str, Any], metrics_dir: Path, out_dir: Path) -> None:
    """Everything about every study in `studies` (params.yaml's mapping: name -> entry with its world)."""
    found = gather(list(studies), metrics_dir)
    groups = seed_groups(studies, {name: m["seed"] for name, m in found.items()})
    for group, members in groups.items():
        for member in members:
            found[member]["group"] = group
    for m in found.values():
        m.setdefault("group", None)
    by_world: dict[str, dict[str, StudyMetrics]] = {}
    for name, entry in studies.items():
        by_world.setdefault((entry or {}).get("world", ""), {})[name] = found[name]
    sections = [worlds.get(world).step("report").section(mine, out_dir) for world, mine in by_world.items()]
    seeds = [seeds_markdown(groups, found)] if groups else []
    (out_dir / "summary.md").write_text("\n".join(["# physlm report", "", *sections, *seeds, training_markdown(found)]))
    plot_loss(found, out_dir / "loss.png")
