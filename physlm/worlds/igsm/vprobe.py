"""V-probing (Part 2.1, SPEC 2.4): does a frozen GPT trained on iGSM "know" properties of a problem's
parameters before and while it writes the solution? The labels and inputs are `physlm.worlds.igsm.labels`.

The probe (one per property and model): a deep copy of the model, frozen and in eval mode (dropout off),
whose `wte` is replaced by `LowRankEmbedding` (E + U V, U zero-initialised, so the probe starts as the
original model), and a linear head on the last block's output after the final LayerNorm (what the LM head
reads) at the last real token ([END]). AdamW, no warmup, linear decay to 0. Scored on examples from
held-out problems against the majority class of the training labels; `run_vprobes` runs every property on
every model it is given (the trained model and the random-init control).

Shared prefixes. A problem's examples share their prefixes: one for nece and dep, and for the solution
properties each prefix is the start of the longest one picked. The model is causal, so the keys and values
of a sequence's first p positions depend only on its first p tokens: a problem's longest prefix (its
*trunk*) runs once, left-padded beside the other trunks of the step, and every example then runs only its
query `[START] ... [END]` on the trunk's first `prefix` positions (one right-padded batch of queries over
the model's left-padding KV-cache path). Gradients reach the embedding update through the cached keys and
values, as in the whole-sequence computation (`full_sequence_states`, the reference the tests compare
with). A training step takes whole trunks, about `batch_size` examples (`pack`); so a step holds the
picks of about batch_size / picks problems rather than of batch_size, and the order of the examples
differs from one-example batches. On the demo problems a step costs a third to a quarter of the
whole-sequence one (its trunks and queries are a fifth of the tokens, and each query row gathers its own
copy of the cached keys and values).

tests/test_vprobe.py checks the labels on a hand-built problem against hand-derived values, the prompt
layout per property, that the update starts at zero and trains only U, V and the head (the base weights and
the caller's model untouched), that the grouped states and gradients equal the whole-sequence ones on
generated problems (and the states in every positional scheme), causality and padding invariance of the
logits, how examples are cut into trunks and steps, that the probe learns a token-identity label far above
majority, and the majority baseline against a hand count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from physlm import probing
from physlm.model import GPT
from physlm.parallel import cpu_map
from physlm.text import TextVocab
from physlm.worlds.igsm.labels import PROPERTIES, VExample, classes, probe_examples
from physlm.worlds.igsm.types import Problem

PAD = 0  # padding id: any id works, causal attention and the last-token gather keep it out


class VProbe(nn.Module):
    """A frozen copy of a causal GPT with a low-rank embedding update, and a linear head on its last state."""

    def __init__(self, model: GPT, num_classes: int, rank: int, seed: int):
        super().__init__()
        if not model.cfg.causal:
            raise ValueError("V-probes need a causal model: shared prefixes are computed once, before the queries")
        self.model = probing.frozen_with_update(model, rank, seed).eval()
        self.head = nn.Linear(model.cfg.width, num_classes, device=model.wte.weight.device)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def train(self, mode: bool = True) -> VProbe:
        """Only the head may change mode; the frozen model stays in eval (dropout off)."""
        super().train(mode)
        self.model.eval()
        return self

    def states(self, batch: PrefixBatch) -> Tensor:
        """[N, width]: each example's last-block state after the final LayerNorm at its last real token.

        The trunks run once, left-padded, into a cache. Each example's row of the query pass sees its trunk's
        first `prefix` columns, moved right so that they end where its query starts (a left-padded row: its
        own positions, the columns before them hidden); the queries run as one right-padded batch."""
        model = self.model
        trunks = model.new_cache(batch.trunks.size(0), batch.trunks.size(1), history="all")
        _last(model._residual_stream(batch.trunks, trunks, batch.pad))
        width = batch.trunks.size(1)
        shift = width - batch.pad[batch.trunk] - batch.prefix  # trunk length - prefix length, per example
        columns = (torch.arange(width, device=shift.device)[None, :] - shift[:, None]).clamp(min=0)
        queries = trunks.share(batch.trunk, columns, batch.queries.size(1))
        last = _last(model._residual_stream(batch.queries, queries, width - batch.prefix))
        return model.ln_f(last[torch.arange(last.size(0), device=last.device), batch.lengths - 1])

    def forward(self, batch: PrefixBatch) -> Tensor:
        """Logits [N, classes], one row per example of the batch."""
        return self.head(self.states(batch))


def _last(stream: Iterator[Tensor]) -> Tensor:
    *_, x = stream
    return x


@dataclass(frozen=True)
class Trunk:
    """Examples of one problem whose prefixes all begin `tokens` (its longest prefix). By causality the
    keys and values of a trunk's first p positions are those of its length-p prefix alone, so the trunk
    runs once for all of them: the picks of nece, dep, and of every solution position of a problem."""

    tokens: tuple[int, ...]
    rows: tuple[int, ...]  # indices of its examples
    query: int  # longest query among them


def trunks(examples: Sequence[VExample], context: int, most: int) -> list[Trunk]:
    """The examples cut into trunks: per problem, longest prefix first, an example joins the first trunk
    that begins with its prefix and leaves room for its query within `context`, or starts a new one. A
    trunk of more than `most` examples is cut into consecutive pieces of `most` (each runs the trunk)."""
    by_problem: dict[int, list[int]] = {}
    for row, e in enumerate(examples):
        if not 0 < e.prefix < len(e.tokens):
            raise ValueError(f"example {row}: prefix {e.prefix} must split its {len(e.tokens)} tokens")
        by_problem.setdefault(e.problem, []).append(row)
    out = []
    for rows in by_problem.values():
        mine: list[tuple[tuple[int, ...], list[int]]] = []
        for row in sorted(rows, key=lambda r: -examples[r].prefix):
            e = examples[row]
            room = context - (len(e.tokens) - e.prefix)
            home = next((m for t, m in mine if len(t) <= room and t[: e.prefix] == e.tokens[: e.prefix]), None)
            if home is None:
                home = []
                mine.append((e.tokens[: e.prefix], home))
            home.append(row)
        for tokens, members in mine:
            members.sort()
            for k in range(0, len(members), most):
                piece = tuple(members[k : k + most])
                out.append(Trunk(tokens, piece, max(len(examples[r].tokens) - examples[r].prefix for r in piece)))
    return out


@dataclass(frozen=True)
class PrefixBatch:
    """Trunks and queries as tensors; examples in the order of their trunks."""

    rows: tuple[int, ...]  # example index of each row
    trunks: Tensor  # [G, width] trunk ids, left-padded with PAD
    pad: Tensor  # [G] left padding of each trunk
    trunk: Tensor  # [N] trunk of each example
    prefix: Tensor  # [N] prefix length of each example
    queries: Tensor  # [N, longest query] query ids, right-padded with PAD
    lengths: Tensor  # [N] query lengths

    @staticmethod
    def of(examples: Sequence[VExample], parts: Sequence[Trunk], device: torch.device | str) -> PrefixBatch:
        width = max(len(t.tokens) for t in parts)
        ids = torch.full((len(parts), width), PAD, dtype=torch.long)
        for g, t in enumerate(parts):
            ids[g, width - len(t.tokens) :] = torch.tensor(t.tokens)
        rows = [r for t in parts for r in t.rows]
        queries = [examples[r].tokens[examples[r].prefix :] for r in rows]
        padded = torch.full((len(rows), max(map(len, queries))), PAD, dtype=torch.long)
        for n, q in enumerate(queries):
            padded[n, : len(q)] = torch.tensor(q)
        longs = {"dtype": torch.long, "device": device}
        return PrefixBatch(
            tuple(rows), ids.to(device), torch.tensor([width - len(t.tokens) for t in parts], **longs),
            torch.tensor([g for g, t in enumerate(parts) for _ in t.rows], **longs),
            torch.tensor([examples[r].prefix for r in rows], **longs), padded.to(device),
            torch.tensor([len(q) for q in queries], **longs))


def full_sequence_states(probe: VProbe, examples: Sequence[VExample]) -> Tensor:
    """Reference for `VProbe.states`: every example's whole sequence in one right-padded batch, no cache."""
    device = probe.head.weight.device
    lengths = torch.tensor([len(e.tokens) for e in examples], device=device)
    idx = torch.full((len(examples), int(lengths.max())), PAD, dtype=torch.long)
    for row, e in enumerate(examples):
        idx[row, : len(e.tokens)] = torch.tensor(e.tokens)
    last = probe.model.hidden_states(idx.to(device))[-1]
    return probe.model.ln_f(last[torch.arange(len(examples), device=device), lengths - 1])


def pack(order: Sequence[int], parts: Sequence[Trunk], target: int, context: int) -> list[list[int]]:
    """`order` (trunk indices) cut into consecutive steps of whole trunks: a trunk opens a new step when the
    current one would end nearer `target` examples without it (count + its size / 2 > target), or when
    the step's longest trunk plus longest query would no longer fit in `context`."""
    out: list[list[int]] = []
    step: list[int] = []
    count = head = tail = 0
    for k in order:
        t = parts[k]
        full = count + len(t.rows) / 2 > target or max(head, len(t.tokens)) + max(tail, t.query) > context
        if step and full:
            out.append(step)
            step, count, head, tail = [], 0, 0, 0
        step.append(k)
        count, head, tail = count + len(t.rows), max(head, len(t.tokens)), max(tail, t.query)
    return out + [step] if step else out


def trunk_steps(parts: Sequence[Trunk], batch_size: int, steps: int, context: int, rng: np.random.Generator,
                pool: int = 8) -> list[list[int]]:
    """`steps` training steps of trunk indices, about `batch_size` examples each (`pack`). Each epoch walks
    a fresh permutation of the trunks, cut into pools of about `pool` steps; each pool is sorted by trunk
    length (little left padding), the epoch packed into steps, its last step dropped when it holds fewer
    than half a batch (unless it is the only one), and the epoch's steps shuffled. Every example is seen
    once per epoch, with the other examples of its trunk."""
    if not parts:
        raise ValueError("trunk_steps: no examples to train on")
    sizes = np.array([len(t.rows) for t in parts])
    heads = np.array([len(t.tokens) for t in parts])
    target = min(batch_size, int(sizes.sum()))
    out: list[list[int]] = []
    while len(out) < steps:
        perm = rng.permutation(len(parts))
        pools = (np.cumsum(sizes[perm]) - sizes[perm]) // (pool * target)
        epoch = pack(perm[np.lexsort((heads[perm], pools))].tolist(), parts, target, context)
        if len(epoch) > 1 and sizes[epoch[-1]].sum() < target / 2:
            epoch.pop()
        out += [epoch[k] for k in rng.permutation(len(epoch))]
    return out[:steps]


@dataclass(frozen=True)
class FitResult:
    probe: VProbe
    loss: float  # mean training loss over the last tenth of the steps


def fit_vprobe(
    model: GPT,
    examples: Sequence[VExample],
    num_classes: int,
    *,
    rank: int,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    desc: str | None = "vprobe",
) -> FitResult:
    """Train one probe on `examples` (`physlm.probing.fit`): AdamW on the embedding update and the head, linear
    decay from lr to 0, steps of whole trunks from `trunk_steps` seeded by `seed`. The caller's model is not
    modified."""
    probe = VProbe(model, num_classes, rank, seed)
    device = model.wte.weight.device
    labels = torch.tensor([e.label for e in examples], device=device)
    parts = trunks(examples, model.cfg.context, batch_size)

    def loss(step: list[int]) -> Tensor:
        batch = PrefixBatch.of(examples, [parts[k] for k in step], device)
        return F.cross_entropy(probe(batch).float(), labels[torch.tensor(batch.rows, device=device)])

    batches = trunk_steps(parts, batch_size, steps, model.cfg.context, np.random.default_rng(seed))
    losses = probing.fit([p for p in probe.parameters() if p.requires_grad], batches, loss, lr=lr,
                         weight_decay=weight_decay, linear_decay=True, steps=steps, desc=desc)
    return FitResult(probe, float(np.mean(losses[-max(1, steps // 10):].astype(np.float64))))


@torch.no_grad()
def predict(probe: VProbe, examples: Sequence[VExample], batch_size: int) -> np.ndarray:
    """Predicted classes of the examples, in order (whole trunks, shortest first, about batch_size a batch)."""
    device, context = probe.head.weight.device, probe.model.cfg.context
    parts = trunks(examples, context, batch_size)
    order = np.argsort([len(t.tokens) for t in parts], kind="stable").tolist()
    out = np.empty(len(examples), dtype=np.int64)
    for step in pack(order, parts, batch_size, context):
        batch = PrefixBatch.of(examples, [parts[k] for k in step], device)
        out[list(batch.rows)] = probe(batch).argmax(-1).cpu().numpy()
    return out


def score(pred: np.ndarray, truth: np.ndarray, train_labels: np.ndarray, num_classes: int) -> dict:
    """Accuracy, the majority baseline (the training labels' majority class on the test labels) and, for
    binary properties, accuracy on the positive and the negative test examples (NaN when there are none)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    majority_class = int(np.bincount(train_labels, minlength=num_classes).argmax())
    row = {"accuracy": float((pred == truth).mean()), "majority": float((truth == majority_class).mean()),
           "majority_class": majority_class, "n_test": int(len(truth)), "n_train": int(len(train_labels))}
    if num_classes == 2:
        for name, cls in (("pos", 1), ("neg", 0)):
            mask = truth == cls
            row[f"accuracy_{name}"] = float((pred[mask] == cls).mean()) if mask.any() else float("nan")
            row[f"n_{name}"] = int(mask.sum())
    return row


# ---------------------------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class VProbeConfig:
    properties: tuple[str, ...] = PROPERTIES  # which properties to probe
    picks: int = 10  # (position, parameter) picks per problem and property
    rank: int = 8  # rank of the embedding update
    steps: int = 100  # optimiser steps per probe
    batch_size: int = 32  # examples per step (and per evaluation batch)
    lr: float = 2.0e-3  # AdamW peak LR, linear decay to 0, no warmup
    weight_decay: float = 0.01
    max_tokens: int | None = None  # longest probe input kept (None: the smallest model context); longer skipped
    workers: int = 1  # processes fitting probes side by side (CPU models only; each gets cores // workers threads)

    def __post_init__(self) -> None:
        unknown = [p for p in self.properties if p not in PROPERTIES]
        if unknown or not self.properties:
            raise ValueError(f"VProbeConfig.properties: unknown {unknown} (known: {', '.join(PROPERTIES)})")
        for name in ("picks", "rank", "steps", "batch_size", "workers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VProbeConfig.{name}: must be positive, got {getattr(self, name)}")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"VProbeConfig.max_tokens: must be positive, got {self.max_tokens}")


def run_vprobes(
    models: Mapping[str, GPT],
    train_problems: Sequence[Problem],
    test_problems: Sequence[Problem],
    vocab: TextVocab,
    cfg: VProbeConfig,
    seed: int,
    desc: str = "vprobe",
) -> tuple[list[dict], dict[str, float]]:
    """Fit and score one probe per (property, model) on the same examples; rows as `score` plus model,
    property, classes and train_loss, in (property, model) order; summary as `summarize`. `desc` names the
    progress bars (building the examples, each fit or, side by side, the fits).

    With `cfg.workers` > 1 and models on the CPU, the fits run side by side in that many spawned processes
    (`physlm.parallel.cpu_map`). The examples and seeds are the same; only float rounding may differ with
    the thread count (on the demo the rows came out identical)."""
    limit = min([m.cfg.context for m in models.values()] + ([cfg.max_tokens] if cfg.max_tokens else []))
    jobs = []
    for prop in tqdm(cfg.properties, desc=f"{desc} examples", unit="property", mininterval=1.0, leave=False):
        common = {"picks": cfg.picks, "seed": seed, "max_tokens": limit}
        train = probe_examples(train_problems, vocab, prop, **common)
        test = probe_examples(test_problems, vocab, prop, first_index=len(train_problems), **common)
        if not train or not test:
            raise ValueError(f"V-probe {prop}: {len(train)} training and {len(test)} test examples fit in {limit} tokens")
        probe_seed = int(np.random.SeedSequence([seed, PROPERTIES.index(prop)]).generate_state(1)[0])
        jobs += [(name, model, prop, train, test, probe_seed) for name, model in models.items()]
    on_cpu = all(next(m.parameters()).device.type == "cpu" for m in models.values())
    workers = min(cfg.workers, len(jobs)) if on_cpu else 1
    bars = [f"{desc} {job[2]}/{job[0]}" if workers == 1 else None for job in jobs]  # one bar per fit in this process
    rows = cpu_map(_probe_job, [(cfg, *job, bar) for job, bar in zip(jobs, bars)], workers, desc=f"{desc} fits")
    return rows, summarize(rows)


def _probe_job(cfg: VProbeConfig, name: str, model: GPT, prop: str, train: Sequence[VExample], test: Sequence[VExample],
               seed: int, desc: str | None) -> dict:
    """One (property, model) probe fitted and scored: its row of `run_vprobes` (desc None: no progress bar)."""
    fit = fit_vprobe(model, train, classes(prop), rank=cfg.rank, steps=cfg.steps, batch_size=cfg.batch_size,
                     lr=cfg.lr, weight_decay=cfg.weight_decay, seed=seed, desc=desc)
    pred = predict(fit.probe, test, cfg.batch_size)
    truth, train_labels = np.array([e.label for e in test]), np.array([e.label for e in train])
    return {"model": name, "property": prop, "classes": classes(prop), "train_loss": fit.loss,
            **score(pred, truth, train_labels, classes(prop))}


def summarize(rows: Sequence[dict]) -> dict[str, float]:
    """Flat metrics: `{prop}_{model}` accuracy (and `_pos` / `_neg` where defined), `{prop}_majority`."""
    out: dict[str, float] = {}
    for r in rows:
        key = f"{r['property']}_{r['model']}"
        out[key] = r["accuracy"]
        for part in ("pos", "neg"):
            if not math.isnan(r.get(f"accuracy_{part}", math.nan)):
                out[f"{key}_{part}"] = r[f"accuracy_{part}"]
        out[f"{r['property']}_majority"] = r["majority"]
    return out
