"""The Depo world's report section (reads metrics only, never torch): the accuracy-by-k table with one column per
study (where architectures are compared: the presets' studies differ only in their model), the probes, and
the figures `depo_accuracy.png` (exact match and teacher-forced accuracy against k, one colour per study) and
`depo_probe.png` (probe accuracy by layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physlm.figures import fmt, plt, to_float


def section(found: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The Depo studies' tables (markdown) and figures."""
    found = {s: m for s, m in found.items() if m.get("evaluate") or m.get("probe")}
    if not found:
        return ""
    lines = ["", "## Depo (Part 4.1): k-hop reasoning over a cycle, at n = N", ""]
    lines += _accuracy_lines(found) + _probe_lines(found)
    plot_accuracy(found, out_dir / "depo_accuracy.png")
    plot_probe(found, out_dir / "depo_probe.png")
    lines += ["", "Figures: `depo_accuracy.png` (accuracy against k), `depo_probe.png` (probe accuracy by layer).", ""]
    return "\n".join(lines)


def _accuracy_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    evaluated = {s: m["evaluate"] for s, m in found.items() if m["evaluate"].get("trained")}
    if not evaluated:
        return []
    studies = list(evaluated)
    ks = sorted({int(k) for e in evaluated.values() for k in e["trained"]["by_k"]})
    lines = ["Greedy exact match of the whole answer word by hop k (teacher-forced symbol accuracy in brackets), at n = N;"
             " the earlier queries of an instance stand answered in the prompt. One column per study.", "",
             "| | " + " | ".join(studies) + " |", "|---|" + "---|" * len(studies)]
    head = [("N", lambda e: e.get("N")), ("K", lambda e: e.get("K")), ("instances (queries)",
            lambda e: f"{e.get('instances')} ({e['trained']['queries']})")]
    tail = [("all k", lambda e: f"{fmt(e['trained']['accuracy'])} ({fmt(e['trained']['tf_accuracy'])})"),
            ("malformed answers", lambda e: fmt(e["trained"]["malformed"])),
            ("random-init control, all k", lambda e: fmt(e.get("control", {}).get("accuracy")))]
    for label, get in head:
        lines.append(f"| {label} | " + " | ".join(str(get(evaluated[s])) for s in studies) + " |")
    for k in ks:
        cells = []
        for s in studies:
            v = evaluated[s]["trained"]["by_k"].get(str(k))
            cells.append(f"{fmt(v['accuracy'])} ({fmt(v['tf_accuracy'])})" if v else "–")
        lines.append(f"| **k = {k}** | " + " | ".join(cells) + " |")
    for label, get in tail:
        lines.append(f"| {label} | " + " | ".join(str(get(evaluated[s])) for s in studies) + " |")
    return lines


def _probe_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    probed = {s: m["probe"] for s, m in found.items() if m["probe"].get("trained")}
    if not probed:
        return []
    lines = ["", "Linear probes at each query's `<ans>`: the answer's first symbol (k-th successor) and, for k >= 2, the"
             " 1st successor's (physlm/worlds/depo/probe.py).", "",
             "| study | model | target | last layer | best layer (accuracy) | majority |", "|---|---|---|---|---|---|"]
    for s, p in probed.items():
        for model in ("trained", "control"):
            for target, v in p.get(model, {}).items():
                lines.append(f"| {s} | {model} | {target} | {fmt(v['last'])} | {v['best_layer']} ({fmt(v['best'])}) | "
                             f"{fmt(v['majority'])} |")
    return lines


def plot_accuracy(found: dict[str, dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (study, m) in enumerate(found.items()):
        by_k = m["evaluate"].get("trained", {}).get("by_k", {})
        if not by_k:
            continue
        ks = sorted(by_k, key=int)
        color = f"C{i % 10}"
        ax.plot([int(k) for k in ks], [by_k[k]["accuracy"] for k in ks], "o-", color=color, label=f"{study} exact")
        ax.plot([int(k) for k in ks], [by_k[k]["tf_accuracy"] for k in ks], "x--", color=color, alpha=0.6,
                label=f"{study} teacher-forced")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="hops k", ylabel="accuracy at n = N", ylim=(-0.02, 1.02), title="Depo: k-hop accuracy")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_probe(found: dict[str, dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (study, m) in enumerate(found.items()):
        rows = [r for r in m.get("tables", {}).get("probe", []) if r.get("model") == "trained"]
        for target, style in (("answer", "o-"), ("hop1", "s:")):
            mine = sorted(((int(r["layer"]), to_float(r["accuracy"])) for r in rows if r["target"] == target))
            if mine:
                ax.plot(*zip(*mine), style, color=f"C{i % 10}", label=f"{study} {target}")
    ax.set(xlabel="layer (0 = embeddings)", ylabel="probe accuracy at <ans>", ylim=(-0.02, 1.02),
           title="Depo: answer and 1st-hop symbol, linearly decoded")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
