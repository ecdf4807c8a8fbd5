"""Evaluation helpers: judging samples, model/grammar distribution alignment, KL and diversity summaries."""

from __future__ import annotations

import numpy as np
import torch

from physlm.worlds.cfg.generation import diversity, kl_to_grammar, model_next_token, score_samples
from physlm.worlds.cfg.grammar import Judge, load_grammar, sample_sentences
from physlm.worlds.cfg.dist import next_token_distributions


class FixedLogits(torch.nn.Module):
    """A stand-in model whose next-token logits are the same everywhere."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits))

    def forward(self, idx: torch.Tensor):
        return self.logits.expand(*idx.shape, -1), None


class Oracle(torch.nn.Module):
    """A model that returns the grammar's exact next-token distribution (its log) for known sentences."""

    def __init__(self, grammar, sentences) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.table = {tuple(s): next_token_distributions(grammar, s) for s in sentences}

    def forward(self, idx: torch.Tensor):
        out = torch.full((*idx.shape, 5), -30.0)
        for row, ids in enumerate(idx.tolist()):
            sent = tuple(i - 1 for i in ids[1:] if i > 1)
            dist = torch.as_tensor(self.table[sent], dtype=torch.float32)
            out[row, : len(sent) + 1, 1:] = torch.log(dist.clamp_min(1e-30))
        return out, None


def test_model_columns_are_eos_then_terminals() -> None:
    # ids: 0 <bos>, 1 <eos>, 2..4 terminals 1..3; all mass on <bos> and <eos> -> EOS after renormalising
    rows = model_next_token(FixedLogits([5.0, 5.0, -20.0, -20.0, -20.0]), [[1, 2, 3]], num_terminals=3, batch_size=4)
    assert rows[0].shape == (4, 4)
    assert np.allclose(rows[0][:, 0], 1.0, atol=1e-6)
    rows = model_next_token(FixedLogits([0.0, -20.0, -20.0, 3.0, -20.0]), [[1, 2]], num_terminals=3, batch_size=4)
    assert np.allclose(rows[0][:, 2], 1.0, atol=1e-6)  # column t = terminal t: id 3 is terminal 2


def test_kl_is_zero_for_the_exact_distribution_and_positive_otherwise() -> None:
    g = load_grammar("cfg3b")
    sentences = [s.tokens for s in sample_sentences(g, 0, 0, 3)]
    assert kl_to_grammar(Oracle(g, sentences), g, sentences, batch_size=2)["mean"] < 1e-4
    uniform = kl_to_grammar(FixedLogits([0.0] * 5), g, sentences, batch_size=2)
    assert uniform["mean"] > 0.1 and uniform["sentences"] == 3


def test_score_and_diversity() -> None:
    g = load_grammar("cfg3b")
    good = [s.tokens for s in sample_sentences(g, 1, 0, 6)]
    samples = [good[0], good[0][:-1], None, good[1], good[1]]
    scored = score_samples(samples, Judge(g), train_set={tuple(good[1])})
    assert not Judge(g)(good[0][:-1])  # cfg3b sentences cannot be truncated into another sentence
    assert scored.accuracy == 3 / 5
    assert scored.seen_in_train == 2 / 3
    found = diversity([good[0], good[0], good[2], None], good)
    assert found["model"]["collisions"] == 1 and found["model"]["n"] == 3
    assert found["grammar"]["n"] == 3
