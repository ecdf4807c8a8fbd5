"""The grammar world's report section (reads metrics files only, never torch): generation accuracy, KL and
diversity, probes with their controls, attention, corrupted prompts; figures `generation.png`, `part1.png`
(the studies side by side: grammars and attention variants), `probe_<study>.png`,
`attention_distance_<study>.png`, `attention_boundary_<study>.png`, `robust.png`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm

from physlm.figures import fmt, plt
from physlm.io import number

KINDS = ("end", "non_end")  # the boundary table's query kinds, in attention.KINDS order (attention.py imports torch)


def _h2(estimate: dict | None) -> str:
    if not estimate:
        return "–"
    return (">= " if estimate["is_lower_bound"] else "") + f"{estimate['renyi2_nats']:.2f} (n={estimate['n']})"


def section(found: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The grammar studies' tables (markdown) and figures."""
    _figures(found, out_dir)
    return markdown(found)


def markdown(found: dict[str, dict[str, Any]]) -> str:
    lines = ["## Grammars (Part 1): generation, the share of samples in the language", "",
             "| study | setting | accuracy | samples | mean length | distinct | seen in train | grammar's own rate | prompts in train |",
             "|---|---|---|---|---|---|---|---|---|"]
    for study, m in found.items():
        base = m["evaluate"].get("data", {}).get("test_sentences_in_train")
        for setting, s in m["evaluate"].items():
            if isinstance(s, dict) and "accuracy" in s:
                lines.append(f"| {study} | {setting} | {fmt(s['accuracy'])} | {s['n']} | {fmt(s['mean_length'])} | "
                             f"{fmt(s['distinct'])} | {fmt(s['seen_in_train'])} | {fmt(base)} | {fmt(s.get('prompts_in_train'))} |")
    lines += ["", "Seen in train: share of the correct samples that are verbatim training sentences; the grammar's own rate is the"
              " share of held-out test sentences that are (a small language repeats itself: no excess = no memorisation);"
              " prompts in train: the share of the cut-prefix prompts that are training sentences (0 with"
              " evaluate.cfg.unseen_prompts).",
              "", "## Grammars: distribution and diversity", "",
              "| study | KL to exact next-token distribution (nats/position) | random-init control | KL sentences in train | cut0 H2 (nats) | grammar H2 (nats) |",
              "|---|---|---|---|---|---|"]
    for study, m in found.items():
        kl, div = m["evaluate"].get("kl", {}), m["evaluate"].get("diversity_cut0", {})
        if kl or div:
            h2 = [_h2(div.get(side)) for side in ("model", "grammar")]
            lines.append(f"| {study} | {fmt(kl.get('trained', {}).get('mean'))} | {fmt(kl.get('control', {}).get('mean'))} | "
                         f"{fmt(kl.get('sentences_in_train'))} | {h2[0]} | {h2[1]} |")
    sub = [(study, m["evaluate"]["subtree_diversity_cut0"]) for study, m in found.items() if m["evaluate"].get("subtree_diversity_cut0")]
    if sub:
        lines += ["", "Per NT subtree (correct cut0 samples vs as many grammar samples, canonical parse, equal counts per symbol):", "",
                  "| study | level | subtrees | model H2 (nats) | grammar H2 (nats) |", "|---|---|---|---|---|"]
        for study, d in sub:
            for key, v in d.items():
                if key.startswith("level") and isinstance(v, dict) and v.get("model"):
                    lines.append(f"| {study} | {key[6:]} | {v['model']['n']} | {_h2(v['model'])} | {_h2(v['grammar'])} |")
    lines += ["", "H2 is the collision (Renyi-2) entropy of whole strings; '>=' marks the birthday-paradox bound when no two samples collide.",
              "", "## Grammars: probes (last layer, mean over NT levels)", "",
              "| study | probe | target | trained | random-init control | encoder-only (MLM) control |", "|---|---|---|---|---|---|"]
    for study, m in found.items():
        for probe, suffix in (("linear", ""), ("multi-head", "_multihead")):
            trained = m["probe"].get(f"trained{suffix}", {})
            control, encoder = m["probe"].get(f"control{suffix}", {}), m["probe"].get(f"encoder{suffix}", {})
            for target, acc in trained.items():
                lines.append(f"| {study} | {probe} | {target} | {fmt(acc)} | {fmt(control.get(target))} | {fmt(encoder.get(target))} |")
    lines += _attention_lines(found) + _robust_lines(found)
    lines += ["", "Figures: `generation.png`, `part1.png`, `probe_<study>.png`, `attention_distance_<study>.png`,"
              " `attention_boundary_<study>.png`, `robust.png`.", ""]
    return "\n".join(lines)


def _attention_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    rows = [(study, m["probe"]["attention"]) for study, m in found.items() if m["probe"].get("attention", {}).get("distance_share") is not None]
    if not rows:
        return []
    lines = ["", "## Grammars: attention (physlm/worlds/cfg/attention.py)", "",
             "| study | share explained by distance | NT-end -> previous same-level NT-end: lift (layer) | same for non-end queries |"
             " position-baseline lift, NT-end (layer) |", "|---|---|---|---|---|"]
    for study, a in rows:
        lines.append(f"| {study} | {fmt(a.get('distance_share'))} | {fmt(a.get('lift_same_level_end'))} ({a.get('lift_same_level_end_layer')}) | "
                     f"{fmt(a.get('lift_same_level_non_end'))} | {fmt(a.get('lift_position_same_level_end'))} "
                     f"({a.get('lift_position_same_level_end_layer')}) |")
    lines += ["", "Lift = attention on the nearest previous NT-end of the same level / what the head puts at that distance"
              " on average (best head per level, mean over levels, best layer). Lift 1 = position alone explains it."]
    return lines


def _robust_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    rows = [(study, m["evaluate"]["robust"]) for study, m in found.items() if m["evaluate"].get("robust")]
    if not rows:
        return []
    lines = ["", "## Grammars: corrupted prompts (physlm/worlds/cfg/robust.py)", "",
             "| study | prompts | temperature | clean prompt accuracy | corrupted prompt: repaired | follows corruption | clean breaks early |",
             "|---|---|---|---|---|---|---|"]
    for study, r in rows:
        prompts = f"{r['n']} x first {r['prefix']} tokens, {r['kind']} at {r['rate']}, {fmt(r.get('prompts_in_train'))} in train"
        for key, v in r.items():
            if key.startswith("T") and isinstance(v, dict):
                lines.append(f"| {study} | {prompts} | {key[1:]} | {fmt(v['clean'])} | {fmt(v['repaired'])} | "
                             f"{fmt(v['follows_corruption'])} | {fmt(v['clean_breaks_early'])} |")
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




def _figures(found: dict[str, dict[str, Any]], out_dir: Path) -> None:
    plot_generation(found, out_dir / "generation.png")
    plot_part1(found, out_dir / "part1.png")
    plot_robust(found, out_dir / "robust.png")
    for study, m in found.items():
        tables = m["tables"]
        if tables.get("probe"):
            plot_probe(study, tables["probe"], out_dir / f"probe_{study}.png")
        if tables.get("attention_distance"):
            plot_distance(tables["attention_distance"], out_dir / f"attention_distance_{study}.png", max_distance=64)
        if tables.get("attention_boundary"):
            plot_boundary(tables["attention_boundary"], out_dir / f"attention_boundary_{study}.png")


def plot_distance(rows: Sequence[dict], path: str | Path, max_distance: int | None = None) -> None:
    """Heatmaps of the distance profile, one panel per layer: rows = heads (labelled with the share explained
    by distance), columns = distance i - j, colour = mean attention weight on a log scale."""
    layers = sorted({int(r["layer"]) for r in rows})
    heads = sorted({int(r["head"]) for r in rows})
    dmax = max(int(r["distance"]) for r in rows)
    dmax = dmax if max_distance is None else min(dmax, max_distance)
    grid = np.full((len(layers), len(heads), dmax + 1), np.nan)
    share = np.full((len(layers), len(heads)), np.nan)
    for r in rows:
        d = int(r["distance"])
        if d <= dmax:
            a, h = layers.index(int(r["layer"])), heads.index(int(r["head"]))
            grid[a, h, d] = number(r["weight"])
            share[a, h] = number(r.get("share", "nan"))
    positive = grid[np.isfinite(grid) & (grid > 0)]
    vmin = max(float(positive.min()) if positive.size else 1e-4, 1e-4)
    norm = LogNorm(vmin=vmin, vmax=max(1.0, vmin * 10))
    cols = min(len(layers), 4)
    nrows = -(-len(layers) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 1.0 + (1.2 + 0.28 * len(heads)) * nrows),
                             squeeze=False, layout="constrained")
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= len(layers):
            ax.axis("off")
            continue
        data = np.ma.masked_where(~(np.isfinite(grid[k]) & (grid[k] > 0)), grid[k])
        image = ax.imshow(data, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest",
                          extent=(-0.5, dmax + 0.5, len(heads) - 0.5, -0.5))
        ax.set_yticks(range(len(heads)))
        ax.set_yticklabels([f"{h} ({s:.2f})" for h, s in zip(heads, share[k])], fontsize=7)
        ax.set_title(f"layer {layers[k]}", fontsize=9)
        ax.set_xlabel("distance i - j (tokens)", fontsize=8)
        if k % cols == 0:
            ax.set_ylabel("head (share explained by distance)", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="mean attention weight (log scale)", shrink=0.8)
    fig.suptitle("Attention by distance: mean weight a query puts on the key d tokens back (grey: 0 or no data)",
                 fontsize=10)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_boundary(rows: Sequence[dict], path: str | Path, reduce: str = "max", baseline: str = "distance") -> None:
    """Lift heatmaps (query level l x key level l'), one column per layer, top row NT-end queries, bottom row
    non-end queries. reduce="max": the head with the largest lift per cell (its number in the cell);
    "mean": the pooled lift over heads, sum of mass / sum of expected. baseline="distance": lift against the
    distance profile; "position": lift_position, against the head's mean map. Colour: log2 lift (red > 1 > blue)."""
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    if baseline not in ("distance", "position"):
        raise ValueError(f"baseline must be 'distance' or 'position', got {baseline!r}")
    lift_key, expected_key = ("lift", "expected") if baseline == "distance" else ("lift_position", "expected_position")
    layers = sorted({int(r["layer"]) for r in rows})
    levels = sorted({int(r["query_level"]) for r in rows} | {int(r["key_level"]) for r in rows})
    nl = len(levels)
    value = np.full((2, len(layers), nl, nl), np.nan)
    head = np.zeros((2, len(layers), nl, nl), dtype=np.int64)
    mass = np.zeros((2, len(layers), nl, nl))
    expected = np.zeros((2, len(layers), nl, nl))
    for r in rows:
        at = (KINDS.index(r["query"]), layers.index(int(r["layer"])), levels.index(int(r["query_level"])),
              levels.index(int(r["key_level"])))
        lift = number(r[lift_key])
        if np.isfinite(lift) and not (lift <= value[at]):  # NaN-aware max
            value[at], head[at] = lift, int(r["head"])
        m, e = number(r["mass"]), number(r[expected_key])
        if np.isfinite(m) and np.isfinite(e):
            mass[at] += m
            expected[at] += e
    if reduce == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(expected > 0, mass / expected, np.nan)
    logs = np.log2(value[np.isfinite(value) & (value > 0)])
    span = float(min(max(np.abs(logs).max() if logs.size else 1.0, 1.0), 8.0))
    fig, axes = plt.subplots(2, len(layers), figsize=(1.2 + (1.2 + 0.8 * nl) * len(layers), 2.0 + 1.6 * nl),
                             squeeze=False, layout="constrained")
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="lightgrey")
    image = None
    for kind, name in enumerate(("NT-end", "non-end")):
        for a, layer in enumerate(layers):
            ax = axes[kind, a]
            v = value[kind, a]
            with np.errstate(invalid="ignore", divide="ignore"):
                shown = np.ma.masked_invalid(np.log2(np.where(v > 0, v, np.nan)))
            image = ax.imshow(shown, cmap=cmap, vmin=-span, vmax=span, interpolation="nearest")
            for q in range(nl):
                for k in range(nl):
                    if np.isfinite(v[q, k]):
                        text = (f"{v[q, k]:.2f}" if v[q, k] < 100 else f"{v[q, k]:.0f}") + (
                            f"\nh{head[kind, a, q, k]}" if reduce == "max" else "")
                        ax.text(k, q, text, ha="center", va="center", fontsize=7)
            ax.set_xticks(range(nl), [str(x) for x in levels], fontsize=7)
            ax.set_yticks(range(nl), [str(x) for x in levels], fontsize=7)
            ax.set_title(f"layer {layer}, {name} queries", fontsize=8)
            if kind == 1:
                ax.set_xlabel("key level l'\n(nearest previous end)", fontsize=7)
            if a == 0:
                ax.set_ylabel("query level l", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="log2 lift", shrink=0.8)
    how = "best head per cell" if reduce == "max" else "pooled over heads (sum mass / sum expected)"
    null = "distance-profile" if baseline == "distance" else "mean-map (same positions)"
    fig.suptitle(f"Boundary attention lift = weight on nearest previous level-l' NT-end / {null} "
                 f"expectation ({how})", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
