"""Hugging Face export of a trained study: `python -m physlm.export STUDY [--out DIR] [--no-check]`.

Reads models/STUDY/ (physlm/artifacts.py), the study's tokenizer (data/DATASET/tokens/tokenizer.json, already an
HF `tokenizers` WordLevel file), metrics/STUDY/*.json and params.yaml (world, dataset, seed; resolved by physlm/load.py's `resolve`, which
`load_study` shares), and writes an HF
model directory (default exports/STUDY/): config.json, model.safetensors (HF names), tokenizer.json,
tokenizer_config.json, generation_config.json and a README.md model card. `transformers` is not needed to export
(the files are written directly); it is the `hf` extra, needed to load them, and, when installed, the command
loads its own export before moving it into place and refuses one whose logits differ from physlm's by more than
TOLERANCE x max(1, the largest abs logit) (the card records the difference it measured; --no-check skips this).

Where a physlm model goes (`target`; docs/export.md has the table and why):
- block gpt2, pos rot (any rope_dim) -> GPTNeoXForCausalLM (sequential residual, rotary_pct = rope_dim / head_dim,
  exact GELU, untied head; NeoX's LayerNorm, attention and MLP biases, which physlm has only with bias: true, are
  zeros);
- block llama, pos rot on every head dim -> LlamaForCausalLM (fc split into gate_proj / up_proj);
- block gpt2, pos abs -> GPT2LMHeadModel (Linear weights transposed into Conv1D, absent biases zeros);
- everything else that is a causal rot / abs / nope decoder -> remote code (physlm/hf_remote: Canon layers, NoPE,
  Llama with partial rotary or learned positions), with the official LlamaCanon's config keys and weight names;
- pos rel / pos / uni and encoders (causal: false) are refused: nothing in transformers computes them.

A command rather than a DVC stage: the card names the git commit, which changes with every commit while the
model does not (a stage would rerun or go stale for nothing), exporting takes seconds from the cached models/STUDY,
and the pipeline stays free of the optional `transformers`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from physlm.artifacts import load_model
from physlm.config import data_name, read_params
from physlm.errors import PhyslmError
from physlm.hf_remote import FILES as REMOTE_FILES
from physlm.hf_remote import HERE as REMOTE_DIR
from physlm.io import atomic_path, ordinary_mode
from physlm.load import Resolved, headlines, resolve
from physlm.model import GPT, RMS_EPS, GPTConfig
from physlm.tokenize import BOS, EOS, Vocab

# The command's check: max |physlm logit - HF logit| (float32, CPU) over CHECK_ROWS random rows of the full
# context must be at most TOLERANCE x max(1, the largest |logit|). A correct export is off by float rounding, ~1e-6
# of the logits' scale (transformers' float32 rotary angles add to it along the context: 9.6e-5 at 256 positions
# for logits up to 17); a misplaced tensor is off by the logits' own scale.
TOLERANCE = 1e-4
CHECK_ROWS = 2
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which physlm's gpt2 block uses


class ExportError(PhyslmError):
    """This model cannot be exported (an architecture nothing in transformers computes, a failed check)."""


@dataclass(frozen=True)
class Target:
    """Where a physlm model goes: an HF architecture, its model_type, and whether it needs the remote code."""

    architecture: str
    model_type: str
    remote: bool
    why: str  # one line for the card: why this architecture


def target(cfg: GPTConfig) -> Target:
    """The HF architecture that computes exactly what `cfg`'s model computes; ExportError if there is none."""
    if not cfg.causal:
        raise ExportError("an encoder (causal: false, the MLM control) is not a causal LM; nothing to export")
    if not cfg.has_mlp:
        raise ExportError("no MLP (mlp_ratio 0, attention-only blocks): no transformers architecture and not the "
                          "remote code computes a block without its MLP")
    if cfg.pos not in ("rot", "abs", "nope"):
        raise ExportError(f"pos {cfg.pos!r} has no transformers equivalent; exports: pos rot, abs or nope "
                          "(gpt2 or llama block, with or without Canon layers)")
    if cfg.canon or cfg.pos == "nope":
        return _remote("Canon layers" if cfg.canon else "NoPE (no native architecture turns rotary off)")
    if cfg.block == "gpt2" and cfg.pos == "rot":
        if int(cfg.head_dim * (cfg.rotary_dim / cfg.head_dim)) != cfg.rotary_dim:
            return _remote(f"rope_dim {cfg.rope_dim} is not int(head_dim * rotary_pct) in float arithmetic")
        return Target("GPTNeoXForCausalLM", "gpt_neox", False, "GPT-NeoX: LayerNorm, GELU MLP, rotate-half rotary on "
                      "the first rotary_pct of each head, sequential residual (use_parallel_residual false)")
    if cfg.block == "llama" and cfg.pos == "rot":
        if cfg.rope_dim and cfg.rope_dim != cfg.head_dim:
            return _remote(f"partial rotary (rope_dim {cfg.rope_dim} of head_dim {cfg.head_dim}): transformers' "
                           "Llama rotates every head dim")
        return Target("LlamaForCausalLM", "llama", False, "Llama: RMSNorm, gated SiLU MLP, rotary on every head dim")
    if cfg.block == "gpt2":
        return Target("GPT2LMHeadModel", "gpt2", False, "GPT-2: learned absolute positions, LayerNorm, GELU MLP")
    return _remote("the Llama block with learned absolute positions")


def _remote(why: str) -> Target:
    return Target("PhyslmCanonForCausalLM", "physlm_canon", True,
                  f"remote code (modeling_physlm_canon.py, LlamaCanon config keys): {why}")


# ---------------------------------------------------------------------------------------------------------
# Config and weights


def hf_config(cfg: GPTConfig, where: Target) -> dict:
    """config.json of the HF model (everything not set here is the architecture's default and unused)."""
    common = {"architectures": [where.architecture], "model_type": where.model_type, "vocab_size": cfg.vocab_size,
              "bos_token_id": Vocab.bos_id, "eos_token_id": Vocab.eos_id, "pad_token_id": Vocab.eos_id,
              # tied: HF ties the head to the embedding on load (native architectures); the remote code keeps an
              # untied copy of the same values (hf_state)
              "tie_word_embeddings": cfg.tie_embeddings and not where.remote, "initializer_range": 0.02,
              "dtype": "float32"}
    width, depth, heads = cfg.width, cfg.depth, cfg.heads
    if where.model_type == "gpt2":
        return common | {"n_embd": width, "n_layer": depth, "n_head": heads, "n_inner": cfg.mlp_width,
                         "n_positions": cfg.context, "activation_function": "gelu", "layer_norm_epsilon": LAYER_NORM_EPS,
                         "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
                         "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                         "reorder_and_upcast_attn": False, "use_cache": True}
    shape = {"hidden_size": width, "num_hidden_layers": depth, "num_attention_heads": heads,
             "intermediate_size": cfg.mlp_width, "max_position_embeddings": cfg.context}
    if where.model_type == "gpt_neox":
        rope = {"rope_type": "default", "rope_theta": cfg.rope_base, "partial_rotary_factor": cfg.rotary_dim / cfg.head_dim}
        return common | shape | {"hidden_act": "gelu", "layer_norm_eps": LAYER_NORM_EPS, "use_parallel_residual": False,
                                 "attention_bias": True, "rope_parameters": rope, "hidden_dropout": cfg.dropout,
                                 "attention_dropout": cfg.dropout, "use_cache": True}
    llama = {"num_key_value_heads": heads, "head_dim": cfg.head_dim, "rms_norm_eps": RMS_EPS,
             "attention_bias": cfg.bias, "mlp_bias": cfg.bias, "attention_dropout": cfg.dropout}
    if where.model_type == "llama":
        rope = {"rope_type": "default", "rope_theta": cfg.rope_base}
        return common | shape | llama | {"hidden_act": "silu", "rope_parameters": rope, "use_cache": True}
    auto = {"AutoConfig": "configuration_physlm_canon.PhyslmCanonConfig",
            "AutoModelForCausalLM": "modeling_physlm_canon.PhyslmCanonForCausalLM"}
    return common | shape | llama | {
        "auto_map": auto, "block": cfg.block, "position": cfg.pos, "hidden_act": "silu" if cfg.block == "llama" else "gelu",
        "layer_norm_eps": LAYER_NORM_EPS, "norm_bias": cfg.bias, "rope_theta": cfg.rope_base,
        "rope_dim": cfg.rope_dim if cfg.pos == "rot" and cfg.rope_dim and cfg.rope_dim != cfg.head_dim else None,
        "rope_version": "huggingface", "qk_norm": False, "canon_set": cfg.canon, "canon_kernel": cfg.canon_kernel,
        "canon_residual": cfg.canon_residual, "canon_activation": cfg.canon_activation, "canon_bias": False,
        "use_cache": False}


class _Source:
    """physlm's tensors by name, each to be taken exactly once (`left` names any that no HF tensor took)."""

    def __init__(self, model: GPT):
        self.tensors = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        self.taken: set[str] = set()

    def take(self, name: str) -> Tensor:
        self.taken.add(name)
        return self.tensors[name]

    def maybe(self, name: str, like: Tensor) -> Tensor:
        """The tensor `name` if physlm has it (biases with bias: true), else zeros shaped like `like`'s rows."""
        return self.take(name) if name in self.tensors else torch.zeros(like.shape[0])

    def left(self) -> list[str]:
        return sorted(set(self.tensors) - self.taken)


def hf_state(model: GPT, where: Target) -> dict[str, Tensor]:
    """model's weights under the HF architecture's names and layouts; ExportError if a physlm tensor is left over."""
    src = _Source(model)
    state = {"gpt2": _gpt2, "gpt_neox": _neox, "llama": _llama, "physlm_canon": _llama}[where.model_type](src, model.cfg)
    if src.left():
        raise ExportError(f"no HF name for {', '.join(src.left())} (a physlm tensor the mapping does not cover)")
    if model.cfg.tie_embeddings and not where.remote:  # the head is the embedding: stored once, tied on load
        state = {k: v for k, v in state.items() if k not in HEADS}
    return {k: v.contiguous().clone() for k, v in state.items()}  # own storage each (the remote code's tied copy)


HEADS = ("lm_head.weight", "embed_out.weight")  # the HF output heads (GPT-2 and Llama, GPT-NeoX)


def _norm(src: _Source, physlm: str, hf: str, bias: bool) -> dict[str, Tensor]:
    """A norm's weight, and its bias: physlm's, zeros when HF's norm has one and physlm's has not (bias: false)."""
    weight = src.take(f"{physlm}.weight")
    out = {f"{hf}.weight": weight}
    if bias or f"{physlm}.bias" in src.tensors:
        out[f"{hf}.bias"] = src.maybe(f"{physlm}.bias", weight)
    return out


def _linear(src: _Source, physlm: str, hf: str, bias: bool, transpose: bool = False) -> dict[str, Tensor]:
    weight = src.take(f"{physlm}.weight")
    out = {f"{hf}.weight": weight.t() if transpose else weight}
    if bias or f"{physlm}.bias" in src.tensors:
        out[f"{hf}.bias"] = src.maybe(f"{physlm}.bias", weight)
    return out


def _gpt2(src: _Source, cfg: GPTConfig) -> dict[str, Tensor]:
    """GPT2LMHeadModel: Conv1D stores [in, out] (physlm's Linear weights transposed); every bias exists in HF."""
    out = {"transformer.wte.weight": src.take("wte.weight"), "transformer.wpe.weight": src.take("wpe.weight")}
    for i in range(cfg.depth):
        p, h = f"blocks.{i}", f"transformer.h.{i}"
        out |= _norm(src, f"{p}.ln_1", f"{h}.ln_1", True) | _norm(src, f"{p}.ln_2", f"{h}.ln_2", True)
        out |= _linear(src, f"{p}.attn.qkv", f"{h}.attn.c_attn", True, transpose=True)  # q | k | v, as GPT-2 splits
        out |= _linear(src, f"{p}.attn.proj", f"{h}.attn.c_proj", True, transpose=True)
        out |= _linear(src, f"{p}.mlp.fc", f"{h}.mlp.c_fc", True, transpose=True)
        out |= _linear(src, f"{p}.mlp.proj", f"{h}.mlp.c_proj", True, transpose=True)
    return out | _norm(src, "ln_f", "transformer.ln_f", True) | {"lm_head.weight": src.take("head.weight")}


def _neox(src: _Source, cfg: GPTConfig) -> dict[str, Tensor]:
    """GPTNeoXForCausalLM. Its fused query_key_value is read per head (q_h | k_h | v_h for each head h), physlm's
    qkv is q | k | v over all heads: rows are regrouped. MLP and LayerNorm biases always exist in NeoX; the attention
    biases are written too (attention_bias: true, zeros unless physlm has them): TransformerLens' GPT-NeoX adapter
    requires a query_key_value bias (docs/interp.md)."""
    out = {"gpt_neox.embed_in.weight": src.take("wte.weight")}
    H, D = cfg.heads, cfg.head_dim
    for i in range(cfg.depth):
        p, h = f"blocks.{i}", f"gpt_neox.layers.{i}"
        out |= _norm(src, f"{p}.ln_1", f"{h}.input_layernorm", True)
        out |= _norm(src, f"{p}.ln_2", f"{h}.post_attention_layernorm", True)
        qkv = _linear(src, f"{p}.attn.qkv", f"{h}.attention.query_key_value", True)
        out |= {k: v.reshape(3, H, D, -1).transpose(0, 1).reshape(v.shape) for k, v in qkv.items()}
        out |= _linear(src, f"{p}.attn.proj", f"{h}.attention.dense", True)
        out |= _linear(src, f"{p}.mlp.fc", f"{h}.mlp.dense_h_to_4h", True)
        out |= _linear(src, f"{p}.mlp.proj", f"{h}.mlp.dense_4h_to_h", True)
    return out | _norm(src, "ln_f", "gpt_neox.final_layer_norm", True) | {"embed_out.weight": src.take("head.weight")}


def _llama(src: _Source, cfg: GPTConfig) -> dict[str, Tensor]:
    """LlamaForCausalLM, and the remote code (the same names, LlamaCanon's, plus canonA-D, embed_positions and, for
    the gpt2 block, LayerNorm biases and an ungated up_proj). qkv is split into q_proj, k_proj, v_proj; the gated
    fc (gate | up) into gate_proj and up_proj."""
    out = {"model.embed_tokens.weight": src.take("wte.weight")}
    if cfg.pos == "abs":
        out["model.embed_positions.weight"] = src.take("wpe.weight")
    for i in range(cfg.depth):
        p, h = f"blocks.{i}", f"model.layers.{i}"
        out |= _norm(src, f"{p}.ln_1", f"{h}.input_layernorm", False)
        out |= _norm(src, f"{p}.ln_2", f"{h}.post_attention_layernorm", False)
        for name, part in zip(("q_proj", "k_proj", "v_proj"), _split(_linear(src, f"{p}.attn.qkv", "", cfg.bias), 3)):
            out |= {f"{h}.self_attn.{name}{k}": v for k, v in part.items()}
        out |= _linear(src, f"{p}.attn.proj", f"{h}.self_attn.o_proj", cfg.bias)
        fc = _linear(src, f"{p}.mlp.fc", "", cfg.bias)
        names = ("gate_proj", "up_proj") if cfg.block == "llama" else ("up_proj",)
        for name, part in zip(names, _split(fc, len(names))):
            out |= {f"{h}.mlp.{name}{k}": v for k, v in part.items()}
        out |= _linear(src, f"{p}.mlp.proj", f"{h}.mlp.down_proj", cfg.bias)
        for point, physlm, hf in (("A", "canon_a", "canonA"), ("B", "attn.canon", "self_attn.canonB"),
                                  ("C", "canon_c", "canonC"), ("D", "mlp.canon", "mlp.canonD")):
            if point in cfg.canon:
                out[f"{h}.{hf}.weight"] = src.take(f"{p}.{physlm}.conv.weight")  # [m, 1, kernel], as LlamaCanon's
    return out | _norm(src, "ln_f", "model.norm", False) | {"lm_head.weight": src.take("head.weight")}


def _split(tensors: dict[str, Tensor], n: int) -> list[dict[str, Tensor]]:
    """{".weight": W, ".bias": b} cut into n equal row blocks (q | k | v, gate | up)."""
    return [{k: v.chunk(n, dim=0)[j] for k, v in tensors.items()} for j in range(n)]


# ---------------------------------------------------------------------------------------------------------
# The export directory


@dataclass(frozen=True)
class Study:
    """What the card says about the study: from params.yaml, metrics/STUDY and git."""

    name: str
    world: str
    dataset: str
    seed: int
    commit: str
    metrics: dict
    model_sha256: str


def study_facts(found: Resolved) -> Study:
    paths = found.paths
    digest = hashlib.sha256((paths.model / "model.safetensors").read_bytes()).hexdigest()
    return Study(found.study, found.world, found.dataset, found.seed, _commit(), headlines(paths.metrics), digest)


def _commit() -> str:
    """HEAD's commit, "+ uncommitted changes" when tracked files differ from it; "unknown" outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git repository)"
    return head + (" + uncommitted changes" if dirty else "")


def export(study: str, out: str | Path | None = None, check: bool = True) -> Path:
    """Export STUDY (paths relative to the repository root, the working directory) to `out` (default
    exports/STUDY); atomic: on any error nothing is left at `out`. Returns `out`."""
    data_name(study)  # the study's entry checked (its world and dataset known)
    found = resolve(study, read_params())
    out = Path(out) if out is not None else Path("exports") / study
    model = load_model(found.paths.model)
    where = target(model.cfg)
    vocab = Vocab.load(found.tokenizer)
    if vocab.size > model.cfg.vocab_size:
        raise ExportError(f"{found.tokenizer} has {vocab.size} tokens, the model {model.cfg.vocab_size}")
    facts = study_facts(found)
    with atomic_path(out, is_dir=True) as tmp:
        write_model(model, where, tmp)
        write_tokenizer(found.tokenizer, model.cfg, tmp)
        measured = parity(tmp, model, where) if check and _have_transformers() else None
        if measured is not None and not measured.ok:
            raise ExportError(f"the exported {where.architecture} differs from physlm's model by {measured.difference:.3g} "
                              f"in the logits (largest |logit| {measured.scale:.3g}, tolerance {TOLERANCE:g} of it): not written")
        (tmp / "README.md").write_text(model_card(facts, model.cfg, where, measured))
    return out


def write_model(model: GPT, where: Target, directory: Path) -> None:
    """config.json, model.safetensors, generation_config.json and, for remote code, its two files."""
    cfg = model.cfg
    save_file(hf_state(model, where), str(directory / "model.safetensors"), metadata={"format": "pt"})
    ordinary_mode(directory / "model.safetensors")
    _json(directory / "config.json", hf_config(cfg, where))
    _json(directory / "generation_config.json", {
        "bos_token_id": Vocab.bos_id, "eos_token_id": Vocab.eos_id, "pad_token_id": Vocab.eos_id,
        "do_sample": False, "use_cache": not where.remote})
    if where.remote:
        for name in REMOTE_FILES:
            shutil.copyfile(REMOTE_DIR / name, directory / name)


def write_tokenizer(source: Path, cfg: GPTConfig, directory: Path) -> None:
    """physlm's tokenizer.json as it is (WordLevel over whitespace-split symbols: ids are physlm's), and a
    tokenizer_config.json naming its specials; <eos> doubles as the pad token (physlm has none)."""
    shutil.copyfile(source, directory / "tokenizer.json")
    _json(directory / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS, "pad_token": EOS,
        "model_max_length": cfg.context, "clean_up_tokenization_spaces": False})


def _json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _have_transformers() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def load_hf(directory: Path, where: Target):
    """The exported model through transformers, float32, eval mode. The remote code is imported from physlm's copy
    (the same file that export wrote beside the weights), so the check leaves nothing in HF's module cache."""
    from transformers.utils import logging

    if where.remote:
        from physlm.hf_remote.modeling_physlm_canon import PhyslmCanonForCausalLM as cls
    else:
        from transformers import AutoModelForCausalLM as cls
    bar = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # the command's output stays one line (or one error line)
    try:
        return cls.from_pretrained(str(directory), dtype=torch.float32).eval()
    finally:
        if bar:
            logging.enable_progress_bar()


@dataclass(frozen=True)
class Parity:
    """physlm's model against its export on a seeded random batch of `rows` x `tokens` ids."""

    difference: float  # max |physlm logit - HF logit|
    scale: float  # max |physlm logit|
    rows: int
    tokens: int

    @property
    def ok(self) -> bool:
        return self.difference <= TOLERANCE * max(1.0, self.scale)


@torch.no_grad()
def parity(directory: Path, model: GPT, where: Target, seed: int = 0) -> Parity:
    """Logits of physlm's model and of the export in `directory` on CHECK_ROWS random rows of the full context."""
    hf = load_hf(directory, where)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.cfg.vocab_size, (CHECK_ROWS, model.cfg.context), generator=gen)
    ours = model.float().eval()(ids)[0]
    difference = float((ours - hf(input_ids=ids).logits).abs().max())
    return Parity(difference, float(ours.abs().max()), CHECK_ROWS, model.cfg.context)


# ---------------------------------------------------------------------------------------------------------
# The model card


def model_card(facts: Study, cfg: GPTConfig, where: Target, measured: Parity | None) -> str:
    tags = ["physlm", "physics-of-language-models", facts.world] + (["custom_code"] if where.remote else [])
    load = "AutoModelForCausalLM.from_pretrained(path" + (", trust_remote_code=True)" if where.remote else ")")
    check = (f"max abs logit difference {measured.difference:.2g} against physlm's model on {measured.rows} random rows "
             f"of {measured.tokens} tokens, largest abs logit {measured.scale:.3g} (float32, CPU; the export refuses more "
             f"than {TOLERANCE:g} x max(1, largest abs logit))" if measured is not None else
             "not measured (transformers not installed, or --no-check)")
    metric_rows = [f"| {stage} | {key} | {value:.4g} |" if isinstance(value, float) else f"| {stage} | {key} | {value} |"
                   for stage, values in facts.metrics.items() for key, value in sorted(values.items())]
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-generation", "tags:",
        *[f"- {t}" for t in tags], "---", "",
        f"# physlm study `{facts.name}`", "",
        f"A small GPT trained by physlm (a laboratory reproducing the Physics of Language Models papers) on a synthetic "
        f"world, exported to `{where.architecture}` by `python -m physlm.export {facts.name}`.",
        "", "| | |", "|---|---|",
        f"| study | `{facts.name}` |", f"| world | `{facts.world}` |", f"| dataset | `{facts.dataset}` (params.yaml `datasets.{facts.dataset}`) |",
        f"| seed | {facts.seed} |", f"| git commit | `{facts.commit}` |",
        f"| source weights | `models/{facts.name}/model.safetensors`, sha256 `{facts.model_sha256}` |",
        f"| architecture | {where.why} |", f"| parity | {check} |", "",
        "## Metrics", "", *(["| stage | metric | value |", "|---|---|---|", *metric_rows] if metric_rows else
                           ["No metrics/" + facts.name + "/*.json were found at export time."]),
        "", "## Load", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f"model = {load}", "tokenizer = AutoTokenizer.from_pretrained(path)",
        f'ids = tokenizer("{BOS} " + text, return_tensors="pt").input_ids  # physlm sentences start with {BOS}',
        "out = model.generate(ids, max_new_tokens=20)  # greedy; stops at <eos>", "```", "",
        f"The tokenizer is physlm's own (word-level, whitespace-separated symbols; ids 0 `{BOS}`, 1 `{EOS}`); it adds no "
        f"special tokens by itself. `{EOS}` doubles as the pad token.", "",
        "## physlm model", "", "```json", json.dumps(asdict(cfg), indent=2, sort_keys=True), "```", "",
        "## Weight mapping (physlm -> transformers)", "", *MAPPING[where.model_type], "",
        "## Caveats", "", *CAVEATS[where.model_type], "",
    ]
    return "\n".join(lines)


MAPPING = {
    "gpt_neox": [
        "- `wte` -> `gpt_neox.embed_in`; `head` -> `embed_out` (untied); `ln_f` -> `gpt_neox.final_layer_norm`",
        "- `blocks.N.ln_1` / `ln_2` -> `gpt_neox.layers.N.input_layernorm` / `post_attention_layernorm` (bias zeros unless physlm has one)",
        "- `blocks.N.attn.qkv` (q | k | v over all heads) -> `attention.query_key_value` (rows regrouped per head: q_h | k_h | v_h)",
        "- `blocks.N.attn.proj` -> `attention.dense`; `mlp.fc` -> `mlp.dense_h_to_4h`; `mlp.proj` -> `mlp.dense_4h_to_h` (MLP biases zeros unless physlm has them)",
        "- config: `use_parallel_residual: false`, `hidden_act: gelu` (exact erf GELU), `layer_norm_eps: 1e-5`, "
        "`rope_parameters.partial_rotary_factor` = rope_dim / head_dim, `rope_theta` = rope_base, "
        "`attention_bias: true` (q/k/v and dense biases zeros unless physlm has them: TransformerLens needs them)",
    ],
    "llama": [
        "- `wte` -> `model.embed_tokens`; `head` -> `lm_head` (untied); `ln_f` -> `model.norm`",
        "- `blocks.N.ln_1` / `ln_2` -> `model.layers.N.input_layernorm` / `post_attention_layernorm` (RMSNorm, eps 1e-6)",
        "- `blocks.N.attn.qkv` rows [0:d] / [d:2d] / [2d:3d] -> `self_attn.q_proj` / `k_proj` / `v_proj`; `attn.proj` -> `self_attn.o_proj`",
        "- `blocks.N.mlp.fc` rows [0:h] / [h:2h] (gate | up) -> `mlp.gate_proj` / `mlp.up_proj`; `mlp.proj` -> `mlp.down_proj`",
        "- config: `hidden_act: silu`, `rms_norm_eps: 1e-6`, `rope_theta` = rope_base, `attention_bias` = `mlp_bias` = physlm's `bias`",
    ],
    "gpt2": [
        "- `wte`, `wpe` -> `transformer.wte`, `transformer.wpe`; `head` -> `lm_head` (untied); `ln_f` -> `transformer.ln_f`",
        "- `blocks.N.ln_1` / `ln_2` -> `transformer.h.N.ln_1` / `ln_2` (bias zeros unless physlm has one)",
        "- `blocks.N.attn.qkv`, `attn.proj`, `mlp.fc`, `mlp.proj` -> `attn.c_attn`, `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`, "
        "each weight **transposed** (GPT-2's Conv1D stores [in, out]); biases zeros unless physlm has them",
        "- config: `activation_function: gelu` (exact, not GPT-2's `gelu_new`), `layer_norm_epsilon: 1e-5`, `n_inner` = MLP width",
    ],
    "physlm_canon": [
        "- the Llama names above (`model.embed_tokens`, `model.layers.N.self_attn.q_proj`, ..., `model.norm`, `lm_head`), "
        "plus `model.embed_positions` (pos abs)",
        "- Canon points (weights [channels, 1, kernel], as the official LlamaCanon's): `blocks.N.canon_a.conv` -> `model.layers.N.canonA`, "
        "`attn.canon.conv` -> `self_attn.canonB`, `canon_c.conv` -> `canonC`, `mlp.canon.conv` -> `mlp.canonD`",
        "- gpt2 block: LayerNorms (with bias when physlm has one) and `mlp.fc` -> `mlp.up_proj`, GELU; llama block: `mlp.fc` -> `gate_proj` | `up_proj`",
        "- config keys of the official LlamaCanon: `canon_set`, `canon_kernel`, `canon_residual`, `canon_activation`, `canon_bias` (false), "
        "`qk_norm` (false), `rope_dim` (null: every head dim), `rope_version` (`huggingface`), `rope_theta`; physlm's own: "
        "`block` (llama | gpt2), `position` (rot | nope | abs)",
    ],
}
_COMMON = [
    "- Parity is float32 on CPU; other dtypes and attention kernels differ by their usual rounding.",
    "- physlm's left padding gives each row its own positions 0, 1, ...; batch prompts of different lengths through "
    "transformers only with its own padding conventions (the logits of unpadded rows are the exact ones).",
    "- Dropout values are copied for completeness; they matter only for training, where placements can differ.",
]
CAVEATS = {
    "gpt_neox": ["- physlm computes rotary angles in float64, transformers in float32: a difference of order 1e-7 per "
                 "angle unit that grows with the position (still far below the parity tolerance at physlm's contexts).",
                 *_COMMON],
    "llama": ["- Rotary angles: float64 in physlm, float32 in transformers (as for GPT-NeoX).", *_COMMON],
    "gpt2": [*_COMMON],
    "physlm_canon": [
        "- Needs `trust_remote_code=True`; the two .py files beside the weights import only torch and transformers.",
        "- No KV cache: `generate` recomputes the whole sequence each step (exact; fine at physlm's sizes). No padding: "
        "an attention_mask must be all ones.",
        "- The official `modeling_llama_canon.py` (transformers 4.47) reads the same keys and weight names for the llama "
        "block with pos rot; the gpt2 block, `position: nope` and `position: abs` are physlm's extensions it does not know "
        "(it would apply rotary). Not tested against it here (it targets transformers 4, this export 5).",
        *_COMMON,
    ],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m physlm.export", description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a study of params.yaml whose model the train stage wrote (models/STUDY)")
    parser.add_argument("--out", help="the export directory (default exports/STUDY); replaced if it exists")
    parser.add_argument("--no-check", action="store_true", help="skip loading the export with transformers")
    args = parser.parse_args(argv)
    try:
        out = export(args.study, args.out, check=not args.no_check)
    except PhyslmError as err:
        print(f"error: export: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"exported {args.study} to {out}")


if __name__ == "__main__":
    main()
