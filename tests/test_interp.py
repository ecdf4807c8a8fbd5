"""Interpretability tools on physlm models (docs/interp.md): nnsight wraps physlm's own module, TransformerLens reads
the Hugging Face export (physlm/export.py).

- nnsight (`NNsight(model)`): every block's output is physlm's `GPT.hidden_states` (the residual stream after the
  block), the embedding output is its layer 0, and the trace's logits are the model's, exactly (compared to 1e-6)
  for a GPT-2 block with rotary, a Llama block with Canon ABCD, and the non-standard attention variants "rel" and
  "uni"; each Canon point's output is what physlm's own modules compute there, and zeroing one in a trace is
  the same ablation as a forward hook; functional internals (the "uni"
  pattern, rotated queries) are reached through `.source`; wrapping leaves the model's own outputs unchanged.
- TransformerLens (`TransformerBridge.boot_transformers` on an export): the residual stream before and after every
  block, the attention pattern and the logits of the native exports (GPT-NeoX, Llama, GPT-2) match physlm's within
  TL_TOLERANCE; a remote-code export (Canon, NoPE, ...) is refused by TransformerLens.

The tiny unit-scale models are tests/test_export.py's (`tiny_model`, `make_study`), so a wrong tensor shows far
above the tolerances (the Canon test also checks that each Canon point changes its input by far more)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from test_export import SYMBOLS, TINY, make_study, repo, tiny_model  # noqa: F401  (repo: a fixture)


def _import_nnsight():
    """nnsight, imported with its process-wide `.save` mount off (its config key APP.PYMOUNT, read at import):
    the mount adds a `save` attribute to every Python object, which the rest of a shared pytest process should not
    see. Values are saved with `nnsight.save(value)` instead of `value.save()`."""
    if "nnsight" in sys.modules:
        return pytest.importorskip("nnsight")
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "nnsight.yaml"
        config.write_text("APP:\n  PYMOUNT: false\n")
        before = os.environ.get("NNSIGHT_CONFIG")
        os.environ["NNSIGHT_CONFIG"] = str(config)
        try:
            return pytest.importorskip("nnsight")
        finally:
            if before is None:
                del os.environ["NNSIGHT_CONFIG"]
            else:
                os.environ["NNSIGHT_CONFIG"] = before


nnsight = _import_nnsight()

EXACT = 1e-6  # nnsight reads physlm's own tensors: no arithmetic in between (measured: 0)
TL_TOLERANCE = 1e-5  # TransformerLens runs transformers' code (float32 rotary angles, eager attention), relative to
# the largest abs value compared (measured: at most 2e-6 on these models, as the export's own parity)
CASES = {  # nnsight on physlm's module: the model keys
    "gpt2_rot": {"block": "gpt2", "pos": "rot"},
    "llama_rot_canon": {"block": "llama", "pos": "rot", "canon": "ABCD"},
    "gpt2_rel": {"block": "gpt2", "pos": "rel"},
    "llama_uni": {"block": "llama", "pos": "uni"},
}


def tokens(rows: int = 3) -> torch.Tensor:
    return torch.randint(0, len(SYMBOLS), (rows, TINY["context"]), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("case", list(CASES))
def test_nnsight_block_outputs_are_physlm_hidden_states(case: str, one_thread) -> None:
    model, ids = tiny_model(**CASES[case]), tokens()
    with torch.no_grad():
        expected, logits = model.hidden_states(ids), model(ids)[0]
    traced = nnsight.NNsight(model)
    with torch.no_grad(), traced.trace(ids):  # read in execution order: embedding, then block 0, 1, ..., then the output
        embedding = nnsight.save(traced.drop.output)
        mid = nnsight.save(traced.blocks[0].ln_2.input)  # block 0's residual stream between attention and MLP
        blocks = nnsight.save([block.output for block in traced.blocks])  # only saved names leave the trace
        out = nnsight.save(traced.output)
    states = [embedding, *blocks]
    assert len(states) == TINY["depth"] + 1
    assert expected.abs().max() > 0.5  # unit scale: the tolerance is small next to the states
    assert (torch.stack(states) - expected).abs().max().item() <= EXACT
    assert (out[0] - logits).abs().max().item() <= EXACT
    block = model.blocks[0]
    with torch.no_grad():
        want_mid = expected[0] + block.attn(block.attention_input(expected[0]), 0, None)
    assert (mid - want_mid).abs().max().item() <= EXACT
    with torch.no_grad():  # wrapping leaves the module's own forward as it was
        assert torch.equal(model.hidden_states(ids), expected)


def test_nnsight_reads_every_canon_point(one_thread) -> None:
    """Canon-A (blocks.L.canon_a), -B (blocks.L.attn.canon, on q | k | v before rotary), -C (blocks.L.canon_c) and
    -D (blocks.L.mlp.canon, on the MLP's gate | up) give what physlm's modules compute from the block's input."""
    model, ids = tiny_model(**CASES["llama_rot_canon"]), tokens()
    traced, L = nnsight.NNsight(model), 1
    with torch.no_grad(), traced.trace(ids):
        block = traced.blocks[L]
        a_in, a = nnsight.save(block.canon_a.input), nnsight.save(block.canon_a.output)
        b = nnsight.save(block.attn.canon.output)
        c = nnsight.save(block.canon_c.output)
        d = nnsight.save(block.mlp.canon.output)
    blk = model.blocks[L]
    with torch.no_grad():
        x = model.hidden_states(ids)[L]
        want_a = blk.attention_input(x)
        want_b = blk.attn.canon(blk.attn.qkv(want_a), None, None)
        mid = x + blk.attn(want_a, 0, None)
        want_c = blk.canon_c(blk.ln_2(mid), None, None)
        want_d = blk.mlp.canon(blk.mlp.fc(want_c), None, None)
    assert (a.shape, b.shape, c.shape, d.shape) == (x.shape, (*x.shape[:2], 3 * model.cfg.width), x.shape,
                                                    (*x.shape[:2], 2 * model.cfg.mlp_width))
    for got, want in ((a, want_a), (b, want_b), (c, want_c), (d, want_d)):
        assert (got - want).abs().max().item() <= EXACT
    assert (a - a_in).abs().max() > 0.1  # Canon-A changes its input: the comparison above can fail
    with torch.no_grad(), traced.trace(ids):  # an edit: Canon-C of block L ablated (zeroed) for this run
        traced.blocks[L].canon_c.output[:] = 0
        ablated = nnsight.save(traced.output[0])
    hook = blk.canon_c.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
    with torch.no_grad():
        want = model(ids)[0]
    hook.remove()
    assert (ablated - want).abs().max().item() <= EXACT
    with torch.no_grad():
        assert (ablated - model(ids)[0]).abs().max() > 0.1  # the edit took effect, and only inside the trace


def test_nnsight_source_reaches_functional_internals(one_thread) -> None:
    """Attention internals that are function calls, not submodules, are reached through `.source` (names of the
    form <call>_<n>, tied to the source text of Attention.forward)."""
    uni, ids = tiny_model(**CASES["llama_uni"]), tokens()
    traced = nnsight.NNsight(uni)
    with torch.no_grad(), traced.trace(ids):
        pattern = nnsight.save(traced.blocks[1].attn.source.self_pattern_0.output)  # [heads, T, T]: input-free
    assert (pattern - uni.attention_weights(ids)[1]).abs().max().item() <= EXACT
    rot = tiny_model(**CASES["gpt2_rot"])
    traced = nnsight.NNsight(rot)
    with torch.no_grad(), traced.trace(ids):
        q = nnsight.save(traced.blocks[0].attn.source.self_rotary_0.output)  # queries after rotary [B, heads, T, d]
    attn, width = rot.blocks[0].attn, rot.cfg.width
    with torch.no_grad():
        raw = attn.qkv(rot.blocks[0].attention_input(rot.hidden_states(ids)[0]))[..., :width]
        want = attn.rotary(raw.view(*ids.shape, rot.cfg.heads, -1).transpose(1, 2), 0)
    assert (q - want).abs().max().item() <= EXACT


@pytest.mark.parametrize("case", ["gpt2_rot", "llama_rot", "gpt2_abs"])
def test_transformer_lens_reads_native_exports(repo, case: str) -> None:  # noqa: F811
    """The bridge's residual stream (hook_resid_pre / hook_resid_post), attention pattern and logits of a native
    export are physlm's. gpt2_rot is GPT-NeoX, whose bridge needs the export's zero attention biases."""
    pytest.importorskip("transformer_lens")
    from transformer_lens.model_bridge import TransformerBridge

    from physlm.export import export

    keys = {"gpt2_rot": {"block": "gpt2", "pos": "rot"}, "llama_rot": {"block": "llama", "pos": "rot"},
            "gpt2_abs": {"block": "gpt2", "pos": "abs"}}[case]
    model, ids = make_study(repo, **keys), tokens()
    bridge = TransformerBridge.boot_transformers(str(export("s", check=False)), device="cpu", dtype=torch.float32)
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(ids)
        expected, weights, ours = model.hidden_states(ids), model.attention_weights(ids), model(ids)[0]
    states = torch.stack([cache["blocks.0.hook_resid_pre"]]
                         + [cache[f"blocks.{layer}.hook_resid_post"] for layer in range(TINY["depth"])])
    patterns = torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(TINY["depth"])])
    for got, want in ((states, expected), (patterns, weights), (logits, ours)):
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= TL_TOLERANCE * max(1.0, want.abs().max().item())
    assert (states[2] - states[1]).abs().max() > 0.1  # the last block changes the stream: the check can fail


def test_transformer_lens_refuses_remote_code_exports(repo) -> None:  # noqa: F811
    """Canon (and NoPE, Llama partial rotary, Llama abs) export as remote code, which TransformerLens has no adapter
    for: it stops at the architecture. Use nnsight on physlm's module for those (docs/interp.md)."""
    pytest.importorskip("transformer_lens")
    from transformer_lens.model_bridge import TransformerBridge

    from physlm.export import export

    make_study(repo, block="llama", pos="rot", canon="ABCD")
    with pytest.raises(ValueError, match="Could not determine supported architecture"):
        TransformerBridge.boot_transformers(str(export("s", check=False)), device="cpu", trust_remote_code=True)
