"""The capacity world's report section (reads metrics files only, never torch): a table with one row per study
(P both ways, N, exposures requested and realized, stored bits, the data's bits, R(F) both ways, capacity-bound,
the random-init control), the peak R(F) of each model size (over its studies, e.g. over N), and the figure
`capacity_bits.png`: stored bits against parameters (the paper's count), log-log, one point per study, the marker
by exposures, the 2 and 1 bit/param lines, and per model size a line through its studies labelled with its peak
ratio. A point that stores no bits (the bound is negative) cannot sit on a log axis; the table still lists it.
A study evaluated with `quantize` adds a row per format (`<study> (int8 RTN)`: the quantized copy's bits and R,
the same P); those rows are left out of the peaks and the figure, which are the trained models'. Where a study's
train split held junk (the junk-data study), the table gets a column `junk`: the junk's share of the train tokens,
N' and whether the useful paragraphs had the domain token (no column when no study had junk). The column `data` names
each study's data kind (bioD, bioS, bioS_simple), and `S0` (the attribute combinations a bioS person can have)
is shown when a study is on bioS data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from physlm.figures import fmt, plt

MARKERS = "os^Dv*P"
COLUMNS = ("study", "model", "P (paper)", "P (physlm)", "data", "N", "exposures", "realized min/mean/max", "bits stored",
           "data bits", "R (paper P)", "R (physlm P)", "capacity-bound", "control R (paper P)")
JUNK = "junk (share, N', domain token)"
S0 = "S0"


def _size(m: dict[str, Any]) -> str:
    model = m["train"].get("model") or {}
    return f"{model.get('depth', '?')}L{model.get('width', '?')}D"


def _row(study: str, m: dict[str, Any]) -> dict[str, Any]:
    e, exp = m["evaluate"], m["train"].get("exposures") or {}
    realized = f"{exp['min']}/{exp['mean']:.1f}/{exp['max']}" if exp else None
    return {"study": study, "model": _size(m), "P (paper)": e["params"]["paper"], "P (physlm)": e["params"]["physlm"],
            "data": e.get("data", "bioD"), "N": e["spec"]["N"], S0: _s0(e["spec"].get("S0")), "exposures": exp.get("requested"), "realized min/mean/max": realized,
            "bits stored": round(e["trained"]["bits"]["total"]), "data bits": round(e["upper_bound"]["total"]),
            "R (paper P)": e["trained"]["R_paper"], "R (physlm P)": e["trained"]["R_physlm"],
            "capacity-bound": "yes" if e["capacity_bound"]["paper"] else "no (data bits < 2P)",
            "control R (paper P)": e.get("control", {}).get("R_paper"), JUNK: _junk(e.get("junk"))}


def _s0(s0: int | None) -> str | None:
    return None if s0 is None else f"{s0:.3g} ({math.log2(s0):.1f} bits)"


def _junk(junk: dict[str, Any] | None) -> str | None:
    if not junk:
        return None
    return f"{junk['fraction']:.3f}, {junk['people']:,}, {'yes' if junk['domain_token'] else 'no'}"


def _quantized_rows(study: str, m: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per quantized copy: the study's row with that copy's bits and R (the same parameters, b bits each)."""
    base = _row(study, m)
    return [base | {"study": f"{study} ({fmt} RTN)", "bits stored": round(q["bits"]["total"]), "R (paper P)": q["R_paper"],
                    "R (physlm P)": q["R_physlm"], "control R (paper P)": None, "quantized": fmt}
            for fmt, q in m["evaluate"].get("quantized", {}).items()]


def section(found: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The capacity studies' table, peak ratios and figure (markdown)."""
    rows = [_row(s, m) for s, m in found.items() if m["evaluate"]]
    if not rows:
        return ""
    shown = [r for s, m in found.items() if m["evaluate"] for r in [_row(s, m), *_quantized_rows(s, m)]]
    columns = COLUMNS + ((JUNK,) if any(r[JUNK] for r in rows) else ())
    if any(r[S0] for r in rows):
        at = columns.index("N") + 1
        columns = columns[:at] + (S0,) + columns[at:]
    lines = ["", "## Capacity: bits stored per parameter (physlm/worlds/capacity/)", "",
             ("Stored bits are the lower bound of SPEC 6.2 from the summed name, value and first-chunk losses (bioS: name and"
              " value losses, the diversity term dropped); R = bits / P."
              " P (paper) keeps only the embedding and head rows of tokens the data uses (the head is untied and counted"
              " as its own matrix); P (physlm) is every parameter. A point is capacity-bound when the data holds more"
              " than 2 bits per parameter (paper's P)."), "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in shown]
    if len(shown) > len(rows):
        lines += ["", ("Rows `(int8 RTN)` / `(int4 RTN)`: the trained model with every Linear and Embedding weight"
                       " round-to-nearest quantized per output channel (symmetric) and measured again; the paper used GPTQ,"
                       " which usually loses less (docs/capacity.md).")]
    peaks = peak_ratios(rows)
    lines += ["", "Peak R (paper P) per model size: " + ", ".join(f"{size} {fmt(r)} ({study})" for size, (r, study) in peaks.items())]
    if plot_bits(rows, peaks, out_dir / "capacity_bits.png"):
        lines += ["", "Figure: `capacity_bits.png` (stored bits against parameters, log-log; 2 and 1 bit/param lines)."]
    return "\n".join(lines + [""])


def peak_ratios(rows: list[dict[str, Any]]) -> dict[str, tuple[float, str]]:
    """{model size: (its highest R under the paper's P, the study)}."""
    peaks: dict[str, tuple[float, str]] = {}
    for r in rows:
        if r["model"] not in peaks or r["R (paper P)"] > peaks[r["model"]][0]:
            peaks[r["model"]] = (r["R (paper P)"], r["study"])
    return peaks


def plot_bits(rows: list[dict[str, Any]], peaks: dict[str, tuple[float, str]], path: Path) -> bool:
    """The figure; False when no study stores a positive number of bits."""
    shown = [r for r in rows if r["bits stored"] > 0]
    if not shown:
        return False
    exposures = sorted({str(r["exposures"]) for r in shown})
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for size in peaks:
        mine = sorted((r for r in shown if r["model"] == size), key=lambda r: r["bits stored"])
        if mine:
            line, = ax.plot([r["P (paper)"] for r in mine], [r["bits stored"] for r in mine], "-", alpha=0.5)
            for r in mine:
                ax.scatter(r["P (paper)"], r["bits stored"], marker=MARKERS[exposures.index(str(r["exposures"])) % len(MARKERS)],
                           color=line.get_color(), zorder=3)
            ax.annotate(f"{size}: peak R {peaks[size][0]:.2f}", (mine[-1]["P (paper)"], mine[-1]["bits stored"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    xs = [min(r["P (paper)"] for r in shown) / 2, max(r["P (paper)"] for r in shown) * 2]
    for per, style in ((2.0, "--"), (1.0, ":")):
        ax.plot(xs, [per * x for x in xs], style, color="gray", label=f"{per:g} bit/param")
    for k, e in enumerate(exposures):
        ax.scatter([], [], marker=MARKERS[k % len(MARKERS)], color="black", label=f"exposures {e}")
    ax.set(xscale="log", yscale="log", xlabel="parameters (paper's count: used tokens only)", ylabel="stored bits",
           title="Capacity: stored bits vs parameters")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
