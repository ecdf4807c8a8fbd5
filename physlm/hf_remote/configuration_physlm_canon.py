"""Config of a physlm model exported with remote code (physlm/export.py): a pre-norm decoder whose keys are
the official LlamaCanon's (canon_set, canon_kernel, canon_residual, canon_activation, canon_bias, qk_norm,
rope_dim, rope_version, rope_theta, rms_norm_eps, head_dim, attention_bias, mlp_bias), plus two keys of physlm's
own that LlamaCanon does not have: `block` ("llama": RMSNorm and gated SiLU MLP, LlamaCanon's block; "gpt2":
LayerNorm and GELU MLP) and `position` ("rot": rotary, on the first `rope_dim` dims of each head when set;
"nope": none; "abs": a learned absolute position embedding). Self-contained: imports transformers only.

transformers 5 turns a config subclass into a dataclass whose `__init__` takes every field below as a keyword
and keeps unknown keywords as attributes (the v5 form of "`__init__` accepts **kwargs")."""

from transformers import PretrainedConfig


class PhyslmCanonConfig(PretrainedConfig):
    model_type = "physlm_canon"

    vocab_size: int = 32000
    hidden_size: int = 768
    intermediate_size: int = 2048  # llama: of gate and of up, each; gpt2: the MLP's hidden width
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_key_value_heads: int | None = None  # physlm has no GQA: always num_attention_heads
    head_dim: int | None = None  # hidden_size // num_attention_heads
    hidden_act: str = "silu"  # llama: silu (gated); gpt2: gelu (exact, erf)
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6  # llama block
    layer_norm_eps: float = 1e-5  # gpt2 block
    norm_bias: bool = False  # gpt2 block: LayerNorms with a bias
    attention_bias: bool = False
    mlp_bias: bool = False
    rope_theta: float = 10000.0
    rope_dim: int | None = None  # rotary on the first rope_dim dims of each head; None: all of head_dim
    rope_version: str = "huggingface"  # rotate-half pairing (i, i + r/2), as physlm and HF
    qk_norm: bool = False  # LlamaCanon's key; physlm has no QK-norm
    canon_set: str = ""  # Canon layers at these points of every block, a subset of "ABCD"
    canon_kernel: int = 4
    canon_residual: bool = True
    canon_activation: bool = False
    canon_bias: bool = False
    block: str = "llama"
    position: str = "rot"
    tie_word_embeddings: bool = False
    use_cache: bool = False  # no KV cache: every generation step runs the whole sequence (exact, slower)
    bos_token_id: int | None = 0
    eos_token_id: int | None = 1
    pad_token_id: int | None = None

    def __post_init__(self, **kwargs):
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """What the modeling file computes; anything else is refused when the config is made."""
        if self.block not in ("llama", "gpt2"):
            raise ValueError(f"block must be 'llama' or 'gpt2', got {self.block!r}")
        if self.position not in ("rot", "nope", "abs"):
            raise ValueError(f"position must be 'rot', 'nope' or 'abs', got {self.position!r}")
        if not set(self.canon_set) <= set("ABCD"):
            raise ValueError(f"canon_set must be a subset of 'ABCD', got {self.canon_set!r}")
        if self.num_key_value_heads != self.num_attention_heads or self.qk_norm or self.rope_version != "huggingface":
            raise ValueError("this modeling file has no GQA, no QK-norm and only the 'huggingface' rope_version")


__all__ = ["PhyslmCanonConfig"]
