"""The Brevo world's presets.

`brevo-paper` (SPEC 7.2-7.3, Part 4.1 Fig. 7) replaces every Brevo dataset and study by one dataset per variant and
N (`--variants`, default both: Brevo1, single-token names, N = 70, 90, 110, context 1024; Brevo2, words of 2-4
symbols over 4, N = 30, 40, 50, context 1536; `--N` picks some of them) and one study per dataset, model size
(`--sizes`, default 12L768D, the column the paper's figure is quoted from; the 3x4 grid adds 12L512D, 8L768D,
8L512D, heads = width / 64) and architecture (`--archs`, default all six: Llama with RoPE, NoPE or partial RoPE
(`rope_dim` 16 of every head's 64 dims), each without and with Canon-ABCD). Queries come from the last quarter of
the creation order (the paper's rule). Each study carries the recipe in its own overrides: AdamW (0.9, 0.98), eps
1e-6, weight decay 0.03, 1000 warmup steps, cosine to 10%; Brevo1 batch 256 and 100k / 125k / 150k steps for N =
70 / 90 / 110, Brevo2 batch 192 and 200k / 225k / 250k steps for N = 30 / 40 / 50; lr 5e-4 (the paper takes the
best of 3e-4, 5e-4, 1e-3, 2e-3: `LR_SWEEP`; queue the others with `dvc exp run --queue -S ...`), bf16 on CUDA,
torch.compile. Evaluation answers 1,024 test instances (n = N) and 256 per smaller size (N/4, N/2, 3N/4); the
probe reads 2,048. The paper samples fresh graphs every step; the preset materialises `--train-examples` (default
5M) per dataset.

The architecture names (`ARCHS`) are the engine's model options `block: llama`, `pos: nope` and `rope_dim`
(physlm/model.py, docs/architectures.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from physlm.presets import Preset, _update, replace_world, seeded

VARIANTS = {  # variant -> (names, context, batch, {N: steps})
    "brevo1": ("tokens", 1024, 256, {70: 100_000, 90: 125_000, 110: 150_000}),
    "brevo2": ("words", 1536, 192, {30: 200_000, 40: 225_000, 50: 250_000}),
}
LR_SWEEP = (3.0e-4, 5.0e-4, 1.0e-3, 2.0e-3)
SIZES = {"12L768D": (12, 768), "12L512D": (12, 512), "8L768D": (8, 768), "8L512D": (8, 512)}
ARCHS = {  # Part 4.1's architecture grid: {RoPE, NoPE, partial RoPE} x {no Canon, Canon-ABCD}
    "rope": {"block": "llama", "pos": "rot", "canon": ""},
    "rope_canon": {"block": "llama", "pos": "rot", "canon": "ABCD"},
    "nope": {"block": "llama", "pos": "nope", "canon": ""},
    "nope_canon": {"block": "llama", "pos": "nope", "canon": "ABCD"},
    "rope16": {"block": "llama", "pos": "rot", "rope_dim": 16, "canon": ""},
    "rope16_canon": {"block": "llama", "pos": "rot", "rope_dim": 16, "canon": "ABCD"},
}
TRAIN = {"lr": LR_SWEEP[1], "min_lr_ratio": 0.1, "warmup_steps": 1000, "decay": "cosine", "weight_decay": 0.03,
         "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6, "grad_clip": 1.0, "eval_every": 2000, "eval_batches": 8,
         "checkpoint_every": 2000, "log_every": 100, "compile": True}
# the world's probe / evaluate defaults (what params.yaml's probe.brevo / evaluate.brevo hold) and the paper's sizes
PROBE = {"examples": 300, "train_fraction": 0.7, "steps": 200, "lr": 5.0e-2, "batch_size": 16, "control": True}
EVALUATE = {"examples": 200, "size_examples": 50, "batch_size": 32, "control": True}
PAPER_PROBE = {"examples": 2048, "steps": 500, "batch_size": 64}
PAPER_EVALUATE = {"examples": 1024, "size_examples": 256, "batch_size": 128}


def model(size: str, arch: str) -> dict:
    depth, width = SIZES[size]
    return {"depth": depth, "width": width, "heads": width // 64, "mlp_ratio": 4, "dropout": 0.0, **ARCHS[arch]}


def brevo_paper(params: Any, *, variants: Sequence[str] = tuple(VARIANTS), Ns: Sequence[int] = (),
                sizes: Sequence[str] = ("12L768D",), archs: Sequence[str] = tuple(ARCHS),
                train_examples: int = 5_000_000) -> list[str]:
    """Replace the Brevo datasets and studies by the paper's grid (`Ns`: only these N; empty = all); returns the
    new study names."""
    known_N = {N for v in VARIANTS.values() for N in v[3]}
    bad = ([v for v in variants if v not in VARIANTS] + [s for s in sizes if s not in SIZES] + [a for a in archs if a not in ARCHS]
           + [str(N) for N in Ns if N not in known_N])
    if bad or not (variants and sizes and archs):
        raise SystemExit(f"error: unknown or empty choice {', '.join(bad) or '(none given)'}; variants {', '.join(VARIANTS)};"
                         f" N {', '.join(map(str, sorted(known_N)))}; sizes {', '.join(SIZES)}; archs {', '.join(ARCHS)}")
    for section, paper, default in (("probe", PAPER_PROBE, PROBE), ("evaluate", PAPER_EVALUATE, EVALUATE)):
        if "brevo" not in params[section]:
            params[section]["brevo"] = dict(default)
        _update(params[section]["brevo"], paper)
    replace_world(params, "brevo")
    names = []
    for variant in variants:
        kind, context, batch, steps = VARIANTS[variant]
        for N in [N for N in steps if not Ns or N in Ns]:
            data = f"p41_{variant}_N{N}"
            params["datasets"][data] = {
                "world": "brevo",
                "generate": {"N": N, "names": kind, "word_vocab": 4, "word_lengths": [2, 4], "query": "quarter",
                             "train_examples": train_examples, "test_examples": PAPER_EVALUATE["examples"],
                             "size_examples": PAPER_EVALUATE["size_examples"], "eval_sizes": [], "workers": 0},
                "tokenize": {"context": context, "pack": "sentences"},
            }
            for size in sizes:
                for arch in archs:
                    name = f"{data}_{size}_{arch}"
                    params["studies"][name] = {"world": "brevo", "data": data, "model": model(size, arch),
                                               "train": {**TRAIN, "steps": steps[N], "batch_size": batch, "micro_batch_size": batch // 8},
                                               "probe": {}, "evaluate": {}}
                    names.append(name)
    return names


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated variants ({', '.join(VARIANTS)})")
    parser.add_argument("--N", default="", help="comma-separated N to keep (default: all of each variant's)")
    parser.add_argument("--sizes", default="12L768D", help=f"comma-separated model sizes ({', '.join(SIZES)})")
    parser.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated architectures ({', '.join(ARCHS)})")
    parser.add_argument("--train-examples", type=int, default=5_000_000, help="materialised training instances per dataset")


def _apply(params: Any, args: argparse.Namespace) -> list[str]:
    def items(text: str) -> list[str]:
        return [x for x in text.split(",") if x]

    try:
        Ns = [int(x) for x in items(args.N)]
    except ValueError:
        raise SystemExit(f"error: --N must be comma-separated integers, got {args.N!r}") from None
    return brevo_paper(params, variants=items(args.variants), Ns=Ns, sizes=items(args.sizes), archs=items(args.archs),
                       train_examples=args.train_examples)


PRESETS = {"brevo-paper": Preset("Part 4.1 Brevo at paper scale: Brevo1 and Brevo2, the architecture grid, optionally 4 sizes",
                                 __doc__.split("\n\n", 1)[1], _apply, _options)}


# The showcase's Brevo miniature, as params.yaml writes it (tests/test_brevo.py checks the two agree): Brevo1 with
# single-token vertices, N = 8; a 2-block, 64-wide Llama with RoPE, without positions (NoPE), and NoPE with
# Canon-ABCD, 400 steps: Canon's lift (NoPE + Canon against NoPE) and NoPE's recovery (against RoPE) in one run.
DEMO_DATASET = {"world": "brevo", "generate": {"N": 8, "names": "tokens", "train_examples": 20_000, "test_examples": 300,
                                               "size_examples": 50, "workers": 0},
                "tokenize": {"context": 128, "pack": "sentences"}}
DEMO_MODEL = {"block": "llama", "depth": 2, "width": 64, "heads": 2}
DEMO_TRAIN = {"steps": 400, "batch_size": 32, "micro_batch_size": 32, "lr": 3.0e-3, "warmup_steps": 30, "eval_every": 100,
              "log_every": 20}
DEMO_ARCHS = {"rope": {}, "nope": {"pos": "nope"}, "nope_canon": {"pos": "nope", "canon": "ABCD"}}
SUITE_ARCHS = {"rope_canon": {"canon": "ABCD"}}


def _study(model: dict) -> dict:
    return {"world": "brevo", "data": "brevo_demo", "model": DEMO_MODEL | model, "train": dict(DEMO_TRAIN), "probe": {},
            "evaluate": {}}


DEMO_STUDIES = {f"brevo_{arch}": _study(m) for arch, m in DEMO_ARCHS.items()}
SUITE_SEEDS = (1, 2)


def _suite() -> dict:
    """Seeds 1 and 2 of the showcase's three studies (seed groups with them), and RoPE + Canon-ABCD with seeds 0, 1, 2."""
    studies: dict[str, dict] = {}
    for name, study in DEMO_STUDIES.items():
        studies |= seeded(name, study, SUITE_SEEDS)
    for arch, m in SUITE_ARCHS.items():
        studies[f"brevo_{arch}"] = _study(m)
        studies |= seeded(f"brevo_{arch}", _study(m), SUITE_SEEDS)
    return {"studies": studies}


# `SUITE` (the `suite` preset): the showcase miniature's seeds 1 and 2, and Llama with RoPE and Canon-ABCD, three
# seeds, on the same data and budget.
SUITE = _suite()
