"""The Hugging Face export (physlm/export.py): for every architecture that exports, a tiny seeded physlm model saved
as the train stage saves it is exported, loaded with transformers' AutoModelForCausalLM (trust_remote_code for the
remote-code ones) and must give physlm's logits within TOLERANCE (float32, CPU) and the same greedy tokens; the
tokenizer maps every vocabulary symbol to physlm's id; unsupported models stop with one `error: export:` line and
a failed export leaves nothing behind.

The weights are redrawn at unit scale (norm weights and biases away from 1 and 0, Canon kernels random), so that
logits are of order 1 and a swapped, transposed or dropped tensor shows up far above the tolerance (as
test_a_corrupted_export_fails_the_check shows)."""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import tempfile

import pytest
import torch
import yaml

# Offline, and transformers' copies of the remote code in a throwaway folder (read when transformers is imported).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if "HF_MODULES_CACHE" not in os.environ:
    os.environ["HF_MODULES_CACHE"] = tempfile.mkdtemp(prefix="physlm-hf-modules-")
    atexit.register(shutil.rmtree, os.environ["HF_MODULES_CACHE"], True)
transformers = pytest.importorskip("transformers")

from physlm.artifacts import save_model
from physlm.export import ExportError, export, main, parity, target
from physlm.model import GPT, GPTConfig
from physlm.tokenize import Vocab

PARITY = 1e-5  # max abs logit difference asserted here, on unit-scale tiny models (measured: at most 2e-6)
SYMBOLS = ("<bos>", "<eos>", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k")
TINY = {"vocab_size": len(SYMBOLS), "context": 16, "depth": 2, "width": 16, "heads": 2}  # head_dim 8

# name: (model keys, the transformers class the export must load as)
CASES = {
    "gpt2_rot": ({"block": "gpt2", "pos": "rot"}, "GPTNeoXForCausalLM"),
    "gpt2_rot_bias": ({"block": "gpt2", "pos": "rot", "bias": True}, "GPTNeoXForCausalLM"),
    "gpt2_rot_partial": ({"block": "gpt2", "pos": "rot", "rope_dim": 4, "rope_base": 500.0}, "GPTNeoXForCausalLM"),
    "llama_rot": ({"block": "llama", "pos": "rot"}, "LlamaForCausalLM"),
    "llama_rot_bias": ({"block": "llama", "pos": "rot", "bias": True, "mlp_hidden": 24}, "LlamaForCausalLM"),
    "gpt2_abs": ({"block": "gpt2", "pos": "abs"}, "GPT2LMHeadModel"),
    "gpt2_abs_bias": ({"block": "gpt2", "pos": "abs", "bias": True, "mlp_ratio": 2}, "GPT2LMHeadModel"),
    "llama_rot_partial": ({"block": "llama", "pos": "rot", "rope_dim": 4}, "PhyslmCanonForCausalLM"),
    "llama_nope": ({"block": "llama", "pos": "nope"}, "PhyslmCanonForCausalLM"),
    "llama_abs": ({"block": "llama", "pos": "abs"}, "PhyslmCanonForCausalLM"),
    "gpt2_nope": ({"block": "gpt2", "pos": "nope"}, "PhyslmCanonForCausalLM"),
    "llama_rot_canon": ({"block": "llama", "pos": "rot", "canon": "ABCD"}, "PhyslmCanonForCausalLM"),
    "llama_partial_canon": ({"block": "llama", "pos": "rot", "rope_dim": 4, "canon": "ABCD"}, "PhyslmCanonForCausalLM"),
    "llama_nope_canon_ablations": ({"block": "llama", "pos": "nope", "canon": "CA", "canon_kernel": 3,
                                    "canon_residual": False, "canon_activation": True}, "PhyslmCanonForCausalLM"),
    "gpt2_rot_canon_bias": ({"block": "gpt2", "pos": "rot", "canon": "ABCD", "bias": True}, "PhyslmCanonForCausalLM"),
    "gpt2_abs_canon": ({"block": "gpt2", "pos": "abs", "canon": "BD"}, "PhyslmCanonForCausalLM"),
    "gpt2_rot_tied": ({"block": "gpt2", "pos": "rot", "tie_embeddings": True}, "GPTNeoXForCausalLM"),
    "llama_rot_tied": ({"block": "llama", "pos": "rot", "tie_embeddings": True}, "LlamaForCausalLM"),
    "gpt2_abs_tied": ({"block": "gpt2", "pos": "abs", "tie_embeddings": True}, "GPT2LMHeadModel"),
    "llama_canon_tied": ({"block": "llama", "pos": "rot", "canon": "AC", "tie_embeddings": True}, "PhyslmCanonForCausalLM"),
}


@pytest.fixture
def repo(tmp_path, monkeypatch, one_thread):
    """An empty repository root (the working directory) with params.yaml naming study `s` on dataset `d`."""
    params = {"seed": 3, "datasets": {"d": {"world": "cfg", "generate": {}, "tokenize": {}}},
              "studies": {"s": {"world": "cfg", "data": "d", "model": {}, "train": {"seed": 7}, "probe": {}, "evaluate": {}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny_model(**keys) -> GPT:
    """A tiny seeded model at unit scale (module docstring), in eval mode."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**(TINY | keys))).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
            else:  # norm weights
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    return model


def make_study(root, **keys) -> GPT:
    """`tiny_model`, written as the pipeline writes a study's outputs."""
    model = tiny_model(**keys)
    (root / "models" / "s").mkdir(parents=True)
    save_model(model, root / "models" / "s")
    (root / "data" / "d" / "tokens").mkdir(parents=True)
    Vocab(SYMBOLS).save(root / "data" / "d" / "tokens" / "tokenizer.json")
    (root / "metrics" / "s").mkdir(parents=True)
    (root / "metrics" / "s" / "train.json").write_text(json.dumps({"final_loss": 1.25, "params": 123}))
    return model


def load(out, remote: bool):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(out), trust_remote_code=remote, dtype=torch.float32).eval()


@torch.no_grad()
def greedy(model: GPT, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """physlm's greedy continuation as transformers' generate makes it: a row that produced <eos> goes on with the
    pad token (<eos>)."""
    ids, done = prompt, torch.zeros(len(prompt), dtype=torch.bool)
    for _ in range(steps):
        nxt = model(ids)[0][:, -1].argmax(-1).masked_fill(done, Vocab.eos_id)
        done |= nxt == Vocab.eos_id
        ids = torch.cat((ids, nxt[:, None]), dim=1)
    return ids


@pytest.mark.parametrize("case", list(CASES))
def test_logits_and_greedy_tokens_match(repo, case: str) -> None:
    keys, architecture = CASES[case]
    model = make_study(repo, **keys)
    out = export("s", check=False)
    remote = architecture == "PhyslmCanonForCausalLM"
    assert target(model.cfg).architecture == architecture
    assert (out / "modeling_physlm_canon.py").is_file() == remote
    hf = load(out, remote)
    assert type(hf).__name__ == architecture
    if keys.get("tie_embeddings") and not remote:  # tied in HF too: one matrix, stored once
        assert hf.get_output_embeddings().weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr()
    ids = torch.randint(0, len(SYMBOLS), (3, TINY["context"]), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(ids)[0], hf(input_ids=ids).logits
    assert ours.abs().max() > 0.5  # unit scale: the tolerance is small next to the logits
    diff = (ours - theirs).abs().max().item()
    print(f"{case} -> {architecture}: max |logit difference| {diff:.1e}")  # docs/export.md quotes these (-rP)
    assert diff <= PARITY
    if remote:  # its hidden states are physlm's (embedding output, then after each block; up to ~10: relative)
        with torch.no_grad():
            states, expected = torch.stack(hf(input_ids=ids, output_hidden_states=True).hidden_states), model.hidden_states(ids)
        assert (states - expected).abs().max().item() <= PARITY * expected.abs().max().item()
    prompt = ids[:, :4]
    with torch.no_grad():
        generated = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False)
    expected = greedy(model, prompt, 10)
    assert torch.equal(generated, expected[:, : generated.size(1)])
    assert generated.size(1) == 14 or bool((generated[:, 4:] == Vocab.eos_id).any(1).all())


def test_a_corrupted_export_fails_the_check(repo) -> None:
    """The comparison can fail: the same export with k_proj and q_proj swapped in one layer is far off."""
    from safetensors.torch import load_file, save_file

    model = make_study(repo, block="llama", pos="rot")
    out = export("s", check=False)
    assert parity(out, model, target(model.cfg)).difference <= PARITY
    state = load_file(str(out / "model.safetensors"))
    q, k = "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"
    state[q], state[k] = state[k], state[q]
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    wrong = parity(out, model, target(model.cfg))
    assert not wrong.ok and wrong.difference > 0.1 * wrong.scale


@pytest.mark.parametrize("case", ["gpt2_rot", "llama_rot", "gpt2_abs", "llama_rot_canon"])
def test_tokenizer_maps_symbols_to_physlm_ids(repo, case: str) -> None:
    """AutoTokenizer reads the model type too: each exported type must still give physlm's word-level tokenizer."""
    from transformers import AutoTokenizer

    make_study(repo, **CASES[case][0])
    tok = AutoTokenizer.from_pretrained(str(export("s", check=False)))
    assert tok(" ".join(SYMBOLS), add_special_tokens=False).input_ids == list(range(len(SYMBOLS)))
    assert (tok.bos_token, tok.bos_token_id, tok.eos_token, tok.eos_token_id) == ("<bos>", 0, "<eos>", 1)
    assert (tok.pad_token, tok.pad_token_id) == ("<eos>", 1)
    assert tok.decode(list(range(2, len(SYMBOLS)))) == " ".join(SYMBOLS[2:])
    assert tok.decode([0, 2, 3, 1], skip_special_tokens=True) == "a b"


@pytest.mark.parametrize("keys", [{"block": "llama", "pos": "rot"}, {"block": "gpt2", "pos": "nope", "canon": "AC"}])
def test_the_command_checks_and_writes_a_card(repo, keys, capsys) -> None:
    make_study(repo, **keys)
    main(["s"])
    assert capsys.readouterr().out.strip() == "exported s to exports/s"
    out = repo / "exports" / "s"
    names = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
             "README.md"}
    assert names <= {p.name for p in out.iterdir()}
    card = (out / "README.md").read_text()
    for fact in ("`s`", "world | `cfg`", "dataset | `d`", "seed | 7", "git commit", "final_loss | 1.25",
                 "max abs logit difference", "Weight mapping"):
        assert fact in card, fact
    generation = json.loads((out / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (0, 1, 1)


def test_canon_config_uses_llama_canon_keys(repo) -> None:
    make_study(repo, block="llama", pos="rot", rope_dim=4, canon="ABD", canon_kernel=3)
    config = json.loads((export("s", check=False) / "config.json").read_text())
    assert {k: config[k] for k in ("canon_set", "canon_kernel", "canon_residual", "canon_activation", "canon_bias",
                                   "rope_dim", "rope_version", "qk_norm")} == {
        "canon_set": "ABD", "canon_kernel": 3, "canon_residual": True, "canon_activation": False, "canon_bias": False,
        "rope_dim": 4, "rope_version": "huggingface", "qk_norm": False}
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_physlm_canon.PhyslmCanonForCausalLM"
    assert (config["block"], config["position"], config["rms_norm_eps"]) == ("llama", "rot", 1e-6)


def run_main(capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["s"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: export: "), err
    return err


@pytest.mark.parametrize("keys, says", [
    ({"pos": "rel"}, "pos 'rel' has no transformers equivalent"),
    ({"pos": "uni"}, "pos 'uni' has no transformers equivalent"),
    ({"pos": "pos"}, "pos 'pos' has no transformers equivalent"),
    ({"pos": "abs", "causal": False}, "an encoder"),
    ({"mlp_ratio": 0}, "no MLP (mlp_ratio 0"),
])
def test_unsupported_architectures_stop_with_one_line(repo, capsys, keys, says) -> None:
    make_study(repo, **keys)
    assert says in run_main(capsys)
    assert not (repo / "exports").exists()


def test_missing_model_and_unknown_study_stop_with_one_line(repo, capsys) -> None:
    assert "models/s/config.json: file not found" in run_main(capsys)
    with pytest.raises(SystemExit):
        main(["nobody"])
    assert "unknown study 'nobody'" in capsys.readouterr().err


def test_a_failed_export_leaves_nothing_behind(repo, monkeypatch, capsys) -> None:
    import physlm.export as export_module

    make_study(repo)
    out = export("s", check=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args):
        raise ExportError("disk full")

    monkeypatch.setattr(export_module, "write_tokenizer", broken)
    assert "disk full" in run_main(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier export is untouched
    assert [p.name for p in (repo / "exports").iterdir()] == ["s"]  # and no temporary directory is left
    shutil.rmtree(repo / "exports")
    assert "disk full" in run_main(capsys)
    assert not (repo / "exports").exists()


def test_the_check_refuses_an_export_beyond_the_tolerance(repo, monkeypatch, capsys) -> None:
    """With the tolerance at 0, float rounding alone (about 1e-6 for the Llama export) makes the command refuse."""
    import physlm.export as export_module

    make_study(repo, block="llama", pos="rot")
    monkeypatch.setattr(export_module, "TOLERANCE", 0.0)
    assert "differs from physlm's model by" in run_main(capsys)
    assert not (repo / "exports").exists()
