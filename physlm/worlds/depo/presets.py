"""The Depo world's presets.

`depo-paper` (SPEC 7.2-7.3, Part 4.1 Fig. 7 and its ablations) replaces every Depo dataset and study by:
- one dataset per (variant, N): Depo1 (words of 1-2 symbols over vocab 50, K = 8) at N = 225, 300, 375 and
  Depo2 (5-7 symbols over vocab 4, the paper's; `--depo2-vocab 3` for the released code's, K = 16) at
  N = 75, 100, 125 (`--variants`, `--depo1-n`, `--depo2-n`); context 2048, every window starting at an
  instance (instances concatenated and left-aligned: the first is never cut), loss on `<ans>` and the
  answers only;
- per dataset, one study per model size (`--sizes`, default all four: 12L768D, 12L512D, 8L768D, 8L512D,
  heads = d/64) and architecture (`--archs`, default all six): Llama with full RoPE (`rope`), without
  positions (`nope`) and with RoPE on a quarter of each head (`rope_dim` 16 of 64: `partial`), each without
  and with Canon-ABCD (`rope_canon`, `nope_canon`, `partial_canon`); Canon is residual, no activation,
  kernel 4. Plus the Canon-placement ablations A, B, C, D, AC (`--ablations`) on `--ablation-base` (rope)
  at `--ablation-size` (12L768D);
- every study's recipe in its own overrides: batch 128 (micro-batches of 16), AdamW (0.9, 0.98), eps 1e-6,
  wd 0.03, 1000 warmup steps, cosine to 10%, lr `--lr` (default 1e-3; the paper takes the best of 3e-4,
  5e-4, 1e-3, 2e-3 per run: rerun the preset with each, or `dvc exp run -S studies.<s>.train.lr=...`),
  steps by N (Depo1 112.5k / 100k / 87.5k, Depo2 150k / 125k / 100k for N large to small), bf16 on CUDA,
  torch.compile; probes on 1,000 test instances and evaluation on 2,000 (n = N), with random-init controls.
The model options `block: llama`, `pos: nope`, `rope_dim`, `canon_residual`, `canon_activation` are the
engine's Llama block (physlm/model.py). The paper draws fresh instances every step (about 29B tokens for
Depo1 N = 375); the preset materialises `--train-instances` (default 2M, about 0.9B tokens for Depo1
N = 375, 1.3B for Depo2 N = 125) per dataset, which every study then sees several times over.

`SUITE` (the `suite` preset) adds to the showcase's Depo miniature (params.yaml: `depo_demo`, one-symbol words,
N = 6, K = 2; a 2-block, 64-wide Llama with RoPE, without and with Canon-ABCD, 300 steps) the NoPE pair
(`depo_nope`, `depo_nope_canon`: the same model without positions, without and with Canon-ABCD), two more
seeds of each of these four studies (seed groups: the report gives their mean and spread), the Canon-placement
ablations A, B, C, D and AC on the RoPE model, and the RoPE pair trained 1,500 steps (`depo_rope_long`,
`depo_rope_canon_long`: where two-hop answers separate).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from physlm.presets import Preset, _update, replace_world, seeded

SIZES = {"12L768D": (12, 768), "12L512D": (12, 512), "8L768D": (8, 768), "8L512D": (8, 512)}
ARCHS = {  # name -> the model options beyond depth/width/heads (canon "" = none)
    "rope": {"pos": "rot"}, "rope_canon": {"pos": "rot", "canon": "ABCD"},
    "nope": {"pos": "nope"}, "nope_canon": {"pos": "nope", "canon": "ABCD"},
    "partial": {"pos": "rot", "rope_dim": 16}, "partial_canon": {"pos": "rot", "rope_dim": 16, "canon": "ABCD"},
}
ABLATIONS = ("A", "B", "C", "D", "AC")
VARIANTS = {"depo1": {"K": 8, "N": (225, 300, 375), "steps": {225: 87_500, 300: 100_000, 375: 112_500}},
            "depo2": {"K": 16, "N": (75, 100, 125), "steps": {75: 100_000, 100: 125_000, 125: 150_000}}}
LR_SWEEP = (3.0e-4, 5.0e-4, 1.0e-3, 2.0e-3)

DEPO_MODEL = {"block": "llama", "dropout": 0.0, "canon": "", "canon_kernel": 4, "canon_residual": True,
              "canon_activation": False}
DEPO_TRAIN = {"batch_size": 128, "micro_batch_size": 16, "min_lr_ratio": 0.1, "warmup_steps": 1000, "decay": "cosine",
              "weight_decay": 0.03, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6, "grad_clip": 1.0, "eval_every": 2000,
              "eval_batches": 8, "checkpoint_every": 2000, "log_every": 100, "compile": True}
DEPO_PROBE = {"instances": 1000, "train_fraction": 0.7, "steps": 500, "lr": 5.0e-2, "batch_size": 16, "control": True}
DEPO_EVALUATE = {"instances": 2000, "batch_size": 64, "control": True}


def model(size: str, arch: str, canon: str | None = None) -> dict:
    """The `model:` overrides of one study: a size of SIZES, an architecture of ARCHS, or (`canon`) that
    architecture with Canon at just these points."""
    depth, width = SIZES[size]
    options = dict(ARCHS[arch]) | ({"canon": canon} if canon is not None else {})
    return {**DEPO_MODEL, "depth": depth, "width": width, "heads": width // 64, **options}


def depo_paper(params: Any, *, variants: Sequence[str] = tuple(VARIANTS), ns: dict[str, Sequence[int]] | None = None,
               sizes: Sequence[str] = tuple(SIZES), archs: Sequence[str] = tuple(ARCHS),
               ablations: Sequence[str] = ABLATIONS, ablation_base: str = "rope", ablation_size: str = "12L768D",
               lr: float = 1.0e-3, depo2_vocab: int = 4, train_instances: int = 2_000_000) -> list[str]:
    """Replace the Depo datasets and studies by the paper's (module docstring); returns the new study names."""
    ns = {v: tuple(ns.get(v, VARIANTS[v]["N"])) if ns else VARIANTS[v]["N"] for v in variants}
    bad = ([v for v in variants if v not in VARIANTS] + [s for s in (*sizes, ablation_size) if s not in SIZES]
           + [a for a in (*archs, ablation_base) if a not in ARCHS] + [c for c in ablations if not c or set(c) - set("ABCD")])
    bad += [f"{v} N={n}" for v in variants for n in ns[v] if n not in VARIANTS[v]["steps"]]
    if bad or not variants:
        known_n = ", ".join(f"{v}: {list(spec['N'])}" for v, spec in VARIANTS.items())
        raise SystemExit(f"error: unknown choice(s) {', '.join(map(str, bad)) or '(no variant)'}; variants {', '.join(VARIANTS)},"
                         f" sizes {', '.join(SIZES)}, archs {', '.join(ARCHS)}, ablations subsets of ABCD, N per variant {known_n}")
    params["probe"].setdefault("depo", {})
    params["evaluate"].setdefault("depo", {})
    _update(params["probe"]["depo"], DEPO_PROBE)
    _update(params["evaluate"]["depo"], DEPO_EVALUATE)
    replace_world(params, "depo")
    names = []
    for variant in variants:
        for n in ns[variant]:
            data = f"p41_{variant}_N{n}"
            generate = {"variant": variant, "N": n, "K": VARIANTS[variant]["K"], "train_instances": train_instances,
                        "test_instances": max(DEPO_PROBE["instances"], DEPO_EVALUATE["instances"]), "workers": 0}
            if variant == "depo2":
                generate["vocab"] = depo2_vocab
            params["datasets"][data] = {"world": "depo", "generate": generate,
                                        "tokenize": {"context": 2048, "pack": "sentences", "loss": "answers"}}
            train = {**DEPO_TRAIN, "lr": lr, "steps": VARIANTS[variant]["steps"][n]}
            runs = [(f"{size}_{arch}", model(size, arch)) for size in sizes for arch in archs]
            runs += [(f"{ablation_size}_{ablation_base}_canon{c}", model(ablation_size, ablation_base, c)) for c in ablations]
            for suffix, m in runs:
                name = f"{data}_{suffix}"
                if name not in params["studies"]:
                    params["studies"][name] = {"world": "depo", "data": data, "model": m, "train": dict(train), "probe": {},
                                               "evaluate": {}}
                    names.append(name)
    return names


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants", default="depo1,depo2", help="comma-separated: depo1, depo2")
    parser.add_argument("--depo1-n", default="225,300,375", help="Depo1 data sizes N")
    parser.add_argument("--depo2-n", default="75,100,125", help="Depo2 data sizes N")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"model sizes ({', '.join(SIZES)})")
    parser.add_argument("--archs", default=",".join(ARCHS), help=f"architectures ({', '.join(ARCHS)})")
    parser.add_argument("--ablations", default=",".join(ABLATIONS), help="Canon placements of the ablation studies ('' for none)")
    parser.add_argument("--ablation-base", default="rope", help="the architecture the ablations change")
    parser.add_argument("--ablation-size", default="12L768D")
    parser.add_argument("--lr", type=float, default=1.0e-3, help=f"peak learning rate (the paper's sweep: {LR_SWEEP})")
    parser.add_argument("--depo2-vocab", type=int, default=4, help="Depo2 symbols per position: 4 (paper) or 3 (released code)")
    parser.add_argument("--train-instances", type=int, default=2_000_000, help="materialised training instances per dataset")


def _split(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def _apply(params: Any, args: argparse.Namespace) -> list[str]:
    try:
        ns = {"depo1": [int(n) for n in _split(args.depo1_n)], "depo2": [int(n) for n in _split(args.depo2_n)]}
    except ValueError:
        raise SystemExit(f"error: --depo1-n / --depo2-n take comma-separated integers, got {args.depo1_n!r} / {args.depo2_n!r}") from None
    return depo_paper(params, variants=_split(args.variants), ns=ns, sizes=_split(args.sizes), archs=_split(args.archs),
                      ablations=_split(args.ablations), ablation_base=args.ablation_base, ablation_size=args.ablation_size,
                      lr=args.lr, depo2_vocab=args.depo2_vocab, train_instances=args.train_instances)


PRESETS = {"depo-paper": Preset("Part 4.1 Depo at paper scale: Depo1/Depo2 x 3 N, 4 sizes, RoPE/NoPE/partial RoPE +- Canon, ablations",
                                __doc__.split("\n\n`SUITE`")[0].split("\n\n", 1)[1], _apply, _options)}


# The showcase's Depo miniature, as params.yaml writes it (tests/test_depo.py checks the two agree): one-symbol
# words (12 of them), cycles of 3..6 in training and N = 6 at test, K = 2; a 2-block, 64-wide Llama with RoPE,
# without and with Canon-ABCD, 300 steps at lr 6e-3 (the NoPE pair is the suite's).
DEMO_DATASET = {"world": "depo", "generate": {"variant": "depo1", "vocab": 12, "min_len": 1, "max_len": 1, "N": 6, "K": 2,
                                              "train_instances": 20_000, "test_instances": 200, "workers": 0},
                "tokenize": {"context": 128, "pack": "sentences", "loss": "answers"}}
DEMO_ARCHS = {"rope": {}, "rope_canon": {"canon": "ABCD"}}
SUITE_ARCHS = {"nope": {"pos": "nope"}, "nope_canon": {"pos": "nope", "canon": "ABCD"}}  # the showcase's budget leaves them out
DEMO_MODEL = {"block": "llama", "depth": 2, "width": 64, "heads": 2}
DEMO_TRAIN = {"steps": 300, "batch_size": 32, "micro_batch_size": 32, "lr": 6.0e-3, "warmup_steps": 30, "eval_every": 100,
              "log_every": 20}


def _study(model: dict) -> dict:
    return {"world": "depo", "data": "depo_demo", "model": DEMO_MODEL | model, "train": dict(DEMO_TRAIN), "probe": {},
            "evaluate": {}}


DEMO_STUDIES = {f"depo_{arch}": _study(m) for arch, m in DEMO_ARCHS.items()}
NOPE_STUDIES = {f"depo_{arch}": _study(m) for arch, m in SUITE_ARCHS.items()}
SUITE_SEEDS = (1, 2)
LONG_STEPS = 1500  # the suite's long pair: where the two-hop answers separate


def _suite() -> dict:
    """The NoPE pair (three seeds), two more seeds of each showcase Depo study (seed groups with it), the
    placement ablations on RoPE, and the RoPE pair trained 5x longer (`depo_rope_long`, `depo_rope_canon_long`)."""
    studies: dict[str, dict] = dict(NOPE_STUDIES)
    for name, study in (DEMO_STUDIES | NOPE_STUDIES).items():
        studies |= seeded(name, study, SUITE_SEEDS)
    base = DEMO_STUDIES["depo_rope"]
    for points in ABLATIONS:
        studies[f"depo_rope_{points}"] = {**base, "model": {**base["model"], "canon": points}}
    for name in ("depo_rope", "depo_rope_canon"):
        study = DEMO_STUDIES[name]
        studies[f"{name}_long"] = {**study, "train": {**study["train"], "steps": LONG_STEPS, "eval_every": 500, "log_every": 50}}
    return {"studies": studies}


SUITE = _suite()
