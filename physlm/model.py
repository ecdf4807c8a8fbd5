"""The GPT decoder the Physics of Language Models experiments train, in one file.

A GPT-2 layout: token embedding, `depth` pre-LayerNorm blocks (causal self-attention, GELU MLP), final
LayerNorm, linear head. `block="llama"` swaps in Part 4.1's Llama block (SPEC 7.2): RMSNorm for every
LayerNorm and a gated SiLU MLP. Position enters as rotary rotations of queries and keys ("rot", the papers'
default; `rope_dim` turns only the first dims of each head, Part 4.1's reduced RoPE), as a learned absolute
embedding added to the input ("abs", GPT-2), as DeBERTa-style relative terms in the attention scores ("rel"),
not at all ("nope": content attention under the causal mask only, Part 4.1's Llama(NoPE)), or replaces
content-based attention altogether ("pos": learned scores per relative offset; "uni": fixed uniform windows).
These are Part 1's GPT / GPT_rel / GPT_rot / GPT_pos / GPT_uni variants (SPEC 1.2). `canon` adds Part 4.1's
Canon layers (SPEC 7.1: residual causal depthwise convolutions over the last 4 tokens, with the paper's
no-residual and SiLU ablations) at points A-D of every block; docs/architectures.md maps all of it to the
paper. A `KVCache` lets sampling feed one token per step (it keeps each Canon point's last inputs too), and
`pad` lets one batch hold prompts of different lengths: each row is left-padded, its real tokens keep their
own positions 0, 1, ..., and no real token attends to a pad. tests/test_model.py checks causality,
cache/full-forward parity, that rotary attention scores depend only on the relative offset, the exact patterns
of "uni" and "pos", that padding leaves every row's logits as they are alone (every scheme and architecture,
cached or not), and that unpadded calls stay bit-identical to golden digests recorded before padding existed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Positional schemes, keyed by GPTConfig.pos. A scheme that acts on queries/keys or on attention scores
# belongs in `Attention`; one that acts on the input belongs in `GPT._residual_stream`.
POSITIONS = {
    "rot": "rotary rotation of queries and keys (RoFormer, rotate-half convention)",
    "abs": "learned absolute position embedding added to the token embedding (GPT-2)",
    "rel": "DeBERTa-style disentangled relative attention: content-content + content-position + position-content",
    "nope": "no positional information: content attention q k^T under the causal mask only (Llama(NoPE), Part 4.1)",
    "pos": "position-only attention: a learned score per head and offset i - j, softmax over j <= i; no q/k",
    "uni": "fixed uniform attention: head h averages the previous 2^h - 1 tokens (position 0: itself); no q/k",
}
CONTENT_FREE = ("pos", "uni")  # schemes whose attention weights ignore the input: only values are projected
REL_MAX_DISTANCE = 64  # "rel": offsets i - j beyond this share the embedding of REL_MAX_DISTANCE (DeBERTa's k)
CANON_POINTS = "ABCD"  # Canon layer placements in a block (SPEC 7.1), see `Canon`
BLOCKS = {
    "gpt2": "pre-LayerNorm block with a GELU MLP; residual projections initialised at 0.02 / sqrt(2 * depth)",
    "llama": "pre-RMSNorm block with a gated SiLU MLP down(silu(gate(x)) * up(x)); every Linear initialised at 0.02",
}
RMS_EPS = 1e-6  # RMSNorm's epsilon: HF Llama's (and LlamaCanon's) rms_norm_eps default


def _check(ok: bool, field: str, why: str) -> None:
    if not ok:
        raise ValueError(f"GPTConfig.{field}: {why}")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int  # token ids are in [0, vocab_size)
    context: int  # max sequence length: positions 0 .. context-1
    depth: int = 4  # transformer blocks
    width: int = 128  # residual stream dim
    heads: int = 4  # attention heads; head dim = width // heads
    block: str = "gpt2"  # block type, a key of BLOCKS: norms and MLP ("llama": RMSNorm + gated SiLU MLP)
    pos: str = "rot"  # positional scheme, a key of POSITIONS
    mlp_ratio: int = 4  # MLP hidden dim = mlp_ratio * width (gpt2); 2 * mlp_ratio * width // 3 (llama: same params)
    mlp_hidden: int = 0  # MLP hidden dim if > 0, overriding mlp_ratio (llama: of gate and of up, each)
    # (mlp_ratio 0 and mlp_hidden 0: no MLP at all, attention-only blocks without ln_2: Part 3.3's GPT2^0)
    dropout: float = 0.0  # on embeddings, attention weights and residual branches; training only
    rope_base: float = 10000.0  # rotary: pair i turns by position * rope_base ** (-2i / rotated dims)
    rope_dim: int = 0  # rotary turns the first rope_dim dims of each head, the rest untouched; 0: all of head_dim
    bias: bool = False  # biases in Linear and LayerNorm (GPT-2 had them; without is as good and simpler)
    causal: bool = True  # False: every position attends to every position (the encoder-only MLM control)
    canon: str = ""  # Canon layers (Part 4.1, SPEC 7.1) at these points of every block, a subset of "ABCD"
    canon_kernel: int = 4  # Canon: causal depthwise convolution over this many tokens (the current one included)
    canon_residual: bool = True  # Canon: h + conv(h) ("Canon(res)"); False: conv(h) alone ("Canon(no-res)")
    canon_activation: bool = False  # Canon: SiLU on the convolution's output, before the residual add
    tie_embeddings: bool = False  # the output head shares the token embedding's matrix (Part 3.3's tied variant)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "depth", "width", "heads"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        _check(self.mlp_ratio >= 0, "mlp_ratio", f"must be >= 0 (0 with mlp_hidden 0: no MLP), got {self.mlp_ratio}")
        _check(self.block in BLOCKS, "block", f"must be one of {sorted(BLOCKS)}, got {self.block!r}")
        _check(self.pos in POSITIONS, "pos", f"must be one of {sorted(POSITIONS)}, got {self.pos!r}")
        _check(self.mlp_hidden >= 0, "mlp_hidden", f"must be >= 0 (0: from mlp_ratio), got {self.mlp_hidden}")
        _check(self.width % self.heads == 0, "width", f"{self.width} is not divisible by heads={self.heads}")
        even = self.pos != "rot" or self.rope_dim > 0 or self.head_dim % 2 == 0
        _check(even, "width", f"rotary needs an even head dim (width // heads), got {self.head_dim}")
        _check(self.rope_dim == 0 or self.pos == "rot", "rope_dim", f"partial rotary needs pos 'rot', got {self.pos!r}")
        _check(0 <= self.rope_dim <= self.head_dim and self.rope_dim % 2 == 0, "rope_dim",
               f"must be even and in [0, head_dim={self.head_dim}] (0: all of it), got {self.rope_dim}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.rope_base > 1.0, "rope_base", f"must be > 1, got {self.rope_base}")
        _check(self.causal or self.pos in ("rot", "abs"), "causal", f"an encoder (causal=False) needs pos rot or abs, got {self.pos!r}")
        points = set(self.canon)
        _check(points <= set(CANON_POINTS) and len(points) == len(self.canon), "canon",
               f"must be distinct letters of {CANON_POINTS!r} (e.g. 'ABCD', 'AC', ''), got {self.canon!r}")
        _check(self.canon_kernel >= 1, "canon_kernel", f"must be positive, got {self.canon_kernel}")
        _check(self.causal or not self.canon, "canon", "Canon layers are causal convolutions: not with causal=False")
        _check(self.has_mlp or not set(self.canon) & set("CD"), "canon",
               f"Canon-C and Canon-D sit at the MLP: not in a model without one (mlp_ratio 0), got {self.canon!r}")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def rotary_dim(self) -> int:
        """The dims of each head that rotary turns (its first ones): rope_dim, or all of head_dim."""
        return self.rope_dim or self.head_dim

    @property
    def has_mlp(self) -> bool:
        """False for attention-only blocks (mlp_ratio 0 and mlp_hidden 0)."""
        return self.mlp_width > 0

    @property
    def mlp_width(self) -> int:
        """The MLP's hidden width h (llama: of the gate and of the up projection, each; fc outputs 2h); 0: no MLP."""
        if self.mlp_hidden:
            return self.mlp_hidden
        return self.mlp_ratio * self.width if self.block == "gpt2" else 2 * self.mlp_ratio * self.width // 3


class KVCache:
    """Keys and values of every layer at columns 0 .. length-1 of a batch (left-padded rows: see GPT.forward), and
    each Canon point's inputs. The one cache of physlm: generation appends to it in place, one token at a time
    (`update`, `inputs`; GPT.forward advances `length`); beam search keeps the surviving rows (`select`); the
    V-probes run many queries on shared prefixes (`share`: row n of a new cache starts with chosen columns of
    a row of this one). Each layer has its own buffers, so gradients flow through cached keys and values (an
    in-place write into one buffer for all layers would change what earlier layers saved for backward).

    Canon inputs: with `history="last"` only the last kernel-1 inputs of each point are kept (all that the next
    token needs); `history="all"` keeps every position's, which `share` needs to start a row mid-sequence."""

    def __init__(self, cfg: GPTConfig, batch: int, positions: int, device: torch.device, dtype: torch.dtype,
                 history: str = "last"):
        if history not in ("last", "all"):
            raise ValueError(f"KVCache.history must be 'last' or 'all', got {history!r}")
        shape = (batch, cfg.heads, positions, cfg.head_dim)
        keyless = cfg.pos in CONTENT_FREE  # the content-free schemes have no keys: only values are kept
        self.keys: list[Tensor | None] = [None if keyless else torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.depth)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.depth)]
        self.positions, self.history = positions, history
        self.length = 0  # positions filled; GPT.forward advances it after all layers have written
        self.canon: dict[tuple[int, str], Tensor] = {}  # per (layer, Canon point): its inputs [B, kernel-1 or positions, m]
        self.shared: tuple[KVCache, Tensor, Tensor] | None = None  # made by `share`: (source, rows, columns)

    def inputs(self, key: tuple[int, str], x: Tensor, keep: int) -> Tensor:
        """[B, keep + T, m]: the `keep` inputs of Canon point `key` before x [B, T, m] (zeros before the
        sequence start), then x. "last" keeps a copy of the last `keep` for the next call (a view would keep the
        whole [B, keep + T, m] of a prefill alive as long as the cache); "all" keeps every input as given (no
        copy, so gradients reach them through a shared row). A cache made by `share` reads its rows' earlier
        inputs from the cache it shares."""
        if self.shared is not None:
            source, rows, columns = self.shared
            width = columns.size(1)
            past = source.canon[key][rows[:, None], columns[:, max(width - keep, 0) :]]
            return torch.cat((F.pad(past, (0, 0, keep - past.size(1), 0)), x), dim=1)
        past = self.canon.get(key)
        if self.history == "all":
            seq = x if past is None or self.length == 0 else torch.cat((past[:, : self.length], x), dim=1)
            self.canon[key] = seq
            head = seq[:, max(self.length - keep, 0) :]
            return F.pad(head, (0, 0, keep + x.size(1) - head.size(1), 0))
        if past is None or self.length == 0:
            past = x.new_zeros(x.size(0), keep, x.size(2))
        seq = torch.cat((past, x), dim=1)
        self.canon[key] = seq[:, seq.size(1) - keep :].clone()
        return seq

    def update(self, layer: int, k: Tensor | None, v: Tensor) -> tuple[Tensor | None, Tensor]:
        """Store k, v [B, heads, T, head_dim] after the cached positions; return all keys and values so far.

        k is None for the content-free schemes ("pos", "uni"), which have no keys: only values are kept."""
        end = self.length + v.size(2)
        if end > self.positions:
            raise ValueError(f"KV cache holds {self.positions} positions, {end} needed")
        self.values[layer][:, :, self.length : end] = v
        if k is None:
            return None, self.values[layer][:, :, :end]
        self.keys[layer][:, :, self.length : end] = k
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def select(self, rows: Tensor) -> None:
        """Keep (and duplicate) the cached rows `rows` of every layer, e.g. the surviving beams."""
        self.keys = [None if b is None else self._rows(b, rows) for b in self.keys]
        self.values = [self._rows(b, rows) for b in self.values]
        self.canon = {key: past[rows] for key, past in self.canon.items()}

    def _rows(self, buffer: Tensor, rows: Tensor) -> Tensor:
        """buffer's rows `rows`, copying only the filled positions (the rest is written before it is read)."""
        out = buffer.new_empty((len(rows), *buffer.shape[1:]))
        out[:, :, : self.length] = buffer[rows, :, : self.length]
        return out

    def share(self, rows: Tensor, columns: Tensor, new: int) -> KVCache:
        """A cache of len(rows) rows with room for `new` more tokens each, whose row n holds, at positions
        0 .. width-1 (width = columns.size(1)), row rows[n]'s columns columns[n] of this cache; its Canon calls
        read this cache's inputs ("all" history). A differentiable gather: gradients reach this cache's keys,
        values and Canon inputs (the V-probes train through shared prefixes)."""
        if self.canon and self.history != "all":
            raise ValueError("KVCache.share needs every position's Canon inputs: make the cache with history='all'")
        n, width = columns.shape
        index = (rows[:, None] * self.positions + columns).flatten()
        out = KVCache.__new__(KVCache)
        out.positions, out.history, out.length = width + new, self.history, width

        def gather(buffer: Tensor | None) -> Tensor | None:  # [B, H, P, D] -> [n, H, width + new, D]
            if buffer is None:
                return None
            _, heads, _, dim = buffer.shape
            rows_first = buffer.transpose(1, 2).reshape(-1, heads * dim)  # [B * P, H * D]: one row per position
            picked = rows_first.index_select(0, index).view(n, width, heads, dim).transpose(1, 2)
            return torch.cat((picked, picked.new_zeros(n, heads, new, dim)), dim=2)

        out.keys, out.values = [gather(b) for b in self.keys], [gather(b) for b in self.values]
        out.canon, out.shared = {}, (self, rows, columns)  # Canon inputs: read from this cache (`inputs`)
        return out


@dataclass(frozen=True)
class LeftPad:
    """Which keys each query may see, and each token's own position, when that is not simply "every earlier
    column, at its column index". Built once per call, shared by every layer. Two layouts:
    - `of`: a left-padded batch: row b's first pad[b] columns (counted from the start of the sequence, cached
      part included) are filler;
    - `of_segments`: packed segments: a row holds several examples, each starting at a given token id (e.g.
      <bos>); a token sees only its own segment, and positions restart at 0 in each, so every segment gets the
      logits it would get alone (attention never crosses an example boundary)."""

    positions: Tensor  # [B, T] each new token's position in its own row or segment (pads get 0)
    keep: Tensor  # [B, 1, T, S] True where a query may attend a key (a pad sees itself)

    @staticmethod
    def of(pad: Tensor, start: int, T: int, causal: bool) -> LeftPad:
        cols = torch.arange(start + T, device=pad.device)
        query, key = cols[start:, None], cols[None, :]  # [T, 1], [1, S]
        keep = (key >= pad[:, None, None]) | (key == query)  # [B, T, S]
        if causal:
            keep = keep & (key <= query)
        return LeftPad((cols[None, start:] - pad[:, None]).clamp(min=0), keep[:, None])

    @staticmethod
    def of_segments(idx: Tensor, first: int, causal: bool) -> LeftPad:
        """Segments of token ids idx [B, T] (a whole sequence, no cache): a new one starts at each token equal
        to `first`; the tokens before a row's first such token are a segment too."""
        T = idx.size(1)
        cols = torch.arange(T, device=idx.device)
        starts = idx == first
        segment = starts.cumsum(1)  # [B, T]
        begin = torch.where(starts, cols, 0).cummax(1).values  # column where each token's segment begins
        keep = segment[:, :, None] == segment[:, None, :]  # [B, T, T]
        if causal:
            keep = keep & (cols[None, :] <= cols[:, None])
        return LeftPad(cols[None, :] - begin, keep[:, None])


class Canon(nn.Module):
    """Part 4.1's Canon layer (SPEC 7.1), "Canon(res)": h'_t = h_t + sum_j w_j * h_{t-j}, j = 0 .. kernel-1,
    per-channel weights w_j (a causal depthwise 1-D convolution: no bias, no activation, PyTorch's default
    Conv1d initialisation), zero before the start of the sequence. A token looks back only over its own
    row's or segment's tokens: with `padding`, lags beyond a token's own position are dropped, so pads and
    earlier packed examples never enter (every example gets the output it gets alone). With a cache the
    last kernel-1 inputs of each point are kept (`KVCache.inputs`) so one token at a time gives the same.

    The paper's ablations: `residual=False` gives h' = conv(h) ("Canon(no-res)"); `activation=True` applies
    SiLU to the convolution's output before the residual add, h' = h + silu(conv(h)) (where the official
    LlamaCanon puts it: inside its short convolution, whose output is then added to h)."""

    def __init__(self, channels: int, kernel: int, key: tuple[int, str], residual: bool = True, activation: bool = False):
        super().__init__()
        self.key, self.kernel, self.residual, self.activation = key, kernel, residual, activation
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels, bias=False)  # weight [m, 1, kernel]

    def forward(self, x: Tensor, cache: KVCache | None, padding: LeftPad | None) -> Tensor:
        T, keep = x.size(1), self.kernel - 1
        seq = cache.inputs(self.key, x, keep) if cache is not None else F.pad(x, (0, 0, keep, 0))  # x_t at keep + t
        weight = self.conv.weight.to(x.dtype)[:, 0]  # [m, kernel]; a correlation: weight[:, keep - j] weighs lag j
        # Shifted multiply-adds, not F.conv1d: on a CPU the depthwise conv's backward is slow (at the demo's
        # training shape, forward + backward take about half the conv's time), and padding needs no fix-up.
        y = x * weight[:, keep]
        for lag in range(1, self.kernel):
            shifted = seq[:, keep - lag : keep - lag + T]
            if padding is not None:  # a lag beyond a token's own row or segment start adds nothing
                shifted = shifted * (padding.positions >= lag)[..., None].to(x.dtype)
            y = torch.addcmul(y, shifted, weight[:, keep - lag])
        if self.activation:
            y = F.silu(y)
        return x + y if self.residual else y


def _canon(cfg: GPTConfig, channels: int, layer: int, point: str) -> Canon | None:
    """Canon point `point` of block `layer` over `channels` channels, if cfg.canon has it."""
    if point not in cfg.canon:
        return None
    return Canon(channels, cfg.canon_kernel, (layer, point), cfg.canon_residual, cfg.canon_activation)


class Rotary(nn.Module):
    """Rotates pair (i, i + r/2) of a query or key at position p by angle p * rope_base^(-2i/r), r = cfg.rotary_dim
    (all of head_dim by default). With rope_dim < head_dim ("partial RoPE", as LlamaCanon's `rope_dim`) only the
    first r dims turn, as if the head were r wide, and dims r .. head_dim-1 pass through untouched."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        r = cfg.rotary_dim
        inv_freq = cfg.rope_base ** (-torch.arange(0, r, 2, dtype=torch.float64) / r)
        angles = torch.outer(torch.arange(cfg.context, dtype=torch.float64), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # [context, r]
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: Tensor, start: int) -> Tensor:
        """x: [..., T, head_dim] at positions start .. start+T-1."""
        end = start + x.size(-2)
        return _rotate(x, self.cos[start:end].to(x.dtype), self.sin[start:end].to(x.dtype))

    def at(self, x: Tensor, positions: Tensor) -> Tensor:
        """x: [B, heads, T, head_dim], row b's token t at position positions[b, t]."""
        return _rotate(x, self.cos[positions][:, None].to(x.dtype), self.sin[positions][:, None].to(x.dtype))


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate-half rotary on x's first cos.size(-1) dims; the rest of x is passed through."""
    r = cos.size(-1)
    if r < x.size(-1):
        return torch.cat((_rotate(x[..., :r], cos, sin), x[..., r:]), dim=-1)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def causal_attention(q: Tensor, k: Tensor, v: Tensor, dropout: float, causal: bool = True) -> Tensor:
    """Queries at the last T of S positions attend to keys at positions up to their own (all keys if not causal)."""
    T, S = q.size(-2), k.size(-2)
    if not causal:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    if T == S:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    if T == 1:  # one new token after a cache: it sees everything
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


def _offsets(start: int, T: int, S: int, device: torch.device) -> Tensor:
    """[T, S]: i - j for queries at positions start .. start+T-1 and keys at positions 0 .. S-1."""
    return torch.arange(start, start + T, device=device)[:, None] - torch.arange(S, device=device)[None, :]


class Attention(nn.Module):
    """Causal multi-head self-attention; the scheme (cfg.pos) decides how the weights are formed.

    "rot"/"abs"/"nope": softmax(q k^T / sqrt(d)) ("rot" after rotating q and k, "nope" with nothing else). "rel" (DeBERTa, He et al. 2021, eq. 4): scores
    (q_i.k_j + q_i.Kr[d] + k_j.Qr[d]) / sqrt(3d) with d = min(i - j, REL_MAX_DISTANCE), Kr, Qr the per-layer
    projections of a learned relative embedding table. "pos": softmax over j <= i of a learned scalar
    offset_logits[h, i - j] (zeros at init: a uniform causal average). "uni": head h (1-based) puts weight
    1/n on each of the n = min(i, 2^h - 1) tokens at positions i-1, i-2, ..., i-(2^h - 1) (the current token
    is excluded; the window is clipped at position 0); the token at position 0, having none before it,
    attends to itself. The content-free schemes have only a value projection (`v`), no queries or keys."""

    def __init__(self, cfg: GPTConfig, layer: int):
        super().__init__()
        self.layer, self.heads, self.dropout, self.scheme, self.causal = layer, cfg.heads, cfg.dropout, cfg.pos, cfg.causal
        if cfg.pos in CONTENT_FREE:
            self.v = nn.Linear(cfg.width, cfg.width, bias=cfg.bias)
        else:
            self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=cfg.bias)
        self.proj = nn.Linear(cfg.width, cfg.width, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)
        projected = (1 if cfg.pos in CONTENT_FREE else 3) * cfg.width  # Canon-B acts on the concatenated q, k, v
        self.canon = _canon(cfg, projected, layer, "B")
        self.rotary = Rotary(cfg) if cfg.pos == "rot" else None
        if cfg.pos == "pos":
            self.offset_logits = nn.Parameter(torch.zeros(cfg.heads, cfg.context))
        if cfg.pos == "uni":  # window sizes 2^h - 1, capped at context (changes nothing, keeps them in int64)
            spans = [min(2**h - 1, cfg.context) for h in range(1, cfg.heads + 1)]
            self.register_buffer("spans", torch.tensor(spans), persistent=False)
        if cfg.pos == "rel":
            self.rel_span = min(REL_MAX_DISTANCE, cfg.context - 1)
            self.rel_emb = nn.Embedding(self.rel_span + 1, cfg.width)  # relative offsets 0 .. rel_span
            self.rel_qk = nn.Linear(cfg.width, 2 * cfg.width, bias=cfg.bias)  # DeBERTa's W_{q,r}, W_{k,r}

    def pattern(self, start: int, T: int, S: int, padding: LeftPad | None = None) -> Tensor:
        """"pos"/"uni": the attention weights [heads, T, S] ([B, heads, T, S] when padded), the same for every
        input. Padded, a row's real tokens see only real keys, at offsets that are their true ones."""
        d = _offsets(start, T, S, self.proj.weight.device)
        if self.scheme == "uni":
            window = (d >= 1) & (d <= self.spans[:, None, None])
            if padding is None:
                window = window | ((d == 0) & (torch.arange(S, device=d.device) == 0))  # query 0 attends to itself
            else:  # position 0 (and every pad) attends to itself
                window = (window & padding.keep) | ((d == 0) & (padding.positions == 0)[:, None, :, None])
            return window.to(self.proj.weight.dtype) / window.sum(-1, keepdim=True)
        hidden = d < 0 if padding is None else ~padding.keep
        return self.offset_logits[:, d.clamp(min=0)].masked_fill(hidden, float("-inf")).softmax(-1)

    def forward(self, x: Tensor, start: int, cache: KVCache | None, padding: LeftPad | None = None) -> Tensor:
        B, T, C = x.shape
        dropout = self.dropout if self.training else 0.0
        if self.scheme in CONTENT_FREE:
            v = self._project(self.v, x, cache, padding).view(B, T, self.heads, -1).transpose(1, 2)
            if cache is not None:
                _, v = cache.update(self.layer, None, v)
            y = F.dropout(self.pattern(start, T, v.size(2), padding).to(v.dtype), dropout, self.training) @ v
            return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        qkv = self._project(self.qkv, x, cache, padding)
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in qkv.split(C, dim=2))
        if self.rotary is not None and padding is not None:
            q, k = self.rotary.at(q, padding.positions), self.rotary.at(k, padding.positions)
        elif self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        if self.scheme == "rel":
            y = self._relative_attention(q, k, v, start, dropout, padding)
        elif padding is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=padding.keep, dropout_p=dropout)
        else:
            y = causal_attention(q, k, v, dropout, self.causal)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))

    def _project(self, linear: nn.Linear, x: Tensor, cache: KVCache | None, padding: LeftPad | None) -> Tensor:
        """The q/k/v (or v) projection, then Canon-B if the block has it (before rotary)."""
        y = linear(x)
        return y if self.canon is None else self.canon(y, cache, padding)

    def weights(self, x: Tensor) -> Tensor:
        """The attention weights [B, heads, T, T] this layer puts on x [B, T, width] (positions 0 .. T-1),
        computed explicitly (forward uses fused kernels that never form them). Rows sum to 1."""
        B, T, C = x.shape
        if self.scheme in CONTENT_FREE:
            return self.pattern(0, T, T).expand(B, -1, -1, -1)
        qkv = self._project(self.qkv, x, None, None)
        q, k, _ = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in qkv.split(C, dim=2))
        if self.rotary is not None:
            q, k = self.rotary(q, 0), self.rotary(k, 0)
        if self.scheme == "rel":
            scores = self._relative_scores(q, k, 0)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
        if self.causal:
            scores = scores.masked_fill(_offsets(0, T, T, q.device) < 0, float("-inf"))
        return scores.float().softmax(-1)

    def _relative_scores(self, q: Tensor, k: Tensor, start: int) -> Tensor:
        """"rel": (q_i.k_j + q_i.Kr[d] + k_j.Qr[d]) / sqrt(3 head_dim), d = clamp(i - j, 0, rel_span); [B, H, T, S]."""
        B, H, T, D = q.shape
        S = k.size(2)
        qr, kr = (t.view(-1, H, D).transpose(0, 1) for t in self.rel_qk(self.rel_emb.weight).split(H * D, dim=1))
        idx = _offsets(start, T, S, q.device).clamp(0, self.rel_span).expand(B, H, T, S)
        c2p = torch.gather(q @ kr.transpose(-1, -2), -1, idx)  # [b,h,i,j] = q_i . Kr[d(i,j)]
        p2c = torch.gather((k @ qr.transpose(-1, -2)).transpose(-1, -2), -2, idx)  # [b,h,i,j] = k_j . Qr[d(i,j)]
        return (q @ k.transpose(-1, -2) + c2p + p2c) / math.sqrt(3 * D)

    def _relative_attention(
        self, q: Tensor, k: Tensor, v: Tensor, start: int, dropout: float, padding: LeftPad | None
    ) -> Tensor:
        """Column offsets are true offsets between a row's real tokens: left padding shifts both ends alike."""
        hidden = _offsets(start, q.size(2), k.size(2), q.device) < 0 if padding is None else ~padding.keep
        weights = self._relative_scores(q, k, start).masked_fill(hidden, float("-inf")).softmax(-1)
        return F.dropout(weights, dropout, self.training) @ v


class MLP(nn.Module):
    """gpt2: proj(gelu(fc(x))), hidden width h = cfg.mlp_width. llama (gated): fc is one Linear whose output of
    width 2h is the concatenation gate || up (HF Llama's gate_proj and up_proj stacked: gate first), and the MLP
    is proj(silu(gate) * up). Canon-D acts on fc's whole output before the nonlinearity: the pre-activation
    (m = h) or gate || up (m = 2h), as SPEC 7.1 places it."""

    def __init__(self, cfg: GPTConfig, layer: int = 0):
        super().__init__()
        self.gated = cfg.block == "llama"
        hidden = cfg.mlp_width
        fc_out = 2 * hidden if self.gated else hidden
        self.fc = nn.Linear(cfg.width, fc_out, bias=cfg.bias)
        self.proj = nn.Linear(hidden, cfg.width, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)
        self.canon = _canon(cfg, fc_out, layer, "D")

    def forward(self, x: Tensor, cache: KVCache | None = None, padding: LeftPad | None = None) -> Tensor:
        h = self.fc(x)
        if self.canon is not None:
            h = self.canon(h, cache, padding)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            return self.drop(self.proj(F.silu(gate) * up))
        return self.drop(self.proj(F.gelu(h)))


class RMSNorm(nn.Module):
    """Llama's norm: x / sqrt(mean(x^2) + RMS_EPS) * weight over the last dim (no centring, no bias), the
    normalisation in float32, then cast back to x's dtype before the weight (as HF's LlamaRMSNorm)."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * F.rms_norm(x.float(), self.weight.shape, eps=RMS_EPS).to(x.dtype)


def _norm(cfg: GPTConfig) -> nn.Module:
    """The block type's norm: LayerNorm (gpt2, biased if cfg.bias) or RMSNorm (llama)."""
    return RMSNorm(cfg.width) if cfg.block == "llama" else nn.LayerNorm(cfg.width, bias=cfg.bias)


class Block(nn.Module):
    """Pre-norm block (ln_1, ln_2: LayerNorm for gpt2, RMSNorm for llama); Canon-A sits between ln_1 and
    attention, Canon-C between ln_2 and the MLP (B inside attention, D inside the MLP). Without an MLP
    (cfg.has_mlp false) the block is attention alone: ln_2 and mlp are None."""

    def __init__(self, cfg: GPTConfig, layer: int):
        super().__init__()
        self.ln_1 = _norm(cfg)
        self.canon_a = _canon(cfg, cfg.width, layer, "A")
        self.attn = Attention(cfg, layer)
        self.ln_2 = _norm(cfg) if cfg.has_mlp else None
        self.canon_c = _canon(cfg, cfg.width, layer, "C")
        self.mlp = MLP(cfg, layer) if cfg.has_mlp else None

    def attention_input(self, x: Tensor, cache: KVCache | None = None, padding: LeftPad | None = None) -> Tensor:
        """What attention reads from the residual stream x: ln_1, then Canon-A if present."""
        h = self.ln_1(x)
        return h if self.canon_a is None else self.canon_a(h, cache, padding)

    def forward(self, x: Tensor, start: int, cache: KVCache | None, padding: LeftPad | None = None) -> Tensor:
        x = x + self.attn(self.attention_input(x, cache, padding), start, cache, padding)
        if self.mlp is None:
            return x
        h = self.ln_2(x)
        if self.canon_c is not None:
            h = self.canon_c(h, cache, padding)
        return x + self.mlp(h, cache, padding)


class GPT(nn.Module):
    """Untied output head by default (vocabularies here are tiny); tie_embeddings makes `head.weight` the very
    Parameter `wte.weight` (one tensor: counted once by num_params, saved once by physlm.artifacts).

    Init: every Linear and Embedding N(0, 0.02), biases 0, norms 1, Canon convolutions PyTorch's default; the
    gpt2 block also scales its residual projections (attn.proj, mlp.proj) to 0.02 / sqrt(2 * depth) (GPT-2),
    the llama block does not (HF Llama's init, which Part 4.1's Llama models use)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.width)
        self.wpe = nn.Embedding(cfg.context, cfg.width) if cfg.pos == "abs" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.depth))
        self.ln_f = _norm(cfg)
        self.head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
        self.apply(_init_weights)
        if cfg.tie_embeddings:
            self.head.weight = self.wte.weight
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/sqrt(2 * depth)
            if name.endswith(".proj.weight") and cfg.block == "gpt2":
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.depth))

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, *, cache: KVCache | None = None, pad: Tensor | None = None,
        segment_start: int | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits [B, T, vocab] for token ids [B, T]; mean cross-entropy against targets (-1 = ignored).

        pad [B] (long): left padding. Row b's first pad[b] tokens of the whole sequence (the cached ones
        included; pass the same pad on every call) are filler: its real tokens take positions 0, 1, ... and
        never attend to them, so their logits are those of the row alone, up to float rounding. The logits at
        pad columns are meaningless. pad=None is the plain unpadded model.

        segment_start (training on packed windows, no cache or pad): the token id that starts an example, e.g.
        <bos>; attention stays inside each example and positions restart there (`LeftPad.of_segments`), so
        each example's logits are those it would get alone."""
        *_, x = self._residual_stream(idx, cache, pad, segment_start)
        if cache is not None:
            cache.length += idx.size(1)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-1)

    def hidden_states(self, idx: Tensor) -> Tensor:
        """[depth+1, B, T, width]: 0 = embedding output, l = residual stream after block l (before ln_f)."""
        return torch.stack(list(self._residual_stream(idx, None, None)))

    @torch.no_grad()
    def attention_weights(self, idx: Tensor) -> Tensor:
        """[depth, B, heads, T, T]: every layer's attention weights on token ids idx [B, T] (row i = query i)."""
        maps = []
        for block, x in zip(self.blocks, self._residual_stream(idx, None, None)):
            maps.append(block.attn.weights(block.attention_input(x)))
        return torch.stack(maps)

    def new_cache(self, batch: int, positions: int | None = None, history: str = "last") -> KVCache:
        """An empty cache for `batch` sequences of up to `positions` (default: context) tokens (`KVCache`)."""
        p = next(self.parameters())
        return KVCache(self.cfg, batch, positions or self.cfg.context, p.device, p.dtype, history)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> int:
        """Training FLOPs per token (PaLM appendix B): 6 per matmul weight + 12 * depth * width * context."""
        lookups = (0 if self.cfg.tie_embeddings else self.wte.weight.numel())  # tied: wte's one matrix is the head's
        lookups += self.wpe.weight.numel() if self.wpe is not None else 0
        return 6 * (self.num_params() - lookups) + 12 * self.cfg.depth * self.cfg.width * self.cfg.context

    def _residual_stream(self, idx: Tensor, cache: KVCache | None, pad: Tensor | None,
                         segment_start: int | None = None) -> Iterator[Tensor]:
        """Yield the embedding output, then the residual stream after each block."""
        start, T = (cache.length if cache is not None else 0), idx.size(1)
        if segment_start is not None and (cache is not None or pad is not None):
            raise ValueError("segment_start applies to whole packed sequences: not with a cache or pad")
        if start + T > self.cfg.context:
            raise ValueError(f"sequence of {start + T} positions exceeds the model context {self.cfg.context}")
        if pad is not None and tuple(pad.shape) != (idx.size(0),):
            raise ValueError(f"pad must hold one count per row, shape ({idx.size(0)},), got {tuple(pad.shape)}")
        padding = LeftPad.of(pad, start, T, self.cfg.causal) if pad is not None else None
        if segment_start is not None:
            padding = LeftPad.of_segments(idx, segment_start, self.cfg.causal)
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(start, start + T, device=idx.device) if padding is None else padding.positions)
        x = self.drop(x)
        yield x
        for block in self.blocks:
            x = block(x, start, cache, padding)
            yield x


def _init_weights(module: nn.Module) -> None:
    """GPT-2 init: weights N(0, 0.02), biases 0 (LayerNorms and RMSNorms keep their ones/zeros)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
