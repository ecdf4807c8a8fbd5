"""The training loop, top to bottom: AdamW with warmup then cosine/linear decay, gradient accumulation,
periodic evaluation, and atomic checkpoints that a rerun resumes from; on one CPU, one GPU or many.

Deterministic: the global batch of update s is positions [s * batch_size, (s + 1) * batch_size) of a stream
that walks a fresh seeded permutation of the windows every epoch, so the data is a pure function of
(seed, step, micro-step) and a resumed run sees exactly what an uninterrupted one would. On CPU training is
bit-for-bit reproducible, and a resumed run ends with weights torch.equal to an uninterrupted one
(tests/test_train.py, which also pins the first losses of a seeded run).

Many devices (`physlm.distributed`, under torchrun): rank r takes micro-batches r * accumulation .. of each
global batch and the gradients and the logged loss are averaged over ranks, so 1 device x N micro-steps
trains like N devices x 1 (tests/test_distributed.py); DDP by default, FSDP2 with parallel="fsdp"; only
rank 0 logs and writes checkpoints, every rank resumes from them.

Speed: a background thread prepares the next micro-batches (pinned host memory on CUDA, copied with
non_blocking) while the device computes; the hot loop reads nothing back from the device except on log,
eval and checkpoint steps. Each history row reports tokens/s, `data_wait` (the share of the window's wall time the loop spent
blocked waiting for its next batch: 0 when loading keeps up) and, on CUDA, `mfu` (model FLOPs per token x
tokens/s over the devices' bf16 peak, `physlm.device.peak_flops`), all timed after synchronising the device.

Streamed data (`physlm.stream.Stream`, passed instead of the window array): window j of the endless stream is
made by the world generator from (seed, j), and global micro-batch `micro` of update `step` takes windows
j = step * batch_size + micro * micro_batch_size + r, so every window is used once and resume and the
1-device / N-device equivalence hold as above; worker processes make the windows ahead of the loop, and
`data_wait` says whether they keep up.

Objectives: "clm" (default), next-token prediction by a causal model; "mlm", masked-LM for the encoder-only
control (`physlm/mlm.py`): the inputs are w[:-1] masked by `physlm.mlm.mask_batch`, seeded by (seed, step,
micro-step) so resume still holds, the targets the original ids at the masked positions, -1 elsewhere.

Loss masks (`physlm.tokenize.Windows`: windows with a 0/1 mask per token, 1 where the token is a training
target; `load_windows` reads `<split>.loss.npy`; a stream's windows carry one when its examples do): a target
whose mask is 0 becomes -1, ignored by the loss, for the train, finetune and val windows alike ("clm": the
target w[t+1] keeps the mask of token t+1; "mlm": a selected token is a target only where its mask is 1). The
loss of a micro-batch is the mean over its targets, and a step's the mean over its micro-batches (as for
"mlm"); a micro-batch without any target is a DataError (its loss is undefined). Windows without a mask train
exactly as before. `tokens_seen` counts every window token; a masked run also counts its targets
(`targets_seen`, in each history row and the checkpoint).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import math
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from physlm import distributed
from physlm.device import Peak, autocast, deterministic, peak_flops, pick_device, synchronize
from physlm.distributed import PARALLEL, Ranks
from physlm.errors import DataError
from physlm.io import read_npy
from physlm.lora import LoraConfig
from physlm.mlm import MASK_RATE, encoder_config, mask_batch
from physlm.model import GPT, GPTConfig
from physlm.tokenize import Windows

DECAYS = ("cosine", "linear", "constant")
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("model", "optimizer", "step", "history", "rng", "meta")  # what `_save` writes
OBJECTIVES = ("clm", "mlm")

Batch = tuple[Tensor, Tensor]
Masking = Callable[..., tuple[np.ndarray, np.ndarray]]  # (windows [B, T], seed=...) -> (inputs, targets)


Data = np.ndarray | Windows  # windows [N, T+1]: token ids alone (every token a target) or with a loss mask


class WindowBatches(Protocol):
    """Windows [len(js), T+1] for each list js of window indices, in order (`physlm.stream.Producer`)."""

    def __next__(self) -> Data: ...
    def close(self) -> None: ...


class WindowSource(Protocol):
    """An endless stream of training windows, window j a pure function of j (`physlm.stream.Stream`)."""

    width: int  # T + 1
    masked: bool  # its windows come with loss masks (`Windows`)

    def identity(self) -> str: ...  # changes whenever any window would
    def open(self, rows: Iterator[list[int]]) -> WindowBatches: ...


@dataclass(frozen=True)
class TrainConfig:
    steps: int  # optimizer updates
    batch_size: int  # global batch in sequences (windows)
    micro_batch_size: int  # sequences per device per micro-step; accumulation = batch_size // (micro * world_size)
    lr: float  # peak learning rate
    min_lr_ratio: float = 0.0  # final lr (at `steps`) = lr * min_lr_ratio; unused by "constant"
    warmup_steps: int = 0  # linear warmup: update s < warmup_steps uses lr * (s + 1) / warmup_steps
    decay: str = "cosine"  # after warmup: "cosine" | "linear" | "constant"
    weight_decay: float = 0.1  # AdamW decoupled decay of matrices and embeddings; none on norms and biases
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.98  # AdamW second-moment decay
    eps: float = 1e-6  # AdamW denominator epsilon
    grad_clip: float = 1.0  # max global gradient norm; 0 disables
    eval_every: int = 100  # val loss every this many steps, and at the last
    eval_batches: int = 4  # val micro-batches per evaluation: the first eval_batches * micro_batch_size windows
    checkpoint_every: int = 100  # checkpoint every this many steps, and at the last
    log_every: int = 10  # history row every this many steps, and at every eval step
    seed: int = 0  # model init, batch order, dropout
    compile: bool = False  # torch.compile the model; CUDA only, ignored elsewhere
    parallel: str = "ddp"  # several processes: "ddp" replicates the model, "fsdp" shards it (FSDP2)
    segment_start: int | None = None  # token id starting each packed example (<bos>): attention stays inside
    #                                    examples, train and val loss alike (GPT.forward); None: whole windows

    def __post_init__(self) -> None:
        counts = ("steps", "batch_size", "micro_batch_size", "eval_every", "eval_batches", "checkpoint_every")
        for name in (*counts, "log_every"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        _check(self.lr > 0, "lr", f"must be positive, got {self.lr}")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        _check(0 <= self.warmup_steps <= self.steps, "warmup_steps", f"must be in [0, steps], got {self.warmup_steps}")
        _check(self.decay in DECAYS, "decay", f"must be one of {DECAYS}, got {self.decay!r}")
        _check(self.grad_clip >= 0, "grad_clip", f"must be >= 0, got {self.grad_clip}")
        _check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        _check(self.parallel in PARALLEL, "parallel", f"must be one of {PARALLEL}, got {self.parallel!r}")
        _check(self.segment_start is None or self.segment_start >= 0, "segment_start",
               f"must be a token id >= 0 or None, got {self.segment_start}")
        _check(
            self.batch_size % self.micro_batch_size == 0,
            "batch_size",
            f"{self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}",
        )


def _check(ok: bool, field: str, why: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{field}: {why}")


@dataclass(frozen=True)
class Finetune:
    """A second phase after training (the biography world's QA finetuning): its windows, its loop settings,
    and LoRA adapters (merged into plain weights when it ends) or None for a full finetune."""

    windows: Data
    config: TrainConfig
    lora: LoraConfig | None = None


@dataclass(frozen=True)
class Plan:
    """What the train stage runs: training on `train` windows (None: the stream) with `config` (or the params'
    loop settings), then `finetune` if any; `detail` goes into metrics/<study>/detail/train.json. A world without
    a train step gets the plain plan: its tokenized train split, the params' settings, no second phase."""

    train: Data | None
    finetune: Finetune | None = None
    config: TrainConfig | None = None  # the first phase's loop settings in place of the params' (None: theirs), e.g.
    #                                    steps a world derives from its data (the capacity world's exposures)
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)  # the world's keys for detail/train.json
    #                                    (results only, no wall-clock time: e.g. the realized exposure counts)


def load_windows(tokens: Path, split: str) -> Data:
    """A tokenized split, `<tokens>/<split>.npy`, memory-mapped, with its loss mask `<split>.loss.npy` as
    `Windows` where the world gave one (else the bare array); DataError if either is missing, unreadable or
    malformed (not windows [N, T+1] of integer token ids; not a 0/1 mask of their shape)."""
    path = Path(tokens) / f"{split}.npy"
    windows = read_npy(path)
    if windows.ndim != 2 or windows.dtype.kind not in "iu":
        raise DataError(f"{path}: not a token shard (expected 2-D integer windows, got {windows.dtype} {list(windows.shape)})")
    mask_path = Path(tokens) / f"{split}.loss.npy"
    if not mask_path.exists():
        return windows
    loss = read_npy(mask_path)
    if loss.shape != windows.shape or loss.dtype.kind not in "bu" or loss.max(initial=0) > 1:
        raise DataError(f"{mask_path}: not a loss mask of {path.name} (expected 0/1 of shape {list(windows.shape)},"
                        f" got {loss.dtype} {list(loss.shape)})")
    return Windows(windows, loss)


@dataclass
class TrainResult:
    model: GPT  # trained model, on the training device (whole on rank 0; other ranks' may be sharded)
    history: list[dict]  # per logged step: step, loss, lr, tokens_per_s, data_wait, mfu (CUDA), val_loss (evals)
    final_loss: float | None  # train loss of the last logged step (None if nothing was logged)
    final_val_loss: float | None  # val loss of the last eval step (None without val windows or evals)
    tokens_seen: int  # train tokens in all updates so far, including those before a resume
    targets_seen: int | None  # of them, the targets (loss mask 1) predicted; None without a loss mask (all are)
    seconds: float  # wall time of this call
    resumed_from: int | None  # step of the checkpoint this call resumed from


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of update `step` (0-based): linear warmup, then decay to lr * min_lr_ratio at `steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    shape = 1.0 - progress if cfg.decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + shape * (cfg.lr - min_lr)


def accumulation_steps(cfg: TrainConfig, world_size: int) -> int:
    """Micro-steps per update on each device; ValueError unless they divide the global batch exactly."""
    per_step = cfg.micro_batch_size * world_size
    if cfg.batch_size % per_step:
        raise ValueError(
            f"TrainConfig.batch_size: {cfg.batch_size} is not a multiple of micro_batch_size {cfg.micro_batch_size}"
            f" x world_size {world_size}"
        )
    return cfg.batch_size // per_step


def train(
    model_cfg: GPTConfig,
    cfg: TrainConfig,
    train_windows: Data | WindowSource,
    val_windows: Data | None,
    ckpt_dir: Path,
    *,
    on_log: Callable[[dict], None] | None = None,
    stop_after: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    objective: str = "clm",
    mask_rate: float = MASK_RATE,
    init: GPT | None = None,
) -> TrainResult:
    """Train a fresh GPT on windows [N, T+1] (inputs w[:-1], targets w[1:]; `Windows` with a loss mask: only
    the targets it marks) or on a stream of them (a `WindowSource`, module docstring), resuming from ckpt_dir
    if it holds a checkpoint of the same configs, data and start. `init` (a model of `model_cfg`, possibly with
    frozen parameters, e.g. `physlm.lora.apply_lora`'s) is the start instead of a fresh one (finetuning); it
    is copied, and only its parameters with requires_grad train. `stop_after=k` returns after update k without writing an
    extra checkpoint, as an interruption would; a rerun resumes from the last periodic checkpoint.
    objective="mlm" (with mask_rate) trains an encoder (causal=False) whose last token id is the mask by
    masked LM instead (module docstring; `train_mlm`)."""
    started = time.perf_counter()
    ranks = distributed.current()
    accumulation = accumulation_steps(cfg, ranks.size)
    masking = _masking(objective, mask_rate, model_cfg)
    token_limit = model_cfg.vocab_size if masking is None else model_cfg.vocab_size - 1  # the mask id is no data
    if isinstance(train_windows, (np.ndarray, Windows)):
        train_windows = _as_windows(train_windows)
        _check_windows("train_windows", train_windows.tokens, model_cfg, 1, token_limit)
    elif not 2 <= train_windows.width <= model_cfg.context + 1:
        raise DataError(f"train_windows: stream windows of {train_windows.width} tokens do not fit context {model_cfg.context}")
    if val_windows is not None:
        val_windows = _as_windows(val_windows)
        _check_windows("val_windows", val_windows.tokens, model_cfg, cfg.micro_batch_size, token_limit)
    masked = train_windows.loss is not None if isinstance(train_windows, Windows) else train_windows.masked
    dev = pick_device(device)
    with deterministic(dev):
        torch.manual_seed(cfg.seed)
        if init is not None and init.cfg != model_cfg:
            raise ValueError(f"init model config {init.cfg} differs from model_cfg {model_cfg}")
        model = GPT(model_cfg).to(dev) if init is None else copy.deepcopy(init).to(dev)
        flops_per_token = model.flops_per_token()
        model = distributed.shard(model, cfg.parallel, ranks)
        optimizer = make_optimizer(model, cfg, dev)
        val_batches = _val_batches(val_windows, cfg, dev, masking) if val_windows is not None else []
        ckpt = Path(ckpt_dir) / CHECKPOINT
        data = _data_identity(train_windows, val_windows)
        meta = {"model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(cfg), "data": data}
        if masking is not None:  # (absent for "clm": its checkpoints are unchanged)
            meta["objective"] = {"name": objective, "mask_rate": mask_rate}
        if init is not None:  # (absent for a fresh start, likewise)
            meta["init"] = _state_fingerprint(init)
        start, history, targets_before = _resume(ckpt, meta, model, optimizer)
        compiled = torch.compile(model) if cfg.compile and dev.type == "cuda" else model
        fwd = distributed.replicate(compiled, cfg.parallel, ranks, dev)
        last = min(cfg.steps, stop_after if stop_after is not None else cfg.steps)
        tokens_per_step = cfg.batch_size * (train_windows.width - 1)
        meter = _Meter(dev, tokens_per_step, flops_per_token, peak_flops(dev), ranks)
        keys = functools.partial(_keys, start, last, accumulation, ranks.rank)
        make, streamed = _batch_maker(train_windows, cfg, masking, dev.type == "cuda", keys())
        loader = Prefetcher(make, keys(), dev)
        targets = _Targets(dev, ranks, targets_before) if masked else None
        bar = tqdm(total=cfg.steps, initial=start, desc="train", mininterval=1.0,
                   disable=not progress or not ranks.main)

        try:
            for step in range(start, last):
                lr = lr_at(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr

                step_loss = torch.zeros((), device=dev)
                for micro in range(accumulation):
                    x, y = loader.next()
                    if targets is not None:
                        targets.add(y)
                    with distributed.gradient_sync(fwd, model, micro == accumulation - 1):
                        with autocast(dev):
                            _, loss = fwd(x, y, segment_start=cfg.segment_start)
                        (loss / accumulation).backward()
                    step_loss += loss.detach() / accumulation

                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                bar.update()

                done = step + 1
                meter.steps += 1
                evaluating = done % cfg.eval_every == 0 or done == cfg.steps
                if done % cfg.log_every == 0 or evaluating:  # every rank: the loss mean and evaluation are collective
                    row = {"step": done, "loss": distributed.mean_over_ranks(step_loss, ranks).item(), "lr": lr}
                    if targets is not None:
                        row["targets_seen"] = targets.total()
                    row |= meter.read(loader)
                    if evaluating and val_batches:
                        row["val_loss"] = evaluate(model, val_batches, dev, cfg.segment_start)
                    if ranks.main:
                        history.append(row)
                        bar.set_postfix(loss=f"{row['loss']:.4f}")
                        if on_log is not None:
                            on_log(row)
                    meter.restart(loader)
                if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                    _save(ckpt, model, optimizer, done, history, meta, ranks,
                          None if targets is None else targets.total())
        finally:
            loader.close()
            if streamed is not None:
                streamed.close()
            bar.close()
        model = distributed.gather_model(model, ranks)
        targets_seen = None if targets is None else targets.total()

    val_rows = [row["val_loss"] for row in history if "val_loss" in row]
    return TrainResult(
        model=model,
        history=history,
        final_loss=history[-1]["loss"] if history else None,
        final_val_loss=val_rows[-1] if val_rows else None,
        tokens_seen=max(start, last) * tokens_per_step,
        targets_seen=targets_seen,
        seconds=time.perf_counter() - started,
        resumed_from=start or None,
    )


def train_mlm(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    train_windows: Data,
    val_windows: Data | None,
    ckpt_dir: Path,
    *,
    mask_rate: float = MASK_RATE,
    **kw: Any,
) -> TrainResult:
    """Train the encoder control of decoder config `model_cfg` by masked LM on the decoder's windows
    [N, context+1] (only the first `context` tokens of each are used), with `physlm.train.train`'s loop,
    schedule, checkpoints and resume; kw go to `train` (on_log, stop_after, device, progress).
    The result's model is the encoder; val_loss is the MLM loss on a fixed masking of the val windows."""
    return train(encoder_config(model_cfg), train_cfg, train_windows, val_windows, ckpt_dir,
                 objective="mlm", mask_rate=mask_rate, **kw)


def make_optimizer(model: GPT, cfg: TrainConfig, dev: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings (dim >= 2), none on LayerNorms and biases (nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=dev.type == "cuda")


@torch.no_grad()
def evaluate(model: GPT, batches: list[Batch], dev: torch.device, segment_start: int | None = None) -> float:
    """Mean loss over equal-size batches, in eval mode (no dropout); leaves the model in train mode."""
    model.eval()
    total = torch.zeros((), device=dev)
    for x, y in batches:
        with autocast(dev):
            total += model(x, y, segment_start=segment_start)[1]
    model.train()
    return total.item() / len(batches)


def batch_rows(seed: int, step: int, micro: int, cfg: TrainConfig, n: int) -> list[int]:
    """Window indices of global micro-batch `micro` of update `step` (the DDP rank's micro-batches are
    rank * accumulation ..): stream positions mapped through each epoch's seeded permutation."""
    first = step * cfg.batch_size + micro * cfg.micro_batch_size
    return [int(_epoch_order(seed, p // n, n)[p % n]) for p in range(first, first + cfg.micro_batch_size)]


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def stream_rows(step: int, micro: int, cfg: TrainConfig) -> list[int]:
    """Stream windows of global micro-batch `micro` of update `step`: the next micro_batch_size of the stream."""
    first = step * cfg.batch_size + micro * cfg.micro_batch_size
    return list(range(first, first + cfg.micro_batch_size))


def _keys(start: int, last: int, accumulation: int, rank: int) -> Iterator[tuple[int, int]]:
    """(step, global micro-batch) of this rank's micro-steps of updates start .. last-1, in order."""
    return ((step, rank * accumulation + m) for step in range(start, last) for m in range(accumulation))


def _batch_maker(train_windows: Windows | WindowSource, cfg: TrainConfig, masking: Masking | None, pin: bool,
                 keys: Iterator[tuple[int, int]]) -> tuple[Callable[..., Batch], WindowBatches | None]:
    """make(step, micro) for the Prefetcher, which calls it for `keys` in order: rows of the windows, or
    the stream's next micro-batch (opened on the same keys; returned too, to be closed)."""
    if isinstance(train_windows, Windows):
        return functools.partial(_train_batch, train_windows, cfg, masking, pin), None
    streamed = train_windows.open(stream_rows(step, micro, cfg) for step, micro in keys)
    return functools.partial(_stream_batch, streamed, cfg, masking, pin), streamed


def _stream_batch(streamed: WindowBatches, cfg: TrainConfig, masking: Masking | None, pin: bool, step: int,
                  micro: int) -> Batch:
    return _host_batch(_as_windows(next(streamed)), masking, (cfg.seed, 0, step, micro), pin)


def _as_windows(windows: Data) -> Windows:
    return windows if isinstance(windows, Windows) else Windows(windows)


def _data_identity(train_windows: Windows | WindowSource, val_windows: Windows | None) -> str:
    """What a checkpoint resumes only on: the arrays' fingerprint, or the stream's identity and the val windows'."""
    if isinstance(train_windows, Windows):
        return _fingerprint(train_windows, val_windows)
    return f"stream:{train_windows.identity()}:{_fingerprint(val_windows)}"


def _masking(objective: str, rate: float, model_cfg: GPTConfig) -> Masking | None:
    """None for "clm"; for "mlm", `mask_batch` with the model's last id as the mask."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if (objective == "clm") != model_cfg.causal:
        raise ValueError(f"objective {objective!r} needs a {'causal' if objective == 'clm' else 'non-causal'} model"
                         f" (GPTConfig.causal={model_cfg.causal})")
    if objective == "clm":
        return None
    if not 0.0 < rate < 1.0:
        raise ValueError(f"mask_rate must be in (0, 1), got {rate}")
    mask = model_cfg.vocab_size - 1
    return functools.partial(mask_batch, rate=rate, mask_token=mask, vocab_size=mask)


def _train_batch(windows: Windows, cfg: TrainConfig, masking: Masking | None, pin: bool, step: int,
                 micro: int) -> Batch:
    """Global micro-batch `micro` of update `step`, on the host (see `_host_batch`)."""
    rows = batch_rows(cfg.seed, step, micro, cfg, len(windows))
    return _host_batch(windows[rows], masking, (cfg.seed, 0, step, micro), pin)


def _host_batch(windows: Windows, masking: Masking | None, key: tuple[int, ...], pin: bool) -> Batch:
    """Inputs w[:, :-1] and targets w[:, 1:] ("mlm": the masked inputs and their targets, -1 where not masked,
    seeded by `key`), and -1 where the loss mask is 0, as int64 host tensors, pinned when `pin` so the copy to
    the GPU can be asynchronous. DataError if the loss mask leaves no target."""
    w = windows.tokens
    x, y = (w[:, :-1], w[:, 1:]) if masking is None else masking(w[:, :-1], seed=key)
    if windows.loss is not None:
        keep = windows.loss[:, 1:] if masking is None else windows.loss[:, :-1]  # the mask of each target token
        y = np.where(keep != 0, y.astype(np.int64), -1)
        if not (y >= 0).any():
            raise DataError(f"a micro-batch of {len(w)} windows without any target (loss mask 0 throughout; batch key"
                            f" {key}): its loss is undefined; use larger micro-batches, or windows that hold targets")
    return _int64(x, pin), _int64(y, pin)


def _int64(a: np.ndarray, pin: bool) -> Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))
    return t.pin_memory() if pin else t


def _on_device(batch: Batch, dev: torch.device) -> Batch:
    x, y = batch
    return x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)


class Prefetcher:
    """Host batches made by `make(*key)` for each key in order, `depth` ahead in a background thread, and
    handed out on the device (an asynchronous copy from pinned memory on CUDA). `waited` adds up the seconds
    the loop spent blocked in `next`: the wait for data. An error in `make` is raised by `next`."""

    def __init__(self, make: Callable[..., Batch], keys: Iterable[tuple[int, ...]], dev: torch.device, depth: int = 2):
        self.dev, self.waited = dev, 0.0
        self._queue: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(make, keys), daemon=True, name="physlm-prefetch")
        self._thread.start()

    def next(self) -> Batch:
        began = time.perf_counter()
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        batch = _on_device(item, self.dev)
        self.waited += time.perf_counter() - began
        return batch

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _fill(self, make: Callable[..., Batch], keys: Iterable[tuple[int, ...]]) -> None:
        for key in keys:
            try:
                item: Batch | BaseException = make(*key)
            except Exception as err:  # handed to the loop, which raises it
                item = err
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or isinstance(item, BaseException):
                return


@dataclass
class _Meter:
    """Throughput of the updates since the last log row, read after synchronising the device."""

    dev: torch.device
    tokens_per_step: int  # global: every rank's micro-batches
    flops_per_token: int
    peak: Peak | None  # None on CPU: no MFU
    ranks: Ranks
    steps: int = 0
    began: float = dataclasses.field(default_factory=time.perf_counter)

    def read(self, loader: Prefetcher) -> dict[str, float]:
        synchronize(self.dev)
        seconds = time.perf_counter() - self.began
        rate = self.steps * self.tokens_per_step / seconds
        row = {"tokens_per_s": rate, "data_wait": loader.waited / seconds}
        if self.peak is not None:
            row["mfu"] = rate * self.flops_per_token / (self.peak.tflops * 1e12 * self.ranks.size)
        return row

    def restart(self, loader: Prefetcher) -> None:
        self.steps, self.began, loader.waited = 0, time.perf_counter(), 0.0


class _Targets:
    """Targets (ids >= 0) of the training batches, counted on the device (no sync in the hot loop); `total` is
    collective: every rank's count since the start, plus `before` (those before a resume)."""

    def __init__(self, dev: torch.device, ranks: Ranks, before: int) -> None:
        self.count, self.ranks, self.before = torch.zeros((), dtype=torch.float64, device=dev), ranks, before

    def add(self, y: Tensor) -> None:
        self.count += (y >= 0).sum()

    def total(self) -> int:
        return self.before + round(distributed.mean_over_ranks(self.count, self.ranks).item() * self.ranks.size)


def _val_batches(windows: Windows, cfg: TrainConfig, dev: torch.device, masking: Masking | None = None) -> list[Batch]:
    """The fixed val set: the first eval_batches full micro-batches of the val windows ("mlm": masked once,
    seeded by (seed, 1, batch))."""
    count = min(cfg.eval_batches, len(windows) // cfg.micro_batch_size)
    size, pin = cfg.micro_batch_size, dev.type == "cuda"
    host = [_host_batch(windows[i * size : (i + 1) * size], masking, (cfg.seed, 1, i), pin) for i in range(count)]
    return [_on_device(batch, dev) for batch in host]


def _check_windows(name: str, windows: np.ndarray, model_cfg: GPTConfig, min_rows: int, limit: int) -> None:
    ok_shape = windows.ndim == 2 and 2 <= windows.shape[1] <= model_cfg.context + 1 and len(windows) >= min_rows
    if not ok_shape:
        raise DataError(
            f"{name}: expected at least {min_rows} windows [N, T+1] with T <= context {model_cfg.context},"
            f" got shape {windows.shape}"
        )
    if windows.min() < 0 or windows.max() >= limit:
        if limit < model_cfg.vocab_size:
            raise DataError(f"{name}: token ids must lie in [0, {limit}): id {limit} is the mask token")
        raise DataError(f"{name}: token ids must lie in [0, vocab_size={model_cfg.vocab_size})")


def _fingerprint(*windows: Windows | None) -> str:
    """Hash of the windows' shapes, dtypes and bytes, and of their loss masks (windows without one hash as their
    bare array always did): a checkpoint only resumes on the data it was made on."""
    h = hashlib.blake2b(digest_size=16)

    def add(a: np.ndarray | None, tag: str = "") -> None:
        h.update((tag + repr(None if a is None else (a.shape, a.dtype.str))).encode())
        if a is not None:
            h.update(np.ascontiguousarray(a).data)

    for w in windows:
        add(None if w is None else w.tokens)
        if w is not None and w.loss is not None:
            add(w.loss, "loss")
    return h.hexdigest()


def _state_fingerprint(model: nn.Module) -> str:
    """Hash of a model's parameter and buffer names and values."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().data)
    return h.hexdigest()


def _save(path: Path, model: GPT, optimizer: torch.optim.Optimizer, step: int, history: list[dict], meta: dict,
          ranks: Ranks, targets_seen: int | None = None) -> None:
    """Write the checkpoint atomically (a temporary file moved into place), from rank 0. Every rank calls it:
    gathering a sharded model's state is collective. A masked run also keeps its `targets_seen`."""
    model_state, optim_state = distributed.full_state(model, optimizer)
    if not ranks.main:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model_state,
        "optimizer": optim_state,
        "step": step,
        "history": history,
        "rng": torch.get_rng_state(),
        "meta": meta,
    }
    if targets_seen is not None:
        state["targets_seen"] = targets_seen
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(path: Path, meta: dict, model: GPT, optimizer: torch.optim.Optimizer) -> tuple[int, list[dict], int]:
    """(step, history, targets_seen) from the checkpoint at `path`, loaded into model and optimizer (on every
    rank; targets_seen 0 where it kept none); (0, [], 0) when there is none, and also, with a one-line warning,
    when it is unreadable (empty, truncated, corrupt, not a physlm checkpoint, states that do not fit the model)
    or was made with other configs or data (stale):
    training starts from scratch and the next checkpoint replaces it. Loaded with weights_only=True, so a
    checkpoint never runs code; torch's advice to load one otherwise is never shown."""
    if not path.exists():
        return 0, [], 0
    state, problem = _read_checkpoint(path)
    if problem is None and state["meta"] != meta:
        warnings.warn(f"{path}: checkpoint is from other configs or data; ignoring it and training from scratch")
        return 0, [], 0
    problem = problem or _misfit(state, model, optimizer)
    if problem is not None:
        warnings.warn(f"{path}: unreadable checkpoint ({problem}); ignoring it and training from scratch")
        return 0, [], 0
    try:  # checked to fit: a failure now may have loaded part of the model, so training from scratch is no option
        distributed.load_full_state(model, optimizer, state["model"], state["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        raise DataError(f"{path}: checkpoint does not load ({type(err).__name__}); delete it to train from scratch") from None
    torch.set_rng_state(state["rng"])
    return state["step"], state["history"], state.get("targets_seen", 0)


def _read_checkpoint(path: Path) -> tuple[dict, str | None]:
    """The checkpoint's dict, or why it is none. Of torch.load's errors (long, and advising weights_only=False)
    only the type is kept, and its warnings (e.g. about a foreign pickle protocol) are silenced."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except EOFError:
        return {}, "empty file"
    except Exception as err:  # noqa: BLE001 (zip, pickle and I/O errors of many types)
        return {}, f"truncated, corrupt or not a torch file: {type(err).__name__}"
    if not isinstance(state, dict):
        return {}, f"a {type(state).__name__}, not a physlm checkpoint"
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing or not isinstance(state["meta"], dict):
        return {}, f"not a physlm checkpoint: no {', '.join(missing) or 'meta dict'}"
    return state, None


def _misfit(state: dict, model: GPT, optimizer: torch.optim.Optimizer) -> str | None:
    """Why a checkpoint of the right configs still cannot be loaded (its states' names, shapes or types), else None."""
    saved, optim, rng, step = state["model"], state["optimizer"], state["rng"], state["step"]
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if not isinstance(saved, dict) or {k: tuple(v.shape) if isinstance(v, Tensor) else None for k, v in saved.items()} != shapes:
        return "its model state does not fit the model"
    groups = optim.get("param_groups") if isinstance(optim, dict) else None
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    if not (isinstance(groups, list) and isinstance(optim.get("state"), dict)
            and [len(g["params"]) if isinstance(g, dict) and isinstance(g.get("params"), list) else -1 for g in groups] == sizes):
        return "its optimizer state does not fit the model"
    if not (isinstance(rng, Tensor) and rng.dtype == torch.uint8 and rng.shape == torch.get_rng_state().shape):
        return "its random state is malformed"
    if not (isinstance(step, int) and step >= 0 and isinstance(state["history"], list)):
        return "its step or history is malformed"
    if not isinstance(state.get("targets_seen", 0), int):
        return "its targets_seen is malformed"
    return None
