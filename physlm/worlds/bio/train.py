"""The biography world's train step: its regimes (SPEC 4.2). BIO pretraining on the biographies (train.npy),
or mixed training (`train.mix`: that share of the windows are P_train QA windows, qa.npy, repeated as needed;
every window is all-BIO or all-QA), then optionally QA finetuning on qa.npy (`train.finetune`: full, or LoRA
on q/v plus an embedding update, merged into plain weights when done). The train stage runs the plan: the
validation loss is on the P_test QA (test.npy), and a finetuned study also keeps the model before
finetuning (models/<study>/pretrained, what the probes read)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from physlm.lora import LoraConfig
from physlm.train import Finetune, Plan, TrainConfig, load_windows
from physlm.worlds.bio.params import BioTrainParams, FinetuneParams


def mixed_windows(bios: np.ndarray, qa: np.ndarray, mix: float, seed: int) -> np.ndarray:
    """The biography windows plus round(mix / (1 - mix) * len(bios)) QA windows (so that `mix` of all windows
    are QA), the QA windows repeated in passes, each pass a fresh seeded permutation."""
    count = round(mix / (1 - mix) * len(bios))
    passes = -(-count // len(qa))
    rng = np.random.default_rng([seed, 3141])
    order = np.concatenate([rng.permutation(len(qa)) for _ in range(passes)])[:count]
    return np.concatenate([np.asarray(bios), np.asarray(qa)[order]])


def finetune_config(base: TrainConfig, ft: FinetuneParams) -> TrainConfig:
    """The QA finetuning run (SPEC 4.2): no warmup, cosine to 10%, its own steps, lr, decay and batch."""
    return dataclasses.replace(base, steps=ft.steps, lr=ft.lr, weight_decay=ft.weight_decay, batch_size=ft.batch_size,
                               micro_batch_size=base.micro_batch_size if ft.batch_size % base.micro_batch_size == 0 else ft.batch_size,
                               warmup_steps=0, decay="cosine", min_lr_ratio=0.1, eval_every=max(1, ft.steps // 4),
                               checkpoint_every=max(1, ft.steps // 4), log_every=max(1, min(base.log_every, ft.steps // 20)))


def plan(tokens: Path, params: BioTrainParams, base: TrainConfig, seed: int) -> Plan:
    """The regime `params` asks for, on the dataset tokenized in `tokens`."""
    train = load_windows(tokens, "train")
    if not (params.mix or params.finetune):
        return Plan(train)
    qa = load_windows(tokens, "qa")
    if params.mix:
        train = mixed_windows(train, qa, params.mix, seed)
    ft = params.finetune
    if ft is None:
        return Plan(train)
    lora = LoraConfig(**ft.lora.model_dump()) if ft.lora else None
    return Plan(train, Finetune(qa, finetune_config(base, ft), lora))
