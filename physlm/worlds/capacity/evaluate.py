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

bioS(N) and bioS^simple(N) (capacity.json's `data`; `BioS`): the same steps on every person's writing 0, whose
token spans come from `biosn.encode`: p1 over the name's three tokens, and per person p2 summed over the value
tokens of all six attributes and the paragraph's first pronoun (the gender bit S0 counts: `biosn`), no p3;
`bits.bios_stored_bits` and `bits.bios_upper_bound` (the diversity term dropped). Paragraphs differ in length;
each is scored alone (batches right-padded, the padding after every scored token). The generations table's p2 is
then the person's sum, and `p2_parts` its seven terms (the six attributes in `physlm.bios.people.ATTRIBUTES`'
order, then the pronoun). No junk for bioS (tokenize refuses it).

The data kind is dispatched once (`kind_of`: `BioD` or `BioS`, each with its prompts, losses and formula); the
models, P, control and quantized copies go through the same code for both.

tests/test_capacity_stages.py measures a scripted model whose losses are known exactly; tests/test_capacity_bios.py
the bioS spans and a tiny bioS study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.errors import DataError
from physlm.io import Paths, read_json, read_parquet
from physlm.worlds import Evaluated, generations_table
from physlm.worlds.capacity import biosn
from physlm.worlds.capacity.biod import Spec, value_positions
from physlm.worlds.capacity.bits import (
    Bits,
    bios_stored_bits,
    bios_upper_bound,
    capacity_bound,
    ratio,
    stored_bits,
    upper_bound,
)
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

    def row(self, n: int) -> dict:
        return {"p1": float(self.p1[n]), "p2": self.p2[n].tolist(), "p3": self.p3[n].tolist()}


@dataclass(frozen=True)
class BioSLosses:
    """bioS, per person: p1 (name) and the seven terms of p2 (`biosn.PARTS`: each attribute's value tokens, then
    the first pronoun), nats, summed over their tokens."""

    p1: np.ndarray  # [people]
    parts: np.ndarray  # [people, 7]

    def means(self) -> dict:
        return {"p1": float(self.p1.mean()), "p2": float(self.parts.sum(axis=1).mean()),
                "p2_parts": dict(zip(biosn.PARTS, map(float, self.parts.mean(axis=0))))}

    def row(self, n: int) -> dict:
        return {"p1": float(self.p1[n]), "p2": float(self.parts[n].sum()), "p2_parts": self.parts[n].tolist()}


@torch.no_grad()
def token_losses(model: torch.nn.Module, paragraphs: np.ndarray | Sequence[np.ndarray], bos: int, batch_size: int) -> np.ndarray:
    """[people, tokens]: -ln p(token k | <bos>, tokens before k) of every paragraph, each alone. Paragraphs of
    different lengths are right-padded in a batch (causal attention keeps the padding from every real token) and
    their columns past their own length are NaN."""
    device = next(model.parameters()).device
    lengths = np.asarray([len(p) for p in paragraphs])
    out = np.full((len(paragraphs), lengths.max(initial=0)), np.nan)
    for lo in range(0, len(paragraphs), batch_size):
        rows, n = paragraphs[lo : lo + batch_size], lengths[lo : lo + batch_size]
        batch = np.full((len(rows), n.max()), bos, dtype=np.int64)
        for r, p in enumerate(rows):
            batch[r, : len(p)] = p
        ids = torch.as_tensor(batch, device=device)
        inputs = torch.cat([torch.full_like(ids[:, :1], bos), ids[:, :-1]], dim=1)
        logits, _ = model(inputs)
        nll = -torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[..., None])[..., 0]
        nll = nll.cpu().numpy().astype(np.float64)
        nll[np.arange(nll.shape[1]) >= n[:, None]] = np.nan
        out[lo : lo + len(rows), : nll.shape[1]] = nll
    return out


def person_losses(nll: np.ndarray, orders: list[list[int]], spec: Spec) -> Losses:
    """Sum each person's token losses over the name, each attribute's value, and its first chunk."""
    p2 = np.zeros((len(nll), spec.K))
    p3 = np.zeros((len(nll), spec.K))
    for n, attributes in enumerate(orders):
        for a, where in value_positions(attributes, spec.K, spec.C, spec.L).items():
            p2[n, a - 1] = nll[n, where].sum()
            p3[n, a - 1] = nll[n, where[: spec.L]].sum()
    return Losses(nll[:, :3].sum(axis=1), p2, p3)


def bios_losses(nll: np.ndarray, spans: list[dict[str, tuple[int, int]]]) -> BioSLosses:
    """Sum each person's token losses over the name and over each of `biosn.PARTS` (token spans: `biosn.encode`)."""
    p1 = np.asarray([nll[n, slice(*s[biosn.NAME])].sum() for n, s in enumerate(spans)])
    parts = np.asarray([[nll[n, slice(*s[k])].sum() for k in biosn.PARTS] for n, s in enumerate(spans)])
    return BioSLosses(p1, parts.reshape(len(spans), len(biosn.PARTS)))


def formula_inputs(spec: Spec) -> dict[str, int]:
    return {"N0": spec.N0, "N": spec.N, "K": spec.K, "C": spec.C, "D": spec.D, "L": spec.L, "T": spec.T}


@dataclass(frozen=True)
class BioD:
    """bioD's prompts (writing 0 with its sentence order), losses (p1, p2, p3) and formula."""

    spec: Spec
    name: ClassVar[str] = "bioD"
    columns: ClassVar[dict] = {"p1": pl.Float64, "p2": pl.List(pl.Float64), "p3": pl.List(pl.Float64)}

    def inputs(self) -> dict[str, int]:
        return formula_inputs(self.spec)

    def bits(self, p: dict) -> Bits:
        return stored_bits(p["p1"], p["p2"], p["p3"], **self.inputs())

    def upper(self) -> Bits:
        return upper_bound(**self.inputs())

    def prompts(self, raw: Path, tokens: Path, limit: int) -> tuple[np.ndarray, list, list[str]]:
        return read_paragraphs(raw, tokens, self.spec, limit)

    def losses(self, nll: np.ndarray, where: list) -> Losses:
        return person_losses(nll, where, self.spec)


@dataclass(frozen=True)
class BioS:
    """bioS / bioS^simple's prompts (writing 0 with its token spans), losses (p1, p2 and its parts) and formula."""

    spec: biosn.Spec
    columns: ClassVar[dict] = {"p1": pl.Float64, "p2": pl.Float64, "p2_parts": pl.List(pl.Float64)}

    @property
    def name(self) -> str:
        return self.spec.data

    def inputs(self) -> dict[str, int]:
        return {"N0": self.spec.N0, "N": self.spec.N, "S0": self.spec.S0}

    def bits(self, p: dict) -> Bits:
        return bios_stored_bits(p["p1"], p["p2"], **self.inputs())

    def upper(self) -> Bits:
        return bios_upper_bound(**self.inputs())

    def prompts(self, raw: Path, tokens: Path, limit: int) -> tuple[list[np.ndarray], list, list[str]]:
        return read_bios_paragraphs(raw, tokens, self.spec, limit)

    def losses(self, nll: np.ndarray, where: list) -> BioSLosses:
        return bios_losses(nll, where)


def kind_of(spec: Spec | biosn.Spec) -> BioD | BioS:
    return BioS(spec) if isinstance(spec, biosn.Spec) else BioD(spec)


def measure(losses: Losses | BioSLosses, spec: Spec | biosn.Spec, params: dict[str, int]) -> dict:
    """The averages, the bound's terms and R(F) under each parameter count."""
    p = losses.means()
    bits = kind_of(spec).bits(p)
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


def read_bios_paragraphs(raw: Path, tokens: Path, spec: biosn.Spec, limit: int
                         ) -> tuple[list[np.ndarray], list[dict[str, tuple[int, int]]], list[str]]:
    """bioS: writing 0 of the first `limit` people (0: all) as token ids, each one's token spans (`biosn.encode`), and
    the text; DataError where people.parquet's text is not the writing regenerated from capacity.json."""
    vocab = check_vocab(tokens, spec)
    path = raw / "people.parquet"
    texts = read_parquet(path, {"text": pl.String})["text"].to_list()[: limit or None]
    paragraphs, spans = [], []
    for p, text in zip(biosn.people(spec, len(texts)), texts):
        found = biosn.writing(spec, p, 0)
        if found.text != text:
            raise DataError(f"{path}: person {p.id}'s text is not its writing 0 (regenerate the dataset)")
        ids, where = biosn.encode(vocab, p, found)
        paragraphs.append(np.asarray(ids, dtype=np.int64))
        spans.append(where)
    return paragraphs, spans, texts


def generation_rows(name: str, losses: Losses | BioSLosses, texts: list[str]) -> list[dict]:
    """The generations table's rows (`physlm.worlds.Evaluated`; this world generates nothing: it scores
    losses): one per person, index = the row of raw/people.parquet, prompt = the paragraph scored, p1 its name's
    loss, and bioD: p2 and p3 per attribute (1..K) its value's and first chunk's, in nats, whose means are the
    metrics'; bioS: p2 the person's value loss (the metrics' p2 is its mean) and p2_parts its seven terms."""
    return [{"set": name, "index": n, "prompt": text, **losses.row(n)} for n, text in enumerate(texts)]


def paragraph_losses(model: torch.nn.Module, paragraphs: np.ndarray, bos: int, marker: int | None, batch_size: int) -> np.ndarray:
    """token_losses of the paragraphs as trained on: after the domain token `marker` where the dataset has one, whose
    own loss is dropped (the columns are the paragraph's tokens)."""
    nll = token_losses(model, with_marker(paragraphs, marker), bos, batch_size)
    return nll if marker is None else nll[:, 1:]


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    e = cfg.evaluate
    spec = read_spec(paths.raw)
    kind = kind_of(spec)
    meta = read_json(paths.tokens / "meta.json", ("used_tokens", "bos_id"))
    marker = domain_token_id(paths.tokens)
    paragraphs, where, texts = kind.prompts(paths.raw, paths.tokens, e.people)  # where: bioD orders, bioS token spans
    model = load_model(paths.model, device)
    counts = parameter_counts(model, meta["used_tokens"])
    upper = kind.upper().as_dict()
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if e.control else {})
    metrics: dict = {"data": kind.name, "spec": kind.inputs(), "people": len(paragraphs), "upper_bound": upper,
                     "params": counts | {"vocab_size": model.cfg.vocab_size, "used_tokens": meta["used_tokens"],
                                         "width": model.cfg.width, "head": "tied: the embedding's matrix, counted once" if model.cfg.tie_embeddings
                                         else "untied, counted as its own matrix"},
                     "capacity_bound": {name: capacity_bound(upper["total"], count) for name, count in counts.items()}}
    rows = []
    for name, m in models.items():
        nll = paragraph_losses(m, paragraphs, meta["bos_id"], marker, e.batch_size)
        losses = kind.losses(nll, where)
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
        losses = kind.losses(nll, where)
        metrics["quantized"][fmt] = done | measure(losses, spec, counts)
        rows += generation_rows(f"quantized/{fmt}", losses, texts)
        del rounded
    t = metrics["trained"]
    headline = {"bits": t["bits"]["total"], "R_paper": t["R_paper"], "R_physlm": t["R_physlm"],
                **{p: t[p] for p in ("p1", "p2", "p3") if p in t}, "upper_bound_bits": upper["total"], "params_paper": counts["paper"],
                "params_physlm": counts["physlm"], **{f"capacity_bound_{k}": int(v) for k, v in metrics["capacity_bound"].items()}}
    if e.control:
        headline |= {"control_bits": metrics["control"]["bits"]["total"], "control_R_paper": metrics["control"]["R_paper"]}
    if junk:
        headline |= {f"junk_{k}": metrics["junk"][k] for k in ("p1", "p2", "p3")}
    for fmt, q in metrics.get("quantized", {}).items():
        headline |= {f"bits_{fmt}": q["bits"]["total"], f"R_paper_{fmt}": q["R_paper"], f"R_physlm_{fmt}": q["R_physlm"]}
    line = (f"stored {t['bits']['total']:.0f} of {upper['total']:.0f} bits; R(F) {t['R_paper']:.3f} bits/param (paper's P"
            f" {counts['paper']}), {t['R_physlm']:.3f} (physlm's P {counts['physlm']}); p1 {t['p1']:.2f}, p2 {t['p2']:.2f}"
            + (f", p3 {t['p3']:.2f}" if "p3" in t else "") + ("" if metrics["capacity_bound"]["paper"] else "; not capacity-bound (data bits < 2P)")
            + (f"; control {metrics['control']['bits']['total']:.0f} bits" if e.control else "")
            + (f"; junk people's p1 {metrics['junk']['p1']:.2f}, p2 {metrics['junk']['p2']:.2f}" if junk else "")
            + "".join(f"; {fmt} {q['bits']['total']:.0f} bits, R {q['R_paper']:.3f}" for fmt, q in metrics.get("quantized", {}).items()))
    return Evaluated(metrics, headline, line, headline, generations_table(rows, kind.columns, generated=False))
