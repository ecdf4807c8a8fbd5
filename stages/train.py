"""train@STUDY: train the GPT on data/STUDY/tokens; write models/STUDY, metrics/STUDY/{train.json,loss.csv}.

Resumes from checkpoints/STUDY/ when an earlier run of the same config was interrupted; the checkpoint is
removed once the model is safely written. Runs as one process (`python -m stages.train STUDY`) or one per
device under torchrun (`python -m physlm.distributed NPROC stages.train STUDY`, or torchrun itself for
several nodes): then only rank 0 tracks, writes and cleans up.
"""

import contextlib
import shutil
from typing import ContextManager

import numpy as np

from physlm import distributed
from physlm.artifacts import save_model
from physlm.cli import Paths, run_stage
from physlm.config import TrainStage
from physlm.device import Peak, peak_flops
from physlm.distributed import World
from physlm.errors import DataError
from physlm.io import atomic_path, read_json, write_csv, write_json
from physlm.model import GPTConfig
from physlm.tracking import NullRun, Run, start_run
from physlm.train import TrainConfig, TrainResult, train


def load_windows(paths: Paths, split: str) -> np.ndarray:
    path = paths.tokens / f"{split}.npy"
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable token shard ({err})") from None


def configs(paths: Paths, cfg: TrainStage) -> tuple[GPTConfig, TrainConfig]:
    meta = read_json(paths.tokens / "meta.json")
    model_cfg = GPTConfig(vocab_size=meta["vocab_size"], context=meta["context"], **cfg.model.model_dump())
    return model_cfg, TrainConfig(**cfg.train.model_dump(), seed=cfg.seed)


def tracking(paths: Paths, cfg: TrainStage, device: str, world: World) -> ContextManager[Run]:
    """The MLflow run on rank 0; a no-op run on the others."""
    if not world.main:
        return contextlib.nullcontext(NullRun())
    return start_run(paths.study, "train", cfg.model_dump(), device=device)


def summary(result: TrainResult, cfg: TrainStage, paths: Paths, device: str, world_size: int,
            peak: Peak | None) -> dict:
    """train.json: final losses, throughput (medians over the log rows), MFU on CUDA, and what ran where."""

    def median(key: str) -> float | None:
        values = [row[key] for row in result.history if key in row]
        return float(np.median(values)) if values else None

    return {
        "final_loss": result.final_loss,
        "final_val_loss": result.final_val_loss,
        "tokens_seen": result.tokens_seen,
        "seconds": result.seconds,
        "tokens_per_s": median("tokens_per_s"),
        "data_wait": median("data_wait"),
        "mfu": median("mfu"),
        "peak_tflops": peak.tflops if peak else None,
        "peak_estimated": peak.estimated if peak else None,
        "params": result.model.num_params(),
        "resumed_from": result.resumed_from,
        "device": device,
        "world_size": world_size,
        "model": cfg.model.model_dump(),
        "data": paths.dataset,
    }


def main(paths: Paths, cfg: TrainStage) -> None:
    model_cfg, train_cfg = configs(paths, cfg)
    train_windows, val_windows = load_windows(paths, "train"), load_windows(paths, "test")
    with distributed.setup() as (world, device):
        with tracking(paths, cfg, str(device), world) as run:
            result = train(model_cfg, train_cfg, train_windows, val_windows, paths.checkpoints,
                           on_log=lambda row: run.log_metrics(row, step=row["step"]), device=device)
            if not world.main:
                return
            metrics = summary(result, cfg, paths, str(device), world.size, peak_flops(device))
            run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=train_cfg.steps)
            with atomic_path(paths.model, is_dir=True) as tmp:
                save_model(result.model, tmp)
            write_csv(paths.metrics / "loss.csv", result.history)
            write_json(paths.metrics / "train.json", metrics)
    shutil.rmtree(paths.checkpoints, ignore_errors=True)
    print(f"train@{paths.study}: loss {result.final_loss:.4f}, val {result.final_val_loss:.4f} -> {paths.model}")


if __name__ == "__main__":
    run_stage("train", main)
