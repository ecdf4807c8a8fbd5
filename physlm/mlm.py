"""Masked-LM training of the encoder-only control (SPEC 1.4: "encoder-only (DeBERTa/BERT, MLM) models").

The encoder is the GPT body with full bidirectional attention (`GPTConfig.causal = False`, pos "rot" or
"abs"), the same depth/width/heads, and one more token id: the mask token, id = the decoder's vocab_size
(`encoder_config`). It trains through `physlm.train.train_mlm` (`train(..., objective="mlm")`) on the same windows as the
decoder: the inputs are a window's first `context` tokens with BERT's masking applied (`mask_batch`), the
targets the original ids at the selected positions and -1 (ignored) elsewhere.

Masking (BERT, Devlin et al. 2019): every regular token is selected independently with probability `rate`;
a selected token becomes the mask id with probability 0.8, a uniformly random regular token (possibly
itself) with 0.1, and stays with 0.1. Our choices: the specials `<bos>`/`<eos>` (ids < N_SPECIAL) are never
selected and never drawn as replacements: like BERT's [CLS]/[SEP] they are structure markers the encoder
always sees (the decoder sees them too), and a prediction target they would only make trivial. A batch in
which nothing was selected gets one selected position (so its loss is defined). The draws come from
numpy's generator seeded by (seed, step, micro-step), so a batch is a pure function of those and a resumed
run masks exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from physlm.model import GPTConfig

MASK_RATE = 0.15
N_SPECIAL = 2  # ids 0 (<bos>) and 1 (<eos>): never masked, never a random replacement
KEEP_MASK, KEEP_RANDOM = 0.8, 0.1  # of the selected tokens: masked, randomised; the rest unchanged


def encoder_config(model_cfg: GPTConfig) -> GPTConfig:
    """The encoder-only control of a decoder config: same body, causal=False, one extra id (the mask)."""
    return dataclasses.replace(model_cfg, vocab_size=model_cfg.vocab_size + 1, causal=False)


def mask_id(encoder_cfg: GPTConfig) -> int:
    """The mask token of an encoder config made by `encoder_config`: its last id."""
    return encoder_cfg.vocab_size - 1


def mask_batch(
    windows: np.ndarray, rate: float, mask_token: int, vocab_size: int, seed: int | Sequence[int] | np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), both int64 [B, T], from token ids `windows` [B, T] by BERT's 80/10/10 masking.

    vocab_size: the regular ids are N_SPECIAL .. vocab_size-1 (random replacements are drawn from them);
    mask_token must lie outside them. seed: an int, a sequence of ints (e.g. (seed, step, micro)) or a
    numpy Generator. targets hold the original id where a position was selected and -1 elsewhere; inputs
    equal windows wherever targets is -1."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"mask rate must be in (0, 1), got {rate}")
    if N_SPECIAL <= mask_token < vocab_size:
        raise ValueError(f"mask id {mask_token} is a regular token id (< vocab_size {vocab_size})")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    tokens = np.asarray(windows, dtype=np.int64)
    regular = tokens >= N_SPECIAL
    selected = (rng.random(tokens.shape) < rate) & regular
    if not selected.any() and regular.any():
        candidates = np.flatnonzero(regular)
        selected.flat[candidates[rng.integers(len(candidates))]] = True
    action = rng.random(tokens.shape)
    random_ids = rng.integers(N_SPECIAL, vocab_size, tokens.shape)
    inputs = tokens.copy()
    inputs[selected & (action < KEEP_MASK)] = mask_token
    randomised = selected & (action >= KEEP_MASK) & (action < KEEP_MASK + KEEP_RANDOM)
    inputs[randomised] = random_ids[randomised]
    targets = np.where(selected, tokens, -1)
    return inputs, targets
