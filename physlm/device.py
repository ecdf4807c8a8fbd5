"""Where training and sampling run: device choice, bf16 autocast on CUDA, determinism, derived seeds, and
the peak throughput that model FLOPs utilisation (MFU) is measured against.

Performance switches live here and in `physlm.train`, never in the model's semantics: the same `GPT` runs
in fp32 on CPU (tests, demo) and under bf16 autocast on CUDA.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ContextManager

import numpy as np
import torch


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """The named device, else CUDA when available, else CPU."""
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# Dense bf16 tensor-core peak per GPU in TFLOP/s (vendor datasheets, without sparsity), matched in this order
# against torch.cuda.get_device_name: the first key contained in the name wins.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}  # GH200 matches "H200"
ASSUMED_PEAK_TFLOPS = 312.0  # an unknown CUDA device: assume an A100 and mark the MFU "estimated"
PEAK_ENV = "PHYSLM_PEAK_TFLOPS"  # overrides the table (e.g. a clock-limited part); marks it estimated


@dataclass(frozen=True)
class Peak:
    device: str  # the device's name, e.g. "NVIDIA H100 80GB HBM3"
    tflops: float  # dense bf16 peak per device
    estimated: bool  # not from the table: assumed for an unknown device, or set by PHYSLM_PEAK_TFLOPS


def peak_flops(device: torch.device) -> Peak | None:
    """The per-device peak MFU is measured against on CUDA; None on CPU (MFU is not reported there)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return peak_for(name, os.environ.get(PEAK_ENV))


def peak_for(name: str, override: str | None = None) -> Peak:
    """The table's peak for a device name; `override` (TFLOP/s) or the assumed peak when it is not listed."""
    if override:
        return Peak(name, float(override), estimated=True)
    found = next((tflops for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)
    return Peak(name, found or ASSUMED_PEAK_TFLOPS, estimated=found is None)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU): timings are read after it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
