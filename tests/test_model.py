"""physlm.model: shapes, causality, hidden states, KV-cache parity, config validation, rotary invariance."""


import pytest
import torch

from physlm.model import GPT, GPTConfig, Rotary

pytestmark = pytest.mark.usefixtures("one_thread")

V, CONTEXT = 17, 24


def tiny(pos: str = "rot", **kw: object) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, context=CONTEXT, depth=2, width=32, heads=4, pos=pos, **kw)).eval()


def tokens(batch: int = 2, length: int = CONTEXT, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pos", ["rot", "abs"])
def test_shapes_and_loss(pos: str) -> None:
    model, idx = tiny(pos), tokens()
    logits, loss = model(idx)
    assert logits.shape == (2, CONTEXT, V) and loss is None
    _, loss = model(idx, idx)
    assert loss.shape == () and 2.0 < loss.item() < 4.0  # near ln(17) = 2.83 at init


@pytest.mark.parametrize("pos", ["rot", "abs"])
def test_causal(pos: str) -> None:
    model, idx = tiny(pos), tokens()
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % V
    a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :10], b[:, :10], rtol=0, atol=0)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


@pytest.mark.parametrize("pos", ["rot", "abs"])
def test_hidden_states_reproduce_logits(pos: str) -> None:
    model, idx = tiny(pos), tokens()
    hidden = model.hidden_states(idx)
    assert hidden.shape == (3, 2, CONTEXT, 32)
    torch.testing.assert_close(model.head(model.ln_f(hidden[-1])), model(idx)[0])


@pytest.mark.parametrize("pos", ["rot", "abs"])
@pytest.mark.parametrize("chunks", [[CONTEXT], [1] * CONTEXT, [5, 1, 7, 3, 8]])
def test_kv_cache_matches_full_forward(pos: str, chunks: list[int]) -> None:
    model, idx = tiny(pos), tokens()
    full = model(idx)[0]
    cache, parts, start = model.new_cache(2), [], 0
    for size in chunks:
        parts.append(model(idx[:, start : start + size], cache=cache)[0])
        start += size
    assert cache.length == CONTEXT
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=0, atol=1e-5)


def test_context_overflow_raises() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="context"):
        model(tokens(length=CONTEXT + 1))
    cache = model.new_cache(2)
    model(tokens(length=CONTEXT - 1), cache=cache)
    with pytest.raises(ValueError, match="context"):
        model(tokens(length=2), cache=cache)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"width": 30, "heads": 4}, "width"),
        ({"width": 12, "heads": 4}, "width"),  # head dim 3: odd, rotary needs pairs
        ({"pos": "alibi"}, "pos"),
        ({"depth": 0}, "depth"),
        ({"dropout": 1.0}, "dropout"),
        ({"vocab_size": 0}, "vocab_size"),
    ],
)
def test_bad_config_names_field(kw: dict, field: str) -> None:
    args = {"vocab_size": V, "context": CONTEXT, **kw}
    with pytest.raises(ValueError, match=rf"GPTConfig\.{field}\b"):
        GPTConfig(**args)


def test_odd_head_dim_is_fine_without_rotary() -> None:
    GPTConfig(vocab_size=V, context=CONTEXT, width=12, heads=4, pos="abs")


def test_rotary_scores_depend_on_relative_offset_only() -> None:
    rotary = Rotary(GPTConfig(vocab_size=V, context=64, width=32, heads=2))
    q, k = torch.randn(2, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float32)

    def score(m: int, n: int) -> torch.Tensor:
        return rotary(q[None], m) @ rotary(k[None], n).T

    for m, n in [(0, 3), (5, 5), (9, 2)]:
        for shift in (1, 7, 40):
            torch.testing.assert_close(score(m + shift, n + shift), score(m, n), rtol=0, atol=1e-5)
    assert not torch.allclose(score(0, 3), score(0, 4))


def test_residual_projections_are_scaled_at_init() -> None:
    model = GPT(GPTConfig(vocab_size=V, context=CONTEXT, depth=8, width=64, heads=4))
    expected = 0.02 / 4.0  # 0.02 / sqrt(2 * depth)
    assert abs(model.blocks[0].mlp.proj.weight.std().item() - expected) < 0.2 * expected
    assert abs(model.blocks[0].mlp.fc.weight.std().item() - 0.02) < 0.1 * 0.02


def test_param_and_flop_counts() -> None:
    model = GPT(GPTConfig(vocab_size=V, context=CONTEXT, depth=2, width=32, heads=4, pos="abs"))
    per_block = 4 * 32 * 32 + 2 * 4 * 32 * 32 + 2 * 32  # qkv + proj, fc + proj, two LayerNorm weights
    assert model.num_params() == V * 32 + CONTEXT * 32 + 2 * per_block + 32 + V * 32
    assert model.flops_per_token() == 6 * (2 * per_block + 32 + V * 32) + 12 * 2 * 32 * CONTEXT
