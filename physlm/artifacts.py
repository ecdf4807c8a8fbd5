"""Model directories: `model.safetensors` (weights only, never pickle) and `config.json` (the GPTConfig)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from physlm.errors import DataError
from physlm.io import read_json
from physlm.model import GPT, GPTConfig


def save_model(model: GPT, directory: Path) -> None:
    """Write weights and config into an existing (temporary) directory."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(asdict(model.cfg), indent=2, sort_keys=True) + "\n")


def load_config(directory: Path) -> GPTConfig:
    try:
        return GPTConfig(**read_json(directory / "config.json"))
    except (TypeError, ValueError) as err:
        raise DataError(f"{directory / 'config.json'}: not a valid model config ({err})") from None


def load_model(directory: Path, device: str | torch.device = "cpu") -> GPT:
    cfg = load_config(directory)
    model = GPT(cfg)
    try:
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
    except FileNotFoundError:
        raise DataError(f"{directory / 'model.safetensors'}: file not found (run the train stage)") from None
    except Exception as err:
        raise DataError(f"{directory / 'model.safetensors'}: unreadable or does not match config.json ({err})") from None
    return model.to(device).eval()


def random_model(cfg: GPTConfig, seed: int, device: str | torch.device = "cpu") -> GPT:
    """The random-init control: the same shape, freshly initialised from `seed`."""
    torch.manual_seed(seed)
    return GPT(cfg).to(device).eval()
