"""The toy world's report section (reads the metrics it is given, never torch): copy accuracy and the
first-letter probe per study, each against its random-init control; figure `toy_copy.png` (accuracy at each
position of the copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physlm.figures import fmt, plt, to_float


def section(found: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The toy studies' table (markdown) and figure."""
    found = {s: m for s, m in found.items() if m["evaluate"] or m["probe"]}
    if not found:
        return ""
    lines = ["", "## Toy: copy the prompt (a tests-only world)", "",
             ("Exact-match accuracy of greedy copies after the separator, and a linear probe's accuracy reading"
              " the first letter from the last block's state at the separator; each against a random-init control."), "",
             "| study | copies | copy accuracy | control | probe accuracy | probe control | majority |",
             "|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        ev, rows = m["evaluate"], {r["model"]: r for r in m["tables"].get("probe", [])}
        probe = {name: to_float(rows.get(name, {}).get("accuracy")) for name in ("trained", "control")}
        majority = to_float(next(iter(rows.values()), {}).get("majority"))
        copies = [fmt(ev.get(name, {}).get("accuracy")) for name in ("trained", "control")]
        lines.append(f"| {study} | {ev.get('examples')} | {copies[0]} | {copies[1]} | {fmt(probe['trained'])} | "
                     f"{fmt(probe['control'])} | {fmt(majority)} |")
    plot_positions(found, out_dir / "toy_copy.png")
    return "\n".join(lines + ["", "Figure: `toy_copy.png` (accuracy at each position of the copy).", ""])


def plot_positions(found: dict[str, dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for study, m in found.items():
        for name, style in (("trained", "o-"), ("control", "x--")):
            acc = m["evaluate"].get(name, {}).get("position_accuracy")
            if acc:
                ax.plot(range(1, len(acc) + 1), acc, style, label=f"{study} {name}")
    ax.set(xlabel="position in the copy", ylabel="accuracy", ylim=(-0.02, 1.02), title="Toy: copying the prompt")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
