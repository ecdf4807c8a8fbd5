"""The iGSM world's report section (reads metrics files only, never torch): full-solution accuracy per eval set
and decoding, the teacher-forced steps, the V-probes; figures `igsm_<study>.png` (accuracy by op per eval set
and decoding), `igsm_steps_<study>.png` (teacher-forced steps), `vprobe_<study>.png`, and `igsm_depth.png`
(accuracy by depth at equal size, when studies on one dataset vary depth at about the same parameter
count)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physlm.figures import fmt, plt, to_float
from physlm.worlds.igsm.labels import CHOICES, PARTS, PROPERTIES, classes


def section(found: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The iGSM studies' tables (markdown) and figures."""
    _figures(found, out_dir)
    return markdown(found)


def _figures(found: dict[str, dict[str, Any]], out_dir: Path) -> None:
    for study, m in found.items():
        if m["evaluate"].get("accuracy_by_op"):
            plot_accuracy_by_op(m["evaluate"]["accuracy_by_op"], out_dir / f"igsm_{study}.png", title=f"{study}: full-solution accuracy by op")
        if m["evaluate"].get("teacher_forced"):
            plot_teacher_forced(m["evaluate"]["teacher_forced"], out_dir / f"igsm_steps_{study}.png", title=f"{study}: teacher-forced steps")
        if m["tables"].get("probe"):  # CSV cells are strings; numbers back to floats (empty = not defined)
            rows = [{k: (v if k in ("model", "property") else (to_float(v) if v != "" else float("nan"))) for k, v in r.items()}
                    for r in m["tables"]["probe"]]
            plot_vprobes(rows, out_dir / f"vprobe_{study}.png")
    plot_depth(found, out_dir / "igsm_depth.png")


def markdown(found: dict[str, dict[str, Any]]) -> str:
    """iGSM sections: accuracy per eval set and decoding, level-1 statistics, V-probes."""
    if not found:
        return ""
    lines = ["", "## iGSM: full-solution accuracy (physlm/worlds/igsm/evaluate.py)", "",
             "| study | eval set | decoding | problems | accuracy | answer only (chance 0.043) | unnecessary params / ops per correct | first errors |",
             "|---|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        for eval_set, decodings in m["evaluate"].items():
            if eval_set in ("samples", "accuracy_by_op", "teacher_forced"):
                continue
            for decoding, r in decodings.items():
                errors = ", ".join(f"{k} {v}" for k, v in list(r["errors"].items())[:3])
                lines.append(f"| {study} | {eval_set} | {decoding} | {r['n']} | {fmt(r['accuracy'])}{_op_ranges(r)} | {fmt(r['answer_accuracy'])} | "
                             f"{fmt(r['unnecessary_params_per_correct'])} / {fmt(r['unnecessary_ops_per_correct'])} | {errors} |")
    forced = [(study, m["evaluate"]["teacher_forced"]) for study, m in found.items() if m["evaluate"].get("teacher_forced")]
    if forced:
        lines += ["", "## iGSM: teacher-forced steps (physlm/worlds/igsm/evaluate.py)", "",
                  "Next parameter: named greedily after the gold solution's first k sentences and `Define` (valid = necessary, "
                  "not yet defined, predecessors defined). Parts: argmax right on every token, the gold solution in the context.", "",
                  "| study | eval set | steps | next parameter valid (uniform pick) | unnecessary / redefined / not ready / unknown | "
                  + " | ".join(PARTS) + " |", "|---|---|---|---|---|" + "---|" * len(PARTS)]
        for study, sets in forced:
            for eval_set, f in forced_in_order(sets):
                nxt = f["next_param"]
                wrong = " / ".join(fmt(nxt[c]) for c in CHOICES[1:])
                parts = " | ".join(f"{fmt(f['parts'][k]['accuracy'])} ({f['parts'][k]['n']})" for k in PARTS)
                lines.append(f"| {study} | {eval_set} | {f['steps']} | {fmt(nxt['valid'])} ({fmt(f['valid_chance'])}) | {wrong} | {parts} |")
    probes = [(study, m["tables"]["probe"]) for study, m in found.items() if m["tables"].get("probe")]
    if probes:
        lines += ["", "## iGSM: V-probes (physlm/worlds/igsm/vprobe.py)", "",
                  "| study | property | model | accuracy | on positives | on negatives | majority baseline |", "|---|---|---|---|---|---|---|"]
        for study, rows in probes:
            for r in rows:
                lines.append(f"| {study} | {r['property']} | {r['model']} | {fmt(to_float(r.get('accuracy')))} | {fmt(to_float(r.get('accuracy_pos')))} | "
                             f"{fmt(to_float(r.get('accuracy_neg')))} | {fmt(to_float(r.get('majority')))} |")
    lines += ["", "All eval sets use held-out (test-bucket) templates; reask problems can need more operations than any"
              " training problem, so their accuracy is also given within the trained op range (op <= max_op) and beyond it."]
    lines += ["", "Figures: `igsm_<study>.png` (accuracy by op per eval set and decoding), `igsm_steps_<study>.png` "
              "(teacher-forced steps), `vprobe_<study>.png`, "
              "`igsm_depth.png` (accuracy by depth at equal size, when a study matrix varies depth on one dataset).", ""]
    return "\n".join(lines)




def _op_ranges(r: dict) -> str:
    """A reask cell's split by op range, e.g. ` (op <= 4: 0.500 of 6, > 4: 0.000 of 4)`; empty for other cells."""
    split = r.get("by_op_range")
    if not split:
        return ""
    m = split["max_op"]
    return f" (op <= {m}: {fmt(split['op_le_max']['accuracy'])} of {split['op_le_max']['n']}, > {m}: {fmt(split['op_gt_max']['accuracy'])} of {split['op_gt_max']['n']})"


def plot_depth(found: dict[str, dict[str, Any]], path: Path) -> bool:
    """Test accuracy (greedy, in-distribution and op = max) by depth, one line per model size (studies on one
    dataset whose parameter counts agree within 20%, e.g. the SPEC's size-1 / size-2 lists)."""
    points = []
    for study, m in found.items():
        model, params = m["train"].get("model") or {}, m["train"].get("params")
        test = (m["evaluate"].get("test") or {}).get("greedy")
        if model and params and test:
            opmax = (m["evaluate"].get("opmax") or {}).get("greedy") or {}
            points.append((params, model["depth"], test["accuracy"], opmax.get("accuracy"), m["train"].get("data"), study))
    groups: list[list[tuple]] = []
    for point in sorted(points):
        for group in groups:
            if group[0][4] == point[4] and point[0] <= 1.2 * group[0][0]:
                group.append(point)
                break
        else:
            groups.append([point])
    groups = [g for g in groups if len({p[1] for p in g}) >= 2]
    if not groups:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, group in enumerate(groups):
        group.sort(key=lambda p: p[1])
        label = f"{group[0][4]}, ~{group[0][0] / 1e6:.1f}M params"
        ax.plot([p[1] for p in group], [p[2] for p in group], "-o", color=f"C{i}", label=f"{label}: test")
        if all(p[3] is not None for p in group):
            ax.plot([p[1] for p in group], [p[3] for p in group], "--s", color=f"C{i}", label=f"{label}: op = max")
    ax.set(xlabel="depth (layers)", ylabel="full-solution accuracy (greedy)", ylim=(-0.02, 1.02), title="iGSM: depth vs width at equal size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True




def forced_in_order(forced: dict) -> list[tuple[str, dict]]:
    """The `teacher_forced` entries as (name, checks): test, opmax, ood, reask, then the control (a JSON
    round trip sorts them by name)."""
    rank = {name: i for i, name in enumerate(("test", "opmax", "ood", "reask", "control"))}
    return sorted(forced.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))




def plot_accuracy_by_op(rows: Sequence[dict], path, title: str = "") -> None:
    """Accuracy vs op, one line per (eval set, decoding); ops outside training shaded by eval set name."""
    fig, ax = plt.subplots(figsize=(7, 4))
    lines: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        lines[(r["eval_set"], r["decoding"])].append((int(r["op"]), float(r["accuracy"])))
    for (eval_set, decoding), points in sorted(lines.items()):
        points.sort()
        style = "-" if decoding == "greedy" else "--"
        ax.plot([p[0] for p in points], [100 * p[1] for p in points], style, marker="o", label=f"{eval_set} ({decoding})")
    ax.set_xlabel("op (operations in the shortest solution)")
    ax.set_ylabel("full-solution accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title or "iGSM accuracy by op")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_teacher_forced(forced: dict, path, title: str = "") -> None:
    """Bars per eval set (and the control): the next parameter's validity (its uniform-pick chance as a tick)
    and each part's teacher-forced accuracy."""
    items = forced_in_order(forced)
    labels = ["next parameter valid", *PARTS]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(items), 1)
    for i, (name, f) in enumerate(items):
        xs = np.arange(len(labels)) + (i - (len(items) - 1) / 2) * width
        values = [f["next_param"]["valid"], *(f["parts"][k]["accuracy"] for k in PARTS)]
        ax.bar(xs, [100 * v if v is not None else 0.0 for v in values], width, label=f"{name} ({f['steps']} steps)", color=f"C{i}")
        if f["valid_chance"] is not None:
            ax.plot([xs[0] - width / 2, xs[0] + width / 2], [100 * f["valid_chance"]] * 2, color="k", lw=1.5,
                    label="uniform pick of a parameter" if i == 0 else None)
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set_ylabel("teacher-forced accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_title(title or "iGSM teacher-forced steps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_vprobes(rows: Sequence[dict], path: str | Path) -> None:
    """One panel per property: accuracy of each model's probe (all / positives / negatives for binary
    properties), the majority baseline as a dashed line."""
    props = [p for p in PROPERTIES if any(r["property"] == p for r in rows)]
    cols = min(len(props), 3)
    fig, axes = plt.subplots(-(-len(props) // cols), cols, figsize=(3.6 * cols, 3.0 * -(-len(props) // cols)),
                             squeeze=False, layout="constrained")
    for ax, prop in zip(axes.flat, props):
        mine = [r for r in rows if r["property"] == prop]
        parts = ("accuracy", "accuracy_pos", "accuracy_neg") if classes(prop) == 2 else ("accuracy",)
        width = 0.8 / len(parts)
        for k, part in enumerate(parts):
            heights = [r.get(part, math.nan) for r in mine]
            ax.bar(np.arange(len(mine)) + (k - (len(parts) - 1) / 2) * width, heights, width, color=f"C{k}",
                   label=("all", "positives", "negatives")[k])
        ax.axhline(mine[0]["majority"], color="k", linestyle="--", linewidth=1, label="majority")
        ax.set_xticks(range(len(mine)), [r["model"] for r in mine])
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{prop} (n={mine[0]['n_test']})", fontsize=10)
    for ax in axes.flat[len(props):]:
        ax.axis("off")
    binary = next((a for a, p in zip(axes.flat, props) if classes(p) == 2), axes.flat[0])
    fig.legend(*binary.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=8)
    fig.supylabel("held-out accuracy", fontsize=9)
    fig.suptitle("V-probes on the last layer: trained model vs random-init control vs majority", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
