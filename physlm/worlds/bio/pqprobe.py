"""P-probing and Q-probing (Part 3.1, SPEC 4.3): where and how does a GPT trained on biographies store a
person's attributes?

Tasks (`TASKS`, 11): the birth date's first token (the month), and for each of the other five attributes
its first token and its whole value. A `Task` is (attribute, kind); labels are class indices the caller
computes (it maps first tokens / pool values to classes) with a class count per task, so this module
takes token ids and positions, never text.

- P-probing (`run_pprobe`): the input is a biography (`Biography`) and, per example, the six token indices
  right before the first token of each attribute, in the order the attributes appear. A classifier per
  task and per read position (position index k = "right before the k-th attribute of this biography")
  reads the residual stream there. Accuracies are reported per (task, position index) and per offset
  k - slot, where slot is the index of the task's own attribute in that biography's order (offset 0: right
  before the attribute's own value; negative: earlier; positive: after it was read). Rank-2 update,
  LayerNorm + linear heads, AdamW wd 0.3, LR 1e-3, no warmup, linear decay to 0, batch 50. Tokens after
  the last read position are dropped before the forward: by causality they change no state read.
- Q-probing (`run_qprobe`): the input is `<start> full name <end>` (`NameQuery`); one classifier per task
  on the state at the last token. Rank-16 update, BatchNorm + linear heads, same optimiser, batch 200.

The probe (`StateProbe`): a deep copy of the model, frozen, whose `wte` is replaced by vprobe's
`LowRankEmbedding` (E + U V with U zero: the probe starts as the model), and per task a norm and a linear
map (zero-initialised) per read position. Our choices where the SPEC is silent or we depart from it:
- Heads read the residual stream after block `layer` (default: the last block) *before* the model's final
  LayerNorm: the head's own LayerNorm takes ln_f's place, so the same probe reads every layer. On the last
  layer, LayerNorm + linear on the raw stream can express any linear map of ln_f's output.
- Each (task, position) has its own norm and linear map; the update is shared by everything in one probe.
  `shared=True` (default) trains all tasks of a run as one probe from one forward per batch (one rank-r
  update for all tasks, the cheap reading); `shared=False` trains one probe per task (the paper's reading,
  one probe per task, about 11x the cost). The joint loss is the sum of the tasks' mean cross-entropies.
- Dropout: the frozen copy follows the probe's mode, so its dropout is on while the probe trains (SPEC) and
  off when it is scored; the demo models have dropout 0, where both are the same.
- The model must be causal: batches are right-padded, and only causality keeps the padding (and, for
  P-probing, everything after a read position) out of the states read.
- Train and test hold different people (checked). For the bio world the natural split is P_train /
  P_test: the pretrained model read every person's biographies, the probe is scored on people it was
  not trained on. The majority baseline of a task is the training labels' most frequent class, scored on
  the test labels (per position-offset bucket too); the random-init control is the caller's
  random-init model run through the same functions.

tests/test_pqprobe.py checks, on a tiny GPT and synthetic sequences whose labels are tokens at known
places: the update starts at zero and only the update and heads train (the caller's model untouched);
states are read at the given positions and layer; a P-probe decodes a label token at the read positions
after it and, where test examples that share everything before a position differ only in the label
token after it, never beats the majority there (causality makes this exact); a Q-probe learns a token
label from `<start> x y z <end>` for held-out names; the scores and baselines against hand counts; the
validation of inputs; rows, summary and plots.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physlm import probing
from physlm.model import GPT
from physlm.bios.people import ATTRIBUTES

KINDS = ("first", "whole")  # the attribute's first token, or its whole value
PAD = 0  # right padding: causal attention keeps it out of every real position


@dataclass(frozen=True)
class Task:
    """One classification: an attribute's first token or whole value."""

    attribute: str  # one of physlm.bios.people.ATTRIBUTES
    kind: str  # "first" | "whole"

    def __post_init__(self) -> None:
        if self.attribute not in ATTRIBUTES:
            raise ValueError(f"Task.attribute {self.attribute!r} is not one of {', '.join(ATTRIBUTES)}")
        if self.kind not in KINDS:
            raise ValueError(f"Task.kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def name(self) -> str:
        return f"{self.attribute}_{self.kind}"


TASKS = (Task("birth_date", "first"), *(Task(a, k) for a in ATTRIBUTES[1:] for k in KINDS))


@dataclass(frozen=True)
class Biography:
    """One P-probe input: a biography's token ids and where to read it."""

    tokens: tuple[int, ...]
    positions: tuple[int, ...]  # per attribute in order of appearance: the index of the token right before its value
    order: tuple[str, ...]  # the attributes in order of appearance (a permutation of ATTRIBUTES)
    labels: tuple[int, ...]  # one class per task, in the order of the `tasks` mapping
    person: int  # whose biography it is: train and test people are disjoint


@dataclass(frozen=True)
class NameQuery:
    """One Q-probe input: `<start> full name <end>` token ids; the probe reads the last token."""

    tokens: tuple[int, ...]
    labels: tuple[int, ...]  # one class per task, in the order of the `tasks` mapping
    person: int


# ---------------------------------------------------------------------------------------------- the probe


class PositionLayerNorm(nn.Module):
    """LayerNorm over width with its own affine map per read position: [B, P, W] -> [B, P, W]."""

    def __init__(self, positions: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(positions, width))
        self.bias = nn.Parameter(torch.zeros(positions, width))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:]) * self.weight + self.bias


class PositionBatchNorm(nn.BatchNorm1d):
    """BatchNorm with statistics per (read position, feature): [B, P, W] -> [B, P, W]."""

    def __init__(self, positions: int, width: int):
        super().__init__(positions * width)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.flatten(1)).view_as(x)


NORMS = {"layer": PositionLayerNorm, "batch": PositionBatchNorm}


class Heads(nn.Module):
    """One task's classifiers: per read position a norm and a linear map width -> classes (zeros at init)."""

    def __init__(self, positions: int, width: int, classes: int, norm: str):
        super().__init__()
        self.norm = NORMS[norm](positions, width)
        self.weight = nn.Parameter(torch.zeros(positions, classes, width))
        self.bias = nn.Parameter(torch.zeros(positions, classes))

    def forward(self, x: Tensor) -> Tensor:
        """Logits [B, P, classes] for states [B, P, width]."""
        return torch.einsum("bpw,pcw->bpc", self.norm(x), self.weight) + self.bias


class StateProbe(nn.Module):
    """A frozen copy of a causal GPT with a rank-`rank` embedding update, and per task `Heads` on the
    residual stream after block `layer` (0 = the embedding output) at `positions` read positions."""

    def __init__(self, model: GPT, classes: Sequence[int], *, positions: int, rank: int, layer: int, norm: str,
                 seed: int):
        super().__init__()
        if not model.cfg.causal:
            raise ValueError("P/Q-probes need a causal model: batches are right-padded")
        if not 0 <= layer <= model.cfg.depth:
            raise ValueError(f"probe layer {layer} is outside 0..{model.cfg.depth} (0 = embeddings)")
        if norm not in NORMS:
            raise ValueError(f"probe norm {norm!r} is not one of {', '.join(NORMS)}")
        self.model, self.layer = probing.frozen_with_update(model, rank, seed), layer
        device = model.wte.weight.device
        self.heads = nn.ModuleList(Heads(positions, model.cfg.width, c, norm).to(device) for c in classes)

    def states(self, idx: Tensor, at: Tensor) -> Tensor:
        """[B, P, width]: the residual stream after block `layer` of token ids idx [B, T] at columns at [B, P]
        (the blocks above `layer` are not run)."""
        x = next(itertools.islice(self.model._residual_stream(idx, None, None), self.layer, None))
        return x.gather(1, at[..., None].expand(-1, -1, x.size(-1)))

    def forward(self, idx: Tensor, at: Tensor) -> list[Tensor]:
        """Per task, logits [B, P, classes]."""
        x = self.states(idx, at)
        return [head(x) for head in self.heads]


@dataclass(frozen=True)
class Inputs:
    """Probe inputs as arrays: token ids per example, read positions [N, P], labels [N, tasks]."""

    tokens: tuple[tuple[int, ...], ...]
    at: np.ndarray
    labels: np.ndarray

    def batch(self, rows: Sequence[int], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Token ids [B, longest] right-padded with PAD, read positions [B, P], labels [B, tasks]."""
        rows = list(rows)
        idx = torch.full((len(rows), max(len(self.tokens[r]) for r in rows)), PAD, dtype=torch.long)
        for b, r in enumerate(rows):
            idx[b, : len(self.tokens[r])] = torch.tensor(self.tokens[r])
        return (idx.to(device), torch.from_numpy(self.at[rows]).to(device),
                torch.from_numpy(self.labels[rows]).to(device))

    def only(self, tasks: Sequence[int]) -> Inputs:
        """The same inputs with the labels of `tasks` alone."""
        return Inputs(self.tokens, self.at, self.labels[:, list(tasks)])


def epoch_batches(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> Iterator[list[int]]:
    """`steps` batches of min(batch_size, n) distinct rows: each epoch a fresh permutation cut into full
    batches (a remainder is dropped, so BatchNorm never sees a batch of one)."""
    size = min(batch_size, n)
    done = 0
    while done < steps:
        perm = rng.permutation(n)
        for k in range(0, n - size + 1, size):
            if done == steps:
                return
            yield perm[k : k + size].tolist()
            done += 1


@dataclass(frozen=True)
class Fit:
    probe: StateProbe
    losses: np.ndarray  # [steps, tasks] training cross-entropy per step and task


def fit_probe(
    model: GPT,
    data: Inputs,
    classes: Sequence[int],
    *,
    rank: int,
    norm: str,
    layer: int,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    desc: str | None = "probe",
) -> Fit:
    """Train one `StateProbe` on all its tasks jointly (sum of the tasks' mean cross-entropies over the
    batch and read positions; `physlm.probing.fit`): AdamW on the update and the heads, no warmup, linear
    decay from lr to 0, batches from `epoch_batches` seeded by `seed`. The caller's model is not modified.
    `desc` names a progress bar (None: none)."""
    probe = StateProbe(model, classes, positions=data.at.shape[1], rank=rank, layer=layer, norm=norm, seed=seed)
    device = model.wte.weight.device

    def loss(rows: list[int]) -> Tensor:
        idx, at, labels = data.batch(rows, device)
        return torch.stack([
            F.cross_entropy(logits.float().flatten(0, 1), labels[:, t, None].expand(-1, at.size(1)).flatten())
            for t, logits in enumerate(probe(idx, at))
        ])

    probe.train()
    batches = epoch_batches(len(data.tokens), batch_size, steps, np.random.default_rng(seed))
    losses = probing.fit([p for p in probe.parameters() if p.requires_grad], batches, loss, lr=lr,
                         weight_decay=weight_decay, linear_decay=True, steps=steps, desc=desc)
    probe.eval()
    return Fit(probe, losses)


@torch.no_grad()
def predict(probe: StateProbe, data: Inputs, batch_size: int) -> np.ndarray:
    """Predicted classes [N, P, tasks] in eval mode, batches of similar lengths."""
    probe.eval()
    device = probe.model.wte.base.weight.device
    order = np.argsort([len(t) for t in data.tokens], kind="stable")
    out = np.empty((*data.at.shape, len(probe.heads)), dtype=np.int64)
    for k in range(0, len(order), batch_size):
        rows = order[k : k + batch_size].tolist()
        idx, at, _ = data.batch(rows, device)
        out[rows] = torch.stack([logits.argmax(-1) for logits in probe(idx, at)], dim=-1).cpu().numpy()
    return out


# ---------------------------------------------------------------------------------------------- inputs


def _check_labels(labels: Sequence[int], classes: Sequence[int], where: str) -> None:
    if len(labels) != len(classes):
        raise ValueError(f"{where}: {len(labels)} labels for {len(classes)} tasks")
    bad = next((t for t, (y, c) in enumerate(zip(labels, classes)) if not 0 <= y < c), None)
    if bad is not None:
        raise ValueError(f"{where}: label {labels[bad]} of task {bad} is outside 0..{classes[bad] - 1}")


def _check_biography(b: Biography, classes: Sequence[int], where: str) -> None:
    if sorted(b.order) != sorted(ATTRIBUTES):
        raise ValueError(f"{where}: order {b.order} is not a permutation of {ATTRIBUTES}")
    if len(b.positions) != len(b.order):
        raise ValueError(f"{where}: {len(b.positions)} positions for {len(b.order)} attributes")
    p = b.positions
    if p[0] < 0 or p[-1] >= len(b.tokens) or any(x >= y for x, y in zip(p, p[1:])):
        raise ValueError(f"{where}: positions {p} must increase within 0..{len(b.tokens) - 1}")
    _check_labels(b.labels, classes, where)


def _check_split(train: Sequence, test: Sequence, context: int, kind: str) -> None:
    if not train or not test:
        raise ValueError(f"{kind}: {len(train)} training and {len(test)} test examples; need both")
    shared = {e.person for e in train} & {e.person for e in test}
    if shared:
        raise ValueError(f"{kind}: {len(shared)} people in both train and test (e.g. person {min(shared)})")
    longest = max(len(e.tokens) for e in (*train, *test))
    if longest > context:
        raise ValueError(f"{kind}: an input of {longest} tokens exceeds the model context {context}")
    if any(not e.tokens for e in (*train, *test)):
        raise ValueError(f"{kind}: an example has no tokens")


def biography_inputs(examples: Sequence[Biography], classes: Sequence[int], what: str) -> Inputs:
    for i, b in enumerate(examples):
        _check_biography(b, classes, f"{what} biography {i}")
    cut = tuple(b.tokens[: b.positions[-1] + 1] for b in examples)  # causal: later tokens change no state read
    return Inputs(cut, np.array([b.positions for b in examples], dtype=np.int64),
                  np.array([b.labels for b in examples], dtype=np.int64).reshape(len(examples), len(classes)))


def query_inputs(examples: Sequence[NameQuery], classes: Sequence[int], what: str) -> Inputs:
    for i, q in enumerate(examples):
        _check_labels(q.labels, classes, f"{what} name query {i}")
    at = np.array([[len(q.tokens) - 1] for q in examples], dtype=np.int64)
    return Inputs(tuple(q.tokens for q in examples), at,
                  np.array([q.labels for q in examples], dtype=np.int64).reshape(len(examples), len(classes)))


# ---------------------------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class Bucket:
    """P-probing accuracy over the (example, position index) pairs at one offset from the task's attribute."""

    offset: int  # position index - index of the task's attribute in the biography's order
    accuracy: float
    majority: float  # the training majority class's share of these pairs
    n: int


@dataclass(frozen=True)
class TaskScore:
    task: Task
    classes: int
    majority_class: int  # most frequent class of the training labels (ties: the smallest)
    majority: float  # its share of the test labels: the majority baseline
    accuracy: tuple[float, ...]  # held-out accuracy per read position (P: position index 0..5; Q: one)
    offsets: tuple[Bucket, ...]  # P: per offset from the task's attribute, increasing; Q: empty
    train_loss: float  # mean training cross-entropy over the last tenth of the steps


@dataclass(frozen=True)
class ProbeResult:
    probe: str  # "P" | "Q"
    layer: int  # residual stream read: after block `layer` (0 = embeddings)
    rank: int
    shared: bool  # one update for all tasks (True) or one probe per task
    steps: int
    n_train: int
    n_test: int
    scores: tuple[TaskScore, ...]

    def to_json(self) -> dict:
        """A JSON-serialisable dict of everything (tasks as {"attribute", "kind"})."""
        return asdict(self)


def majority_class(labels: np.ndarray, classes: int) -> int:
    return int(np.bincount(labels, minlength=classes).argmax())


def offset_buckets(pred: np.ndarray, truth: np.ndarray, slots: np.ndarray, majority: int) -> tuple[Bucket, ...]:
    """pred [N, P] for labels truth [N]; slots [N]: the task attribute's index in each example's order."""
    offsets = np.arange(pred.shape[1])[None, :] - slots[:, None]
    hit, base = pred == truth[:, None], np.broadcast_to((truth == majority)[:, None], pred.shape)
    return tuple(Bucket(int(d), float(hit[offsets == d].mean()), float(base[offsets == d].mean()),
                        int((offsets == d).sum())) for d in np.unique(offsets))


def score_task(task: Task, classes: int, pred: np.ndarray, truth: np.ndarray, train_labels: np.ndarray,
               slots: np.ndarray | None, train_loss: float) -> TaskScore:
    """pred [N, P] for test labels truth [N]; slots as `offset_buckets` (None for Q-probes)."""
    top = majority_class(train_labels, classes)
    offsets = () if slots is None else offset_buckets(pred, truth, slots, top)
    return TaskScore(task, classes, top, float((truth == top).mean()),
                     tuple(float(a) for a in (pred == truth[:, None]).mean(0)), offsets, train_loss)


# ---------------------------------------------------------------------------------------------- drivers


def _run(model: GPT, tasks: Mapping[Task, int], train: Inputs, test: Inputs, slots: np.ndarray | None, *,
         kind: str, rank: int, norm: str, layer: int | None, shared: bool, steps: int, batch_size: int,
         lr: float, weight_decay: float, seed: int, desc: str | None) -> ProbeResult:
    if steps <= 0 or batch_size <= 0 or rank <= 0:
        raise ValueError(f"{kind}-probe: steps, batch_size, rank must be positive, got {steps}, {batch_size}, {rank}")
    if norm == "batch" and len(train.tokens) < 2:
        raise ValueError(f"{kind}-probe: BatchNorm heads need at least 2 training examples")
    layer = model.cfg.depth if layer is None else layer
    names, classes = list(tasks), list(tasks.values())
    groups = [list(range(len(names)))] if shared else [[t] for t in range(len(names))]
    common = {"rank": rank, "norm": norm, "layer": layer, "steps": steps, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay}
    scores = []
    for g in groups:
        probe_seed = seed if shared else int(np.random.SeedSequence([seed, g[0]]).generate_state(1)[0])
        bar = desc if desc is None or shared else f"{desc} {names[g[0]].name}"
        fit = fit_probe(model, train.only(g), [classes[t] for t in g], seed=probe_seed, desc=bar, **common)
        pred = predict(fit.probe, test.only(g), batch_size)
        tail = fit.losses[-max(1, steps // 10):].mean(0)
        for j, t in enumerate(g):
            task_slots = None if slots is None else slots[:, ATTRIBUTES.index(names[t].attribute)]
            scores.append(score_task(names[t], classes[t], pred[:, :, j], test.labels[:, t], train.labels[:, t],
                                     task_slots, float(tail[j])))
    return ProbeResult(kind, layer, rank, shared, steps, len(train.tokens), len(test.tokens), tuple(scores))


def run_pprobe(
    model: GPT,
    tasks: Mapping[Task, int],
    train: Sequence[Biography],
    test: Sequence[Biography],
    *,
    steps: int,
    rank: int = 2,
    batch_size: int = 50,
    lr: float = 1.0e-3,
    weight_decay: float = 0.3,
    layer: int | None = None,
    shared: bool = True,
    seed: int = 0,
    desc: str | None = "Pprobe",
) -> ProbeResult:
    """P-probing: fit on `train`'s people, score on `test`'s. `tasks` maps each task to its class count;
    every example's labels follow its order. `layer`: the residual stream after that block (default: last).
    `desc` names the progress bars (None: none)."""
    _check_split(train, test, model.cfg.context, "P-probe")
    classes = list(tasks.values())
    data = biography_inputs(train, classes, "training"), biography_inputs(test, classes, "test")
    slots = np.array([[b.order.index(a) for a in ATTRIBUTES] for b in test])  # [N, attribute] -> its index
    return _run(model, tasks, *data, slots, kind="P", rank=rank, norm="layer", layer=layer, shared=shared,
                steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, desc=desc)


def run_qprobe(
    model: GPT,
    tasks: Mapping[Task, int],
    train: Sequence[NameQuery],
    test: Sequence[NameQuery],
    *,
    steps: int,
    rank: int = 16,
    batch_size: int = 200,
    lr: float = 1.0e-3,
    weight_decay: float = 0.3,
    layer: int | None = None,
    shared: bool = True,
    seed: int = 0,
    desc: str | None = "Qprobe",
) -> ProbeResult:
    """Q-probing on `<start> full name <end>`: fit on `train`'s people, score on `test`'s, reading the last token.
    `desc` names the progress bars (None: none)."""
    _check_split(train, test, model.cfg.context, "Q-probe")
    classes = list(tasks.values())
    data = query_inputs(train, classes, "training"), query_inputs(test, classes, "test")
    return _run(model, tasks, *data, None, kind="Q", rank=rank, norm="batch", layer=layer, shared=shared,
                steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, desc=desc)


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class BioProbeData:
    """The probes' inputs built from a bio dataset's tables (`bio_inputs`)."""

    tasks: dict[Task, int]  # task -> class count
    biographies: tuple[Biography, ...]  # each person's first biography
    queries: tuple[NameQuery, ...]  # each person's `<start> name <end>`


def bio_inputs(people, bios, vocab, persons: Sequence[int]) -> BioProbeData:
    """P- and Q-probe inputs of `persons` from the people and bios tables (physlm/bios/people.py) and the
    dataset's vocabulary. Classes: per task the sorted distinct first tokens (birth date: the month) or
    whole values over *every* person of the table, so every split shares them. A biography is the person's
    first entry, `<bos>` first; its read positions are the tokens right before each value."""
    from physlm.bios.text import name_probe_text, spans_of, value_token_spans

    values = {a: people[a].to_list() for a in ATTRIBUTES}
    firsts = {a: [vocab.encode(v)[0] for v in values[a]] for a in ATTRIBUTES}
    classes = {t: sorted(set(firsts[t.attribute] if t.kind == "first" else values[t.attribute])) for t in TASKS}
    index = {t: {c: k for k, c in enumerate(cs)} for t, cs in classes.items()}
    row_of = {pid: k for k, pid in enumerate(people["id"].to_list())}
    first_bio = {}
    for row in bios.filter(bios["entry"] == 0).iter_rows(named=True):
        first_bio[row["person"]] = row
    biographies, queries = [], []
    for pid in persons:
        k = row_of[pid]
        labels = tuple(index[t][firsts[t.attribute][k] if t.kind == "first" else values[t.attribute][k]] for t in TASKS)
        row = first_bio[pid]
        spans = value_token_spans(vocab, row["text"], spans_of(row))
        order = tuple(sorted(ATTRIBUTES, key=lambda a: spans[a][0]))
        tokens = (vocab.bos_id, *vocab.encode(row["text"]))
        # token j of the text is token j + 1 after <bos>: the one before the value's first token is spans[a][0]
        biographies.append(Biography(tokens, tuple(spans[a][0] for a in order), order, labels, pid))
        queries.append(NameQuery(tuple(vocab.encode(name_probe_text(people["full_name"][k]))), labels, pid))
    return BioProbeData({t: len(cs) for t, cs in classes.items()}, tuple(biographies), tuple(queries))


# ---------------------------------------------------------------------------------------------- reports


def rows(result: ProbeResult) -> list[dict]:
    """Flat rows for CSV: per task, one per read position (axis "position"; Q: axis "end", index 0) and,
    for P, one per offset (axis "offset")."""
    out = []
    for s in result.scores:
        base = {"probe": result.probe, "layer": result.layer, "task": s.task.name, "attribute": s.task.attribute,
                "kind": s.task.kind, "classes": s.classes, "train_loss": s.train_loss}
        axis = "position" if result.probe == "P" else "end"
        for k, acc in enumerate(s.accuracy):
            out.append({**base, "axis": axis, "index": k, "accuracy": acc, "majority": s.majority,
                        "n": result.n_test})
        for b in s.offsets:
            out.append({**base, "axis": "offset", "index": b.offset, "accuracy": b.accuracy, "majority": b.majority,
                        "n": b.n})
    return out


def summary(result: ProbeResult) -> dict[str, float]:
    """Flat metrics: `{task}_majority`; P: `{task}_p{k}` per position index, `{task}_d{offset}` per
    offset; Q: `{task}`."""
    out: dict[str, float] = {}
    for s in result.scores:
        name = s.task.name
        out[f"{name}_majority"] = s.majority
        if result.probe == "Q":
            out[name] = s.accuracy[0]
            continue
        out |= {f"{name}_p{k}": acc for k, acc in enumerate(s.accuracy)}
        out |= {f"{name}_d{b.offset}": b.accuracy for b in s.offsets}
    return out
