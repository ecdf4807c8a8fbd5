"""iGSM evaluation (SPEC 2.3): full-solution accuracy by op on every eval set, greedy and beam search, and
the level-1 reasoning statistics.

The model sees `<bos> [PROB] problem [SOL]` and writes `solution [ANS] answer <eos>`; a generation counts as
correct only if the judge (`physlm.worlds.igsm_judge`) accepts the whole solution — any valid order, every
step's arithmetic right mod 23, every necessary parameter present, the answer right — not just the final
number (the answer alone is also reported, against the 1/23 of a guess). For correct solutions the judge
counts the unnecessary parameters and operations (level-0 reasoners compute everything computable; the
paper's models compute almost only what the question needs, except on `reask` problems).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from physlm.sampling import beam_search, generate
from physlm.text import TextVocab, igsm_prompt, parse_generation
from physlm.tokenize import Vocab
from physlm.worlds.igsm_judge import judge
from physlm.worlds.igsm_types import MOD, Problem


@dataclass(frozen=True)
class Attempt:
    """One problem solved once: what the model wrote and what the judge said."""

    eval_set: str
    decoding: str          # "greedy" or "beam<k>"
    index: int             # the problem's index in its eval set
    op: int
    generation: str        # the text after [SOL], special tokens included
    correct: bool          # the judge accepted the whole solution and the answer
    answer_correct: bool   # the final answer alone is right
    error: str             # the judge's first error reason ("" when correct; "too_long" if the prompt does not fit)
    unnecessary_params: int
    unnecessary_ops: int


def solve(model: torch.nn.Module, problems: Sequence[Problem], vocab: TextVocab, *, beams: int, batch_size: int) -> list[str | None]:
    """The generated continuation text of each problem (None when the prompt leaves no room in the context)."""
    context = model.cfg.context
    prompts = [[Vocab.bos_id, *vocab.encode(igsm_prompt(p.problem))] for p in problems]
    fits = [i for i, p in enumerate(prompts) if len(p) < context]
    out: list[str | None] = [None] * len(problems)
    if not fits:
        return out
    room = context + 1 - max(len(prompts[i]) for i in fits)
    chosen = [prompts[i] for i in fits]
    if beams == 1:
        ids = generate(model, chosen, max_new_tokens=room, temperature=0.0, eos_id=Vocab.eos_id, seed=0, batch_size=batch_size)
    else:
        ids = beam_search(model, chosen, beams=beams, max_new_tokens=room, eos_id=Vocab.eos_id, batch_size=batch_size)
    for i, tokens in zip(fits, ids):
        out[i] = vocab.decode([t for t in tokens if t != Vocab.eos_id])
    return out


def score(problems: Sequence[Problem], generations: Sequence[str | None], *, eval_set: str, decoding: str) -> list[Attempt]:
    attempts = []
    for i, (problem, text) in enumerate(zip(problems, generations)):
        if text is None:
            attempts.append(Attempt(eval_set, decoding, i, problem.op, "", False, False, "too_long", 0, 0))
            continue
        solution, answer = parse_generation(text)
        verdict = judge(problem, solution, answer)
        error = "" if verdict.correct else (verdict.first_error.reason if verdict.first_error else "unknown")
        attempts.append(Attempt(eval_set, decoding, i, problem.op, text, verdict.correct, answer == problem.answer, error,
                                verdict.unnecessary_params, verdict.unnecessary_ops))
    return attempts


def summarize(attempts: Sequence[Attempt]) -> dict:
    """{eval_set: {decoding: {accuracy, answer_accuracy, n, by_op, errors, unnecessary_params/ops per correct}}}."""
    groups: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for a in attempts:
        groups[(a.eval_set, a.decoding)].append(a)
    out: dict = defaultdict(dict)
    for (eval_set, decoding), rows in sorted(groups.items()):
        by_op: dict[int, list[bool]] = defaultdict(list)
        for a in rows:
            by_op[a.op].append(a.correct)
        correct = [a for a in rows if a.correct]
        out[eval_set][decoding] = {
            "n": len(rows),
            "accuracy": float(np.mean([a.correct for a in rows])),
            "answer_accuracy": float(np.mean([a.answer_correct for a in rows])),
            "answer_chance": 1.0 / MOD,
            "by_op": {str(op): {"n": len(v), "accuracy": float(np.mean(v))} for op, v in sorted(by_op.items())},
            "errors": dict(Counter(a.error for a in rows if not a.correct).most_common()),
            "unnecessary_params_per_correct": float(np.mean([a.unnecessary_params for a in correct])) if correct else None,
            "unnecessary_ops_per_correct": float(np.mean([a.unnecessary_ops for a in correct])) if correct else None,
        }
    return dict(out)


def accuracy_rows(summary: dict) -> list[dict]:
    """Flat rows (eval_set, decoding, op, n, accuracy) for the CSV plot file and the figures."""
    return [{"eval_set": s, "decoding": d, "op": int(op), "n": cell["n"], "accuracy": cell["accuracy"]}
            for s, decodings in summary.items() for d, found in decodings.items() for op, cell in found["by_op"].items()]


def plot_accuracy_by_op(rows: Sequence[dict], path, title: str = "") -> None:
    """Accuracy vs op, one line per (eval set, decoding); ops outside training shaded by eval set name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
