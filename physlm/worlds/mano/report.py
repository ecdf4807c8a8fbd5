"""The Mano world's report section (reads metrics files only, never torch): one column per study with the answer
accuracy at ℓ = L (greedy and teacher-forced), the random-init control, and the value probe at `<ans>`; figure
`mano_accuracy.png` (greedy accuracy against ℓ, every study, chance 1/modulus dashed: 1/23 in the paper)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physlm.figures import fmt, plt

PAPER_MODULUS = 23  # a study whose metrics predate the modulus option was mod 23


def _modulus(m: dict[str, Any]) -> int:
    return (m["evaluate"] or {}).get("modulus") or (m["probe"] or {}).get("modulus") or PAPER_MODULUS


def _cell(m: dict[str, Any], stage: str, *path: str) -> Any:
    node: Any = m[stage]
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


ROWS = (  # (row label, stage, path in that stage's detail file)
    ("modulus", "evaluate", ("modulus",)),
    ("L (operations at test)", "evaluate", ("max_ops",)),
    ("test expressions", "evaluate", ("test", "n")),
    ("accuracy at ℓ = L, greedy", "evaluate", ("test", "greedy")),
    ("accuracy at ℓ = L, teacher-forced", "evaluate", ("test", "teacher_forced")),
    ("random-init control, greedy", "evaluate", ("control", "greedy")),
    ("accuracy over the lengths set, greedy", "evaluate", ("lengths", "greedy")),
    ("probe: value at <ans>, last layer", "probe", ("trained", "last")),
    ("probe: best layer", "probe", ("trained", "best_layer")),
    ("probe: best layer's accuracy", "probe", ("trained", "best")),
    ("probe: control, last layer", "probe", ("control", "last")),
    ("probe: majority baseline", "probe", ("majority",)),
)


def section(found: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The Mano studies' table (markdown) and figure."""
    found = {s: m for s, m in found.items() if m["evaluate"] or m["probe"]}
    if not found:
        return ""
    chance = ", ".join(sorted({f"1/{_modulus(m)} = {1 / _modulus(m):.3f}" for m in found.values()}))
    lines = ["", "## Mano: modular arithmetic without chain of thought (physlm/worlds/mano/)", "",
             f"Single-token answer accuracy (chance {chance}); greedy and teacher-forced agree by construction. The probe"
             " reads the value linearly at `<ans>` from each layer (0 = embedding).", "",
             "| | " + " | ".join(found) + " |", "|---|" + "---|" * len(found)]
    for label, stage, path in ROWS:
        cells = [_cell(m, stage, *path) for m in found.values()]
        if any(c is not None for c in cells):
            lines.append(f"| {label} | " + " | ".join(fmt(c) for c in cells) + " |")
    if plot_lengths(found, out_dir / "mano_accuracy.png"):
        lines += ["", "Figure: `mano_accuracy.png` (greedy accuracy against the number of operations ℓ)."]
    return "\n".join(lines + [""])


def plot_lengths(found: dict[str, dict[str, Any]], path: Path) -> bool:
    """Greedy accuracy by ℓ per study (the lengths set, else the test set); False when nothing to draw."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    drawn = False
    for study, m in found.items():
        cells = (m["evaluate"].get("lengths") or m["evaluate"].get("test") or {}).get("by_ops", {})
        if cells:
            ops = sorted(int(k) for k in cells)
            ax.plot(ops, [cells[str(k)]["greedy"] for k in ops], "o-", label=study)
            drawn = True
    if drawn:
        for modulus in sorted({_modulus(m) for m in found.values()}):
            ax.axhline(1 / modulus, color="gray", linestyle="--", label=f"chance 1/{modulus}")
        ax.set(xlabel="operations ℓ", ylabel="answer accuracy", ylim=(-0.02, 1.02), title="Mano: accuracy by expression length")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn
