"""Shared test helpers: one-thread torch for tiny models, and a tiny version of the demo params."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "model": {"depth": 1, "width": 32, "heads": 2},
    "train": {"steps": 12, "batch_size": 8, "micro_batch_size": 8, "eval_every": 6, "checkpoint_every": 6,
              "log_every": 3, "warmup_steps": 2, "eval_batches": 1},
    "probe": {"cfg": {"sentences": 30, "steps": 20, "attention_sentences": 10, "multihead": {"steps": 10, "heads": 4, "rank": 4}}},
    "evaluate": {"cfg": {"samples": 8, "prefix_samples": 8, "prefix": 10, "control_samples": 4, "batch_size": 8,
                          "kl_sentences": 4, "robust": {"sentences": 6}}},
}


def cpu_vendor() -> str:
    """The CPU's vendor string (GenuineIntel, AuthenticAMD, ...): float results of the same code differ in the last
    bits between vendors (BLAS picks other kernels), so bit-for-bit golden values are recorded per vendor."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("vendor_id")), "unknown")


def golden(per_vendor: dict):
    """This machine's golden values; the test skips on a vendor none were recorded on."""
    vendor = cpu_vendor()
    if vendor not in per_vendor:
        pytest.skip(f"no golden values recorded on a {vendor} CPU (recorded: {', '.join(per_vendor)})")
    return per_vendor[vendor]


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and it avoids oversubscribing a busy CI core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_params() -> dict:
    """The repo's params.yaml shrunk: the cfg_demo dataset with a few hundred sentences, and two studies on it
    (cfg_demo and the suite's cfg_uni variant), one-block models, a dozen steps."""
    from physlm.config import merge
    from physlm.worlds.cfg.presets import SUITE

    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["datasets"] = {"cfg_demo": params["datasets"]["cfg_demo"]}
    data = params["datasets"]["cfg_demo"]
    data["generate"].update(train_sentences=300, test_sentences=60)
    data["tokenize"]["context"] = 160
    params["studies"] = {"cfg_demo": params["studies"]["cfg_demo"], "cfg_uni": copy.deepcopy(SUITE["studies"]["cfg_uni"])}
    params["studies"]["cfg_uni"]["data"] = "cfg_demo"
    params["studies"]["cfg_uni"]["train"] = {}
    params["studies"]["cfg_uni"]["evaluate"] = {}
    params["studies"]["cfg_demo"]["probe"] = {"encoder": {"steps": 4, "batch_size": 8}}
    return params
