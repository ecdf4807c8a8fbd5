"""physlm.sampling: reproducible batched sampling, cache parity, eos handling, greedy = argmax."""


import pytest
import torch

from physlm.model import GPT, GPTConfig
from physlm.sampling import generate

pytestmark = pytest.mark.usefixtures("one_thread")

V, EOS = 11, 10
PROMPTS = [[1, 2, 3], [4, 5], [6, 7, 8], [9], [1, 1], [2, 3, 4], [5, 6, 7]]


@pytest.fixture(scope="module", params=["rot", "abs"])
def model(request: pytest.FixtureRequest) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, context=32, depth=2, width=32, heads=4, pos=request.param))


def sample(model: GPT, **kw: object) -> list[list[int]]:
    args = {"max_new_tokens": 12, "temperature": 1.0, "eos_id": EOS, "seed": 0, "batch_size": 2}
    return generate(model, PROMPTS, **{**args, **kw})


def test_same_seed_same_samples(model: GPT) -> None:
    first = sample(model)
    assert first == sample(model)
    assert first != sample(model, seed=1)
    assert len(first) == len(PROMPTS) and all(1 <= len(row) <= 12 for row in first)


@pytest.mark.parametrize("temperature", [0.0, 1.0, 2.0])
def test_cache_and_no_cache_give_identical_samples(model: GPT, temperature: float) -> None:
    assert sample(model, temperature=temperature) == sample(model, temperature=temperature, use_cache=False)


def test_rows_stop_at_eos(model: GPT) -> None:
    with torch.no_grad():
        model.head.weight[EOS] += 0.5  # make eos frequent, so rows stop at different steps
    try:
        rows = sample(model, max_new_tokens=20)
    finally:
        with torch.no_grad():
            model.head.weight[EOS] -= 0.5
    assert any(row[-1] == EOS and len(row) < 20 for row in rows)
    assert all(EOS not in row[:-1] for row in rows)
    assert all(row[-1] == EOS or len(row) == 20 for row in rows)


def test_greedy_matches_argmax_of_forward(model: GPT) -> None:
    rows = sample(model, temperature=0.0, max_new_tokens=6, eos_id=-1, seed=5)
    model.eval()
    for prompt, new in zip(PROMPTS, rows):
        seq = list(prompt)
        for token in new:
            logits = model(torch.tensor([seq]))[0][0, -1]
            assert token == int(logits.argmax())
            seq.append(token)
    assert rows == sample(model, temperature=0.0, max_new_tokens=6, eos_id=-1, seed=99)  # seed-independent


def test_sampling_follows_the_softmax() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=4, context=4, depth=1, width=8, heads=2))
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([[0]]))[0][0, -1] / 0.5, dim=-1)
    rows = generate(model, [[0]] * 4000, max_new_tokens=1, temperature=0.5, eos_id=-1, seed=3, batch_size=500)
    counts = torch.bincount(torch.tensor([row[0] for row in rows]), minlength=4) / 4000
    torch.testing.assert_close(counts, probs, rtol=0, atol=0.03)


def test_restores_training_mode(model: GPT) -> None:
    model.train()
    sample(model, max_new_tokens=2)
    assert model.training


def test_context_is_never_exceeded(model: GPT) -> None:
    with pytest.raises(ValueError, match="context"):
        generate(model, [[1] * 30], max_new_tokens=4, temperature=0.0, eos_id=EOS, seed=0)
    assert len(generate(model, [[1] * 30], max_new_tokens=3, temperature=0.0, eos_id=-1, seed=0)[0]) == 3


def _sequence_logprob(model: GPT, prompt: list[int], continuation: list[int]) -> float:
    idx = torch.tensor([prompt + continuation])
    with torch.no_grad():
        logp = torch.log_softmax(model(idx)[0][0].float(), dim=-1)
    return float(sum(logp[len(prompt) - 1 + t, tok] for t, tok in enumerate(continuation)))


def _brute_force_best(model: GPT, prompt: list[int], max_new: int, vocab: int, eos: int) -> list[int]:
    """Every sequence that ends at its first eos or runs max_new tokens; the most likely one."""
    import itertools

    candidates = []
    for length in range(1, max_new + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            if eos in seq[:-1] or (length < max_new and seq[-1] != eos):
                continue
            candidates.append(list(seq))
    return max(candidates, key=lambda c: _sequence_logprob(model, prompt, c))


def test_beam_search_one_beam_is_greedy(model: GPT) -> None:
    from physlm.sampling import beam_search

    assert beam_search(model, PROMPTS, beams=1, max_new_tokens=12, eos_id=EOS, batch_size=3) == \
        sample(model, temperature=0.0)


def test_beam_search_with_every_candidate_kept_is_exact() -> None:
    from physlm.sampling import beam_search

    torch.manual_seed(3)
    vocab, eos, max_new = 4, 3, 3
    tiny = GPT(GPTConfig(vocab_size=vocab, context=16, depth=1, width=16, heads=2))
    prompts = [[0, 1], [2], [1, 1, 2]]
    found = beam_search(tiny, prompts, beams=vocab**max_new, max_new_tokens=max_new, eos_id=eos, batch_size=200)
    for prompt, best in zip(prompts, found):
        assert best == _brute_force_best(tiny, prompt, max_new, vocab, eos)

