"""Mano evaluation (SPEC 7.3): single-token answer accuracy at ℓ = L, and by ℓ over the lengths eval set.

The model is given `<bos> <len_ℓ> expression <ans>` and writes one token greedily
(`physlm.playground.greedy_answers`, cut after one token); it is right when that token is the value mod 23.
Teacher forcing (`physlm.playground.teacher_forced` on the whole example, target = the value's position) asks
the same question: the argmax after the true prefix. The answer is a single token, so the two accuracies are
equal by construction (both are reported; a difference would point at the decoding path, e.g. padding). The
chance level is 1/23. With `control`, a random-init model of the same shape is scored on the test set.

tests/test_mano.py scores known answers through a scripted model (exact accuracies, by ℓ) and the whole step
on a tiny trained model.
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
from physlm.worlds.mano.tokenize import VALUE_IDS, VOCAB, Row, check_vocab, in_split, read_modulus, read_rows


@dataclass(frozen=True)
class Answer:
    """One example answered: the greedy token and the teacher-forced verdict."""

    ops: int
    value: int
    token: int | None  # the greedy token (None: nothing was written)
    greedy: bool  # the greedy token is the value
    forced: bool  # teacher forcing: the argmax after the true prefix is the value


def answer(model: torch.nn.Module, rows: Sequence[Row], *, batch_size: int, device: torch.device) -> list[Answer]:
    """Every example answered greedily and teacher-forced."""
    greedy = greedy_answers(model, [r.prompt for r in rows], 1, lambda tokens: len(tokens) >= 1, batch_size, device)
    forced = teacher_forced(model, [r.sequence for r in rows], [[len(r.ids)] for r in rows], batch_size, device)
    return score(rows, [g[0] if g else None for g in greedy], [c == t for c, t in forced])


def score(rows: Sequence[Row], tokens: Sequence[int | None], forced: Sequence[bool]) -> list[Answer]:
    """The verdicts on given greedy tokens and teacher-forced hits."""
    return [Answer(r.ops, r.value, t, t == VALUE_IDS[r.value], bool(f)) for r, t, f in zip(rows, tokens, forced, strict=True)]


def summarize(answers: Sequence[Answer]) -> dict:
    """n, greedy and teacher-forced accuracy, and both by ℓ ({ℓ: {n, greedy, teacher_forced}})."""
    greedy = accuracy_table([{"ops": a.ops, "correct": a.greedy} for a in answers], "ops")
    forced = {r["ops"]: r["accuracy"] for r in accuracy_table([{"ops": a.ops, "correct": a.forced} for a in answers], "ops")}
    return {"n": len(answers), "greedy": float(np.mean([a.greedy for a in answers])),
            "teacher_forced": float(np.mean([a.forced for a in answers])),
            "by_ops": {str(r["ops"]): {"n": r["total"], "greedy": r["accuracy"], "teacher_forced": forced[r["ops"]]} for r in greedy}}


def accuracy_rows(metrics: dict) -> list[dict]:
    """Flat rows (eval_set, ops, n, greedy, teacher_forced) for the figure."""
    return [{"eval_set": s, "ops": int(ops), **cell} for s in ("test", "lengths", "control") if s in metrics
            for ops, cell in metrics[s]["by_ops"].items()]


def first_per_length(rows: Sequence[Row], count: int) -> list[Row]:
    """The first `count` examples of each ℓ, in file order."""
    return [rows[i] for i in first_per_length_at(rows, count)]


def first_per_length_at(rows: Sequence[Row], count: int) -> list[int]:
    """Where `first_per_length`'s examples are in `rows`."""
    seen: Counter[int] = Counter()
    kept = []
    for i, r in enumerate(rows):
        seen[r.ops] += 1
        if seen[r.ops] <= count:
            kept.append(i)
    return kept


def generation_rows(name: str, rows: Sequence[Row], at: Sequence[int], answers: Sequence[Answer]) -> list[dict]:
    """The generations table's rows (`physlm.worlds.Evaluated`): index = the example's row of its Parquet file,
    output = the one token written (null: none), expected = the value."""
    symbols = VOCAB.symbols
    return [{"set": name, "index": i, "prompt": " ".join(symbols[t] for t in r.prompt[1:]),
             "output": None if a.token is None else symbols[a.token], "verdict": a.greedy,
             "error": None if a.greedy else "no token" if a.token is None else "wrong value", "ell": a.ops,
             "expected": str(a.value), "teacher_forced": a.forced} for i, r, a in zip(at, rows, answers, strict=True)]


GENERATION_COLUMNS = {"ell": pl.Int64, "expected": pl.String, "teacher_forced": pl.Boolean}


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    e = cfg.evaluate
    check_vocab(paths.tokens)
    modulus = read_modulus(paths.raw)
    model = load_model(paths.model, device)
    sets = {"test": read_rows(paths.raw / "test.parquet", e.examples)}
    at = {"test": list(range(len(sets["test"])))}  # each example's row of its Parquet file
    if e.length_examples:
        lengths = read_rows(paths.raw / "lengths.parquet")
        at["lengths"] = first_per_length_at(lengths, e.length_examples)
        sets["lengths"] = [lengths[i] for i in at["lengths"]]
    metrics: dict = {"max_ops": max(r.ops for r in sets["test"]), "modulus": modulus, "chance": 1.0 / modulus}
    # the share of each set's examples that are training examples (short expressions repeat across the splits)
    metrics["in_train"] = {name: float(np.mean(in_split(paths.raw / "train.parquet", rows))) for name, rows in sets.items()}
    generations = []
    for name, rows in sets.items():
        answers = answer(model, rows, batch_size=e.batch_size, device=device)
        metrics[name] = summarize(answers)
        generations += generation_rows(name, rows, at[name], answers)
    if e.control:
        control = random_model(model.cfg, cfg.seed + 1, device)
        answers = answer(control, sets["test"], batch_size=e.batch_size, device=device)
        metrics["control"] = summarize(answers)
        generations += generation_rows("control", sets["test"], at["test"], answers)
    metrics["accuracy_by_ops"] = accuracy_rows(metrics)
    headline = {f"{name}_{kind}": metrics[name][kind] for name in ("test", "lengths", "control") if name in metrics
                for kind in ("greedy", "teacher_forced")}
    line = f"answer accuracy at ℓ = {metrics['max_ops']}: greedy {metrics['test']['greedy']:.3f}, teacher-forced " \
           f"{metrics['test']['teacher_forced']:.3f}" + (f", control {metrics['control']['greedy']:.3f}" if e.control else "") + \
           f" (chance 1/{modulus} = {1 / modulus:.3f})"
    return Evaluated(metrics, headline, line, headline, generations_table(generations, GENERATION_COLUMNS))
