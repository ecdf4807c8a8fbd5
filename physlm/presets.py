"""Paper-scale presets: one command rewrites params.yaml from the CPU demo to a paper's settings.

    python -m physlm.presets part1-paper                   # Part 1 at paper scale, then: dvc repro
    python -m physlm.presets part1-paper --queue-lr-sweep  # also queue the LR sweep: dvc queue start

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

The paper samples fresh sentences every step (about 20M cfg3f sentences over 100k x 96 x 512 tokens). Until
streaming from the generator lands, the preset materialises `train_sentences` (default 2M, ~500M tokens,
about ten passes) per grammar; raise it with --train-sentences if disk allows (~60 bytes per token with
labels).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
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
    yaml.width = 120
    return yaml


def part1_paper(params: Any, *, grammars: Sequence[str] = GRAMMARS, variants: Sequence[str] = VARIANTS,
                variant_grammar: str = "cfg3f", train_sentences: int = 2_000_000) -> list[str]:
    """Rewrite a params mapping (ruamel CommentedMap or dict) in place; returns the new study names."""
    from physlm.worlds.cfg import published_grammars

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
            "generate": {"grammar": grammar, "train_sentences": train_sentences, "test_sentences": 5000},
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


def _update(target: Any, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _update(target[key], value)
        else:
            target[key] = value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m physlm.presets", description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", choices=["part1-paper"])
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--grammars", default=",".join(GRAMMARS), help="comma-separated published grammars (rot on each)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="attention variants trained on --variant-grammar ('' for none)")
    parser.add_argument("--variant-grammar", default="cfg3f")
    parser.add_argument("--train-sentences", type=int, default=2_000_000)
    parser.add_argument("--queue-lr-sweep", action="store_true",
                        help=f"after rewriting, queue one DVC experiment per learning rate {LR_SWEEP} (run them with `dvc queue start`)")
    args = parser.parse_args(argv)
    if not args.params.is_file():
        raise SystemExit(f"error: {args.params}: file not found")
    yaml = _yaml()
    params = yaml.load(args.params.read_text())
    names = part1_paper(params, grammars=[g for g in args.grammars.split(",") if g],
                        variants=[v for v in args.variants.split(",") if v], variant_grammar=args.variant_grammar,
                        train_sentences=args.train_sentences)
    tmp = args.params.with_name(args.params.name + ".tmp")
    with tmp.open("w") as fh:
        yaml.dump(params, fh)
    tmp.replace(args.params)
    print(f"{args.params}: Part 1 at paper scale, studies {', '.join(names)} (see `dvc params diff`)")
    if args.queue_lr_sweep:
        for lr in LR_SWEEP:
            cmd = ["dvc", "exp", "run", "--queue", "-S", f"train.lr={lr}"]
            print("+ " + " ".join(cmd))
            subprocess.run(cmd, check=True)
        print("queued; run them with `dvc queue start` and watch `dvc queue status` / `dvc exp show`")


if __name__ == "__main__":
    sys.exit(main())
