"""Paper-scale presets: one command rewrites params.yaml from the CPU demo to a paper's settings.

    python -m physlm.presets part1-paper                   # Part 1 at paper scale, then: dvc repro
    python -m physlm.presets part1-paper --queue-lr-sweep  # also queue the LR sweep: dvc queue start
    python -m physlm.presets igsm-med [--formats pq,qp] [--depth-width size1,size2]   # Part 2.1, iGSM-med
    python -m physlm.presets igsm-hard                     # Part 2.1, iGSM-hard
    python -m physlm.presets bio-paper [--people 100000] [--regimes single,aug]   # Part 3.1, bioS

`part1-paper` (SPEC 1.2, the Lano recipe of Part 4.1 App. A.5, which keeps Part 1's 512 context) replaces
every grammar-world dataset and study in params.yaml by:
- one dataset per grammar (default cfg3b, cfg3i, cfg3h, cfg3g, cfg3f: the published rule tables), packed as
  the paper's stream of sentences into 512-token windows;
- one study per grammar with rotary attention, plus the attention variants (abs, rel, pos, uni by default)
  on cfg3f, all on the same data;
- the shared `model` (GPT2-small: 12 layers, 12 heads, 768 wide) and `train` sections (batch 96, AdamW
  beta (0.9, 0.98), eps 1e-6, weight decay 0.1, no warmup, linear decay to 0, 100k steps, bf16 on CUDA,
  torch.compile), larger probe/evaluate samples, the multi-head probe on every layer, and an encoder-only
  MLM control of 20k steps of 96 windows in every study's probe stage.
Studies of other worlds are left alone. The file is edited in place with comments kept (ruamel.yaml round
trip), so `git diff params.yaml` and `dvc params diff` show exactly what the switch changed, and
`git checkout params.yaml` switches back.

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

`bio-paper` (SPEC 4.1-4.3, Part 3.1 App. B-F) replaces every biography dataset and study by bioS with
`--people` N (default 100,000) over the SPEC's full pools, context 512, whole biographies per window, one token
per word of a value (closer to BPE), and one GPT2-12-12 (rotary) study per regime (`--regimes`, default all):
- `single` / `aug`: BIO pretraining on bioS single / multi5+permute, then full QA finetuning on P_train;
- `lora`: pretraining on multi5+permute, then LoRA finetuning (q/v rank 8, embedding rank 128, alpha 4);
- `mixed`: mixed training on bioS single with QA_r 0.8 of the windows P_train QA, no finetuning;
- `celebrity`: pretraining on N minority people (single+permute1, written `single+permute`) plus N
  celebrities (multi5+permute; the SPEC's extra 100k), then full QA finetuning on the celebrities only;
  the minority's questions are the test.
Each study carries the recipe in its own overrides: BIO pretraining / mixed training AdamW wd 0.1, eps 1e-6,
lr 1e-3, 1000 warmup steps, cosine to 1e-4, batch 96, 80k steps; QA finetuning (cosine to 10%, no warmup, in
stages/train.py) wd 0.01, lr 3e-4, batch 48, 50k steps, for LoRA too. P- and Q-probing run 30k steps (rank 2 /
16, AdamW lr 1e-3, wd 0.3). Where the SPEC is silent the preset chooses: betas (0.9, 0.98) as in the other
presets; micro-batches of 24 (both batches divide by it, on one or two devices); torch.compile; LoRA and
mixed training on the data named above; 20,000 probe people and 5,000 evaluated people per split, beams 1
and 4. Rotary turns the whole head dimension (the paper's GPT-NeoX rotary turns a quarter).

The paper samples fresh sentences every step (about 20M cfg3f sentences over 100k x 96 x 512 tokens). Until
streaming from the generator lands, the preset materialises `train_sentences` (default 2M, ~500M tokens,
about ten passes) per grammar; raise it with --train-sentences if disk allows (~60 bytes per token with
labels).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

GRAMMARS = ("cfg3b", "cfg3i", "cfg3h", "cfg3g", "cfg3f")
VARIANTS = ("abs", "rel", "pos", "uni")  # besides rot, which every grammar gets
LR_SWEEP = (2.0e-4, 3.0e-4, 5.0e-4, 1.0e-3)  # SPEC 1.2; the preset's own lr is the second

PART1_MODEL = {"depth": 12, "width": 768, "heads": 12, "pos": "rot", "mlp_ratio": 4, "dropout": 0.0}
PART1_TRAIN = {"steps": 100_000, "batch_size": 96, "micro_batch_size": 32, "lr": LR_SWEEP[1], "min_lr_ratio": 0.0,
               "warmup_steps": 0, "decay": "linear", "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6,
               "grad_clip": 1.0, "eval_every": 1000, "eval_batches": 8, "checkpoint_every": 2000, "log_every": 100,
               "compile": True}
PART1_PROBE = {"sentences": 2000, "steps": 500, "attention_sentences": 500, "multihead": {"steps": 1000, "layers": "all"},
               "encoder": {"steps": 20_000, "batch_size": 96, "lr": 5.0e-4}}
PART1_EVALUATE = {"samples": 1000, "prefix_samples": 1000, "prefix": 50, "temperature": 1.0, "batch_size": 250,
                  "control_samples": 200, "kl_sentences": 500, "robust": {"sentences": 500}}


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments, order and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # long flow-style lines stay as they are
    yaml.representer.add_representer(float, _represent_float)
    return yaml


def _represent_float(representer: Any, value: float) -> Any:
    """Small and huge floats as params.yaml spells them (1.0e-3): ruamel's 1e-06 would be a string to PyYAML
    (YAML 1.1), which DVC and physlm.config read with."""
    if not math.isfinite(value) or value == 0 or 1.0e-2 <= abs(value) < 1.0e15:
        return representer.represent_float(value)
    mantissa, exponent = f"{Decimal(repr(value)):e}".split("e")  # the shortest digits that read back exactly
    mantissa += "" if "." in mantissa else ".0"
    return representer.represent_scalar("tag:yaml.org,2002:float", f"{mantissa}e{exponent}")


def part1_paper(params: Any, *, grammars: Sequence[str] = GRAMMARS, variants: Sequence[str] = VARIANTS,
                variant_grammar: str = "cfg3f", train_sentences: int = 2_000_000) -> list[str]:
    """Rewrite a params mapping (ruamel CommentedMap or dict) in place; returns the new study names."""
    from physlm.worlds.cfg.grammar import published_grammars

    unknown = [g for g in (*grammars, variant_grammar) if g not in published_grammars()]
    if unknown:
        raise SystemExit(f"error: unknown grammar(s) {', '.join(unknown)}; published: {', '.join(published_grammars())}")
    bad = [v for v in variants if v not in ("rot", "abs", "rel", "pos", "uni")]
    if bad:
        raise SystemExit(f"error: unknown attention variant(s) {', '.join(bad)}; known: rot, abs, rel, pos, uni")
    for section, values in (("model", PART1_MODEL), ("train", PART1_TRAIN)):
        params[section].update(values)
    _update(params["probe"]["cfg"], PART1_PROBE)
    _update(params["evaluate"]["cfg"], PART1_EVALUATE)
    for scope in ("datasets", "studies"):
        for name in [n for n, entry in params[scope].items() if entry.get("world") == "cfg"]:
            del params[scope][name]
    for grammar in dict.fromkeys((*grammars, variant_grammar)):
        params["datasets"][f"p1_{grammar}"] = {
            "world": "cfg",
            "generate": {"grammar": grammar, "train_sentences": train_sentences, "test_sentences": 5000, "workers": 0},
            "tokenize": {"context": 512, "pack": "stream"},
        }
    names = []
    runs = [(g, "rot") for g in grammars] + [(variant_grammar, v) for v in variants if (variant_grammar, v) not in [(g, "rot") for g in grammars]]
    for grammar, pos in runs:
        name = f"p1_{grammar}_{pos}"
        params["studies"][name] = {"world": "cfg", "data": f"p1_{grammar}", "model": {"pos": pos}, "train": {},
                                   "probe": {}, "evaluate": {}}
        names.append(name)
    return names


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


def gpt2(layers: int, heads: int) -> dict:
    """GPT2-l-h of Part 2.1: l layers, h heads, 64h dims, rotary."""
    return {"depth": layers, "width": 64 * heads, "heads": heads, "pos": "rot", "mlp_ratio": 4, "dropout": 0.0}


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
    for scope in ("datasets", "studies"):
        for name in [n for n, entry in params[scope].items() if entry.get("world") == "igsm"]:
            del params[scope][name]
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


# Biographies (SPEC 4): the BIO pretraining and QA finetuning recipes of Part 3.1 App. B-D, GPT2-12-12 with
# rotary; datasets named by the augmentation their studies need.
BIO_TRAIN = {"steps": 80_000, "batch_size": 96, "micro_batch_size": 24, "lr": 1.0e-3, "min_lr_ratio": 0.1,
             "warmup_steps": 1000, "decay": "cosine", "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6,
             "grad_clip": 1.0, "eval_every": 1000, "eval_batches": 8, "checkpoint_every": 2000, "log_every": 100,
             "compile": True}
BIO_FINETUNE = {"steps": 50_000, "lr": 3.0e-4, "weight_decay": 0.01, "batch_size": 48}
BIO_LORA = {"rank_qv": 8, "rank_emb": 128, "alpha": 4.0}
BIO_PROBE = {"people": 20_000, "p_steps": 30_000, "p_rank": 2, "q_steps": 30_000, "q_rank": 16, "lr": 1.0e-3,
             "weight_decay": 0.3}
BIO_EVALUATE = {"people": 5000, "beams": [1, 4], "batch_size": 256}
BIO_DATA = {"single": ("single", 0), "aug": ("multi5+permute", 0),  # dataset -> (variant, celebrities per person)
            "celebrity": ("single+permute", 1)}
BIO_REGIMES = {  # regime -> (dataset, train overrides beyond BIO_TRAIN)
    "single": ("single", {"finetune": BIO_FINETUNE}),
    "aug": ("aug", {"finetune": BIO_FINETUNE}),
    "lora": ("aug", {"finetune": {**BIO_FINETUNE, "lora": BIO_LORA}}),
    "mixed": ("single", {"mix": 0.8}),
    "celebrity": ("celebrity", {"finetune": BIO_FINETUNE}),
}


def bio_paper(params: Any, *, people: int = 100_000, regimes: Sequence[str] = tuple(BIO_REGIMES)) -> list[str]:
    """Replace the biography datasets and studies by paper-scale bioS ones: one GPT2-12-12 study per regime,
    on the datasets those regimes need; returns the new study names."""
    bad = [r for r in regimes if r not in BIO_REGIMES]
    if bad or not regimes:
        raise SystemExit(f"error: unknown regime(s) {', '.join(bad) or '(none given)'}; known: {', '.join(BIO_REGIMES)}")
    _update(params["probe"]["bio"], BIO_PROBE)
    _update(params["evaluate"]["bio"], BIO_EVALUATE)
    for scope in ("datasets", "studies"):
        for name in [n for n, entry in params[scope].items() if entry.get("world") == "bio"]:
            del params[scope][name]
    for data in dict.fromkeys(BIO_REGIMES[r][0] for r in regimes):
        variant, celebrities = BIO_DATA[data]
        params["datasets"][f"p31_{data}"] = {
            "world": "bio",
            "generate": {"people": people, "text": "bioS", "variant": variant, "order": "paper", "pronouns": "random",
                         "pools": {}, "celebrities": celebrities * people, "celebrity_variant": "multi5+permute"},
            "tokenize": {"context": 512, "pack": "sentences", "units": "words"},
        }
    names = []
    for regime in regimes:
        data, train = BIO_REGIMES[regime]
        name = f"p31_{regime}"
        params["studies"][name] = {"world": "bio", "data": f"p31_{data}", "model": gpt2(12, 12),
                                   "train": {**BIO_TRAIN, **train}, "probe": {}, "evaluate": {}}
        names.append(name)
    return names


def validate(path: Path, studies: Sequence[str]) -> None:
    """Every stage of the preset's studies and their datasets validates (physlm.config); else a one-line exit."""
    from physlm.config import load_stage, read_params
    from physlm.errors import ParamsError

    params = read_params(path)
    datasets = dict.fromkeys(params["studies"][s]["data"] for s in studies)
    try:
        for stage, names in (("generate", datasets), ("tokenize", datasets), ("train", studies), ("probe", studies),
                             ("evaluate", studies), ("report", [""])):
            for name in names:
                load_stage(stage, name, path)
    except ParamsError as err:
        raise SystemExit(f"error: {err}") from None


def _update(target: Any, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _update(target[key], value)
        elif target.get(key) != value:  # equal values keep their layout and comments
            target[key] = value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m physlm.presets", description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", choices=["part1-paper", "igsm-med", "igsm-hard", "bio-paper"])
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--grammars", default=",".join(GRAMMARS), help="comma-separated published grammars (rot on each)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="attention variants trained on --variant-grammar ('' for none)")
    parser.add_argument("--variant-grammar", default="cfg3f")
    parser.add_argument("--train-sentences", type=int, default=2_000_000)
    parser.add_argument("--queue-lr-sweep", action="store_true",
                        help=f"after rewriting, queue one DVC experiment per learning rate {LR_SWEEP} (run them with `dvc queue start`)")
    parser.add_argument("--formats", default="pq", help="iGSM: comma-separated problem formats (pq, qp), one dataset each")
    parser.add_argument("--train-problems", type=int, default=2_000_000, help="iGSM: materialised training problems per dataset")
    parser.add_argument("--depth-width", default="", help="iGSM: comma-separated model-size lists (size1, size2) trained on the"
                        " first format's dataset: the depth-vs-width matrix of SPEC 2.2")
    parser.add_argument("--people", type=int, default=100_000, help="bio: N people per dataset (and N celebrities)")
    parser.add_argument("--regimes", default=",".join(BIO_REGIMES), help="bio: comma-separated regimes, one study each")
    args = parser.parse_args(argv)
    if not args.params.is_file():
        raise SystemExit(f"error: {args.params}: file not found")
    yaml = _yaml()
    params = yaml.load(args.params.read_text())
    if args.preset == "part1-paper":
        names = part1_paper(params, grammars=[g for g in args.grammars.split(",") if g],
                            variants=[v for v in args.variants.split(",") if v], variant_grammar=args.variant_grammar,
                            train_sentences=args.train_sentences)
    elif args.preset == "bio-paper":
        names = bio_paper(params, people=args.people, regimes=[r for r in args.regimes.split(",") if r])
    else:
        names = igsm_paper(params, level=args.preset.split("-")[1], fmts=[f for f in args.formats.split(",") if f],
                           train_problems=args.train_problems, sizes=[s for s in args.depth_width.split(",") if s])
    tmp = args.params.with_name(args.params.name + ".tmp")
    with tmp.open("w") as fh:
        yaml.dump(params, fh)
    try:
        validate(tmp, names)
    except SystemExit:
        tmp.unlink()
        raise
    tmp.replace(args.params)
    print(f"{args.params}: {args.preset} at paper scale, studies {', '.join(names)} (see `dvc params diff`)")
    if args.queue_lr_sweep:
        for lr in LR_SWEEP:
            cmd = ["dvc", "exp", "run", "--queue", "-S", f"train.lr={lr}"]
            print("+ " + " ".join(cmd))
            subprocess.run(cmd, check=True)
        print("queued; run them with `dvc queue start` and watch `dvc queue status` / `dvc exp show`")


if __name__ == "__main__":
    sys.exit(main())
