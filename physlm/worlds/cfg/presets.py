"""The grammar world's presets.

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

The paper samples fresh sentences every step (about 20M cfg3f sentences over 100k x 96 x 512 tokens); the
preset materialises `train_sentences` (default 2M, ~500M tokens, about ten passes) per grammar, so the probe
and evaluate stages can read labelled sentences. Raise it with --train-sentences if disk allows (~60 bytes
per token with labels), or set `train.stream: true` to train on fresh sentences (physlm/stream.py).

`SUITE` (the `suite` preset): the studies the showcase leaves out, on `cfg_small`, a smaller grammar
(sentences of 30-40 tokens) that a CPU model learns in 300 steps: the attention-variant matrix of SPEC 1.2
(the five position schemes on the same data and budget), the rotary model trained with 10% perturbed
sentences (compare its corrupted-prompt accuracy with `cfg_rot`), and the implicit grammar (SPEC 1.5).
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Sequence
from typing import Any

from physlm.presets import Preset, _update, replace_world

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
    replace_world(params, "cfg")
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




def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grammars", default=",".join(GRAMMARS), help="comma-separated published grammars (rot on each)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="attention variants trained on --variant-grammar ('' for none)")
    parser.add_argument("--variant-grammar", default="cfg3f")
    parser.add_argument("--train-sentences", type=int, default=2_000_000)
    parser.add_argument("--queue-lr-sweep", action="store_true",
                        help=f"after rewriting, queue one DVC experiment per learning rate {LR_SWEEP} (run them with `dvc queue start`)")


def _apply(params: Any, args: argparse.Namespace) -> list[str]:
    return part1_paper(params, grammars=[g for g in args.grammars.split(",") if g],
                       variants=[v for v in args.variants.split(",") if v], variant_grammar=args.variant_grammar,
                       train_sentences=args.train_sentences)


def _queue_lr_sweep(args: argparse.Namespace) -> None:
    if not args.queue_lr_sweep:
        return
    for lr in LR_SWEEP:
        cmd = ["dvc", "exp", "run", "--queue", "-S", f"train.lr={lr}"]
        print("+ " + " ".join(cmd))
        subprocess.run(cmd, check=True)
    print("queued; run them with `dvc queue start` and watch `dvc queue status` / `dvc exp show`")


PRESETS = {"part1-paper": Preset("Part 1 at paper scale: the published grammars, GPT2-small, the attention variants",
                                 __doc__.split("\n\nThe paper samples")[0].split("\n\n", 1)[1], _apply, _options, _queue_lr_sweep)}

# The `suite` preset's grammar studies (module docstring): all on cfg_small's grammar, 300 steps of 16 windows of
# 128 tokens each, the probes and evaluations trimmed to that budget.
_SMALL_GRAMMAR = {"seed": 3, "symbols_per_level": [1, 3, 3, 4], "rules_per_symbol": [2, 2], "rule_length": [3, 4]}
_SMALL_DATA = {"grammar": _SMALL_GRAMMAR, "train_sentences": 20000, "test_sentences": 1000}
_SMALL_TOKENS = {"context": 128, "pack": "sentences"}
_SMALL_TRAIN = {"steps": 300, "batch_size": 16, "micro_batch_size": 16}
_SMALL_PROBE = {"control": False, "multihead": {"steps": 0}, "sentences": 150, "attention_sentences": 50}


def _small_study(data: str, pos: str | None, robust: int) -> dict:
    return {"world": "cfg", "data": data, "model": {"pos": pos} if pos else {}, "train": dict(_SMALL_TRAIN),
            "probe": dict(_SMALL_PROBE),
            "evaluate": {"samples": 100, "prefix_samples": 100, "prefix": 20, "control_samples": 0, "kl_sentences": 50,
                         "robust": {"sentences": robust}}}


SUITE = {
    "datasets": {
        "cfg_small": {"world": "cfg", "generate": dict(_SMALL_DATA), "tokenize": dict(_SMALL_TOKENS)},
        # the same sentences, 10% of the training ones perturbed (15% of their tokens replaced)
        "cfg_small_noisy": {"world": "cfg", "generate": {**_SMALL_DATA, "perturb": {"fraction": 0.1, "rate": 0.15, "kind": "replace"}},
                            "tokenize": dict(_SMALL_TOKENS)},
        # the same grammar made implicit: each terminal emits one of its own 4 tokens, bags overlap by 1
        "cfg_small_implicit": {"world": "cfg", "generate": {**_SMALL_DATA, "implicit": {"bag_size": 4, "overlap": 1, "seed": 0}},
                               "tokenize": dict(_SMALL_TOKENS)},
    },
    "studies": {
        "cfg_rot": _small_study("cfg_small", "rot", 100),  # the attention-variant matrix (SPEC 1.2) ...
        "cfg_abs": _small_study("cfg_small", "abs", 0),
        "cfg_rel": _small_study("cfg_small", "rel", 0),
        "cfg_pos": _small_study("cfg_small", "pos", 0),
        "cfg_uni": _small_study("cfg_small", "uni", 0),
        "cfg_noisy": _small_study("cfg_small_noisy", None, 100),  # ... perturbed training (SPEC 1.5) ...
        "cfg_implicit": _small_study("cfg_small_implicit", None, 0),  # ... and the implicit grammar
    },
}
