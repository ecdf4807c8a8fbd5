"""Part 3.3's architecture variants as model options: a tied output head (tie_embeddings) and attention-only
blocks without an MLP (mlp_ratio 0, the paper's GPT2^0), checked against untied / MLP-bearing models carrying the
same weights, and through save/load."""

from __future__ import annotations

import pytest
import torch

from physlm.artifacts import TIED, load_model, save_model
from physlm.errors import DataError
from physlm.model import GPT, GPTConfig
from physlm.params import ModelParams
from physlm.train import TrainConfig, make_optimizer

SHAPE = dict(vocab_size=23, context=16, depth=2, width=32, heads=4)


def ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, SHAPE["vocab_size"], (3, 12), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("block", ["gpt2", "llama"])
def test_tied_head_is_the_embedding_and_its_gradient_sums_both_uses(block: str) -> None:
    torch.manual_seed(0)
    tied = GPT(GPTConfig(**SHAPE, block=block, tie_embeddings=True))
    assert tied.head.weight is tied.wte.weight
    untied = GPT(GPTConfig(**SHAPE, block=block))
    untied.load_state_dict(tied.state_dict())  # the same values, now two matrices
    x, y = ids(), ids(1)
    tied(x, y)[1].backward()
    untied(x, y)[1].backward()
    want = untied.wte.weight.grad + untied.head.weight.grad  # the tied matrix gets both uses' gradients
    assert torch.allclose(tied.wte.weight.grad, want, atol=1e-6)
    assert untied.num_params() - tied.num_params() == SHAPE["vocab_size"] * SHAPE["width"]
    opt = make_optimizer(tied, TrainConfig(steps=1, batch_size=1, micro_batch_size=1, lr=1e-3), torch.device("cpu"))
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(tied.parameters()))
    opt.step()
    assert tied.head.weight is tied.wte.weight  # an optimizer step keeps one matrix


def test_tied_model_saves_the_matrix_once_and_loads_tied(tmp_path) -> None:
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = GPT(GPTConfig(**SHAPE, block="llama", canon="AB", tie_embeddings=True)).eval()
    save_model(model, tmp_path)
    assert TIED not in load_file(str(tmp_path / "model.safetensors"))
    loaded = load_model(tmp_path)
    assert loaded.head.weight is loaded.wte.weight
    assert torch.equal(loaded(ids())[0], model(ids())[0])


def test_a_tied_config_refuses_an_untied_file(tmp_path) -> None:
    torch.manual_seed(0)
    save_model(GPT(GPTConfig(**SHAPE)), tmp_path)
    config = (tmp_path / "config.json").read_text().replace('"tie_embeddings": false', '"tie_embeddings": true')
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(DataError, match="unexpected head.weight"):
        load_model(tmp_path)


@pytest.mark.parametrize("block", ["gpt2", "llama"])
def test_no_mlp_block_is_the_mlp_block_with_a_zero_mlp(block: str) -> None:
    """An MLP whose output projection is zero adds nothing (no biases): the attention-only model with the same
    other weights must give the same logits, and have exactly the MLP's and ln_2's parameters fewer."""
    torch.manual_seed(0)
    full = GPT(GPTConfig(**SHAPE, block=block)).eval()
    with torch.no_grad():
        for b in full.blocks:
            b.mlp.proj.weight.zero_()
    bare = GPT(GPTConfig(**SHAPE, block=block, mlp_ratio=0)).eval()
    assert all(b.mlp is None and b.ln_2 is None for b in bare.blocks)
    bare.load_state_dict({k: v for k, v in full.state_dict().items() if ".mlp." not in k and ".ln_2." not in k})
    assert torch.allclose(bare(ids())[0], full(ids())[0], atol=1e-6)
    mlp = sum(p.numel() for b in full.blocks for p in [*b.mlp.parameters(), *b.ln_2.parameters()])
    assert full.num_params() - bare.num_params() == mlp
    cache = bare.new_cache(3)  # generation's cached path works without an MLP
    step = torch.cat([bare(ids()[:, :6], cache=cache)[0], bare(ids()[:, 6:], cache=cache)[0]], dim=1)
    assert torch.allclose(step, bare(ids())[0], atol=1e-5)


@pytest.mark.parametrize("canon", ["C", "D", "ABCD"])
def test_canon_at_the_mlp_needs_an_mlp(canon: str) -> None:
    with pytest.raises(ValueError, match="Canon-C and Canon-D sit at the MLP"):
        GPTConfig(**SHAPE, mlp_ratio=0, canon=canon)
    keys = dict(depth=1, width=32, heads=4, pos="rot", mlp_ratio=0, dropout=0.0, rope_base=10000.0, canon=canon)
    with pytest.raises(ValueError, match="Canon-C and Canon-D sit at the MLP"):
        ModelParams(**keys)
    assert GPTConfig(**SHAPE, mlp_ratio=0, canon="AB").canon == "AB"


def test_quarter_mlp_is_mlp_ratio_one() -> None:
    """GPT2^{1/4}: the MLP's hidden width a quarter of GPT-2's 4 x width, i.e. mlp_ratio 1."""
    assert GPT(GPTConfig(**SHAPE, mlp_ratio=1)).blocks[0].mlp.fc.weight.shape == (SHAPE["width"], SHAPE["width"])
