"""The report: every study's metrics gathered into reports/summary.md and PNG figures.

Figures: training and validation loss per study (`loss.png`), probe accuracy by layer with the random-init
control (`probe_<study>.png`), and generation accuracy per study and setting (`generation.png`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def gather(studies: list[str], metrics_dir: Path) -> dict[str, dict[str, Any]]:
    """{study: {"train": ..., "probe": ..., "evaluate": ..., "loss": rows, "probe_rows": rows}}."""
    out = {}
    for study in studies:
        d = metrics_dir / study
        out[study] = {
            "train": _json(d / "train.json"),
            "probe": _json(d / "probe.json"),
            "evaluate": _json(d / "evaluate.json"),
            "loss": _csv(d / "loss.csv"),
            "probe_rows": _csv(d / "probe.csv"),
        }
    return out


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("–" if value is None else str(value))


def _h2(estimate: dict | None) -> str:
    if not estimate:
        return "–"
    return (">= " if estimate["is_lower_bound"] else "") + f"{estimate['renyi2_nats']:.2f} (n={estimate['n']})"


def summary_markdown(found: dict[str, dict[str, Any]]) -> str:
    lines = ["# physlm report", "", "## Generation (share of samples in the language)", "",
             "| study | setting | accuracy | samples | mean length | distinct | seen in train |", "|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        for setting, s in m["evaluate"].items():
            if isinstance(s, dict) and "accuracy" in s:
                lines.append(f"| {study} | {setting} | {_fmt(s['accuracy'])} | {s['n']} | {_fmt(s['mean_length'])} | "
                             f"{_fmt(s['distinct'])} | {_fmt(s['seen_in_train'])} |")
    lines += ["", "## Distribution and diversity", "",
              "| study | KL to exact next-token distribution (nats/position) | random-init control | cut0 H2 (nats) | grammar H2 (nats) |",
              "|---|---|---|---|---|"]
    for study, m in found.items():
        kl, div = m["evaluate"].get("kl", {}), m["evaluate"].get("diversity_cut0", {})
        if kl or div:
            h2 = [_h2(div.get(side)) for side in ("model", "grammar")]
            lines.append(f"| {study} | {_fmt(kl.get('trained', {}).get('mean'))} | {_fmt(kl.get('control', {}).get('mean'))} | {h2[0]} | {h2[1]} |")
    lines += ["", "H2 is the collision (Renyi-2) entropy of whole strings; '>=' marks the birthday-paradox bound when no two samples collide.",
              "", "## Probes (last layer, mean over NT levels)", "", "| study | target | trained | random-init control | gap |", "|---|---|---|---|---|"]
    for study, m in found.items():
        trained, control = m["probe"].get("trained", {}), m["probe"].get("control", {})
        for target, acc in trained.items():
            gap = acc - control[target] if target in control else None
            lines.append(f"| {study} | {target} | {_fmt(acc)} | {_fmt(control.get(target))} | {_fmt(gap)} |")
    lines += ["", "## Training", "", "| study | params | final loss | final val loss | tokens | seconds | tokens/s | device |",
              "|---|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        t = m["train"]
        if t:
            lines.append(f"| {study} | {t['params']} | {_fmt(t['final_loss'])} | {_fmt(t['final_val_loss'])} | {t['tokens_seen']} | "
                         f"{_fmt(t['seconds'])} | {t['tokens_per_s']:.0f} | {t['device']} |")
    lines += ["", "Figures: `loss.png`, `generation.png`, `probe_<study>.png`.", ""]
    return "\n".join(lines)


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


def plot_generation(found: dict[str, dict[str, Any]], path: Path) -> None:
    bars = [(f"{study}\n{setting}", s["accuracy"]) for study, m in found.items()
            for setting, s in m["evaluate"].items() if isinstance(s, dict) and "accuracy" in s]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(bars)), 4))
    ax.bar([b[0] for b in bars], [b[1] for b in bars], color="tab:blue")
    for i, (_, acc) in enumerate(bars):
        ax.text(i, acc + 0.01, f"{acc:.1%}", ha="center", fontsize=8)
    ax.set(ylim=(0, 1.08), ylabel="share of samples in the language", title="Generation accuracy (temperature 1)")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_probe(study: str, rows: list[dict[str, str]], path: Path) -> None:
    targets = sorted({r["target"] for r in rows})
    levels = sorted({int(r["level"]) for r in rows})
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.6), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for model, style in (("trained", "-"), ("control", ":")):
            for level in levels:
                pts = sorted((int(r["layer"]), float(r["accuracy"])) for r in rows
                             if r["model"] == model and r["target"] == target and int(r["level"]) == level)
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", ms=3, color=f"C{level}",
                            label=f"level {level}" if model == "trained" else None)
        ax.set(title=f"{target} (solid: trained, dotted: random init)", xlabel="layer", ylabel="probe accuracy", ylim=(0, 1.02))
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    fig.suptitle(f"Linear probes, {study}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(studies: list[str], metrics_dir: Path, out_dir: Path) -> None:
    found = gather(studies, metrics_dir)
    (out_dir / "summary.md").write_text(summary_markdown(found))
    plot_loss(found, out_dir / "loss.png")
    plot_generation(found, out_dir / "generation.png")
    for study, m in found.items():
        if m["probe_rows"]:
            plot_probe(study, m["probe_rows"], out_dir / f"probe_{study}.png")
