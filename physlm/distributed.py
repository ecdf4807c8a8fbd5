"""Training on many devices: torchrun's environment, the process group, DDP or FSDP2, and the stage launcher.

`torchrun` starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK; `setup` turns that into a
process group (nccl on CUDA, gloo on CPU) and this rank's device. The training loop (`physlm.train`) then
shards the model with FSDP2 (`fully_shard`, parallel="fsdp") or replicates it with DDP (parallel="ddp", the
default), skips the gradient reduction on all but the last micro-step, averages the logged loss over ranks,
and lets only rank 0 log and write. One process uses none of this: no process group, no wrapper,
so single-process training is exactly what it was before (tests/test_train.py pins its losses).

The launcher, `python -m physlm.distributed NPROC MODULE ARGS...`, runs `python -m MODULE ARGS` in this
process when NPROC is 1 or when it already runs under torchrun (a multi-node launch), and through
`torchrun --standalone --nproc-per-node NPROC` otherwise: torchrun's agent costs a few seconds of start-up
that the one-process demo stages need not pay.

tests/test_distributed.py runs 2 gloo processes and checks that DDP and FSDP2 give the losses and weights of
1 process with 2 accumulation steps, that a resumed 2-process run equals an uninterrupted one, and that only
rank 0 writes.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import runpy
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from physlm.device import pick_device
from physlm.model import GPT

PARALLEL = ("ddp", "fsdp")
# DDP's switch for broadcasting buffers every forward (torch 2.13 renamed broadcast_buffers): off
_DDP_OPTIONS = inspect.signature(DistributedDataParallel).parameters
_NO_BUFFER_SYNC = {("forward_sync_buffers" if "forward_sync_buffers" in _DDP_OPTIONS else "broadcast_buffers"): False}


@dataclass(frozen=True)
class Ranks:
    """The processes of a (torchrun) job: which one this is, and how many there are."""

    rank: int = 0  # this process, 0 .. size-1; rank 0 logs and writes
    size: int = 1  # processes in the job (torchrun's WORLD_SIZE)

    @property
    def main(self) -> bool:
        return self.rank == 0


def current() -> Ranks:
    """This process's place in the initialised process group, or one process."""
    if not dist.is_initialized():
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size())


@contextlib.contextmanager
def setup(device: str | torch.device | None = None) -> Iterator[tuple[Ranks, torch.device]]:
    """The ranks and this rank's device for the duration. Under torchrun with WORLD_SIZE > 1: cuda:LOCAL_RANK
    (when the device is CUDA) and a process group, destroyed after; otherwise one process on
    `pick_device(device)`."""
    dev = pick_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        yield Ranks(), dev
        return
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None)
    try:
        yield current(), dev
    finally:
        dist.destroy_process_group()


def shard(model: nn.Module, parallel: str, ranks: Ranks) -> nn.Module:
    """FSDP2: each block, then the root, sharded over the ranks in place (before the optimizer is made)."""
    if ranks.size == 1 or parallel != "fsdp":
        return model
    from torch.distributed.fsdp import fully_shard  # costs ~1.5 s to import: only when sharding

    for block in model.blocks:
        fully_shard(block)
    return fully_shard(model)


def replicate(module: nn.Module, parallel: str, ranks: Ranks, device: torch.device) -> nn.Module:
    """DDP around the (possibly compiled) model; buffers (rotary tables) are constants, never broadcast."""
    if ranks.size == 1 or parallel != "ddp":
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, **_NO_BUFFER_SYNC)


def gradient_sync(forward: nn.Module, model: nn.Module, enabled: bool) -> ContextManager[Any]:
    """Reduce gradients over the ranks only when `enabled` (the last micro-step of an update)."""
    if isinstance(forward, DistributedDataParallel) and not enabled:
        return forward.no_sync()
    if _sharded(model):
        model.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


def mean_over_ranks(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean of a scalar over all ranks (itself in one process)."""
    if ranks.size == 1:
        return value
    total = value.clone()
    dist.all_reduce(total)
    return total / ranks.size


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Unsharded model and optimizer state dicts. Under FSDP every rank must call it; rank 0 gets the states
    (on CPU), the others empty dicts."""
    if not _sharded(model):
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict) -> None:
    """Load states made by `full_state` (every rank passes the full states; FSDP keeps its shard of them)."""
    if not _sharded(model):
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optim_state, options=options)


def gather_model(model: nn.Module, ranks: Ranks) -> nn.Module:
    """The trained model whole: itself unless FSDP-sharded; a sharded one is gathered (every rank must call)
    into a plain GPT on rank 0, on the same device; the other ranks keep their shards."""
    if not _sharded(model):
        return model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not ranks.main:
        return model
    whole = GPT(model.cfg)
    whole.load_state_dict(state)
    return whole.to(next(model.parameters()).device)


def _sharded(model: nn.Module) -> bool:
    fsdp = sys.modules.get("torch.distributed.fsdp")  # never imported: nothing can be sharded
    return fsdp is not None and isinstance(model, fsdp.FSDPModule)


def launch(nproc: int, module: str, args: list[str]) -> None:
    """Run `python -m module args` on `nproc` local processes (module docstring)."""
    if nproc < 1:
        raise SystemExit(f"physlm.distributed: NPROC must be a positive integer, got {nproc}")
    if nproc == 1 or "WORLD_SIZE" in os.environ:
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    from torch.distributed.run import main as torchrun

    torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", module, *args])


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit():
        raise SystemExit("usage: python -m physlm.distributed NPROC MODULE [ARGS...]")
    launch(int(argv[0]), argv[1], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
