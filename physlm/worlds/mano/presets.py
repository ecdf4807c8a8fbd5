"""The Mano world's presets.

`mano-paper` (SPEC 7.2-7.3, Part 4.1 Fig. 7) replaces every Mano dataset and study by one dataset per L
(`--lengths`, default 10, 13, 16: training expressions of U{1..L} operations, test ones of L, the lengths set
1..L) and one study per L, model size (`--sizes`, default 12L768D, the column the paper's figure is quoted
from; the 3x4 grid adds 12L512D, 8L768D, 8L512D, heads = width / 64) and architecture (`--archs`, default all
six: Llama with RoPE, NoPE or partial RoPE (`rope_dim` 16 of every head's 64 dims), each without and with
Canon-ABCD). Each study carries the recipe in its own overrides: batch 64, context 1024, AdamW (0.9, 0.98),
eps 1e-6, weight decay 0.1, 1000 warmup steps, cosine to 10%, 80k / 95k / 110k steps for L = 10 / 13 / 16
(other L: interpolated, 5k steps per unit of L), lr 3e-4 (the paper takes the best of 1e-4, 2e-4, 3e-4, 5e-4
over two seeds: `LR_SWEEP`; queue the others with `dvc exp run --queue -S ...`), bf16 on CUDA, torch.compile.
Evaluation answers 4,096 test expressions and 512 per length; the probe reads 4,096. The paper samples fresh
expressions every step; the preset materialises `--train-examples` (default 20M, a few passes at L = 16) per
dataset.

The architecture names (`ARCHS`) are the engine's model options `block: llama`, `pos: nope` and `rope_dim`
(physlm/model.py, docs/architectures.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from physlm.presets import Preset, _update, replace_world, seeded
from physlm.worlds.mano.expression import MAX_OPS

LENGTHS = (10, 13, 16)
STEPS = {10: 80_000, 13: 95_000, 16: 110_000}
LR_SWEEP = (1.0e-4, 2.0e-4, 3.0e-4, 5.0e-4)
SIZES = {"12L768D": (12, 768), "12L512D": (12, 512), "8L768D": (8, 768), "8L512D": (8, 512)}
ARCHS = {  # Part 4.1's architecture grid: {RoPE, NoPE, partial RoPE} x {no Canon, Canon-ABCD}
    "rope": {"block": "llama", "pos": "rot", "canon": ""},
    "rope_canon": {"block": "llama", "pos": "rot", "canon": "ABCD"},
    "nope": {"block": "llama", "pos": "nope", "canon": ""},
    "nope_canon": {"block": "llama", "pos": "nope", "canon": "ABCD"},
    "rope16": {"block": "llama", "pos": "rot", "rope_dim": 16, "canon": ""},
    "rope16_canon": {"block": "llama", "pos": "rot", "rope_dim": 16, "canon": "ABCD"},
}
TRAIN = {"batch_size": 64, "micro_batch_size": 32, "lr": LR_SWEEP[2], "min_lr_ratio": 0.1, "warmup_steps": 1000,
         "decay": "cosine", "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6, "grad_clip": 1.0,
         "eval_every": 2000, "eval_batches": 8, "checkpoint_every": 2000, "log_every": 100, "compile": True}
# the world's probe / evaluate defaults (what params.yaml's probe.mano / evaluate.mano hold) and the paper's sizes
PROBE = {"examples": 300, "train_fraction": 0.7, "steps": 200, "lr": 5.0e-2, "batch_size": 64, "control": True}
EVALUATE = {"examples": 500, "length_examples": 100, "batch_size": 128, "control": True}
PAPER_PROBE = {"examples": 4096, "steps": 500, "batch_size": 256}
PAPER_EVALUATE = {"examples": 4096, "length_examples": 512, "batch_size": 512}


def model(size: str, arch: str) -> dict:
    depth, width = SIZES[size]
    return {"depth": depth, "width": width, "heads": width // 64, "mlp_ratio": 4, "dropout": 0.0, **ARCHS[arch]}


def steps(L: int) -> int:
    return STEPS.get(L, 80_000 + 5_000 * (L - 10))


def mano_paper(params: Any, *, lengths: Sequence[int] = LENGTHS, sizes: Sequence[str] = ("12L768D",),
               archs: Sequence[str] = tuple(ARCHS), train_examples: int = 20_000_000) -> list[str]:
    """Replace the Mano datasets and studies by the paper's grid; returns the new study names."""
    bad = [s for s in sizes if s not in SIZES] + [a for a in archs if a not in ARCHS] + [str(L) for L in lengths if not 1 <= L <= MAX_OPS]
    if bad or not (lengths and sizes and archs):
        raise SystemExit(f"error: unknown or empty choice {', '.join(bad) or '(none given)'}; sizes {', '.join(SIZES)};"
                         f" archs {', '.join(ARCHS)}; lengths 1..{MAX_OPS}")
    for section, paper, default in (("probe", PAPER_PROBE, PROBE), ("evaluate", PAPER_EVALUATE, EVALUATE)):
        if "mano" not in params[section]:
            params[section]["mano"] = dict(default)
        _update(params[section]["mano"], paper)
    replace_world(params, "mano")
    names = []
    for L in lengths:
        data = f"p41_mano_L{L}"
        params["datasets"][data] = {
            "world": "mano",
            "generate": {"max_ops": L, "operators": "+-*", "augment": False, "train_examples": train_examples,
                         "test_examples": PAPER_EVALUATE["examples"], "length_examples": PAPER_EVALUATE["length_examples"],
                         "eval_lengths": [], "workers": 0},
            "tokenize": {"context": 1024, "pack": "sentences"},
        }
        for size in sizes:
            for arch in archs:
                name = f"{data}_{size}_{arch}"
                params["studies"][name] = {"world": "mano", "data": data, "model": model(size, arch),
                                           "train": {**TRAIN, "steps": steps(L)}, "probe": {}, "evaluate": {}}
                names.append(name)
    return names


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)), help="comma-separated L, one dataset each")
    parser.add_argument("--sizes", default="12L768D", help=f"comma-separated model sizes ({', '.join(SIZES)})")
    parser.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated architectures ({', '.join(ARCHS)})")
    parser.add_argument("--train-examples", type=int, default=20_000_000, help="materialised training expressions per dataset")


def _apply(params: Any, args: argparse.Namespace) -> list[str]:
    def items(text: str) -> list[str]:
        return [x for x in text.split(",") if x]

    try:
        lengths = [int(x) for x in items(args.lengths)]
    except ValueError:
        raise SystemExit(f"error: --lengths must be comma-separated integers, got {args.lengths!r}") from None
    return mano_paper(params, lengths=lengths, sizes=items(args.sizes), archs=items(args.archs),
                      train_examples=args.train_examples)


PRESETS = {"mano-paper": Preset("Part 4.1 Mano at paper scale: L = 10, 13, 16, the architecture grid, optionally 4 sizes",
                                __doc__.split("\n\n", 1)[1], _apply, _options)}


# The showcase's Mano miniature, as params.yaml writes it (tests/test_mano.py checks the two agree): expressions of
# 1..2 operations mod 5 (L = 2), a fifth of the two-operation expressions held out of training for the test, a
# 2-block, 64-wide Llama with RoPE, without and with Canon-ABCD, 600 steps.
DEMO_DATASET = {"world": "mano", "generate": {"max_ops": 2, "modulus": 5, "train_examples": 50_000, "test_examples": 1000,
                                              "length_examples": 100, "held_out": 0.2, "workers": 0},
                "tokenize": {"context": 64, "pack": "sentences"}}
DEMO_MODEL = {"block": "llama", "depth": 2, "width": 64, "heads": 2}
DEMO_TRAIN = {"steps": 600, "batch_size": 32, "micro_batch_size": 32, "lr": 6.0e-3, "warmup_steps": 30, "eval_every": 200,
              "log_every": 50}
DEMO_ARCHS = {"rope": {}, "rope_canon": {"canon": "ABCD"}}
SUITE_ARCHS = {"nope": {"pos": "nope"}, "nope_canon": {"pos": "nope", "canon": "ABCD"}}
SUITE_SEEDS = (1, 2)


def _study(model: dict) -> dict:
    return {"world": "mano", "data": "mano_demo", "model": DEMO_MODEL | model, "train": dict(DEMO_TRAIN), "probe": {},
            "evaluate": {}}


DEMO_STUDIES = {f"mano_{arch}": _study(m) for arch, m in DEMO_ARCHS.items()}


def _suite() -> dict:
    """Seeds 1 and 2 of the showcase's two studies (seed groups with them), and the NoPE pair with seeds 0, 1, 2."""
    studies: dict[str, dict] = {}
    for name, study in DEMO_STUDIES.items():
        studies |= seeded(name, study, SUITE_SEEDS)
    for arch, m in SUITE_ARCHS.items():
        studies[f"mano_{arch}"] = _study(m)
        studies |= seeded(f"mano_{arch}", _study(m), SUITE_SEEDS)
    return {"studies": studies}


# `SUITE` (the `suite` preset): the showcase miniature's seeds 1 and 2, and Llama without positions (NoPE), without
# and with Canon-ABCD, three seeds each, on the same data and budget.
SUITE = _suite()
