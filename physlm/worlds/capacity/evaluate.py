"""Part 3.3's capacity measurement (SPEC 6.2) as the capacity world's evaluate step.

Every person's writing 0 (people.parquet's text) is given to the model as `<bos> paragraph` and each token's loss
is read (natural log, teacher-forced, the paragraph alone). Summed per person: p1 over the three name tokens (the
name as generated from `<bos>`), p2 over the C x L value tokens of each attribute (given the name and the
attribute, and the sentences before it; averaged over person-attributes) and p3 over the first chunk's L tokens.
`bits.stored_bits` turns the averages into the lower bound on stored bits, whose three terms are all reported;
`bits.upper_bound` is the data's own bits.

P is counted two ways, both reported:
- `paper`: the paper's count, whose embeddings have rows only for the tokens the data uses (SPEC 6.2): physlm's
  count less, in the input embedding and in the output head, the rows of vocabulary tokens the train split never
  holds (name parts of the pools that no person has). physlm's head is untied by default (physlm/model.py), so it
  is counted as a matrix of its own (used tokens x width), beside the input embedding; a tied model
  (model.tie_embeddings) has the one matrix, counted once;
- `physlm`: the plain parameter count of the model, every vocabulary row of both matrices.
R(F) = bits / P under each, and the point is capacity-bound under each when the data's bits exceed 2P.

With `control`, a random-init model of the same shape is measured the same way: it stores nothing, and its bound
comes out negative (its losses are worse than a uniform guess over each set); reported as it is, never clamped.

With `quantize` (int8, int4), copies of the trained model with every Linear and Embedding weight
round-to-nearest quantized (symmetric, per output channel; `quantize.py`) are measured by the same code, P
unchanged (the same parameters, now of b bits): `quantized.<format>` holds their losses, bits and R(F) beside what
was quantized (SPEC 6.3, P3.3-d: the paper finds int8 loses nothing and int4 more than half).

With junk in the train split (the junk-data study: meta.json's `junk`), the measurement above is still over the
useful people only (the formula's N); the prompts are as the model was trained on them: `<bos> <useful>
paragraph` where the dataset has the domain token (its own loss is not counted: the positions above are the
paragraph's). `junk` adds, for the trained model only, the mean p1, p2, p3 of as many junk people as useful ones
measured (the first, all of them trained on: junk writing 0 of junk person j is the j-th junk paragraph), their
writing 0 without the domain token: did the model store the junk? (the repetitive-junk control's few junk people,
repeated thousands of times, are expected to be memorised).

tests/test_capacity_stages.py measures a scripted model whose losses are known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.io import Paths, read_json, read_parquet
from physlm.worlds import Evaluated, generations_table
from physlm.worlds.capacity.biod import Spec, value_positions
from physlm.worlds.capacity.bits import capacity_bound, ratio, stored_bits, upper_bound
from physlm.worlds.capacity.quantize import quantize
from physlm.worlds.capacity.tokenize import check_vocab, domain_token_id, encode_text, read_spec, with_marker


@dataclass(frozen=True)
class Losses:
    """Per person: p1 (name), and per attribute p2 (all value tokens) and p3 (the first chunk), nats, summed."""

    p1: np.ndarray  # [people]
    p2: np.ndarray  # [people, K]
    p3: np.ndarray  # [people, K]

    def means(self) -> dict[str, float]:
        return {"p1": float(self.p1.mean()), "p2": float(self.p2.mean()), "p3": float(self.p3.mean())}


@torch.no_grad()
def token_losses(model: torch.nn.Module, paragraphs: np.ndarray, bos: int, batch_size: int) -> np.ndarray:
    """[people, tokens]: -ln p(token k | <bos>, tokens before k) of every paragraph (all of one length)."""
    device = next(model.parameters()).device
    out = []
    for lo in range(0, len(paragraphs), batch_size):
        ids = torch.as_tensor(np.asarray(paragraphs[lo : lo + batch_size], dtype=np.int64), device=device)
        inputs = torch.cat([torch.full_like(ids[:, :1], bos), ids[:, :-1]], dim=1)
        logits, _ = model(inputs)
        nll = -torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[..., None])[..., 0]
        out.append(nll.cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def person_losses(nll: np.ndarray, orders: list[list[int]], spec: Spec) -> Losses:
    """Sum each person's token losses over the name, each attribute's value, and its first chunk."""
    p2 = np.zeros((len(nll), spec.K))
    p3 = np.zeros((len(nll), spec.K))
    for n, attributes in enumerate(orders):
        for a, where in value_positions(attributes, spec.K, spec.C, spec.L).items():
            p2[n, a - 1] = nll[n, where].sum()
            p3[n, a - 1] = nll[n, where[: spec.L]].sum()
    return Losses(nll[:, :3].sum(axis=1), p2, p3)


def formula_inputs(spec: Spec) -> dict[str, int]:
    return {"N0": spec.N0, "N": spec.N, "K": spec.K, "C": spec.C, "D": spec.D, "L": spec.L, "T": spec.T}


def measure(losses: Losses, spec: Spec, params: dict[str, int]) -> dict:
    """The averages, the bound's terms and R(F) under each parameter count."""
    p = losses.means()
    bits = stored_bits(p["p1"], p["p2"], p["p3"], **formula_inputs(spec))
    return p | {"bits": bits.as_dict()} | {f"R_{name}": ratio(bits.total, count) for name, count in params.items()}


def parameter_counts(model: torch.nn.Module, used_tokens: int) -> dict[str, int]:
    """{"paper": P without the unused tokens' embedding and head rows, "physlm": every parameter}."""
    total = model.num_params()
    unused = model.cfg.vocab_size - used_tokens
    matrices = 1 if model.cfg.tie_embeddings else 2  # the input embedding, and the output head unless tied
    return {"paper": total - matrices * unused * model.cfg.width, "physlm": total}


def read_paragraphs(raw: Path, tokens: Path, spec: Spec, limit: int, junk: bool = False
                    ) -> tuple[np.ndarray, list[list[int]], list[str]]:
    """Writing 0 of the first `limit` people (0: all) as token ids, each one's attribute order, and the text; with
    `junk`, of the junk people (junk.parquet)."""
    vocab = check_vocab(tokens, spec)
    ids = {s: i for i, s in enumerate(vocab.symbols)}
    path = raw / ("junk.parquet" if junk else "people.parquet")
    people = read_parquet(path, {"text": pl.String, "order": pl.List(pl.Int64)})
    people = people.head(limit) if limit else people
    return (np.asarray([encode_text(ids, t, str(path)) for t in people["text"]]), people["order"].to_list(),
            people["text"].to_list())


def generation_rows(name: str, losses: Losses, texts: list[str]) -> list[dict]:
    """The generations table's rows (`physlm.worlds.Evaluated`; this world generates nothing: it scores
    losses): one per person, index = the row of raw/people.parquet, prompt = the paragraph scored, p1 its name's
    loss, p2 and p3 per attribute (1..K) its value's and first chunk's, in nats, whose means are the metrics'."""
    return [{"set": name, "index": n, "prompt": text, "p1": float(losses.p1[n]), "p2": losses.p2[n].tolist(),
             "p3": losses.p3[n].tolist()} for n, text in enumerate(texts)]


GENERATION_COLUMNS = {"p1": pl.Float64, "p2": pl.List(pl.Float64), "p3": pl.List(pl.Float64)}


def paragraph_losses(model: torch.nn.Module, paragraphs: np.ndarray, bos: int, marker: int | None, batch_size: int) -> np.ndarray:
    """token_losses of the paragraphs as trained on: after the domain token `marker` where the dataset has one, whose
    own loss is dropped (the columns are the paragraph's tokens)."""
    nll = token_losses(model, with_marker(paragraphs, marker), bos, batch_size)
    return nll if marker is None else nll[:, 1:]


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    e = cfg.evaluate
    spec = read_spec(paths.raw)
    meta = read_json(paths.tokens / "meta.json", ("used_tokens", "bos_id"))
    marker = domain_token_id(paths.tokens)
    paragraphs, orders, texts = read_paragraphs(paths.raw, paths.tokens, spec, e.people)
    model = load_model(paths.model, device)
    counts = parameter_counts(model, meta["used_tokens"])
    upper = upper_bound(**formula_inputs(spec)).as_dict()
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if e.control else {})
    metrics: dict = {"spec": formula_inputs(spec), "people": len(paragraphs), "upper_bound": upper,
                     "params": counts | {"vocab_size": model.cfg.vocab_size, "used_tokens": meta["used_tokens"],
                                         "width": model.cfg.width, "head": "tied: the embedding's matrix, counted once" if model.cfg.tie_embeddings
                                         else "untied, counted as its own matrix"},
                     "capacity_bound": {name: capacity_bound(upper["total"], count) for name, count in counts.items()}}
    rows = []
    for name, m in models.items():
        nll = paragraph_losses(m, paragraphs, meta["bos_id"], marker, e.batch_size)
        losses = person_losses(nll, orders, spec)
        metrics[name] = measure(losses, spec, counts)
        rows += generation_rows(name, losses, texts)
    junk = meta.get("junk")
    if junk:  # the junk people's losses under the trained model (module docstring)
        written = min(junk["people"], junk["paragraphs"])  # junk people with a writing in the train split
        junk_paragraphs, junk_orders, _ = read_paragraphs(paths.raw, paths.tokens, spec, min(written, len(paragraphs)), junk=True)
        nll = paragraph_losses(model, junk_paragraphs, meta["bos_id"], None, e.batch_size)
        metrics["junk"] = {"people": junk["people"], "paragraphs": junk["paragraphs"], "fraction": junk["fraction"],
                           "requested": junk["requested"], "domain_token": marker is not None, "measured_people": len(junk_paragraphs),
                           **person_losses(nll, junk_orders, spec).means()}
    if e.quantize:
        metrics["quantized"] = {}
    for fmt in e.quantize:
        rounded, done = quantize(model, fmt)
        nll = paragraph_losses(rounded, paragraphs, meta["bos_id"], marker, e.batch_size)
        losses = person_losses(nll, orders, spec)
        metrics["quantized"][fmt] = done | measure(losses, spec, counts)
        rows += generation_rows(f"quantized/{fmt}", losses, texts)
        del rounded
    t = metrics["trained"]
    headline = {"bits": t["bits"]["total"], "R_paper": t["R_paper"], "R_physlm": t["R_physlm"], "p1": t["p1"], "p2": t["p2"],
                "p3": t["p3"], "upper_bound_bits": upper["total"], "params_paper": counts["paper"],
                "params_physlm": counts["physlm"], **{f"capacity_bound_{k}": int(v) for k, v in metrics["capacity_bound"].items()}}
    if e.control:
        headline |= {"control_bits": metrics["control"]["bits"]["total"], "control_R_paper": metrics["control"]["R_paper"]}
    if junk:
        headline |= {f"junk_{k}": metrics["junk"][k] for k in ("p1", "p2", "p3")}
    for fmt, q in metrics.get("quantized", {}).items():
        headline |= {f"bits_{fmt}": q["bits"]["total"], f"R_paper_{fmt}": q["R_paper"], f"R_physlm_{fmt}": q["R_physlm"]}
    line = (f"stored {t['bits']['total']:.0f} of {upper['total']:.0f} bits; R(F) {t['R_paper']:.3f} bits/param (paper's P"
            f" {counts['paper']}), {t['R_physlm']:.3f} (physlm's P {counts['physlm']}); p1 {t['p1']:.2f}, p2 {t['p2']:.2f},"
            f" p3 {t['p3']:.2f}" + ("" if metrics["capacity_bound"]["paper"] else "; not capacity-bound (data bits < 2P)")
            + (f"; control {metrics['control']['bits']['total']:.0f} bits" if e.control else "")
            + (f"; junk people's p1 {metrics['junk']['p1']:.2f}, p2 {metrics['junk']['p2']:.2f}" if junk else "")
            + "".join(f"; {fmt} {q['bits']['total']:.0f} bits, R {q['R_paper']:.3f}" for fmt, q in metrics.get("quantized", {}).items()))
    return Evaluated(metrics, headline, line, headline, generations_table(rows, GENERATION_COLUMNS, generated=False))
