"""train@STUDY: train the GPT on data/STUDY/tokens; write models/STUDY, metrics/STUDY/{train.json,loss.csv}.

Resumes from checkpoints/STUDY/ when an earlier run of the same config was interrupted; the checkpoint is
removed once the model is safely written.
"""

import shutil

import numpy as np

from physlm.artifacts import save_model
from physlm.cli import Paths, run_stage
from physlm.config import TrainStage
from physlm.device import pick_device
from physlm.errors import DataError
from physlm.io import atomic_path, read_json, write_csv, write_json
from physlm.model import GPTConfig
from physlm.tracking import start_run
from physlm.train import TrainConfig, train


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


def main(paths: Paths, cfg: TrainStage) -> None:
    model_cfg, train_cfg = configs(paths, cfg)
    train_windows, val_windows = load_windows(paths, "train"), load_windows(paths, "test")
    device = pick_device()
    with start_run(paths.study, "train", cfg.model_dump(), device=str(device)) as run:
        result = train(model_cfg, train_cfg, train_windows, val_windows, paths.checkpoints,
                       on_log=lambda row: run.log_metrics(row, step=row["step"]), device=device)
        metrics = {
            "final_loss": result.final_loss,
            "final_val_loss": result.final_val_loss,
            "tokens_seen": result.tokens_seen,
            "seconds": result.seconds,
            "tokens_per_s": float(np.median([r["tokens_per_s"] for r in result.history])) if result.history else None,
            "params": result.model.num_params(),
            "resumed_from": result.resumed_from,
            "device": str(device),
            "model": cfg.model.model_dump(),
            "data": paths.dataset,
        }
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=train_cfg.steps)
        with atomic_path(paths.model, is_dir=True) as tmp:
            save_model(result.model, tmp)
        write_csv(paths.metrics / "loss.csv", result.history)
        write_json(paths.metrics / "train.json", metrics)
    shutil.rmtree(paths.checkpoints, ignore_errors=True)
    print(f"train@{paths.study}: loss {result.final_loss:.4f}, val {result.final_val_loss:.4f} -> {paths.model}")


if __name__ == "__main__":
    run_stage("train", main)
