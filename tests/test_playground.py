"""physlm/playground.py and physlm/playground_eval.py, the playground worlds' shared pieces: the size distribution against its formula and a
chi-square test, the word sampler's guarantees (distinct, ranges, the end mark, the impossible count named,
the length skew of rejection that SPEC 11.1.1's Depo1 sizes depend on), and both scorers against a scripted
bigram model whose answers are known by construction, and against a small real GPT scored one sequence at a
time by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor, nn

from physlm.model import GPT, GPTConfig
from physlm.playground import accuracy_table, size_probabilities, training_size, word_count, words
from physlm.playground_eval import greedy_answers, target_hits, teacher_forced

pytestmark = pytest.mark.usefixtures("one_thread")

# ------------------------------------------------------------------------------------------- sizes


def test_size_probabilities_formula():
    N = 16
    p = size_probabilities(N)
    assert p.shape == (14,) and math.isclose(p.sum(), 1.0)
    w = [1 / (n + 4.0) for n in range(3, 17)]  # sqrt(16) = 4
    assert np.allclose(p, np.asarray(w) / sum(w))
    assert np.all(np.diff(p) < 0)  # small instances are the more frequent
    assert size_probabilities(5, low=5).tolist() == [1.0]
    with pytest.raises(ValueError, match="low 4, N 3"):
        size_probabilities(3, low=4)


def test_training_size_matches_distribution():
    N, draws = 30, 20000
    rng = np.random.default_rng(0)
    sizes = np.asarray([training_size(rng, N) for _ in range(draws)])
    assert sizes.min() >= 3 and sizes.max() <= N
    observed = np.bincount(sizes, minlength=N + 1)[3:]
    expected = size_probabilities(N) * draws
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # and not some other law: uniform sizes fail the same test
    uniform = rng.integers(3, N + 1, size=draws)
    assert stats.chisquare(np.bincount(uniform, minlength=N + 1)[3:], expected).pvalue < 1e-6


# ------------------------------------------------------------------------------------------- words


def test_words_distinct_in_range_with_end_mark():
    rng = np.random.default_rng(1)
    found = words(rng, 200, vocab=3, min_len=5, max_len=7)
    assert len(found) == len(set(found)) == 200
    for w in found:
        assert 5 <= len(w) <= 7
        assert all(1 <= s <= 3 for s in w[:-1]) and 4 <= w[-1] <= 6
    assert {len(w) for w in found} == {5, 6, 7}


def test_words_all_of_a_small_set_and_the_impossible_count():
    assert word_count(2, 1, 2) == 6
    found = words(np.random.default_rng(2), 6, vocab=2, min_len=1, max_len=2)
    assert sorted(found) == [(1, 3), (1, 4), (2, 3), (2, 4), (3,), (4,)]
    with pytest.raises(ValueError, match="7 distinct words .* only 6 exist with vocab 2 and lengths 1..2"):
        words(np.random.default_rng(2), 7, vocab=2, min_len=1, max_len=2)
    with pytest.raises(ValueError, match="min_len"):
        words(np.random.default_rng(2), 1, vocab=2, min_len=3, max_len=2)


def test_words_seeded_and_order_as_drawn():
    a = words(np.random.default_rng(5), 50, vocab=50, min_len=1, max_len=2)
    assert a == words(np.random.default_rng(5), 50, vocab=50, min_len=1, max_len=2)
    assert a != sorted(a)


def test_words_rejection_skews_lengths_long():
    """Depo1 (vocab 50, lengths 1-2) at n = 375: only 50 one-symbol words exist, so nearly all of them are drawn
    and the other ~325 words have two symbols: mean length (50 + 2 * 325) / 375 = 1.867, not 1.5."""
    lengths = [np.mean([len(w) for w in words(np.random.default_rng(s), 375, 50, 1, 2)]) for s in range(5)]
    assert abs(np.mean(lengths) - 1.867) < 0.01


# ---------------------------------------------------------------------------------- scripted scoring


class Bigram(nn.Module):
    """A stand-in GPT whose argmax after token t is NEXT[t] (logit lead 100), whatever came before: with or
    without a cache (it needs only the last token) and with left padding."""

    def __init__(self, table: list[int], context: int = 64) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(context=context)
        self.table = torch.as_tensor(table)
        self.anchor = nn.Parameter(torch.zeros(1))

    def new_cache(self, batch: int, positions: int | None = None) -> SimpleNamespace:
        return SimpleNamespace(length=0)

    def forward(self, idx: Tensor, targets: Tensor | None = None, *, cache=None, pad=None) -> tuple[Tensor, None]:
        return 100.0 * nn.functional.one_hot(self.table[idx], len(self.table)).float(), None


NEXT = [2, 0, 3, 4, 5, 6, 7, 1, 2, 2]  # 2 -> 3 -> 4 -> 5 -> 6 -> 7 -> <eos>; 8, 9 -> 2


def test_greedy_answers_cut_by_rule_and_by_eos():
    model = Bigram(NEXT)
    prompts = [[0, 2], [0, 8, 9, 4], [0, 6]]
    ends_at_6 = lambda toks: toks[-1] >= 6  # noqa: E731
    assert greedy_answers(model, prompts, 6, ends_at_6, batch_size=2, device="cpu") == [[3, 4, 5, 6], [5, 6], [7]]
    # the rule never met within the budget: the whole continuation comes back (malformed)
    assert greedy_answers(model, prompts, 2, ends_at_6, batch_size=2, device="cpu") == [[3, 4], [5, 6], [7]]
    assert greedy_answers(model, [[0, 7]], 3, ends_at_6, batch_size=1, device="cpu") == [[1]]  # <eos> ends it: malformed
    # no rule: cut after <eos> (id 1), included
    assert greedy_answers(model, prompts, 10, None, batch_size=3, device="cpu") == [[3, 4, 5, 6, 7, 1], [5, 6, 7, 1], [7, 1]]
    assert greedy_answers(model, [], 3, None, batch_size=3, device="cpu") == []


def test_teacher_forced_counts_known_hits():
    model = Bigram(NEXT)
    sequences = [[0, 2, 3, 4, 9], [0, 8, 2, 3], [0, 5]]
    targets = [[2, 3, 4], [1, 2, 3], [1]]
    # seq 0: 2->3 right, 3->4 right, 4->9 wrong (5); seq 1: 0->8 wrong (2), 8->2 right, 2->3 right; seq 2: 0->5 wrong
    assert teacher_forced(model, sequences, targets, batch_size=2, device="cpu") == [(2, 3), (2, 3), (0, 1)]
    hits = target_hits(model, sequences, targets, batch_size=5, device="cpu")
    assert [h.tolist() for h in hits] == [[True, True, False], [False, True, True], [False]]
    with pytest.raises(ValueError, match="target positions must lie in 1..1"):
        teacher_forced(model, [[0, 5]], [[2]], batch_size=1, device="cpu")
    with pytest.raises(ValueError, match="exceeds the model context 64"):
        teacher_forced(model, [[0] * 65], [[1]], batch_size=1, device="cpu")


# ---------------------------------------------------------------------------------- a real small GPT


@pytest.fixture(scope="module")
def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=12, context=32, depth=2, width=32, heads=4)).eval()


def test_greedy_answers_match_a_manual_argmax_loop(gpt):
    rng = np.random.default_rng(3)
    prompts = [[0, *rng.integers(2, 12, size=int(n)).tolist()] for n in (3, 7, 5, 9)]
    found = greedy_answers(gpt, prompts, 5, lambda toks: len(toks) == 4, batch_size=3, device="cpu")
    for prompt, got in zip(prompts, found):
        seq = list(prompt)
        for _ in range(5):
            with torch.no_grad():
                seq.append(int(gpt(torch.tensor([seq]))[0][0, -1].argmax()))
        want = seq[len(prompt):]
        want = want[: want.index(1) + 1] if 1 in want[:4] else want[:4]  # <eos> ends it early, else the rule at 4
        assert got == want


def test_teacher_forced_batched_equals_one_at_a_time(gpt):
    rng = np.random.default_rng(4)
    sequences = [[0, *rng.integers(2, 12, size=int(n)).tolist()] for n in (10, 4, 20, 7)]
    targets = [list(range(1, len(s))) for s in sequences]
    batched = teacher_forced(gpt, sequences, targets, batch_size=4, device="cpu")
    for seq, got in zip(sequences, batched):
        with torch.no_grad():
            guess = gpt(torch.tensor([seq]))[0][0].argmax(-1)
        assert got == (int((guess[:-1] == torch.tensor(seq[1:])).sum()), len(seq) - 1)


def test_accuracy_table():
    rows = [{"k": 2, "correct": True}, {"k": 1, "correct": False}, {"k": 2, "correct": False},
            {"k": 1, "correct": 3, "total": 4}]
    assert accuracy_table(rows, "k") == [{"k": 1, "correct": 3, "total": 5, "accuracy": 0.6},
                                         {"k": 2, "correct": 1, "total": 2, "accuracy": 0.5}]
    assert accuracy_table([], "k") == []
