"""The Depo world's evaluate step: k-hop accuracy at n = N, by k (SPEC 7.3; the choice of SPEC 11.1.5).

The first `evaluate.depo.instances` test instances (n = N, hops over the test hops) are scored query by query:
- exact match (the headline): the prompt is the instance up to and including the query's `<ans>`, the
  earlier queries of the instance standing with their true answers (the instance as written, as in
  training: the model only ever saw answered queries before a query, so this scores each query on its own
  and a wrong early answer does not spoil the later ones); the model writes greedily
  (`physlm.playground_eval.greedy_answers`) until it writes a word's last symbol (V+1..2V) or anything that is no
  word symbol, at most max_len tokens; correct = exactly the answer's symbols. A special token, an unended
  word or a wrong symbol is wrong; `malformed` counts the first two.
- teacher forcing (beside it): one forward pass per instance; each answer symbol is right when the model's
  argmax given the true prefix is that symbol (`physlm.playground_eval.target_hits`). `exact_tf` is the share of
  answers with every symbol right under teacher forcing, which is the greedy exact match by construction
  (greedy writes exactly the true prefix while it is right; tests/test_depo.py checks the two agree), up to
  float rounding between the cached and uncached paths.
Reported per k and overall, for the trained model and (`control`) a random-init one of the same shape.
metrics/<study>/evaluate.json: acc_k1, acc_kK_half (k = K/2, when tested), acc_kK, tf_kK.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.errors import DataError
from physlm.io import Paths, read_parquet
from physlm.playground import accuracy_table
from physlm.playground_eval import greedy_answers, target_hits
from physlm.worlds import Evaluated, generations_table, pick
from physlm.worlds.depo.tokenize import COLUMNS, DepoTokens, Scored, check_vocab, encode_instances, load_tokens


def score(model: torch.nn.Module, instances: list[Scored], tokens: DepoTokens, *, batch_size: int,
          device: torch.device | str) -> list[dict]:
    """One row per query: instance, query, k, correct (greedy exact match), malformed, tf_correct, tf_total
    (answer symbols right under teacher forcing), exact_tf (all of them right), and the token ids of the prompt,
    of what the model wrote (`written`) and of the answer (`wanted`)."""
    prompts = [inst.ids[: p + 1] for inst in instances for p in inst.ans_at]
    wanted = [w for inst in instances for w in inst.answers]
    ended = lambda toks: tokens.is_end(toks[-1]) or not tokens.is_symbol(toks[-1])  # noqa: E731
    written = greedy_answers(model, prompts, tokens.spec.max_len, ended, batch_size, device)
    targets = [[p + 1 + i for p, w in zip(inst.ans_at, inst.answers) for i in range(len(w))] for inst in instances]
    hits = target_hits(model, [inst.ids for inst in instances], targets, batch_size, device)
    rows, q = [], 0
    for i, (inst, h) in enumerate(zip(instances, hits)):
        at = 0
        for j, (k, w) in enumerate(zip(inst.hops, inst.answers)):
            mine = h[at : at + len(w)]
            at += len(w)
            out = written[q]
            malformed = not out or not tokens.is_end(out[-1]) or not all(tokens.is_symbol(t) for t in out)
            rows.append({"instance": i, "query": j, "k": k, "correct": out == wanted[q], "malformed": malformed,
                         "tf_correct": int(mine.sum()), "tf_total": len(w), "exact_tf": bool(mine.all()),
                         "prompt": prompts[q], "written": out, "wanted": wanted[q]})
            q += 1
    return rows


def summarize(rows: list[dict]) -> dict:
    """Accuracy, teacher-forced symbol accuracy, exact_tf and malformed share, overall and per k."""
    def block(rs: list[dict]) -> dict:
        tf = accuracy_table([{"all": 0, "correct": r["tf_correct"], "total": r["tf_total"]} for r in rs], "all")[0]
        return {"queries": len(rs), "accuracy": float(np.mean([r["correct"] for r in rs])), "tf_accuracy": tf["accuracy"],
                "exact_tf": float(np.mean([r["exact_tf"] for r in rs])), "malformed": float(np.mean([r["malformed"] for r in rs]))}

    by_k = {str(k): block([r for r in rows if r["k"] == k]) for k in sorted({r["k"] for r in rows})}
    return {**block(rows), "by_k": by_k}


def generation_rows(name: str, rows: list[dict], tokens: DepoTokens) -> list[dict]:
    """The generations table's rows (`physlm.worlds.Evaluated`) of `score`'s rows: index = the instance's row of
    raw/test.parquet, output = the symbols written (a word-end symbol ends it), expected = the answer's."""
    text = lambda ids: " ".join(tokens.vocab.symbols[t] for t in ids)  # noqa: E731
    return [{"set": name, "index": r["instance"], "prompt": text(r["prompt"][1:]), "output": text(r["written"]),
             "verdict": r["correct"], "error": None if r["correct"] else "malformed" if r["malformed"] else "wrong word",
             "query": r["query"], "k": r["k"], "expected": text(r["wanted"]), "tf_correct": r["tf_correct"],
             "tf_total": r["tf_total"]} for r in rows]


GENERATION_COLUMNS = {"query": pl.Int64, "k": pl.Int64, "expected": pl.String, "tf_correct": pl.Int64, "tf_total": pl.Int64}


def headline(metrics: dict, K: int) -> dict[str, float]:
    """metrics/<study>/evaluate.json: the trained model's exact match at k = 1, K/2 (when K is even and K/2 is
    tested) and K (the paper reports k = K and K/2), and its teacher-forced symbol accuracy at k = K."""
    paths = {"acc_k1": ("trained", "by_k", "1", "accuracy"), "acc_kK": ("trained", "by_k", str(K), "accuracy"),
             "tf_kK": ("trained", "by_k", str(K), "tf_accuracy")}
    if K % 2 == 0:
        paths["acc_kK_half"] = ("trained", "by_k", str(K // 2), "accuracy")
    return pick(metrics, paths)


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    e = cfg.evaluate
    tokens = load_tokens(paths.raw)
    check_vocab(paths.tokens, tokens)
    model = load_model(paths.model, device)
    frame = read_parquet(paths.raw / "test.parquet", COLUMNS).head(e.instances)
    instances = encode_instances(frame, tokens)
    longest = max(len(inst.ids) for inst in instances)
    if longest > model.cfg.context:
        raise DataError(f"{paths.raw / 'test.parquet'}: test instances reach {longest} tokens with <bos>, beyond the"
                        f" model context {model.cfg.context} (raise tokenize.context or lower generate.N)")
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if e.control else {})
    metrics: dict = {"instances": len(instances), "N": tokens.spec.N, "K": tokens.spec.K, "test_hops": list(tokens.spec.test_hops)}
    generations = []
    for name, net in models.items():
        rows = score(net, instances, tokens, batch_size=e.batch_size, device=device)
        metrics[name] = summarize(rows)
        generations += generation_rows(name, rows, tokens)
    K = tokens.spec.K
    log = {f"{name}_{key}_k{k}": v[key] for name in models for k, v in metrics[name]["by_k"].items()
           for key in ("accuracy", "tf_accuracy")}
    by_k = ", ".join(f"k={k} {v['accuracy']:.3f} (tf {v['tf_accuracy']:.3f})" for k, v in metrics["trained"]["by_k"].items())
    line = f"{len(instances)} instances at n = {tokens.spec.N}, exact match by k: {by_k}"
    if e.control:
        line += f"; control {metrics['control']['accuracy']:.3f}"
    return Evaluated(metrics, log, line, headline(metrics, K), generations_table(generations, GENERATION_COLUMNS))
