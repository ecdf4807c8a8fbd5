"""The iGSM world's presets.

`igsm-med` / `igsm-hard` (SPEC 2.2, Part 2.1 App. F) replace every iGSM dataset and study by one dataset per
problem format (`--formats`, default pq) with the level's generator settings (med: max_op 15, max_edge 20,
OOD ops 20-23; hard: 21, 28, OOD ops 28-32), context 768 / 1024, one token per word of a name (as the
papers' BPE splits names into several tokens), and a GPT2-12-12 (rotary) study per
dataset with the level's recipe in its own overrides (AdamW (0.9, 0.98), 1000 warmup steps, cosine to 0.01x,
peak lr 0.002; med: wd 0.05, batch 512, 100k steps; hard: wd 0.03, batch 256, 200k steps; bf16 on CUDA,
torch.compile), the V-probes of SPEC 2.4 (rank 8, lr 0.002, batch 256 med / 128 hard) and 4,096 problems
per eval set. `--depth-width size1,size2` adds the depth-vs-width matrix of SPEC 2.2 on the first format's
dataset (size-1: GPT2-4-21, 8-15, 12-12, 16-10, 20-9; size-2: GPT2-4-30, 8-21, 12-17, 16-15, 20-13), whose
accuracy-by-depth figure the report draws (`reports/igsm_depth.png`). The paper generates its problems on
the fly; the preset materialises `--train-problems` (default 2M) per dataset.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from physlm.presets import Preset, _update, gpt2, replace_world

# iGSM (SPEC 2.1-2.2): the med and hard recipes of Part 2.1 App. F, GPT2-12-12 with rotary. GPT2-l-h = l
# layers, h heads, 64h wide. Recipes go into each study's overrides (not the shared sections), so Part 1's
# preset and these can share one params.yaml.
IGSM_LEVELS = {
    "med": {"generate": {"max_op": 15, "max_edge": 20, "max_layers": 4, "max_items": 4, "ood_ops": [20, 21, 22, 23]},
            "context": 768,
            "train": {"steps": 100_000, "batch_size": 512, "micro_batch_size": 32, "lr": 2.0e-3, "weight_decay": 0.05}},
    "hard": {"generate": {"max_op": 21, "max_edge": 28, "max_layers": 4, "max_items": 4, "ood_ops": [28, 29, 30, 31, 32]},
             "context": 1024,
             "train": {"steps": 200_000, "batch_size": 256, "micro_batch_size": 16, "lr": 2.0e-3, "weight_decay": 0.03}},
}
IGSM_TRAIN = {"warmup_steps": 1000, "decay": "cosine", "min_lr_ratio": 0.01, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6,
              "grad_clip": 1.0, "eval_every": 2000, "eval_batches": 8, "checkpoint_every": 2000, "log_every": 100, "compile": True}
IGSM_PROBE = {"train_problems": 20_000, "test_problems": 1000, "picks": 10, "rank": 8, "steps": 20_000, "batch_size": 256}
IGSM_EVALUATE = {"problems": 4096, "beams": [1, 4], "batch_size": 256}
SIZES = {"size1": [(4, 21), (8, 15), (12, 12), (16, 10), (20, 9)], "size2": [(4, 30), (8, 21), (12, 17), (16, 15), (20, 13)]}


def igsm_paper(params: Any, *, level: str, fmts: Sequence[str] = ("pq",), train_problems: int = 2_000_000,
               sizes: Sequence[str] = ()) -> list[str]:
    """Replace the iGSM datasets and studies by iGSM-`level` ones (one dataset and GPT2-12-12 study per format,
    plus the depth-vs-width matrix `sizes` on the first format); returns the new study names."""
    if level not in IGSM_LEVELS:
        raise SystemExit(f"error: unknown iGSM level {level!r}; known: {', '.join(IGSM_LEVELS)}")
    bad = [f for f in fmts if f not in ("pq", "qp")] + [s for s in sizes if s not in SIZES]
    if bad or not fmts:
        raise SystemExit(f"error: unknown format or size list {', '.join(bad) or '(none given)'}; formats pq, qp; sizes {', '.join(SIZES)}")
    recipe = IGSM_LEVELS[level]
    _update(params["probe"]["igsm"], IGSM_PROBE | {"batch_size": 256 if level == "med" else 128})
    _update(params["evaluate"]["igsm"], IGSM_EVALUATE)
    replace_world(params, "igsm")
    names = []
    for fmt in fmts:
        data = f"p21_{level}_{fmt}"
        params["datasets"][data] = {
            "world": "igsm",
            "generate": {**recipe["generate"], "fmt": fmt, "split_rule": "paper", "train_problems": train_problems,
                         "eval_problems": IGSM_EVALUATE["problems"], "workers": 0},
            "tokenize": {"context": recipe["context"], "pack": "stream", "units": "words"},
        }
        models = [("", gpt2(12, 12))]
        if fmt == fmts[0]:
            models += [(f"_{size}_L{l}H{h}", gpt2(l, h)) for size in sizes for l, h in SIZES[size] if (l, h) != (12, 12)]
        for suffix, model in models:
            name = data + suffix
            params["studies"][name] = {"world": "igsm", "data": data, "model": model,
                                       "train": {**IGSM_TRAIN, **recipe["train"]}, "probe": {}, "evaluate": {}}
            names.append(name)
    return names


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--formats", default="pq", help="comma-separated problem formats (pq, qp), one dataset each")
    parser.add_argument("--train-problems", type=int, default=2_000_000, help="materialised training problems per dataset")
    parser.add_argument("--depth-width", default="", help="comma-separated model-size lists (size1, size2) trained on the"
                        " first format's dataset: the depth-vs-width matrix of SPEC 2.2")


def _level(level: str) -> Preset:
    def apply(params: Any, args: argparse.Namespace) -> list[str]:
        return igsm_paper(params, level=level, fmts=[f for f in args.formats.split(",") if f],
                          train_problems=args.train_problems, sizes=[s for s in args.depth_width.split(",") if s])

    return Preset(f"Part 2.1 at paper scale: iGSM-{level}, GPT2-12-12, V-probes, optionally depth vs width", __doc__.split("\n\n", 1)[1],
                  apply, _options)


PRESETS = {f"igsm-{level}": _level(level) for level in IGSM_LEVELS}
