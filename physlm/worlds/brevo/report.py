"""The Brevo world's report section (reads metrics files only, never torch): one column per study with the exact-match
accuracy at n = N (the checker's), the teacher-forced token accuracy, the random-init control, the checker's most
common rejection, and the depth probe at `<ans>`; figure `brevo_accuracy.png` (exact-match accuracy against n, every
study, from the sizes set and the test set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physlm.figures import fmt, plt


def _cell(m: dict[str, Any], stage: str, *path: str) -> Any:
    node: Any = m[stage]
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


ROWS = (  # (row label, stage, path in that stage's detail file)
    ("names", "evaluate", ("names",)),
    ("N (vertices at test)", "evaluate", ("N",)),
    ("test instances", "evaluate", ("test", "n")),
    ("exact match at n = N (checker)", "evaluate", ("test", "accuracy")),
    ("teacher-forced answer tokens", "evaluate", ("test", "token_accuracy")),
    ("teacher-forced, every token right", "evaluate", ("test", "forced_exact")),
    ("random-init control, exact match", "evaluate", ("control", "accuracy")),
    ("random-init control, tokens", "evaluate", ("control", "token_accuracy")),
    ("exact match over the sizes set", "evaluate", ("sizes", "accuracy")),
    ("probe: query depth at <ans>, last layer", "probe", ("trained", "last")),
    ("probe: best layer", "probe", ("trained", "best_layer")),
    ("probe: best layer's accuracy", "probe", ("trained", "best")),
    ("probe: control, last layer", "probe", ("control", "last")),
    ("probe: majority baseline", "probe", ("majority",)),
)


def _top_reason(m: dict[str, Any]) -> str | None:
    reasons = _cell(m, "evaluate", "test", "reasons")
    if not reasons:
        return None
    reason, count = next(iter(reasons.items()))
    return f"{reason} ({count})"


def section(found: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The Brevo studies' table (markdown) and figure."""
    found = {s: m for s, m in found.items() if m["evaluate"] or m["probe"]}
    if not found:
        return ""
    lines = ["", "## Brevo: recursive dependency listing (physlm/worlds/brevo/)", "",
             "Exact match: the greedy answer is every vertex the query depends on and the query, in a valid topological"
             " order, judged by the checker (any valid order, no partial credit). Teacher-forced: the argmax on the gold"
             " answer's tokens (a lower bound: another valid order counts as wrong there). The probe reads the query's"
             " depth linearly at `<ans>` from each layer (0 = embedding).", "",
             "| | " + " | ".join(found) + " |", "|---|" + "---|" * len(found)]
    for label, stage, path in ROWS:
        cells = [_cell(m, stage, *path) for m in found.values()]
        if any(c is not None for c in cells):
            lines.append(f"| {label} | " + " | ".join(fmt(c) for c in cells) + " |")
    reasons = [_top_reason(m) for m in found.values()]
    if any(reasons):
        lines.append("| most common rejection at n = N | " + " | ".join(fmt(r) for r in reasons) + " |")
    if plot_sizes(found, out_dir / "brevo_accuracy.png"):
        lines += ["", "Figure: `brevo_accuracy.png` (exact-match accuracy against the number of vertices n)."]
    return "\n".join(lines + [""])


def plot_sizes(found: dict[str, dict[str, Any]], path: Path) -> bool:
    """Exact-match accuracy by n per study (the sizes set and the test set together); False when nothing to draw."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    drawn = False
    for study, m in found.items():
        cells = {**(m["evaluate"].get("sizes") or {}).get("by_n", {}), **(m["evaluate"].get("test") or {}).get("by_n", {})}
        if cells:
            ns = sorted(int(k) for k in cells)
            ax.plot(ns, [cells[str(k)]["accuracy"] for k in ns], "o-", label=study)
            drawn = True
    if drawn:
        ax.set(xlabel="vertices n", ylabel="exact-match accuracy", ylim=(-0.02, 1.02), title="Brevo: accuracy by graph size")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn
