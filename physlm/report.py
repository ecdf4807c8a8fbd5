"""The report: every study's metrics files -> reports/summary.md and PNG figures. Reads only metrics files
(JSON and CSV) and never imports torch (tests/test_import_graph.py checks).

For each study it gathers `StudyMetrics`: detail/{train,probe,evaluate}.json (each stage's whole summary; the
study's <stage>.json files are their DVC headline numbers), loss.csv and the probe stage's tables. It holds no
wall-clock time: the report is a DVC output, and a rerun that changes no result must reproduce it byte for byte
(timings are in MLflow and logs/). The studies are grouped by world, in the order params.yaml lists them; each world's section
(its `report` step, physlm/worlds/<world>/report.py) writes its tables and draws its figures. The report
itself adds the training table and `loss.png` (training and validation loss of every study).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physlm import worlds
from physlm.errors import DataError
from physlm.figures import fmt, plt
from physlm.io import read_csv, read_json

StudyMetrics = dict[str, Any]  # train, probe, evaluate (JSON), loss (rows), tables ({name: rows})


# what the report itself reads of each stage's detail file (a world's section reads its own keys)
KEYS = {"train": ("final_loss", "final_val_loss", "tokens_seen", "params", "device"), "probe": (), "evaluate": ()}


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
        out[study] |= {"loss": read_csv(d / "loss.csv", ("step", "loss", "val_loss")), "tables": tables}
    return out


def training_markdown(found: dict[str, StudyMetrics]) -> str:
    lines = ["## Training", "", "| study | params | final loss | final val loss | tokens | device |", "|---|---|---|---|---|---|"]
    for study, m in found.items():
        t = m["train"]
        if t:
            lines.append(f"| {study} | {t['params']} | {fmt(t['final_loss'])} | {fmt(t['final_val_loss'])} | {t['tokens_seen']} | "
                         f"{t['device']} |")
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
    by_world: dict[str, dict[str, StudyMetrics]] = {}
    for name, entry in studies.items():
        by_world.setdefault((entry or {}).get("world", ""), {})[name] = found[name]
    sections = [worlds.get(world).step("report").section(mine, out_dir) for world, mine in by_world.items()]
    (out_dir / "summary.md").write_text("\n".join(["# physlm report", "", *sections, training_markdown(found)]))
    plot_loss(found, out_dir / "loss.png")
