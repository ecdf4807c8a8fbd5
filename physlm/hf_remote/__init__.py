"""The remote code that `python -m physlm.export` copies next to an exported model which no native
`transformers` architecture computes exactly (Canon layers, NoPE, partial rotary on the Llama block, ...).

These two files are shipped as they are and loaded by `transformers` with `trust_remote_code=True`: they import
only torch and transformers, never physlm. Their config keys follow the official LlamaCanon's (SPEC 11.4:
`canon_set`, `canon_kernel`, `canon_residual`, `canon_activation`, `canon_bias`, `qk_norm`, `rope_dim`,
`rope_version`, `rope_theta`) and so do their weight names (`model.layers.N.canonA.weight`,
`self_attn.canonB`, `canonC`, `mlp.canonD`, `q_proj`, ..., `gate_proj`, `up_proj`, `down_proj`).
"""

from pathlib import Path

FILES = ("configuration_physlm_canon.py", "modeling_physlm_canon.py")
HERE = Path(__file__).resolve().parent
