"""physlm.lora: the wrapped model starts as the original, only the LoRA matrices train, merging keeps the
logits, cached generation (mixed prompt lengths, so left padding) equals uncached, and the trainable
parameter count matches the formula."""

import pytest
import torch

from physlm.lora import LoraConfig, LowRankEmbedding, LoraQKV, apply_lora, merge_lora, trainable_parameters
from physlm.model import GPT, GPTConfig
from physlm.sampling import beam_search, generate

pytestmark = pytest.mark.usefixtures("one_thread")

V, EOS = 13, 12
CFG = LoraConfig(rank_qv=4, rank_emb=6, alpha=4.0)
PROMPTS = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [3]]
LORA_NAMES = ("q_a", "q_b", "v_a", "v_b", "wte.a", "wte.b")


def tiny(pos: str = "rot") -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, context=24, depth=2, width=32, heads=4, pos=pos))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, V, (8, 12), generator=gen)
    return idx, torch.roll(idx, -1, dims=1)  # a learnable target: the next token of a fixed sequence


def trained(model: GPT, steps: int = 30) -> tuple[GPT, list[float]]:
    lora = apply_lora(model, CFG, seed=3)
    opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=3e-2, weight_decay=0.0)
    idx, targets = batch()
    losses = []
    for _ in range(steps):
        _, loss = lora(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return lora, losses


@pytest.mark.parametrize("pos", ["rot", "abs", "rel"])
def test_starts_equal_and_leaves_the_original_alone(pos: str) -> None:
    model = tiny(pos)
    lora = apply_lora(model, CFG)
    idx, _ = batch()
    assert torch.equal(lora(idx)[0], model(idx)[0])
    assert all(p.requires_grad for p in model.parameters())
    assert isinstance(lora.blocks[0].attn.qkv, LoraQKV) and isinstance(lora.wte, LowRankEmbedding)
    assert not isinstance(model.blocks[0].attn.qkv, LoraQKV)
    same = apply_lora(model, CFG)
    assert all(torch.equal(a, b) for a, b in zip(lora.parameters(), same.parameters()))


def test_only_lora_matrices_get_gradients_and_base_stays_frozen() -> None:
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lora, losses = trained(model)
    assert losses[-1] < 0.95 * losses[0]  # the LoRA matrices learn
    _, loss = lora(*batch())
    lora.zero_grad(set_to_none=True)
    loss.backward()
    with_grad = {n for n, p in lora.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, _ in lora.named_parameters() if n.endswith(LORA_NAMES)}
    assert all(float(lora.get_parameter(n).grad.abs().sum()) > 0 for n in with_grad)
    frozen = {n.replace(".base", ""): p for n, p in lora.named_parameters() if not p.requires_grad}
    assert frozen.keys() == before.keys() - {k for k in before if "rotary" in k}
    assert all(torch.equal(p, before[n]) for n, p in frozen.items())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched


def test_q_and_v_rows_change_and_k_rows_do_not() -> None:
    lora, _ = trained(tiny())
    qkv = lora.blocks[1].attn.qkv
    delta = qkv.delta()
    width = qkv.base.in_features
    assert delta[width : 2 * width].abs().max() == 0
    assert delta[:width].abs().max() > 0 and delta[2 * width :].abs().max() > 0


def test_merged_model_is_a_plain_gpt_with_the_same_logits() -> None:
    model = tiny()
    lora, _ = trained(model)
    merged = merge_lora(lora)
    idx, _ = batch()
    assert merged.state_dict().keys() == model.state_dict().keys()
    assert not any(isinstance(m, (LoraQKV, LowRankEmbedding)) for m in merged.modules())
    assert trainable_parameters(merged) == model.num_params()
    torch.testing.assert_close(merged(idx)[0], lora(idx)[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(merged(idx)[0], model(idx)[0], atol=1e-3)  # training did change the model


def test_generation_with_cache_equals_without() -> None:
    lora, _ = trained(tiny())
    for temperature in (0.0, 1.0):
        args = {"max_new_tokens": 8, "temperature": temperature, "eos_id": EOS, "seed": 0, "batch_size": 4}
        assert generate(lora, PROMPTS, **args) == generate(lora, PROMPTS, **args, use_cache=False)
    greedy = generate(lora, PROMPTS, max_new_tokens=8, temperature=0.0, eos_id=EOS, seed=0, batch_size=4)
    alone = [generate(lora, [p], max_new_tokens=8, temperature=0.0, eos_id=EOS, seed=0)[0] for p in PROMPTS]
    assert greedy == alone  # left-padded batches give each prompt its own continuation
    assert beam_search(lora, PROMPTS, beams=1, max_new_tokens=8, eos_id=EOS) == greedy


def test_trainable_parameters_by_hand() -> None:
    model = tiny()
    depth, width = model.cfg.depth, model.cfg.width
    assert trainable_parameters(apply_lora(model, CFG)) == depth * 4 * CFG.rank_qv * width + CFG.rank_emb * (V + width)
    no_emb = LoraConfig(rank_qv=8, rank_emb=0)
    assert trainable_parameters(apply_lora(model, no_emb)) == depth * 4 * 8 * width
    assert trainable_parameters(model) == model.num_params()


def test_bad_config_and_content_free_schemes_are_errors() -> None:
    for pos in ("uni", "pos"):
        with pytest.raises(ValueError, match="no query projection"):
            apply_lora(tiny(pos), CFG)
    with pytest.raises(ValueError, match="rank_qv"):
        LoraConfig(rank_qv=0)
    with pytest.raises(ValueError, match="alpha"):
        LoraConfig(alpha=0.0)
