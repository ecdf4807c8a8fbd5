"""The report: every study's metrics gathered into reports/summary.md and PNG figures.

iGSM studies get their own sections and figures: accuracy by op per eval set and decoding
(`igsm_<study>.png`), the V-probes (`vprobe_<study>.png`), and accuracy by depth at equal size
(`igsm_depth.png`) when studies on one dataset vary depth at about the same parameter count. Biography
studies: QA accuracy per attribute by study on P_test and P_train (`bio_regimes.png`,
`bio_regimes_train.png`), P-probing accuracy by task and offset (`pprobe_<study>.png`) and Q-probing per
task (`qprobe_<study>.png`), each against the random-init control.

Figures: training and validation loss per study (`loss.png`); generation accuracy per study and setting
(`generation.png`); the Part 1 overview across studies, i.e. grammars and attention variants (`part1.png`:
cut0/cut-prefix accuracy, KL to the exact next-token distribution, last-layer probe accuracy, diversity);
probe accuracy by layer and level with the controls (`probe_<study>.png`); attention mass by distance and
NT-end to NT-end lift (`attention_distance_<study>.png`, `attention_boundary_<study>.png`); accuracy on
corrupted prompts by temperature (`robust.png`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from physlm.worlds.cfg.attention import plot_boundary, plot_distance  # noqa: E402


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
            "attention": _json(d / "attention.json"),
            "attention_distance": _csv(d / "attention_distance.csv"),
            "attention_boundary": _csv(d / "attention_boundary.csv"),
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
             "| study | setting | accuracy | samples | mean length | distinct | seen in train | grammar's own rate |",
             "|---|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        base = m["evaluate"].get("data", {}).get("test_sentences_in_train")
        for setting, s in m["evaluate"].items():
            if isinstance(s, dict) and "accuracy" in s:
                lines.append(f"| {study} | {setting} | {_fmt(s['accuracy'])} | {s['n']} | {_fmt(s['mean_length'])} | "
                             f"{_fmt(s['distinct'])} | {_fmt(s['seen_in_train'])} | {_fmt(base)} |")
    lines += ["", "Seen in train: share of the correct samples that are verbatim training sentences; the grammar's own rate is the"
              " share of held-out test sentences that are (a small language repeats itself: no excess = no memorisation).",
              "", "## Distribution and diversity", "",
              "| study | KL to exact next-token distribution (nats/position) | random-init control | cut0 H2 (nats) | grammar H2 (nats) |",
              "|---|---|---|---|---|"]
    for study, m in found.items():
        kl, div = m["evaluate"].get("kl", {}), m["evaluate"].get("diversity_cut0", {})
        if kl or div:
            h2 = [_h2(div.get(side)) for side in ("model", "grammar")]
            lines.append(f"| {study} | {_fmt(kl.get('trained', {}).get('mean'))} | {_fmt(kl.get('control', {}).get('mean'))} | {h2[0]} | {h2[1]} |")
    sub = [(study, m["evaluate"]["subtree_diversity_cut0"]) for study, m in found.items() if m["evaluate"].get("subtree_diversity_cut0")]
    if sub:
        lines += ["", "Per NT subtree (correct cut0 samples vs as many grammar samples, canonical parse, equal counts per symbol):", "",
                  "| study | level | subtrees | model H2 (nats) | grammar H2 (nats) |", "|---|---|---|---|---|"]
        for study, d in sub:
            for key, v in d.items():
                if key.startswith("level") and isinstance(v, dict) and v.get("model"):
                    lines.append(f"| {study} | {key[6:]} | {v['model']['n']} | {_h2(v['model'])} | {_h2(v['grammar'])} |")
    lines += ["", "H2 is the collision (Renyi-2) entropy of whole strings; '>=' marks the birthday-paradox bound when no two samples collide.",
              "", "## Probes (last layer, mean over NT levels)", "",
              "| study | probe | target | trained | random-init control | encoder-only (MLM) control |", "|---|---|---|---|---|---|"]
    for study, m in found.items():
        for probe, suffix in (("linear", ""), ("multi-head", "_multihead")):
            trained = m["probe"].get(f"trained{suffix}", {})
            control, encoder = m["probe"].get(f"control{suffix}", {}), m["probe"].get(f"encoder{suffix}", {})
            for target, acc in trained.items():
                lines.append(f"| {study} | {probe} | {target} | {_fmt(acc)} | {_fmt(control.get(target))} | {_fmt(encoder.get(target))} |")
    lines += _attention_lines(found) + _robust_lines(found)
    lines += ["", "## Training", "", "| study | params | final loss | final val loss | tokens | seconds | tokens/s | device |",
              "|---|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        t = m["train"]
        if t:
            lines.append(f"| {study} | {t['params']} | {_fmt(t['final_loss'])} | {_fmt(t['final_val_loss'])} | {t['tokens_seen']} | "
                         f"{_fmt(t['seconds'])} | {t['tokens_per_s']:.0f} | {t['device']} |")
    lines += ["", "Figures: `loss.png`, `generation.png`, `part1.png`, `probe_<study>.png`, `attention_distance_<study>.png`,"
              " `attention_boundary_<study>.png`, `robust.png`.", ""]
    return "\n".join(lines)


def _attention_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    rows = [(study, m["attention"]) for study, m in found.items() if m["attention"].get("layers")]
    if not rows:
        return []
    lines = ["", "## Attention (physlm/worlds/cfg/attention.py)", "",
             "| study | share explained by distance | NT-end -> previous same-level NT-end: lift (layer) | same for non-end queries |"
             " position-baseline lift, NT-end (layer) |", "|---|---|---|---|---|"]
    for study, a in rows:
        lines.append(f"| {study} | {_fmt(a.get('distance_share'))} | {_fmt(a.get('lift_same_level_end'))} ({a.get('lift_same_level_end_layer')}) | "
                     f"{_fmt(a.get('lift_same_level_non_end'))} | {_fmt(a.get('lift_position_same_level_end'))} "
                     f"({a.get('lift_position_same_level_end_layer')}) |")
    lines += ["", "Lift = attention on the nearest previous NT-end of the same level / what the head puts at that distance"
              " on average (best head per level, mean over levels, best layer). Lift 1 = position alone explains it."]
    return lines


def _robust_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    rows = [(study, m["evaluate"]["robust"]) for study, m in found.items() if m["evaluate"].get("robust")]
    if not rows:
        return []
    lines = ["", "## Corrupted prompts (physlm/worlds/cfg/robust.py)", "",
             "| study | prompts | temperature | clean prompt accuracy | corrupted prompt: repaired | follows corruption | clean breaks early |",
             "|---|---|---|---|---|---|---|"]
    for study, r in rows:
        prompts = f"{r['n']} x first {r['prefix']} tokens, {r['kind']} at {r['rate']}"
        for key, v in r.items():
            if key.startswith("T") and isinstance(v, dict):
                lines.append(f"| {study} | {prompts} | {key[1:]} | {_fmt(v['clean'])} | {_fmt(v['repaired'])} | "
                             f"{_fmt(v['follows_corruption'])} | {_fmt(v['clean_breaks_early'])} |")
    lines += ["", "Repaired = the clean prefix followed by the continuation of the corrupted prompt is in the language; follows"
              f" corruption = within its first {rows[0][1]['k']} tokens the continuation breaks every sentence that starts with the clean prefix."]
    return lines


def _label(study: str, m: dict[str, Any]) -> str:
    model = m["train"].get("model") or {}
    return f"{study}\n{model.get('pos', '')} d{model.get('depth', '?')}" if model else study


def plot_part1(found: dict[str, dict[str, Any]], path: Path) -> None:
    """Four panels across studies: generation accuracy, KL, last-layer probes, collision entropy."""
    studies = list(found)
    x = range(len(studies))
    labels = [_label(s, found[s]) for s in studies]
    fig, axes = plt.subplots(2, 2, figsize=(max(9, 1.6 * len(studies)), 7.5))
    ax = axes[0][0]
    settings = sorted({k for m in found.values() for k, v in m["evaluate"].items()
                       if isinstance(v, dict) and "accuracy" in v and not k.startswith("control")})
    width = 0.8 / max(len(settings), 1)
    for j, setting in enumerate(settings):
        vals = [found[s]["evaluate"].get(setting, {}).get("accuracy", float("nan")) for s in studies]
        ax.bar([i + j * width for i in x], vals, width, label=setting)
    ax.set(title="Generation accuracy (exact judge)", ylabel="share in the language", ylim=(0, 1.05))
    ax.legend(fontsize=7)
    ax = axes[0][1]
    kl = [found[s]["evaluate"].get("kl", {}).get("trained", {}).get("mean", float("nan")) for s in studies]
    ctrl = [found[s]["evaluate"].get("kl", {}).get("control", {}).get("mean", float("nan")) for s in studies]
    ax.bar(list(x), kl, 0.6, label="trained")
    ax.plot(list(x), ctrl, "k_", ms=20, label="random-init control")
    ax.set(title="KL to the exact next-token distribution", ylabel="nats / position", yscale="log")
    ax.legend(fontsize=7)
    ax = axes[1][0]
    targets = ("ancestor", "ancestor_at_end", "boundary")
    for j, target in enumerate(targets):
        vals = [found[s]["probe"].get("trained", {}).get(target, float("nan")) for s in studies]
        ax.bar([i + j * 0.27 for i in x], vals, 0.27, label=target)
    ax.set(title="Last-layer linear probes (mean over NT levels)", ylabel="accuracy", ylim=(0, 1.05))
    ax.legend(fontsize=7)
    ax = axes[1][1]
    bars = [(level, side) for level in (1, 2) for side in ("model", "grammar")]
    for j, (level, side) in enumerate(bars):
        vals = [((found[s]["evaluate"].get("subtree_diversity_cut0") or {}).get(f"level {level}") or {}).get(side) or {} for s in studies]
        ax.bar([i + j * 0.2 for i in x], [v.get("renyi2_nats", float("nan")) for v in vals], 0.2, color=f"C{j}",
               label=f"level {level}, {'correct cut0 samples' if side == 'model' else 'grammar samples'}")
    ax.set(title="Collision entropy of NT subtrees (same subtree counts per symbol)", ylabel="H2 (nats)")
    ax.legend(fontsize=7)
    for ax in axes.flat:
        ax.set_xticks(list(x), labels, fontsize=7)
        ax.title.set_fontsize(9)
    fig.suptitle("Part 1 across studies (grammars and attention variants)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_robust(found: dict[str, dict[str, Any]], path: Path) -> bool:
    """Per study with corrupted-prompt results: clean / repaired / follows-corruption by temperature."""
    rows = [(study, m["evaluate"]["robust"]) for study, m in found.items() if m["evaluate"].get("robust")]
    if not rows:
        return False
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.8), squeeze=False)
    for ax, (study, r) in zip(axes[0], rows):
        temps = [k for k in r if k.startswith("T") and isinstance(r[k], dict)]
        for j, (metric, name) in enumerate((("clean", "clean prompt"), ("repaired", "corrupted: repaired"),
                                            ("follows_corruption", "corrupted: follows errors"))):
            ax.bar([i + j * 0.27 for i in range(len(temps))], [r[t][metric] for t in temps], 0.27, label=name)
        ax.set_xticks([i + 0.27 for i in range(len(temps))], [f"T = {t[1:]}" for t in temps])
        ax.set(title=f"{study}: first {r['prefix']} tokens", ylim=(0, 1.05), ylabel="share of prompts")
        ax.legend(fontsize=7)
    fig.suptitle(f"Corrupted prompts ({rows[0][1]['kind']} at rate {rows[0][1]['rate']}); repaired = clean prefix + continuation in the language")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


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


STYLES = {"trained": "-", "control": ":", "encoder": "--"}


def plot_probe(study: str, rows: list[dict[str, str]], path: Path) -> None:
    """Per target: linear-probe accuracy by layer and NT level for each model (solid: trained, dotted:
    random-init control, dashed: encoder-only MLM control); stars: the multi-head probe."""
    targets = sorted({r["target"] for r in rows})
    levels = sorted({int(r["level"]) for r in rows})
    fig, axes = plt.subplots(1, len(targets), figsize=(4.4 * len(targets), 3.8), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for model, style in STYLES.items():
            for level in levels:
                mine = [r for r in rows if r["model"] == model and r["target"] == target and int(r["level"]) == level]
                line = sorted((int(r["layer"]), float(r["accuracy"])) for r in mine if r.get("probe", "linear") in ("linear", ""))
                stars = sorted((int(r["layer"]), float(r["accuracy"])) for r in mine if r.get("probe") == "multihead")
                if line:
                    ax.plot(*zip(*line), style, marker="o", ms=3, color=f"C{level}",
                            label=f"level {level}" if model == "trained" else None)
                if stars:
                    ax.plot(*zip(*stars), "*", ms=9, color=f"C{level}", mec="k" if model == "trained" else "none",
                            alpha=1.0 if model == "trained" else 0.5)
        ax.set(title=target, xlabel="layer (0 = embeddings)", ylabel="probe accuracy", ylim=(0, 1.02))
        ax.legend(fontsize=7)
    fig.suptitle(f"Probes, {study}: solid trained, dotted random init, dashed encoder (MLM); stars = multi-head probe", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(studies: dict[str, Any], metrics_dir: Path, out_dir: Path) -> None:
    """Everything about every study in `studies` (params.yaml's mapping: name -> entry with its world)."""
    found = gather(list(studies), metrics_dir)
    worlds = {name: (entry or {}).get("world", "cfg") for name, entry in studies.items()}
    grammar = {s: m for s, m in found.items() if worlds[s] == "cfg"}
    igsm = {s: m for s, m in found.items() if worlds[s] == "igsm"}
    bio = {s: m for s, m in found.items() if worlds[s] == "bio"}
    text = summary_markdown(grammar) if grammar else "# physlm report\n"
    (out_dir / "summary.md").write_text(text + igsm_markdown(igsm) + bio_markdown(bio))
    plot_loss(found, out_dir / "loss.png")
    if grammar:
        _grammar_figures(grammar, out_dir)
    _igsm_figures(igsm, out_dir)
    _bio_figures(bio, out_dir)


def _igsm_figures(found: dict[str, dict[str, Any]], out_dir: Path) -> None:
    from physlm.worlds.igsm.evaluate import plot_accuracy_by_op, plot_teacher_forced
    from physlm.worlds.igsm.vprobe import plot_vprobes

    for study, m in found.items():
        if m["evaluate"].get("accuracy_by_op"):
            plot_accuracy_by_op(m["evaluate"]["accuracy_by_op"], out_dir / f"igsm_{study}.png", title=f"{study}: full-solution accuracy by op")
        if m["evaluate"].get("teacher_forced"):
            plot_teacher_forced(m["evaluate"]["teacher_forced"], out_dir / f"igsm_steps_{study}.png", title=f"{study}: teacher-forced steps")
        if m["probe_rows"]:  # CSV cells are strings; numbers back to floats (empty = not defined)
            rows = [{k: (v if k in ("model", "property") else (_float(v) if v != "" else float("nan"))) for k, v in r.items()}
                    for r in m["probe_rows"]]
            plot_vprobes(rows, out_dir / f"vprobe_{study}.png")
    plot_depth(found, out_dir / "igsm_depth.png")


def igsm_markdown(found: dict[str, dict[str, Any]]) -> str:
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
                lines.append(f"| {study} | {eval_set} | {decoding} | {r['n']} | {_fmt(r['accuracy'])} | {_fmt(r['answer_accuracy'])} | "
                             f"{_fmt(r['unnecessary_params_per_correct'])} / {_fmt(r['unnecessary_ops_per_correct'])} | {errors} |")
    forced = [(study, m["evaluate"]["teacher_forced"]) for study, m in found.items() if m["evaluate"].get("teacher_forced")]
    if forced:
        from physlm.worlds.igsm.evaluate import CHOICES, PARTS, forced_in_order

        lines += ["", "## iGSM: teacher-forced steps (physlm/worlds/igsm/evaluate.py)", "",
                  "Next parameter: named greedily after the gold solution's first k sentences and `Define` (valid = necessary, "
                  "not yet defined, predecessors defined). Parts: argmax right on every token, the gold solution in the context.", "",
                  "| study | eval set | steps | next parameter valid (uniform pick) | unnecessary / redefined / not ready / unknown | "
                  + " | ".join(PARTS) + " |", "|---|---|---|---|---|" + "---|" * len(PARTS)]
        for study, sets in forced:
            for eval_set, f in forced_in_order(sets):
                nxt = f["next_param"]
                wrong = " / ".join(_fmt(nxt[c]) for c in CHOICES[1:])
                parts = " | ".join(f"{_fmt(f['parts'][k]['accuracy'])} ({f['parts'][k]['n']})" for k in PARTS)
                lines.append(f"| {study} | {eval_set} | {f['steps']} | {_fmt(nxt['valid'])} ({_fmt(f['valid_chance'])}) | {wrong} | {parts} |")
    probes = [(study, m["probe_rows"]) for study, m in found.items() if m["probe_rows"]]
    if probes:
        lines += ["", "## iGSM: V-probes (physlm/worlds/igsm/vprobe.py)", "",
                  "| study | property | model | accuracy | on positives | on negatives | majority baseline |", "|---|---|---|---|---|---|---|"]
        for study, rows in probes:
            for r in rows:
                lines.append(f"| {study} | {r['property']} | {r['model']} | {_fmt(_float(r.get('accuracy')))} | {_fmt(_float(r.get('accuracy_pos')))} | "
                             f"{_fmt(_float(r.get('accuracy_neg')))} | {_fmt(_float(r.get('majority')))} |")
    lines += ["", "Figures: `igsm_<study>.png` (accuracy by op per eval set and decoding), `igsm_steps_<study>.png` "
              "(teacher-forced steps), `vprobe_<study>.png`, "
              "`igsm_depth.png` (accuracy by depth at equal size, when a study matrix varies depth on one dataset).", ""]
    return "\n".join(lines)


def bio_markdown(found: dict[str, dict[str, Any]]) -> str:
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
                    per = ", ".join(f"{a} {_fmt(c['accuracy'])}" for a, c in r["by_attribute"].items())
                    lines.append(f"| {study} | {label} | {split} | {decoding} | {r['n']} | {_fmt(r['accuracy'])} | "
                                 f"{_fmt(r['first_token_accuracy'])} | {per} |")
    probes = [(study, m["probe_rows"]) for study, m in found.items() if m["probe_rows"]]
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
                    vals = [_float(r[key]) for r in rows if r["model"] == model and r["probe"] == probe
                            and r["axis"] == axis and r["index"] == index]
                    return float(np.mean(vals)) if vals else None
                lines.append(f"| {study} | {model} | {_fmt(mean('P', 'offset', '-1'))} | {_fmt(mean('P', 'offset', '0'))} | "
                             f"{_fmt(mean('Q', 'end', '0'))} | {_fmt(mean('Q', 'end', '0', 'majority'))} |")
    lines += ["", "Figures: `bio_regimes.png` (QA accuracy per attribute, P_train and P_test, every study), "
              "`pprobe_<study>.png` (P-probing accuracy by task and offset), `qprobe_<study>.png`.", ""]
    return "\n".join(lines)


def _bio_figures(found: dict[str, dict[str, Any]], out_dir: Path) -> None:
    from physlm.worlds.bio.evaluate import plot_regimes

    summaries = {s: m["evaluate"] for s, m in found.items() if m["evaluate"].get("P_test")}
    if summaries:
        plot_regimes(summaries, out_dir / "bio_regimes.png", split="P_test", title="QA accuracy out of distribution (P_test)")
        plot_regimes(summaries, out_dir / "bio_regimes_train.png", split="P_train", title="QA accuracy in distribution (P_train)")
    for study, m in found.items():
        if m["probe_rows"]:
            plot_pq_rows(m["probe_rows"], study, out_dir)


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
                    grid[tasks.index(r["task"]), offsets.index(int(r["index"]))] = _float(r["accuracy"])
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
            acc = {r["task"]: _float(r["accuracy"]) for r in q_rows if r["model"] == model}
            ax.bar(np.arange(len(tasks)) + k * width, [acc.get(t, np.nan) for t in tasks], width, label=model)
        majority = {r["task"]: _float(r["majority"]) for r in q_rows}
        ax.scatter(np.arange(len(tasks)) + 0.4 - width / 2, [majority[t] for t in tasks], marker="_", color="black", s=200,
                   label="majority", zorder=3)
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("Q-probe accuracy")
        ax.set_title(f"{study}: Q-probing on <start> name <end>", fontsize=9)
        ax.legend(fontsize=7)
        fig.savefig(out_dir / f"qprobe_{study}.png", dpi=110)
        plt.close(fig)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


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


def _grammar_figures(found: dict[str, dict[str, Any]], out_dir: Path) -> None:
    plot_generation(found, out_dir / "generation.png")
    plot_part1(found, out_dir / "part1.png")
    plot_robust(found, out_dir / "robust.png")
    for study, m in found.items():
        if m["probe_rows"]:
            plot_probe(study, m["probe_rows"], out_dir / f"probe_{study}.png")
        if m["attention_distance"]:
            plot_distance(m["attention_distance"], out_dir / f"attention_distance_{study}.png", max_distance=64)
        if m["attention_boundary"]:
            plot_boundary(m["attention_boundary"], out_dir / f"attention_boundary_{study}.png")
