"""evaluate@STUDY: generation accuracy judged by the exact membership DP -> metrics/STUDY/evaluate.json.

cut0 samples from <bos> alone; cut<prefix> continues held-out test-sentence prefixes; a random-init model of
the same shape gives the cut0 control. Also the KL to the grammar's exact next-token distribution along
held-out sentences (trained and control), and the collision-based diversity of the cut0 samples against the
grammar's own samples (whole strings, and per NT subtree at each level after a canonical parse), and (`evaluate.cfg.robust`) accuracy on corrupted prompts at several temperatures
(physlm/worlds/cfg/robust.py).

iGSM studies (physlm/worlds/igsm/evaluate.py): every eval set (test, opmax, ood, reask) solved greedily and by beam
search, each solution judged whole; accuracy by op, answer-only accuracy, the judge's first-error reasons,
and unnecessary parameters / operations per correct solution; a random-init control on the test set. Per
eval set (and the control on test), the teacher-forced step checks (`teacher_forced`: is the next parameter
the model names a valid one; are a step's lookup, operands, values and arithmetic right). On a CPU the eval
sets run side by side in `evaluate.igsm.workers` processes (physlm/parallel.py).

Biography studies (physlm/worlds/bio/evaluate.py): the six questions of `evaluate.bio.people` P_train people (seen
in QA training) and as many P_test people (out of distribution: only their biographies were seen) answered
greedily and by beam search, exact match per attribute (evaluate.json; `rows` flat for plots). A
finetuned study also scores its model before finetuning (`pretrained`), which has never seen a question.
"""

import numpy as np

from physlm.artifacts import load_model, random_model
from physlm.cli import Paths, run_stage
from physlm.config import EvaluateStage
from physlm.device import pick_device
from physlm.worlds.cfg.diversity import subtree_diversity_compare
from physlm.worlds.cfg.evaluate import Scored, diversity, kl_to_grammar, sample_cut0, sample_prefix, score_samples
from physlm.generate import load_language
from physlm.io import read_parquet, write_json
from physlm.worlds.cfg.robust import robust_eval
from physlm.tracking import start_run


def main(paths: Paths, cfg: EvaluateStage) -> None:
    if cfg.world == "igsm":
        return main_igsm(paths, cfg)
    if cfg.world == "bio":
        return main_bio(paths, cfg)
    e = cfg.evaluate
    language = load_language(paths.raw)
    grammar, judge = language.grammar, language.judge()
    device = pick_device()
    model = load_model(paths.model, device)
    context = model.cfg.context
    train_set = {tuple(t) for t in read_parquet(paths.raw / "train.parquet", ["tokens"])["tokens"].to_list()}
    held_out = read_parquet(paths.raw / "test.parquet", ["tokens"])["tokens"].to_list()
    test = [t for t in held_out if len(t) > e.prefix][: e.prefix_samples]
    control = random_model(model.cfg, cfg.seed + 1, device)
    common = dict(context=context, temperature=e.temperature, batch_size=e.batch_size)
    results: dict[str, Scored] = {}
    extra: dict = {}
    with start_run(paths.study, "evaluate", cfg.model_dump(), device=str(device)) as run:
        cut0 = sample_cut0(model, samples=e.samples, seed=cfg.seed, **common)
        results["cut0"] = score_samples(cut0, judge, train_set)
        correct = [s if s is not None and judge(s) else None for s in cut0]
        extra["diversity_cut0"] = diversity(correct, held_out)
        if language.bags is None and sum(s is not None for s in correct) >= 2:  # subtrees need the terminals
            extra["subtree_diversity_cut0"] = subtree_diversity_compare(correct, held_out[: len(correct)], grammar)
        if e.kl_sentences:
            kl_set = [t for t in held_out if len(t) < context][: e.kl_sentences]
            extra["kl"] = {"trained": kl_to_grammar(model, grammar, kl_set, e.batch_size, language.bags),
                           "control": kl_to_grammar(control, grammar, kl_set, e.batch_size, language.bags)}
        if test:
            samples = sample_prefix(model, test, prefix=e.prefix, seed=cfg.seed + 1, **common)
            results[f"cut{e.prefix}"] = score_samples(samples, judge, train_set)
        if e.robust.sentences and test and language.bags is None:  # corruption acts on terminals, not on bag tokens
            r = e.robust
            extra["robust"] = robust_eval(model, grammar, test[: r.sentences], prefix=e.prefix, rate=r.rate, kind=r.kind,
                                          temperatures=r.temperatures, context=context, seed=cfg.seed + 3, batch_size=e.batch_size)
        if e.control_samples:
            samples = sample_cut0(control, samples=e.control_samples, seed=cfg.seed + 2, **common)
            results["control_cut0"] = score_samples(samples, judge, train_set)
        metrics = {name: vars(scored) for name, scored in results.items()} | extra
        metrics["data"] = {"test_sentences_accepted": float(np.mean([judge(t) for t in held_out[:100]])),
                           # the baseline for seen_in_train: how often the grammar itself repeats a training sentence
                           "test_sentences_in_train": float(np.mean([tuple(t) in train_set for t in held_out]))}
        run.log_metrics({k: v for k, v in metrics.items() if k not in ("data", "diversity_cut0", "subtree_diversity_cut0")})
        write_json(paths.metrics / "evaluate.json", metrics)
    kl = f", KL {extra['kl']['trained']['mean']:.4f} (control {extra['kl']['control']['mean']:.3f})" if "kl" in extra else ""
    robust = "".join(f", corrupted {t}: repaired {v['repaired']:.3f}" for t, v in extra.get("robust", {}).items() if t.startswith("T"))
    print("evaluate@" + paths.study + ": " + ", ".join(f"{k} {v.accuracy:.3f}" for k, v in results.items()) + kl + robust)


def main_igsm(paths: Paths, cfg: EvaluateStage) -> None:
    from physlm.worlds.igsm.evaluate import accuracy_rows, evaluate_set, summarize
    from physlm.generate import IGSM_EVAL_SETS, load_igsm_problems
    from physlm.parallel import cpu_map, resolve_workers
    from physlm.text import TextVocab

    e = cfg.evaluate
    device = pick_device()
    model = load_model(paths.model, device)
    vocab = TextVocab.load(paths.tokens / "tokenizer.json")
    sets = {s: load_igsm_problems(paths.raw / f"{s}.parquet", e.problems) for s in IGSM_EVAL_SETS}
    jobs = [(model, sets[s], vocab, s, tuple(e.beams), e.batch_size) for s in IGSM_EVAL_SETS]
    if e.control:  # greedy on the test set
        jobs.append((random_model(model.cfg, cfg.seed + 1, device), sets["test"], vocab, "test", (1,), e.batch_size))
    with start_run(paths.study, "evaluate", cfg.model_dump(), device=str(device)) as run:
        done = cpu_map(evaluate_set, jobs, resolve_workers(e.workers) if device.type == "cpu" else 1, desc="iGSM eval sets")
        attempts = [a for found, _ in done[: len(IGSM_EVAL_SETS)] for a in found]
        forced = {s: f for s, (_, f) in zip(IGSM_EVAL_SETS, done)}
        samples = {}
        for s in IGSM_EVAL_SETS:
            for a in [a for a in attempts if a.eval_set == s]:
                shown = samples.setdefault(f"{s}/{a.decoding}", [])
                if len(shown) < 2:
                    shown.append({"problem": sets[s][a.index].problem, "generation": a.generation, "correct": a.correct, "error": a.error})
        metrics = summarize(attempts)
        if e.control:
            found, forced["control"] = done[-1]
            metrics["control"] = summarize(found)["test"]
        metrics["teacher_forced"] = forced
        metrics["samples"] = samples
        metrics["accuracy_by_op"] = accuracy_rows({k: v for k, v in metrics.items() if k in IGSM_EVAL_SETS})
        run.log_metrics({f"{s}_{d}": found["accuracy"] for s in IGSM_EVAL_SETS for d, found in metrics[s].items()})
        run.log_metrics({f"tf_{s}_next_param_valid": f["next_param"]["valid"] for s, f in forced.items() if f["steps"]}
                        | {f"tf_{s}_{k}": c["accuracy"] for s, f in forced.items() for k, c in f["parts"].items() if c["n"]})
        write_json(paths.metrics / "evaluate.json", metrics)
    print(f"evaluate@{paths.study}: " + ", ".join(f"{s}/{d} {found['accuracy']:.3f}" for s in IGSM_EVAL_SETS
                                                  for d, found in metrics[s].items()))


def main_bio(paths: Paths, cfg: EvaluateStage) -> None:
    import polars as pl

    from physlm.worlds.bio.evaluate import accuracy_rows, qa_accuracy
    from physlm.text import TextVocab

    e = cfg.evaluate
    device = pick_device()
    model = load_model(paths.model, device)
    vocab = TextVocab.load(paths.tokens / "tokenizer.json")
    qa = read_parquet(paths.raw / "qa.parquet", ["person", "attribute", "question", "value", "split"])
    people = {split: qa.filter(pl.col("split") == split)["person"].unique(maintain_order=True).to_list()[: e.people]
              for split in ("P_train", "P_test")}
    asked = qa.filter(pl.col("person").is_in(people["P_train"] + people["P_test"]))
    with start_run(paths.study, "evaluate", cfg.model_dump(), device=str(device)) as run:
        metrics = qa_accuracy(model, vocab, asked, beams=e.beams, batch_size=e.batch_size)
        if (paths.model / "pretrained").is_dir():
            before = load_model(paths.model / "pretrained", device)
            metrics["pretrained"] = qa_accuracy(before, vocab, asked, beams=e.beams[:1], batch_size=e.batch_size)
        run.log_metrics({f"{split}_{d}": found["accuracy"] for split in ("P_train", "P_test")
                         for d, found in metrics.get(split, {}).items()})
        metrics["rows"] = accuracy_rows({k: v for k, v in metrics.items() if k != "pretrained"})
        write_json(paths.metrics / "evaluate.json", metrics)
    print(f"evaluate@{paths.study}: " + ", ".join(f"{split}/{d} {found['accuracy']:.3f}" for split in ("P_train", "P_test")
                                                  for d, found in metrics.get(split, {}).items()))


if __name__ == "__main__":
    run_stage("evaluate", main)
