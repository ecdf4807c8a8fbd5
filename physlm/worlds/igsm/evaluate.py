"""iGSM evaluation (SPEC 2.3): full-solution accuracy by op on every eval set, greedy and beam search, and
the level-1 reasoning statistics.

The model sees `<bos> [PROB] problem [SOL]` and writes `solution [ANS] answer <eos>`; a generation counts as
correct only if the judge (`physlm.worlds.igsm.judge`) accepts the whole solution — any valid order, every
step's arithmetic right mod 23, every necessary parameter present, the answer right — not just the final
number (the answer alone is also reported, against the 1/23 of a guess). For correct solutions the judge
counts the unnecessary parameters and operations (level-0 reasoners compute everything computable; the
paper's models compute almost only what the question needs, except on `reask` problems).
Every eval set's templates are held out from training (test buckets, `problems.EVAL_SETS`); reask problems
can need more operations than max_op, so their accuracy is also split by op range (`by_op_range`).

Teacher-forced steps (`teacher_forced`). Full-solution accuracy needs every step right, so at a small
budget it moves by ~10 points between seeds; each step's parts, with the correct solution so far in the
context, separate recipes far more reliably and say which skill is missing:
- next parameter: after `[SOL]` and the first k sentences of the gold solution, then `Define`, the model
  writes a parameter name greedily; it is `valid` when the parameter is necessary, not yet defined and all
  its predecessors are (what `nece_next` probes from the inside; any valid one counts, not just the gold
  one), else `unnecessary` (ready, not needed), `redefined`, `not_ready` or `unknown` (no parameter of the
  problem). `valid_chance` is what a uniform pick among the problem's parameters scores;
- with the whole gold solution in the context (one forward pass), the argmax at each token of a step
  `v = <operands> = <values> = <result>` (`physlm.worlds.igsm.types`): `lookup` (a constant sentence's
  number, read from the problem text), `operands` (which letters / constant a step combines, and how),
  `values` (the numbers written for the operands, or a copy's value: recalled from earlier steps) and
  `arithmetic` (an operation's result mod 23). A part counts when all its tokens are right. Letters of new
  definitions are the writer's free choice and are not scored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.io import Paths
from physlm.parallel import cpu_map, resolve_workers
from physlm.sampling import beam_search, generate
from physlm.text import TextVocab
from physlm.worlds.igsm.text import igsm_prompt, parse_generation
from physlm.tokenize import Vocab
from physlm.worlds import Evaluated, generations_table
from physlm.worlds.igsm.frames import load_problems
from physlm.worlds.igsm.judge import judge
from physlm.worlds.igsm.labels import CHOICES, PARTS, forced_problem, next_choice
from physlm.worlds.igsm.problems import EVAL_SETS
from physlm.worlds.igsm.types import MOD, Problem


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
    error_detail: str = ""  # the first error in full: reason, sentence, parameter and the judge's explanation


def solve(model: torch.nn.Module, problems: Sequence[Problem], vocab: TextVocab, *, beams: int, batch_size: int,
          desc: str | None = None) -> list[str | None]:
    """The generated continuation text of each problem (None when the prompt leaves no room in the context);
    `desc` names a progress bar (None: none)."""
    context = model.cfg.context
    prompts = [[Vocab.bos_id, *vocab.encode(igsm_prompt(p.problem))] for p in problems]
    fits = [i for i, p in enumerate(prompts) if len(p) < context]
    out: list[str | None] = [None] * len(problems)
    if not fits:
        return out
    room = context + 1 - max(len(prompts[i]) for i in fits)
    chosen = [prompts[i] for i in fits]
    if beams == 1:
        ids = generate(model, chosen, max_new_tokens=room, temperature=0.0, eos_id=Vocab.eos_id, seed=0, batch_size=batch_size,
                       desc=desc)
    else:
        ids = beam_search(model, chosen, beams=beams, max_new_tokens=room, eos_id=Vocab.eos_id, batch_size=batch_size, desc=desc)
    for i, tokens in zip(fits, ids):
        out[i] = vocab.decode([t for t in tokens if t != Vocab.eos_id])
    return out


def evaluate_set(model: torch.nn.Module, problems: Sequence[Problem], vocab: TextVocab, eval_set: str, beams: Sequence[int],
                 batch_size: int, desc: str | None = None) -> tuple[list[Attempt], dict]:
    """One eval set: its problems solved with each beam count (1 = greedy) and judged, and the teacher-forced
    checks; a job of `physlm.parallel.cpu_map` (the evaluate stage runs the sets side by side on a CPU). `desc`
    names a progress bar per part (None: none)."""
    attempts: list[Attempt] = []
    for b in beams:
        decoding = "greedy" if b == 1 else f"beam{b}"
        texts = solve(model, problems, vocab, beams=b, batch_size=batch_size, desc=None if desc is None else f"{desc} {decoding}")
        attempts += score(problems, texts, eval_set=eval_set, decoding=decoding)
    forced_desc = None if desc is None else f"{desc} teacher-forced next parameters"
    return attempts, teacher_forced(model, problems, vocab, batch_size=batch_size, desc=forced_desc)


def score(problems: Sequence[Problem], generations: Sequence[str | None], *, eval_set: str, decoding: str) -> list[Attempt]:
    attempts = []
    for i, (problem, text) in enumerate(zip(problems, generations)):
        if text is None:
            attempts.append(Attempt(eval_set, decoding, i, problem.op, "", False, False, "too_long", 0, 0,
                                    "too_long: the prompt leaves no room in the context"))
            continue
        solution, answer = parse_generation(text)
        verdict = judge(problem, solution, answer)
        error = "" if verdict.correct else (verdict.first_error.reason if verdict.first_error else "unknown")
        attempts.append(Attempt(eval_set, decoding, i, problem.op, text, verdict.correct, answer == problem.answer, error,
                                verdict.unnecessary_params, verdict.unnecessary_ops, describe(verdict.first_error, error)))
    return attempts


def describe(first, reason: str) -> str:
    """The judge's first error (`physlm.worlds.igsm.judge.JudgeError`) in one line: "reason at sentence i (param):
    detail" (sentences from 0; "" when there is none)."""
    if first is None:
        return reason
    param = f" ({first.param})" if first.param else ""
    return f"{first.reason} at sentence {first.sentence}{param}: {first.detail}"


def generation_rows(attempts: Sequence[Attempt], sets: dict[str, Sequence[Problem]], name: str | None = None) -> list[dict]:
    """The generations table's rows (`physlm.worlds.Evaluated`) of judged attempts; `name` is the set the rows
    go under when not the attempt's eval set (the control)."""
    return [{"set": name or a.eval_set, "index": a.index, "prompt": igsm_prompt(sets[a.eval_set][a.index].problem),
             "output": None if a.error == "too_long" else a.generation, "verdict": a.correct,
             "error": None if a.correct else a.error_detail, "decoding": a.decoding, "op": a.op,
             "answer": sets[a.eval_set][a.index].answer, "answer_correct": a.answer_correct} for a in attempts]


GENERATION_COLUMNS = {"decoding": pl.String, "op": pl.Int64, "answer": pl.Int64, "answer_correct": pl.Boolean}


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


# ------------------------------------------------------------------------- teacher-forced steps

def teacher_forced(model: torch.nn.Module, problems: Sequence[Problem], vocab: TextVocab, *, batch_size: int,
                   desc: str | None = None) -> dict:
    """The teacher-forced step checks of the module docstring on `problems` (those whose gold sequence fits
    the context): choice fractions and valid_chance, `by_op` valid rates, and per part its accuracy and n.
    `desc` names a progress bar over the next-parameter prompts, the long part (None: none)."""
    context = model.cfg.context
    every = [(p, forced_problem(p, vocab)) for p in problems]
    longest = max((len(vocab.encode(q.name)) for p in problems for q in p.params), default=1)  # a name's tokens
    forced = [(p, fp) for p, fp in every if len(fp.ids) + longest <= context]  # room to write a name after any k
    device = next(model.parameters()).device
    hits: dict[str, list[bool]] = {k: [] for k in PARTS}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(forced), batch_size):
            batch = [fp for _, fp in forced[start : start + batch_size]]
            idx = torch.zeros((len(batch), max(len(fp.ids) for fp in batch)), dtype=torch.long)
            for row, fp in enumerate(batch):  # right padding: a causal model's real positions never see it
                idx[row, : len(fp.ids)] = torch.as_tensor(fp.ids)
            with torch.no_grad():
                pred = model(idx.to(device))[0].argmax(-1).cpu()
            for row, fp in enumerate(batch):
                target = idx[row]
                for kind, a, b in fp.parts:
                    hits[kind].append(bool((pred[row, a - 1 : b - 1] == target[a:b]).all()))
    finally:
        model.train(was_training)
    define, as_ = vocab.id("Define"), vocab.id("as")
    prompts, where = [], []
    for p, fp in forced:
        for k, s in enumerate(fp.sentence_starts):
            prompts.append([*fp.ids[:s], define])
            where.append((p, k))
    outs = generate(model, prompts, max_new_tokens=longest + 1, temperature=0.0, eos_id=Vocab.eos_id, seed=0,
                    batch_size=batch_size, desc=desc) if prompts else []
    choices, chance, by_op = [], [], defaultdict(list)
    for (p, k), out in zip(where, outs):
        done = set(p.order[:k])
        choice = next_choice(p, done, vocab.decode(out[: out.index(as_)]) if as_ in out else None)
        choices.append(choice)
        chance.append(np.mean([next_choice(p, done, q.name) == "valid" for q in p.params]))
        by_op[p.op].append(choice == "valid")
    count = Counter(choices)
    return {
        "problems": len(forced),
        "steps": len(choices),
        "next_param": {c: count[c] / len(choices) if choices else None for c in CHOICES},
        "valid_chance": float(np.mean(chance)) if chance else None,
        "valid_by_op": {str(op): {"n": len(v), "accuracy": float(np.mean(v))} for op, v in sorted(by_op.items())},
        "parts": {k: {"n": len(v), "accuracy": float(np.mean(v)) if v else None} for k, v in hits.items()},
    }


def by_op_range(by_op: dict, max_op: int) -> dict:
    """A summary's `by_op` cells merged into the trained op range (op <= max_op) and beyond it (op > max_op):
    {max_op, op_le_max: {n, accuracy}, op_gt_max: {n, accuracy}}, accuracy None for an empty range. Reask
    problems need it: asking for another parameter can need more operations than any training problem."""
    ranges: dict[str, list[tuple[int, float]]] = {"op_le_max": [], "op_gt_max": []}
    for op, cell in by_op.items():
        ranges["op_le_max" if int(op) <= max_op else "op_gt_max"].append((cell["n"], cell["accuracy"]))
    return {"max_op": max_op} | {
        name: {"n": sum(n for n, _ in cells), "accuracy": sum(n * a for n, a in cells) / sum(n for n, _ in cells) if cells else None}
        for name, cells in ranges.items()}


def accuracy_rows(summary: dict) -> list[dict]:
    """Flat rows (eval_set, decoding, op, n, accuracy) for the CSV plot file and the figures."""
    return [{"eval_set": s, "decoding": d, "op": int(op), "n": cell["n"], "accuracy": cell["accuracy"]}
            for s, decodings in summary.items() for d, found in decodings.items() for op, cell in found["by_op"].items()]


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    """The evaluate step: every eval set solved greedily and by beam search, each solution judged whole;
    accuracy by op, answer-only accuracy, the judge's first-error reasons, and unnecessary parameters /
    operations per correct solution; a random-init control on the test set. Per eval set (and the control on
    test), the teacher-forced step checks (`teacher_forced`). On a CPU the eval sets run side by side in
    `evaluate.igsm.workers` processes (`physlm.parallel.cpu_map`)."""
    e = cfg.evaluate
    model = load_model(paths.model, device)
    vocab = TextVocab.load(paths.tokens / "tokenizer.json")
    sets = {s: load_problems(paths.raw / f"{s}.parquet", e.problems) for s in EVAL_SETS}
    jobs = [(model, sets[s], vocab, s, tuple(e.beams), e.batch_size) for s in EVAL_SETS]
    if e.control:  # greedy on the test set
        jobs.append((random_model(model.cfg, cfg.seed + 1, device), sets["test"], vocab, "test", (1,), e.batch_size))
    workers = min(resolve_workers(e.workers) if device.type == "cpu" else 1, len(jobs))
    step = f"evaluate {paths.study}:"
    bars = [f"{step} {name}" if workers == 1 else None for name in (*EVAL_SETS, "control")]  # bars of jobs run in this process
    done = cpu_map(evaluate_set, [(*job, bar) for job, bar in zip(jobs, bars)], workers, desc=f"{step} eval sets")
    attempts = [a for found, _ in done[: len(EVAL_SETS)] for a in found]
    forced = {s: f for s, (_, f) in zip(EVAL_SETS, done)}
    samples = {}
    for s in EVAL_SETS:
        for a in [a for a in attempts if a.eval_set == s]:
            shown = samples.setdefault(f"{s}/{a.decoding}", [])
            if len(shown) < 2:
                shown.append({"problem": sets[s][a.index].problem, "generation": a.generation, "correct": a.correct, "error": a.error})
    metrics = summarize(attempts)
    rows = generation_rows(attempts, sets)
    max_op = max(p.op for p in sets["opmax"])  # opmax problems have op = max_op exactly (problems.eval_problem)
    for found in metrics["reask"].values():
        found["by_op_range"] = by_op_range(found["by_op"], max_op)
    if e.control:
        found, forced["control"] = done[-1]
        metrics["control"] = summarize(found)["test"]
        rows += generation_rows(found, sets, "control")
    metrics["teacher_forced"] = forced
    metrics["samples"] = samples
    metrics["accuracy_by_op"] = accuracy_rows({k: v for k, v in metrics.items() if k in EVAL_SETS})
    log = ({f"{s}_{d}": found["accuracy"] for s in EVAL_SETS for d, found in metrics[s].items()}
           | {f"tf_{s}_next_param_valid": f["next_param"]["valid"] for s, f in forced.items() if f["steps"]}
           | {f"tf_{s}_{k}": c["accuracy"] for s, f in forced.items() for k, c in f["parts"].items() if c["n"]})
    line = ", ".join(f"{s}/{d} {found['accuracy']:.3f}" for s in EVAL_SETS for d, found in metrics[s].items())
    # metrics/<study>/evaluate.json (what `dvc exp show` lists): whole-solution accuracy per eval set and decoding,
    # reask's within and beyond the trained op range, the control's, and the teacher-forced share of valid next
    # parameters on the test set
    headline = ({f"{s}_{d}": found["accuracy"] for s in EVAL_SETS for d, found in metrics[s].items()}
                | {f"reask_{r}_{d}": found["by_op_range"][r]["accuracy"] for d, found in metrics["reask"].items()
                   for r in ("op_le_max", "op_gt_max") if found["by_op_range"][r]["n"]}
                | {f"control_{d}": found["accuracy"] for d, found in metrics.get("control", {}).items()})
    if forced["test"]["steps"]:
        headline["tf_test_next_param_valid"] = forced["test"]["next_param"]["valid"]
    return Evaluated(metrics, log, line, headline, generations_table(rows, GENERATION_COLUMNS))
