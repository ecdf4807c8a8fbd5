"""physlm.mlm: BERT masking statistics and determinism, the encoder config, MLM training through
physlm.train (the loss falls below what the masked tokens' unigram frequencies allow, resume is exact),
and that the encoder's states see right context while the decoder's do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from physlm.errors import DataError
from physlm.mlm import N_SPECIAL, encoder_config, mask_batch, mask_id
from physlm.model import GPT, GPTConfig
from physlm.tokenize import Vocab, pack_windows
from physlm.worlds.cfg.tokenize import cfg_encode
from physlm.train import TrainConfig, train, train_mlm
from physlm.worlds.cfg.grammar import random_grammar, sample_sentences

pytestmark = pytest.mark.usefixtures("one_thread")

V = 12  # decoder vocabulary: <bos>, <eos>, 10 regular ids
MASK = V


def random_windows(rows: int = 400, length: int = 257, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.integers(N_SPECIAL, V, (rows, length))
    w[:, ::37] = Vocab.bos_id
    w[:, 36::37] = Vocab.eos_id
    return w.astype(np.uint16)


def test_mask_batch_follows_bert_80_10_10() -> None:
    w = random_windows()
    x, y = mask_batch(w, 0.15, MASK, V, seed=(0, 0, 0))
    w = w.astype(np.int64)
    regular = w >= N_SPECIAL
    selected = y != -1
    assert x.dtype == y.dtype == np.int64 and x.shape == y.shape == w.shape
    assert abs(selected[regular].mean() - 0.15) < 0.01  # ~88k regular positions: sd 0.0012
    assert not selected[~regular].any()  # <bos>/<eos> are never masked
    assert np.array_equal(y[selected], w[selected]) and (y[~selected] == -1).all()
    assert np.array_equal(x[~selected], w[~selected])  # untouched elsewhere: no mask id outside the targets
    assert (x[~selected] != MASK).all()
    masked, same = x[selected] == MASK, x[selected] == w[selected]
    other = ~masked & ~same
    regular_ids = V - N_SPECIAL
    assert abs(masked.mean() - 0.8) < 0.02
    assert abs(same.mean() - (0.1 + 0.1 / regular_ids)) < 0.02  # kept, or replaced by itself
    assert abs(other.mean() - 0.1 * (1 - 1 / regular_ids)) < 0.02
    assert ((x[selected][other] >= N_SPECIAL) & (x[selected][other] < V)).all()  # replacements: regular ids


def test_mask_batch_is_deterministic_and_never_empty() -> None:
    w = random_windows(rows=8, length=33)
    a, b, c = (mask_batch(w, 0.15, MASK, V, seed=s) for s in ((3, 0, 5, 1), (3, 0, 5, 1), (3, 0, 6, 1)))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    one = np.full((1, 4), 5, dtype=np.uint16)
    assert all((mask_batch(one, 0.01, MASK, V, seed=s)[1] != -1).sum() >= 1 for s in range(20))
    with pytest.raises(ValueError, match="regular"):
        mask_batch(w, 0.15, 5, V, seed=0)


def test_encoder_config() -> None:
    dec = GPTConfig(vocab_size=V, context=32, depth=2, width=32, heads=2)
    enc = encoder_config(dec)
    assert (enc.vocab_size, enc.causal, mask_id(enc)) == (V + 1, False, V)
    assert (enc.depth, enc.width, enc.heads, enc.pos, enc.context) == (dec.depth, dec.width, dec.heads, dec.pos, dec.context)


CONTEXT = 32


def grammar_windows() -> tuple[np.ndarray, int]:
    """Stream windows of a tiny random layered grammar (6 terminals) and the decoder vocabulary size."""
    g = random_grammar(seed=0, symbols_per_level=[1, 4, 4, 6], rules_per_symbol=(2, 2), rule_length=(2, 3))
    sentences = sample_sentences(g, seed=0, start=0, count=300)
    flat = np.concatenate([cfg_encode(s.tokens) for s in sentences])
    offsets = np.cumsum([0] + [len(s.tokens) for s in sentences])
    windows = pack_windows(flat, offsets, CONTEXT, Vocab.bos_id, Vocab.eos_id)
    return windows, len(g.terminals) + 2


def mlm_cfg(**kw: object) -> TrainConfig:
    defaults = {"steps": 120, "batch_size": 32, "micro_batch_size": 32, "lr": 5e-3, "warmup_steps": 5,
                "eval_every": 40, "eval_batches": 1, "checkpoint_every": 40, "log_every": 5}
    return TrainConfig(**{**defaults, **kw})


def test_mlm_learns_from_context(tmp_path: Path) -> None:
    windows, vocab = grammar_windows()
    train_w, val_w = windows[:-32], windows[-32:]
    decoder = GPTConfig(vocab_size=vocab, context=CONTEXT, depth=2, width=32, heads=2)
    result = train_mlm(decoder, mlm_cfg(), train_w, val_w, tmp_path, progress=False)
    assert result.model.cfg == encoder_config(decoder)
    counts = np.bincount(train_w[:, :-1][train_w[:, :-1] >= N_SPECIAL], minlength=vocab)[N_SPECIAL:]
    unigram = float(-(counts / counts.sum() * np.log(counts / counts.sum())).sum())  # best loss without context
    first, last = result.history[0]["loss"], result.final_val_loss  # (val: a fixed masking of 32 windows)
    assert first > unigram + 0.15  # starts near log(vocab)
    assert last < first - 0.4 and last < unigram - 0.15, (first, last, unigram)  # learnt from context


def test_mlm_resume_is_exact_and_objectives_are_checked(tmp_path: Path) -> None:
    windows, vocab = grammar_windows()
    decoder = GPTConfig(vocab_size=vocab, context=CONTEXT, depth=1, width=16, heads=2)
    cfg = mlm_cfg(steps=8, batch_size=8, micro_batch_size=4, checkpoint_every=4, eval_every=4, log_every=2)
    full = train_mlm(decoder, cfg, windows, windows[:8], tmp_path / "a", progress=False)
    train_mlm(decoder, cfg, windows, windows[:8], tmp_path / "b", stop_after=6, progress=False)
    resumed = train_mlm(decoder, cfg, windows, windows[:8], tmp_path / "b", progress=False)
    assert resumed.resumed_from == 4
    for (name, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name
    enc = encoder_config(decoder)
    with pytest.raises(ValueError, match="non-causal"):
        train(decoder, cfg, windows, None, tmp_path / "c", objective="mlm", progress=False)
    with pytest.raises(ValueError, match="causal"):
        train(enc, cfg, windows, None, tmp_path / "c", progress=False)  # clm on an encoder would see the future
    with pytest.raises(DataError, match="mask token"):
        train(enc, cfg, np.full_like(windows, vocab), None, tmp_path / "c", objective="mlm", progress=False)


def test_encoder_states_see_right_context() -> None:
    torch.manual_seed(0)
    enc = GPT(encoder_config(GPTConfig(vocab_size=V, context=16, depth=2, width=32, heads=2)))
    torch.manual_seed(0)
    dec = GPT(GPTConfig(vocab_size=V, context=16, depth=2, width=32, heads=2))
    idx = torch.randint(N_SPECIAL, V, (1, 16), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[0, 10] = (idx[0, 10] + 1 - N_SPECIAL) % (V - N_SPECIAL) + N_SPECIAL  # another regular token
    with torch.no_grad():
        e0, e1 = enc.hidden_states(idx), enc.hidden_states(changed)
        d0, d1 = dec.hidden_states(idx), dec.hidden_states(changed)
    assert not torch.allclose(e0[-1, 0, :10], e1[-1, 0, :10])  # the encoder's left states move
    assert torch.equal(d0[-1, 0, :10], d1[-1, 0, :10])  # the decoder's do not
    assert torch.equal(e0[0, 0, :10], e1[0, 0, :10])  # embeddings are per token
