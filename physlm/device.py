"""Where training and sampling run: device choice, bf16 autocast on CUDA, determinism, derived seeds.

Performance switches live here and in `physlm.train`, never in the model's semantics: the same `GPT` runs
in fp32 on CPU (tests, demo) and under bf16 autocast on CUDA.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ContextManager

import numpy as np
import torch


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """The named device, else CUDA when available, else CPU."""
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> ContextManager[object]:
    """bf16 autocast on CUDA; plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """On CPU, insist on deterministic kernels for the duration (restoring the caller's setting after)."""
    if device.type != "cpu":
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that is a pure function of the integer keys, e.g. (run seed, step)."""
    return int(np.random.SeedSequence([k & 0xFFFF_FFFF_FFFF_FFFF for k in keys]).generate_state(1, np.uint64)[0] >> 1)


def generator(device: torch.device, *keys: int) -> torch.Generator:
    """A torch.Generator on `device` seeded from `keys` (see `derive_seed`)."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))
