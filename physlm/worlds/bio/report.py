"""The biography world's report section (reads metrics files only, never torch): QA exact-match accuracy per
study, split and decoding (with the model before finetuning), and the P- and Q-probes; figures
`bio_regimes.png` / `bio_regimes_train.png` (QA accuracy per attribute by study, P_test and P_train),
`pprobe_<study>.png` (P-probing accuracy by task and offset) and `qprobe_<study>.png` (Q-probing per task),
each against the random-init control."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physlm.figures import fmt, plt, to_float
from physlm.bios.people import ATTRIBUTES, SPLITS



def section(found: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The biography studies' tables (markdown) and figures."""
    _figures(found, out_dir)
    return markdown(found)


def markdown(found: dict[str, dict[str, Any]]) -> str:
    """Biography sections: QA accuracy per study, split and decoding (with the model before finetuning),
    and the probes' mean accuracy over the 11 tasks."""
    found = {s: m for s, m in found.items() if m["evaluate"]}
    if not found:
        return ""
    lines = ["", "## Biographies: QA exact-match accuracy (physlm/worlds/bio/evaluate.py)", "",
             "P_train: people whose questions were trained on; P_test: only their biographies were seen "
             "(knowledge extraction out of distribution).", "",
             "| study | model | split | decoding | questions | accuracy | first token | per attribute |", "|---|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        for label, summary in (("final", m["evaluate"]), ("pretrained", m["evaluate"].get("pretrained", {}))):
            for split in ("P_train", "P_test"):
                for decoding, r in summary.get(split, {}).items():
                    per = ", ".join(f"{a} {fmt(c['accuracy'])}" for a, c in r["by_attribute"].items())
                    lines.append(f"| {study} | {label} | {split} | {decoding} | {r['n']} | {fmt(r['accuracy'])} | "
                                 f"{fmt(r['first_token_accuracy'])} | {per} |")
    probes = [(study, m["tables"]["probe"]) for study, m in found.items() if m["tables"].get("probe")]
    if probes:
        lines += ["", "## Biographies: P- and Q-probing (physlm/worlds/bio/pqprobe.py)", "",
                  "Mean over the 11 tasks of the accuracy on held-out people: P at offset 0 (the token right before "
                  "the attribute) and -1 (before the attribute preceding it), Q on `<start> name <end>`.", "",
                  "| study | model | P offset -1 | P offset 0 | Q | majority (Q) |", "|---|---|---|---|---|---|"]
        for study, rows in probes:
            last = max(int(r["layer"]) for r in rows)
            rows = [r for r in rows if int(r["layer"]) == last]  # the table: the last layer; the figures: every layer
            for model in dict.fromkeys(r["model"] for r in rows):
                def mean(probe: str, axis: str, index: str, key: str = "accuracy") -> float | None:
                    vals = [to_float(r[key]) for r in rows if r["model"] == model and r["probe"] == probe
                            and r["axis"] == axis and r["index"] == index]
                    return float(np.mean(vals)) if vals else None
                lines.append(f"| {study} | {model} | {fmt(mean('P', 'offset', '-1'))} | {fmt(mean('P', 'offset', '0'))} | "
                             f"{fmt(mean('Q', 'end', '0'))} | {fmt(mean('Q', 'end', '0', 'majority'))} |")
    lines += ["", "Figures: `bio_regimes.png` (QA accuracy per attribute, P_train and P_test, every study), "
              "`pprobe_<study>.png` (P-probing accuracy by task and offset), `qprobe_<study>.png`.", ""]
    return "\n".join(lines)


def _figures(found: dict[str, dict[str, Any]], out_dir: Path) -> None:
    summaries = {s: m["evaluate"] for s, m in found.items() if m["evaluate"].get("P_test")}
    if summaries:
        plot_regimes(summaries, out_dir / "bio_regimes.png", split="P_test", title="QA accuracy out of distribution (P_test)")
        plot_regimes(summaries, out_dir / "bio_regimes_train.png", split="P_train", title="QA accuracy in distribution (P_train)")
    for study, m in found.items():
        if m["tables"].get("probe"):
            plot_pq_rows(m["tables"]["probe"], study, out_dir)


def plot_pq_rows(rows: list[dict[str, str]], study: str, out_dir: Path) -> None:
    """pprobe_<study>.png: accuracy by task (rows) and offset (columns), one panel per model (and layer, when
    several were probed); qprobe_<study>.png: Q-probing accuracy per task, one bar per model (and layer), the
    majority as a tick."""
    several = len({r["layer"] for r in rows}) > 1
    rows = [{**r, "model": f"{r['model']} L{r['layer']}" if several else r["model"]} for r in rows]
    models = list(dict.fromkeys(r["model"] for r in rows))
    p_rows = [r for r in rows if r["probe"] == "P" and r["axis"] == "offset"]
    if p_rows:
        tasks = list(dict.fromkeys(r["task"] for r in p_rows))
        offsets = sorted({int(r["index"]) for r in p_rows})
        fig, axes = plt.subplots(1, len(models), figsize=(1.0 + 0.55 * len(offsets) * len(models) + 1.6, 0.32 * len(tasks) + 1.4),
                                 squeeze=False, layout="constrained")
        for ax, model in zip(axes[0], models):
            grid = np.full((len(tasks), len(offsets)), np.nan)
            for r in p_rows:
                if r["model"] == model:
                    grid[tasks.index(r["task"]), offsets.index(int(r["index"]))] = to_float(r["accuracy"])
            im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(offsets)), [str(o) for o in offsets])
            ax.set_yticks(range(len(tasks)), tasks if ax is axes[0][0] else [""] * len(tasks))
            ax.set_xlabel("read position - attribute's position")
            ax.set_title(f"{study}: {model}", fontsize=9)
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="P-probe accuracy")
        fig.savefig(out_dir / f"pprobe_{study}.png", dpi=110)
        plt.close(fig)
    q_rows = [r for r in rows if r["probe"] == "Q"]
    if q_rows:
        tasks = list(dict.fromkeys(r["task"] for r in q_rows))
        fig, ax = plt.subplots(figsize=(0.55 * len(tasks) + 2, 3.2), layout="constrained")
        width = 0.8 / len(models)
        for k, model in enumerate(models):
            acc = {r["task"]: to_float(r["accuracy"]) for r in q_rows if r["model"] == model}
            ax.bar(np.arange(len(tasks)) + k * width, [acc.get(t, np.nan) for t in tasks], width, label=model)
        majority = {r["task"]: to_float(r["majority"]) for r in q_rows}
        ax.scatter(np.arange(len(tasks)) + 0.4 - width / 2, [majority[t] for t in tasks], marker="_", color="black", s=200,
                   label="majority", zorder=3)
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("Q-probe accuracy")
        ax.set_title(f"{study}: Q-probing on <start> name <end>", fontsize=9)
        ax.legend(fontsize=7)
        fig.savefig(out_dir / f"qprobe_{study}.png", dpi=110)
        plt.close(fig)




def _bars(ax, groups: Mapping[str, Mapping[str, float]], title: str) -> None:
    """Bars per attribute, one per group ({group: {attribute: accuracy}}), accuracy in percent."""
    width = 0.8 / max(len(groups), 1)
    for k, (group, accuracy) in enumerate(groups.items()):
        xs = [i for i, a in enumerate(ATTRIBUTES) if a in accuracy]
        ax.bar([x + (k - (len(groups) - 1) / 2) * width for x in xs],
               [100 * accuracy[ATTRIBUTES[x]] for x in xs], width, label=group)
    ax.set_xticks(range(len(ATTRIBUTES)), [a.replace("_", " ") for a in ATTRIBUTES], rotation=30, fontsize=8)
    ax.set_ylim(0, 102)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def _save_panels(panels: Mapping[str, Mapping[str, Mapping[str, float]]], path: str | Path, title: str) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, (name, groups) in zip(axes[0], panels.items()):
        _bars(ax, groups, name)
    axes[0][0].set_ylabel("exact-match accuracy (%)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_qa(rows: Sequence[Mapping], path: str | Path, title: str = "") -> None:
    """Exact-match accuracy per attribute, P_train vs P_test bars, one panel per decoding."""
    panels: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in sorted(rows, key=lambda r: (r["decoding"], SPLITS.index(r["split"]))):
        panels[r["decoding"]][r["split"]][r["attribute"]] = float(r["accuracy"])
    if not panels:
        raise ValueError("plot_qa: no rows to plot")
    _save_panels(panels, path, title or "bio QA accuracy")


def plot_regimes(summaries: Mapping[str, Mapping], path: str | Path, split: str = "P_test", title: str = "") -> None:
    """Several regimes ({regime: qa_accuracy summary}, e.g. pretrain+FT vs mixed training) side by side for one
    split: per decoding a panel, per attribute a bar for each regime that has that split and decoding."""
    panels: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for regime, summary in summaries.items():
        for decoding, found in sorted(summary.get(split, {}).items()):
            panels[decoding][regime] = {a: cell["accuracy"] for a, cell in found["by_attribute"].items()}
    if not panels:
        raise ValueError(f"plot_regimes: no regime has results for split {split!r}")
    _save_panels(panels, path, title or f"bio QA accuracy on {split} by regime")
