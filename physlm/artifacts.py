"""Model directories: `model.safetensors` (weights only, never pickle) and `config.json` (the GPTConfig).

A tied model (tie_embeddings) stores its one shared matrix once, as `wte.weight` (safetensors refuses two names
for one tensor); loading gives `head.weight` that same tensor again."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from physlm.errors import DataError
from physlm.io import ordinary_mode, read_json
from physlm.model import GPT, GPTConfig

TIED = "head.weight"  # with tie_embeddings the same tensor as wte.weight, not stored a second time


def save_model(model: GPT, directory: Path) -> None:
    """Write weights and config into an existing (temporary) directory."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        del state[TIED]
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    ordinary_mode(directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps(asdict(model.cfg), indent=2, sort_keys=True) + "\n")


def load_config(directory: Path) -> GPTConfig:
    """The GPTConfig in `directory`/config.json; DataError if it is missing, unreadable or not a valid config."""
    try:
        return GPTConfig(**read_json(directory / "config.json"))
    except (TypeError, ValueError) as err:
        raise DataError(f"{directory / 'config.json'}: not a valid model config ({err})") from None


def load_model(directory: Path, device: str | torch.device = "cpu") -> GPT:
    """The model saved in `directory`, in eval mode; DataError naming the file when config.json or
    model.safetensors is missing or unreadable (a cut-off or corrupt header or body) or they do not match."""
    cfg = load_config(directory)
    path = directory / "model.safetensors"
    if not path.is_file():
        raise DataError(f"{path}: file not found (run the train stage)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise DataError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0]})") from None
    model = GPT(cfg)
    wanted = {k: v for k, v in model.state_dict().items() if not (cfg.tie_embeddings and k == TIED)}
    mismatch = _mismatch(state, wanted)
    if mismatch:
        raise DataError(f"{path}: does not match config.json ({mismatch})")
    if cfg.tie_embeddings:
        state[TIED] = state["wte.weight"]
    model.load_state_dict(state)
    return model.to(device).eval()


def _mismatch(found: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor]) -> str:
    """How saved tensors differ from a model's (names, shapes): "" when they fit, else the first few differences."""
    diffs = [f"no {k}" for k in wanted if k not in found] + [f"unexpected {k}" for k in found if k not in wanted]
    diffs += [f"{k} is {list(found[k].shape)}, not {list(v.shape)}" for k, v in wanted.items()
              if k in found and found[k].shape != v.shape]
    return "; ".join(diffs[:3]) + (f"; {len(diffs) - 3} more" if len(diffs) > 3 else "")


def random_model(cfg: GPTConfig, seed: int, device: str | torch.device = "cpu") -> GPT:
    """The random-init control: the same shape, freshly initialised from `seed`."""
    torch.manual_seed(seed)
    return GPT(cfg).to(device).eval()
