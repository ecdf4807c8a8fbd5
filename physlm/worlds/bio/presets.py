"""The biography world's presets.

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
bio/train.py) wd 0.01, lr 3e-4, batch 48, 50k steps, for LoRA too. P- and Q-probing run 30k steps (rank 2 /
16, AdamW lr 1e-3, wd 0.3). Where the SPEC is silent the preset chooses: betas (0.9, 0.98) as in the other
presets; micro-batches of 24 (both batches divide by it, on one or two devices); torch.compile; LoRA and
mixed training on the data named above; 20,000 probe people and 5,000 evaluated people per split, beams 1
and 4. Rotary turns the whole head dimension (the paper's GPT-NeoX rotary turns a quarter).

`SUITE` (the `suite` preset): the regimes the showcase leaves out, on the showcase's data and budget: mixed
training (`bio_mixed`: QA_r 0.8 of the windows are P_train QA, no finetuning) and LoRA finetuning (`bio_lora`:
the `bio_aug` study finetuned with q/v rank 8, embedding rank 128, alpha 4).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from physlm.presets import Preset, _update, gpt2, replace_world

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
    replace_world(params, "bio")
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


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=100_000, help="N people per dataset (and N celebrities)")
    parser.add_argument("--regimes", default=",".join(BIO_REGIMES), help="comma-separated regimes, one study each")


def _apply(params: Any, args: argparse.Namespace) -> list[str]:
    return bio_paper(params, people=args.people, regimes=[r for r in args.regimes.split(",") if r])


PRESETS = {"bio-paper": Preset("Part 3.1 at paper scale: bioS over the full pools, GPT2-12-12, every regime",
                               __doc__.split("\n\n`SUITE`")[0].split("\n\n", 1)[1], _apply, _options)}

# The `suite` preset's biography studies (module docstring): the showcase's 400 steps on the same datasets.
SUITE = {
    "studies": {
        "bio_mixed": {"world": "bio", "data": "bio_single", "model": {}, "train": {"steps": 400, "mix": 0.8},
                      "probe": {"p_steps": 0, "q_steps": 0}, "evaluate": {}},
        "bio_lora": {"world": "bio", "data": "bio_aug", "model": {},
                     "train": {"steps": 400, "finetune": {"steps": 30, "lr": 1.0e-3, "weight_decay": 0.01, "batch_size": 16,
                                                          "lora": {"rank_qv": 8, "rank_emb": 128, "alpha": 4.0}}},
                     "probe": {}, "evaluate": {}},
    },
}
