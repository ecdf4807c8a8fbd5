"""train@STUDY: train the GPT on data/STUDY/tokens; write models/STUDY, metrics/STUDY/{train.json,loss.csv}.

Biography studies (SPEC 4.2) run a regime: training on the biographies (train.npy), or mixed training
(`train.mix`: that share of the windows are P_train QA windows, qa.npy, repeated as needed; every window is
all-BIO or all-QA), then optionally QA finetuning on qa.npy (`train.finetune`: full, or LoRA on q/v plus an
embedding update, merged into plain weights when done). The validation loss is on the P_test QA (test.npy).
A finetuned study also writes the model before finetuning to models/STUDY/pretrained (what the probes read),
and its loss.csv continues the step count through finetuning (column `phase`).

With `train.stream` (grammar and iGSM datasets), the training windows are generated on the fly from the
dataset's world and seed (physlm/stream.py; tokens/stream.json says how) on `train.stream_workers` processes
instead of read from tokens/train.npy; validation stays on tokens/test.npy. train.json records `stream` and,
as always, `data_wait`: the share of time the loop waited for data (about 0 when the stream keeps up).

Resumes from checkpoints/STUDY/ when an earlier run of the same config was interrupted; the checkpoint is
removed once the model is safely written. Runs as one process (`python -m stages.train STUDY`) or one per
device under torchrun (`python -m physlm.distributed NPROC stages.train STUDY`, or torchrun itself for
several nodes): then only rank 0 tracks, writes and cleans up.
"""

import contextlib
import dataclasses
import shutil
from typing import ContextManager

import numpy as np

from physlm import distributed, lora
from physlm.artifacts import save_model
from physlm.cli import Paths, run_stage
from physlm.config import TrainStage
from physlm.device import Peak, peak_flops
from physlm.distributed import World
from physlm.errors import DataError
from physlm.io import atomic_path, read_json, write_csv, write_json
from physlm.model import GPTConfig
from physlm.stream import Stream, StreamSpec, all_cores
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
    segment_start = meta["bos_id"] if cfg.train.doc_mask else None
    return model_cfg, TrainConfig(**cfg.train.model_dump(exclude={"mix", "finetune", "stream", "stream_workers", "doc_mask"}),
                                  seed=cfg.seed, segment_start=segment_start)


def mixed_windows(bios: np.ndarray, qa: np.ndarray, mix: float, seed: int) -> np.ndarray:
    """The biography windows plus round(mix / (1 - mix) * len(bios)) QA windows (so that `mix` of all windows
    are QA), the QA windows repeated in passes, each pass a fresh seeded permutation."""
    count = round(mix / (1 - mix) * len(bios))
    passes = -(-count // len(qa))
    rng = np.random.default_rng([seed, 3141])
    order = np.concatenate([rng.permutation(len(qa)) for _ in range(passes)])[:count]
    return np.concatenate([np.asarray(bios), np.asarray(qa)[order]])


def finetune_config(base: TrainConfig, ft) -> TrainConfig:
    """The QA finetuning run (SPEC 4.2): no warmup, cosine to 10%, its own steps, lr, decay and batch."""
    return dataclasses.replace(base, steps=ft.steps, lr=ft.lr, weight_decay=ft.weight_decay, batch_size=ft.batch_size,
                               micro_batch_size=base.micro_batch_size if ft.batch_size % base.micro_batch_size == 0 else ft.batch_size,
                               warmup_steps=0, decay="cosine", min_lr_ratio=0.1, eval_every=max(1, ft.steps // 4),
                               checkpoint_every=max(1, ft.steps // 4), log_every=max(1, min(base.log_every, ft.steps // 20)))


def tracking(paths: Paths, cfg: TrainStage, device: str, world: World) -> ContextManager[Run]:
    """The MLflow run on rank 0; a no-op run on the others."""
    if not world.main:
        return contextlib.nullcontext(NullRun())
    return start_run(paths.study, "train", cfg.model_dump(), device=device)


def summary(result: TrainResult, cfg: TrainStage, paths: Paths, device: str, world_size: int,
            peak: Peak | None) -> dict:
    """train.json: final losses, throughput and data_wait (medians over the log rows), MFU on CUDA, and what ran
    where and on which data (`stream`: generated on the fly)."""

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
        "stream": cfg.train.stream,
    }


def main(paths: Paths, cfg: TrainStage) -> None:
    model_cfg, train_cfg = configs(paths, cfg)
    spec = StreamSpec.load(paths.tokens) if cfg.train.stream else None
    train_windows = load_windows(paths, "train") if spec is None else None
    val_windows = load_windows(paths, "test")
    mix, ft = getattr(cfg.train, "mix", 0.0), getattr(cfg.train, "finetune", None)
    if mix or ft:
        qa_windows = load_windows(paths, "qa")
    if mix:
        train_windows = mixed_windows(train_windows, qa_windows, mix, cfg.seed)
    with distributed.setup() as (world, device):
        if spec is not None:  # fresh windows from the world generator, made by this process's workers
            train_windows = Stream(spec, cfg.train.stream_workers or all_cores(world.size))
        with tracking(paths, cfg, str(device), world) as run:
            result = train(model_cfg, train_cfg, train_windows, val_windows, paths.checkpoints,
                           on_log=lambda row: run.log_metrics(row, step=row["step"]), device=device)
            final, history, tuned = result.model, [r | {"phase": "train"} for r in result.history], None
            if ft is not None:
                ft_cfg = finetune_config(train_cfg, ft)
                start = lora.apply_lora(result.model, lora.LoraConfig(**ft.lora.model_dump()), seed=cfg.seed) if ft.lora else result.model
                tuned = train(model_cfg, ft_cfg, qa_windows, val_windows, paths.checkpoints / "finetune", init=start,
                              on_log=lambda row: run.log_metrics(row, step=train_cfg.steps + row["step"]), device=device)
                final = lora.merge_lora(tuned.model) if ft.lora else tuned.model
                history += [r | {"step": train_cfg.steps + r["step"], "phase": "finetune"} for r in tuned.history]
            if not world.main:
                return
            metrics = summary(result, cfg, paths, str(device), world.size, peak_flops(device))
            if tuned is not None:
                metrics["finetune"] = {"final_loss": tuned.final_loss, "final_val_loss": tuned.final_val_loss,
                                       "seconds": tuned.seconds, "tokens_seen": tuned.tokens_seen,
                                       "trainable_params": lora.trainable_parameters(start) if ft.lora else final.num_params()}
            run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=train_cfg.steps)
            with atomic_path(paths.model, is_dir=True) as tmp:
                save_model(final, tmp)
                if tuned is not None:
                    (tmp / "pretrained").mkdir()
                    save_model(result.model, tmp / "pretrained")
            write_csv(paths.metrics / "loss.csv", history)
            write_json(paths.metrics / "train.json", metrics)
    shutil.rmtree(paths.checkpoints, ignore_errors=True)
    tail = f"; finetuned: loss {tuned.final_loss:.4f}, val {tuned.final_val_loss:.4f}" if tuned is not None else ""
    print(f"train@{paths.study}: loss {result.final_loss:.4f}, val {result.final_val_loss:.4f}{tail} -> {paths.model}")


if __name__ == "__main__":
    run_stage("train", main)
