"""train@STUDY: train the GPT on data/<dataset>/tokens; write models/STUDY, metrics/STUDY/{train.json,
detail/train.json,loss.csv} (results only: a rerun writes them byte-identical) and logs/STUDY/{train.json,
train_log.csv} (untracked: wall-clock seconds, throughput, data_wait, MFU, the resume point; MLflow has them too).

The plan comes from the world's train step where it has one (physlm/worlds/<world>/train.py; the biography
world's regimes: mixed training, QA finetuning), else it is the plain one: the tokenized train split, no second
phase. A plan with a finetune phase trains again from the first phase's model (LoRA adapters merged into plain
weights when done), writes the model before finetuning to models/STUDY/pretrained, and its loss.csv continues
the step count through finetuning (column `phase`). The validation loss is always on tokens/test.npy.

Loss masks: a split the world masked (tokens/<split>.loss.npy, physlm/tokenize.py) trains and validates only on
its target tokens (physlm/train.py); detail/train.json then records `targets_seen` (the target tokens among
`tokens_seen`, which counts every window token) and loss.csv a `targets_seen` column.

With `train.stream` (a world that streams), the training windows are generated on the fly from the dataset's
world and seed (physlm/stream.py; tokens/stream.json says how) on `train.stream_workers` processes instead of
read from tokens/train.npy. detail/train.json records `stream`, and logs/STUDY/train.json, as always, `data_wait`:
the share of time the loop waited for data (about 0 when the stream keeps up).

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

from physlm import distributed, lora, worlds
from physlm.artifacts import save_model
from physlm.cli import run_stage
from physlm.device import Peak, peak_flops
from physlm.distributed import Ranks
from physlm.io import Paths, atomic_path, read_json, write_csv, write_json
from physlm.model import GPTConfig
from physlm.stream import Stream, StreamSpec, all_cores
from physlm.tracking import NullRun, Run, start_run
from physlm.train import Plan, TrainConfig, TrainResult, load_windows, train

LOOP_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}  # the `train` keys the loop itself reads


def configs(paths: Paths, cfg) -> tuple[GPTConfig, TrainConfig]:
    meta = read_json(paths.tokens / "meta.json", ("vocab_size", "context") + (("bos_id",) if cfg.train.doc_mask else ()))
    model_cfg = GPTConfig(vocab_size=meta["vocab_size"], context=meta["context"], **cfg.model.model_dump())
    segment_start = meta["bos_id"] if cfg.train.doc_mask else None
    loop = {k: v for k, v in cfg.train.model_dump().items() if k in LOOP_KEYS and k != "seed"}
    return model_cfg, TrainConfig(**loop, seed=study_seed(cfg), segment_start=segment_start)


def study_seed(cfg) -> int:
    """The study's training seed: its `train.seed` (the seed axis) or the shared `seed`."""
    return cfg.seed if cfg.train.seed is None else cfg.train.seed


def make_plan(paths: Paths, cfg, train_cfg: TrainConfig, streamed: bool) -> Plan:
    """The world's plan (its train step), or the plain one."""
    world = worlds.get(cfg.world)
    if world.takes_part("train"):
        return world.step("train").plan(paths.tokens, cfg.train, train_cfg, study_seed(cfg))
    return Plan(None if streamed else load_windows(paths.tokens, "train"))


def tracking(paths: Paths, cfg, device: str, ranks: Ranks) -> ContextManager[Run]:
    """The MLflow run on rank 0; a no-op run on the others."""
    if not ranks.main:
        return contextlib.nullcontext(NullRun())
    return start_run(paths.study, "train", cfg.model_dump(), device=device)


TIMING = ("tokens_per_s", "data_wait", "mfu")  # a history row's wall-clock columns: logs/ and MLflow, never loss.csv


def results(result: TrainResult, tuned: TrainResult | None, trainable: int | None, cfg, paths: Paths, device: str,
            world_size: int) -> tuple[dict, dict]:
    """(headline, detail) of the training: what is a function of params, data, seed and device only, so a rerun
    writes them byte-identical. The headline (metrics/STUDY/train.json, DVC metrics) holds the final losses,
    tokens seen and parameter count (and the finetuned losses); the detail (metrics/STUDY/detail/train.json) adds
    the model params, the dataset, the seed, where it ran, and the finetune phase."""
    headline = {"final_loss": result.final_loss, "final_val_loss": result.final_val_loss, "tokens_seen": result.tokens_seen,
                "params": result.model.num_params()}
    detail = headline | {"device": device, "world_size": world_size, "model": cfg.model.model_dump(), "data": paths.dataset,
                         "stream": cfg.train.stream, "seed": study_seed(cfg)} | _targets(result)
    if tuned is not None:
        headline |= {"finetune_final_loss": tuned.final_loss, "finetune_final_val_loss": tuned.final_val_loss}
        detail["finetune"] = {"final_loss": tuned.final_loss, "final_val_loss": tuned.final_val_loss,
                              "tokens_seen": tuned.tokens_seen, "trainable_params": trainable} | _targets(tuned)
    return headline, detail


def _targets(result: TrainResult) -> dict:
    """{"targets_seen": n} for a run on loss-masked windows (absent otherwise: every token was a target)."""
    return {} if result.targets_seen is None else {"targets_seen": result.targets_seen}


def timings(result: TrainResult, tuned: TrainResult | None, peak: Peak | None) -> dict:
    """logs/STUDY/train.json (untracked) and MLflow: wall-clock seconds, throughput, data_wait (the share of time
    the loop waited for data; medians over the log rows), MFU on CUDA, and the step a rerun resumed from."""

    def median(key: str) -> float | None:
        values = [row[key] for row in result.history if key in row]
        return float(np.median(values)) if values else None

    out = {"seconds": result.seconds, **{key: median(key) for key in TIMING}, "resumed_from": result.resumed_from,
           "peak_tflops": peak.tflops if peak else None, "peak_estimated": peak.estimated if peak else None}
    if tuned is not None:
        out["finetune"] = {"seconds": tuned.seconds, "resumed_from": tuned.resumed_from}
    return out


def main(paths: Paths, cfg) -> None:
    model_cfg, train_cfg = configs(paths, cfg)
    spec = StreamSpec.load(paths.tokens) if cfg.train.stream else None
    plan = make_plan(paths, cfg, train_cfg, spec is not None)
    train_cfg = plan.config or train_cfg  # a world may derive the loop's settings (the capacity world: steps)
    val_windows = load_windows(paths.tokens, "test")
    ft = plan.finetune
    with distributed.setup() as (ranks, device):
        # fresh windows from the world generator, made by this process's workers
        train_windows = plan.train if spec is None else Stream(spec, cfg.train.stream_workers or all_cores(ranks.size))
        with tracking(paths, cfg, str(device), ranks) as run:
            result = train(model_cfg, train_cfg, train_windows, val_windows, paths.checkpoints,
                           on_log=lambda row: run.log_metrics(row, step=row["step"]), device=device)
            final, history, tuned = result.model, [r | {"phase": "train"} for r in result.history], None
            if ft is not None:
                start = lora.apply_lora(result.model, ft.lora, seed=study_seed(cfg)) if ft.lora else result.model
                tuned = train(model_cfg, ft.config, ft.windows, val_windows, paths.checkpoints / "finetune", init=start,
                              on_log=lambda row: run.log_metrics(row, step=train_cfg.steps + row["step"]), device=device)
                final = lora.merge_lora(tuned.model) if ft.lora else tuned.model
                history += [r | {"step": train_cfg.steps + r["step"], "phase": "finetune"} for r in tuned.history]
            if not ranks.main:
                return
            trainable = (lora.trainable_parameters(start) if ft.lora else final.num_params()) if tuned is not None else None
            headline, detail = results(result, tuned, trainable, cfg, paths, str(device), ranks.size)
            detail |= plan.detail
            timing = timings(result, tuned, peak_flops(device))
            run.log_metrics(headline | timing, step=train_cfg.steps)
            with atomic_path(paths.model, is_dir=True) as tmp:
                save_model(final, tmp)
                if tuned is not None:
                    (tmp / "pretrained").mkdir()
                    save_model(result.model, tmp / "pretrained")
            write_csv(paths.metrics / "loss.csv", [{k: v for k, v in row.items() if k not in TIMING} for row in history])
            write_json(paths.metrics / "detail" / "train.json", detail)
            write_json(paths.metrics / "train.json", headline)
            write_csv(paths.logs / "train_log.csv", history)
            write_json(paths.logs / "train.json", timing)
    shutil.rmtree(paths.checkpoints, ignore_errors=True)
    with contextlib.suppress(OSError):  # checkpoints/ itself, once no study has one
        paths.checkpoints.parent.rmdir()
    tail = f"; finetuned: loss {tuned.final_loss:.4f}, val {tuned.final_val_loss:.4f}" if tuned is not None else ""
    print(f"train@{paths.study}: loss {result.final_loss:.4f}, val {result.final_val_loss:.4f}{tail} -> {paths.model}")


if __name__ == "__main__":
    run_stage("train", main)
