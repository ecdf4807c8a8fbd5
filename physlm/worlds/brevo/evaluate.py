"""Brevo evaluation (SPEC 7.3, 11.1.5): exact-match accuracy of greedy answers judged by the checker, at n = N and
by n over the sizes set, with teacher-forced per-token accuracy beside it.

The model is given `<bos> edges <query> q <ans>` and writes greedily (`physlm.playground.greedy_answers`) until its
first `<eos>`, at most the longest gold answer of the batch's instances (and `<eos>`) plus `MARGIN` tokens, within
the context: a valid answer lists exactly the gold answer's vertices, so it is never longer than that. The checker
(`checker.judge`) accepts any valid topological order of exactly the query's ancestors and the query, rejects
everything else with a reason (malformed, unknown, duplicate, extra, missing, order), and gives no partial credit.

Teacher forcing (`physlm.playground.teacher_forced`): with the gold instance in the context, is the argmax right
at every answer token and the final `<eos>`? Reported per token (`token_accuracy`) and per instance (`forced_exact`:
every token right). It scores against the gold order only, so a model that would list another valid order loses
tokens here that the checker would accept: a lower bound on how much of the answer the model knows.
With `control`, a random-init model of the same shape is scored on the test set.

tests/test_brevo.py scores known answers through a scripted model (right answers in the gold and in another valid
order, a wrong order, a malformed word, a missing vertex: exact accuracies, reasons and token counts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.io import Paths
from physlm.playground import accuracy_table
from physlm.playground_eval import greedy_answers, teacher_forced
from physlm.worlds import Evaluated, generations_table
from physlm.worlds.brevo.checker import judge
from physlm.worlds.brevo.frames import in_split, read_instances, read_layout
from physlm.worlds.brevo.graph import Instance
from physlm.worlds.brevo.text import Layout
from physlm.worlds.brevo.tokenize import check_vocab

MARGIN = 8  # tokens a generation may run past the longest gold answer (and its <eos>) before it is cut


@dataclass(frozen=True)
class Attempt:
    """One instance answered: the greedy generation judged, and the teacher-forced token counts."""

    n: int
    generation: tuple[int, ...]
    correct: bool
    reason: str  # the checker's reason ("" when correct)
    forced_correct: int  # answer tokens (and <eos>) right under teacher forcing
    forced_total: int


def answer(model: torch.nn.Module, layout: Layout, instances: Sequence[Instance], *, batch_size: int,
           device: torch.device) -> list[Attempt]:
    """Every instance answered greedily and teacher-forced."""
    prompts = [layout.prompt(inst) for inst in instances]
    room = model.cfg.context + 1 - max(len(p) for p in prompts)
    budget = min(max(layout.answer_length(inst) for inst in instances) + MARGIN, room)
    generations = greedy_answers(model, prompts, budget, None, batch_size, device)
    sequences = [layout.sequence(inst) for inst in instances]
    targets = [list(range(len(p), len(s))) for p, s in zip(prompts, sequences)]
    forced = teacher_forced(model, sequences, targets, batch_size, device)
    return score(layout, instances, generations, forced)


def score(layout: Layout, instances: Sequence[Instance], generations: Sequence[Sequence[int]],
          forced: Sequence[tuple[int, int]]) -> list[Attempt]:
    """The checker's verdict on each generation, beside its teacher-forced counts."""
    attempts = []
    for inst, generated, (right, total) in zip(instances, generations, forced, strict=True):
        verdict = judge(layout, inst, generated)
        attempts.append(Attempt(inst.n, tuple(generated), verdict.correct, verdict.reason, right, total))
    return attempts


def summarize(attempts: Sequence[Attempt]) -> dict:
    """n, exact-match accuracy, the checker's reasons, teacher-forced token accuracy and forced_exact, and by n."""
    exact = {r["n"]: r for r in accuracy_table([{"n": a.n, "correct": a.correct} for a in attempts], "n")}
    tokens = accuracy_table([{"n": a.n, "correct": a.forced_correct, "total": a.forced_total} for a in attempts], "n")
    right, total = sum(a.forced_correct for a in attempts), sum(a.forced_total for a in attempts)
    return {"n": len(attempts), "accuracy": float(np.mean([a.correct for a in attempts])),
            "reasons": dict(Counter(a.reason for a in attempts if not a.correct).most_common()),
            "token_accuracy": right / total, "forced_exact": float(np.mean([a.forced_correct == a.forced_total for a in attempts])),
            "by_n": {str(r["n"]): {"count": exact[r["n"]]["total"], "accuracy": exact[r["n"]]["accuracy"],
                                   "token_accuracy": r["accuracy"]} for r in tokens}}


def accuracy_rows(metrics: dict) -> list[dict]:
    """Flat rows (eval_set, n, count, accuracy, token_accuracy) for the figure."""
    return [{"eval_set": s, "n": int(n), **cell} for s in ("test", "sizes", "control") if s in metrics
            for n, cell in metrics[s]["by_n"].items()]


def samples(layout: Layout, instances: Sequence[Instance], attempts: Sequence[Attempt], count: int = 2) -> list[dict]:
    """A few answers as vertex lists, gold and generated, with the verdict."""
    vocab = layout.vocab()
    return [{"query": inst.query, "gold": list(inst.answer), "generated": " ".join(vocab.symbols[t] for t in a.generation),
             "correct": a.correct, "reason": a.reason} for inst, a in list(zip(instances, attempts))[:count]]


def first_per_size(instances: Sequence[Instance], count: int) -> list[Instance]:
    """The first `count` instances of each n, in file order."""
    return [instances[i] for i in first_per_size_at(instances, count)]


def first_per_size_at(instances: Sequence[Instance], count: int) -> list[int]:
    """Where `first_per_size`'s instances are in `instances`."""
    seen: Counter[int] = Counter()
    kept = []
    for i, inst in enumerate(instances):
        seen[inst.n] += 1
        if seen[inst.n] <= count:
            kept.append(i)
    return kept


def generation_rows(name: str, layout: Layout, instances: Sequence[Instance], at: Sequence[int],
                    attempts: Sequence[Attempt]) -> list[dict]:
    """The generations table's rows (`physlm.worlds.Evaluated`): index = the instance's row of its Parquet file,
    output = the tokens written after `<ans>` (`<eos>` included when written), error = the checker's reason,
    expected = the gold answer (one valid order of several)."""
    symbols = layout.vocab().symbols
    text = lambda ids: " ".join(symbols[t] for t in ids)  # noqa: E731
    rows = []
    for i, inst, a in zip(at, instances, attempts, strict=True):
        prompt = layout.prompt(inst)
        rows.append({"set": name, "index": i, "prompt": text(prompt[1:]), "output": text(a.generation), "verdict": a.correct,
                     "error": a.reason or None, "n": a.n, "query": inst.query,
                     "expected": text(layout.sequence(inst)[len(prompt):]), "forced_correct": a.forced_correct,
                     "forced_total": a.forced_total})
    return rows


GENERATION_COLUMNS = {"n": pl.Int64, "query": pl.Int64, "expected": pl.String, "forced_correct": pl.Int64,
                      "forced_total": pl.Int64}


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    e = cfg.evaluate
    layout = read_layout(paths.raw)
    check_vocab(paths.tokens, layout)
    model = load_model(paths.model, device)
    sets = {"test": read_instances(paths.raw / "test.parquet", layout, e.examples)}
    at = {"test": list(range(len(sets["test"])))}  # each instance's row of its Parquet file
    if e.size_examples:
        sizes = read_instances(paths.raw / "sizes.parquet", layout)
        at["sizes"] = first_per_size_at(sizes, e.size_examples)
        sets["sizes"] = [sizes[i] for i in at["sizes"]]
    metrics: dict = {"N": layout.N, "names": layout.names}
    # the share of each set's instances that are training instances (small graphs repeat across the splits)
    metrics["in_train"] = {name: float(np.mean(in_split(paths.raw / "train.parquet", layout, found))) for name, found in sets.items()}
    attempts, rows = {}, []
    for name, instances in sets.items():
        attempts[name] = answer(model, layout, instances, batch_size=e.batch_size, device=device)
        metrics[name] = summarize(attempts[name])
        rows += generation_rows(name, layout, instances, at[name], attempts[name])
    if e.control:
        control = random_model(model.cfg, cfg.seed + 1, device)
        found = answer(control, layout, sets["test"], batch_size=e.batch_size, device=device)
        metrics["control"] = summarize(found)
        rows += generation_rows("control", layout, sets["test"], at["test"], found)
    metrics["accuracy_by_n"] = accuracy_rows(metrics)
    metrics["samples"] = samples(layout, sets["test"], attempts["test"])
    headline = {f"{name}_{kind}": metrics[name][kind] for name in ("test", "sizes", "control") if name in metrics
                for kind in ("accuracy", "token_accuracy")}
    line = (f"exact match at n = N = {layout.N}: {metrics['test']['accuracy']:.3f} (teacher-forced tokens "
            f"{metrics['test']['token_accuracy']:.3f})" + (f", control {metrics['control']['accuracy']:.3f}" if e.control else ""))
    return Evaluated(metrics, headline, line, headline, generations_table(rows, GENERATION_COLUMNS))
