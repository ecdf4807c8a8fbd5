"""The grammar world's evaluate step: generation accuracy judged by the exact membership DP (SPEC 1.3).

cut0 samples from <bos> alone; cut<prefix> continues held-out test-sentence prefixes; a random-init model of
the same shape gives the cut0 control (`generation.py`). Also the KL to the grammar's exact next-token
distribution along held-out sentences (trained and control), the collision-based diversity of the cut0
samples against the grammar's own samples (whole strings, and per NT subtree at each level after a canonical
parse; `diversity.py`), and (`evaluate.cfg.robust`) accuracy on corrupted prompts at several temperatures
(`robust.py`).

Held out: a small grammar repeats sentences across the splits, so with `evaluate.cfg.unseen_prompts` (on in
params.yaml) the cut<prefix> prompts, the KL sentences and the corrupted prompts are test sentences that are
not training sentences. Beside each score, its overlap with the training split: `prompts_in_train` and
`prompt_heads_in_train` (the prompt's first `prefix` tokens begin a training sentence) for cut<prefix>,
`seen_in_train` (correct samples that are training sentences) for every sample set, `sentences_in_train` for
the KL, `prompts_in_train` for the corrupted prompts, and the test split's own `data.test_sentences_in_train`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.io import Paths, read_parquet
from physlm.worlds import Evaluated, generations_table, pick
from physlm.worlds.cfg.diversity import subtree_diversity_compare
from physlm.worlds.cfg.generation import (Scored, accepted, diversity, kl_to_grammar, sample_cut0, sample_prefix, score_judged,
                                          share_in, unseen)
from physlm.worlds.cfg.language import load_language
from physlm.worlds.cfg.robust import robust_eval


def headline(metrics: dict, e) -> dict[str, float]:
    """metrics/<study>/evaluate.json (what `dvc exp show` lists): generation accuracy from <bos> and from a test
    prefix (and the share of those prompts that are training sentences), the random-init control's, distinct
    share, the per-token KL to the grammar's next-token distribution (trained and control), and how often a
    corrupted prefix is repaired, per temperature."""
    cut = f"cut{e.prefix}"
    return pick(metrics, {"cut0_accuracy": ("cut0", "accuracy"), f"{cut}_accuracy": (cut, "accuracy"),
                          f"{cut}_prompts_in_train": (cut, "prompts_in_train"),
                          "control_cut0_accuracy": ("control_cut0", "accuracy"), "cut0_distinct": ("cut0", "distinct"),
                          "kl_trained": ("kl", "trained", "mean"), "kl_control": ("kl", "control", "mean")}
                | {f"repaired_T{float(t):g}": ("robust", f"T{float(t)}", "repaired") for t in e.robust.temperatures})


def text(symbols) -> str:
    """A string of terminals (or an implicit grammar's tokens) as the generations table writes it: ids, space-separated."""
    return " ".join(map(str, symbols))


def generation_rows(name: str, at: list[int], heads: list[list[int]], samples: list[list[int] | None],
                    ok: list[bool]) -> list[dict]:
    """The generations table's rows of one set: prompt = the given head (empty from `<bos>`), output = what the
    model added (null when malformed), the string judged being prompt + output."""
    def error(sample, good):
        if good:
            return None
        return ("malformed: no <eos> within the context, or a special token inside" if sample is None else
                "empty string" if not sample else "not in the language")

    return [{"set": name, "index": i, "prompt": text(head), "output": None if s is None else text(s[len(head):]),
             "verdict": good, "error": error(s, good)} for i, head, s, good in zip(at, heads, samples, ok, strict=True)]


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    e = cfg.evaluate
    language = load_language(paths.raw)
    grammar, judge = language.grammar, language.judge()
    model = load_model(paths.model, device)
    context = model.cfg.context
    tokens = {"tokens": pl.List(pl.UInt16)}  # the sentences' terminals (or bag tokens)
    train_set = {tuple(t) for t in read_parquet(paths.raw / "train.parquet", tokens)["tokens"].to_list()}
    held_out = read_parquet(paths.raw / "test.parquet", tokens)["tokens"].to_list()
    prompts = unseen(held_out, train_set) if e.unseen_prompts else held_out  # KL sentences
    test_at = [i for i, t in enumerate(held_out)  # rows of test.parquet: the cut<prefix> and corrupted prompts
               if len(t) > e.prefix and not (e.unseen_prompts and tuple(t) in train_set)][: e.prefix_samples]
    test = [held_out[i] for i in test_at]
    control = random_model(model.cfg, cfg.seed + 1, device)
    common = dict(context=context, temperature=e.temperature, batch_size=e.batch_size)
    step = f"evaluate {paths.study}:"  # the progress bars' names
    results: dict[str, Scored] = {}
    extra: dict = {}
    rows: list[dict] = []
    cut0 = sample_cut0(model, samples=e.samples, seed=cfg.seed, desc=f"{step} cut0 samples", **common)
    ok = accepted(cut0, judge)
    results["cut0"] = score_judged(cut0, ok, train_set)
    rows += generation_rows("cut0", list(range(len(cut0))), [[]] * len(cut0), cut0, ok)
    correct = [s if good else None for s, good in zip(cut0, ok)]
    extra["diversity_cut0"] = diversity(correct, held_out)
    if language.bags is None and sum(s is not None for s in correct) >= 2:  # subtrees need the terminals
        extra["subtree_diversity_cut0"] = subtree_diversity_compare(correct, held_out[: len(correct)], grammar)
    if e.kl_sentences:
        kl_set = [t for t in prompts if len(t) < context][: e.kl_sentences]
        extra["kl"] = {name: kl_to_grammar(net, grammar, kl_set, e.batch_size, language.bags, desc=f"{step} KL {name}")
                       for name, net in (("trained", model), ("control", control))}
        extra["kl"]["sentences_in_train"] = share_in(kl_set, train_set)
    if test:
        samples = sample_prefix(model, test, prefix=e.prefix, seed=cfg.seed + 1, desc=f"{step} cut{e.prefix} samples", **common)
        ok = accepted(samples, judge)
        results[f"cut{e.prefix}"] = score_judged(samples, ok, train_set)
        rows += generation_rows(f"cut{e.prefix}", test_at, [list(t[: e.prefix]) for t in test], samples, ok)
    if e.robust.sentences and test and language.bags is None:  # corruption acts on terminals, not on bag tokens
        r = e.robust
        extra["robust"] = robust_eval(model, grammar, test[: r.sentences], prefix=e.prefix, rate=r.rate, kind=r.kind,
                                      temperatures=r.temperatures, context=context, seed=cfg.seed + 3, batch_size=e.batch_size,
                                      desc=f"{step} corrupted prefixes")
        extra["robust"]["prompts_in_train"] = share_in(test[: r.sentences], train_set)
    if e.control_samples:
        samples = sample_cut0(control, samples=e.control_samples, seed=cfg.seed + 2, desc=f"{step} control cut0 samples", **common)
        ok = accepted(samples, judge)
        results["control_cut0"] = score_judged(samples, ok, train_set)
        rows += generation_rows("control_cut0", list(range(len(samples))), [[]] * len(samples), samples, ok)
    metrics = {name: vars(scored) for name, scored in results.items()} | extra
    if test:  # the prompts' overlap with training: whole sentences, and heads that begin a training sentence
        heads = {t[: e.prefix] for t in train_set}
        metrics[f"cut{e.prefix}"] |= {"prompts_in_train": share_in(test, train_set),
                                      "prompt_heads_in_train": share_in([t[: e.prefix] for t in test], heads)}
    metrics["data"] = {"test_sentences_accepted": float(np.mean([judge(t) for t in held_out[:100]])),
                       # the baseline for seen_in_train: how often the grammar itself repeats a training sentence
                       "test_sentences_in_train": float(np.mean([tuple(t) in train_set for t in held_out])),
                       "unseen_prompts": e.unseen_prompts}
    log = {k: v for k, v in metrics.items() if k not in ("data", "diversity_cut0", "subtree_diversity_cut0")}
    kl = f", KL {extra['kl']['trained']['mean']:.4f} (control {extra['kl']['control']['mean']:.3f})" if "kl" in extra else ""
    robust = "".join(f", corrupted {t}: repaired {v['repaired']:.3f}" for t, v in extra.get("robust", {}).items() if t.startswith("T"))
    return Evaluated(metrics, log, ", ".join(f"{k} {v.accuracy:.3f}" for k, v in results.items()) + kl + robust,
                     headline(metrics, e), generations_table(rows, {}))
