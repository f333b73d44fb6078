"""What a decoder-only transformer is made of: one frozen description that every engine runs from.

GPT-2 and the Llama family differ in a handful of choices, each one field here: the norm (LayerNorm or
RMSNorm), the positions (a learned table or rotary), the MLP (GELU / ReLU or SwiGLU), how many key/value
heads serve the query heads (grouped-query attention), which linear layers carry a bias, and whether the
unembedding is the embedding transposed (tied). engine.model.families turns a checkpoint's config into
one; engine.model.ops computes with it; nothing else knows which family a model came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.model.ops import rotary_inverse_frequencies

NORMS = ("layer", "rms")
POSITIONS = ("learned", "rope")
MLPS = ("gelu", "relu", "swiglu")


@dataclass(frozen=True)
class Llama3Scaling:
    """Llama 3.1's rotary frequency rescaling (rope_type "llama3"), as transformers computes it."""

    factor: float  # long wavelengths are divided by this
    low_freq_factor: float
    high_freq_factor: float
    original_context: int  # original_max_position_embeddings

    def apply(self, inv_freq):  # [d_head / 2] -> [d_head / 2]
        """Keep high frequencies, divide low ones by `factor`, blend the band between smoothly."""
        wavelength = 2 * math.pi / inv_freq  # [d_head / 2]
        low_wavelength = self.original_context / self.low_freq_factor  # longer than this: scaled
        high_wavelength = self.original_context / self.high_freq_factor  # shorter than this: kept
        scaled = np.where(wavelength > low_wavelength, inv_freq / self.factor, inv_freq)
        smooth = (self.original_context / wavelength - self.low_freq_factor) / (self.high_freq_factor - self.low_freq_factor)
        blended = (1 - smooth) * scaled / self.factor + smooth * scaled
        medium = (wavelength >= high_wavelength) & (wavelength <= low_wavelength)
        return np.where(medium, blended, scaled)


@dataclass(frozen=True)
class Architecture:
    """One decoder-only transformer's shape and choices (pre-norm blocks: x + attn(norm1(x)), x + mlp(norm2(x)))."""

    family: str  # the checkpoint dialect its tensors are named in: "gpt2" or "llama" (also mistral, qwen2)
    n_layers: int
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads; each serves n_heads // n_kv_heads query heads (grouped-query attention)
    d_head: int  # per head; Llama-family configs may set it apart from d_model // n_heads
    d_model: int  # the residual stream's width
    d_ff: int  # the MLP's hidden width
    vocab_size: int
    n_positions: int  # the model's context length (max_position_embeddings)
    norm: str = "layer"  # "layer" (centre, scale, shift) or "rms" (scale only; no centring, no bias)
    norm_eps: float = 1e-5
    positions: str = "learned"  # "learned" (a table added to the embedding) or "rope" (q and k rotated)
    rope_theta: float = 10_000.0  # rotary base: pair i turns at position p by p * theta ** (-2i / d_head)
    rope_scaling: Llama3Scaling | None = None
    mlp: str = "gelu"  # "gelu" / "relu": down(act(up(x))); "swiglu": down(silu(gate(x)) * up(x))
    qkv_bias: bool = True
    o_bias: bool = True
    mlp_bias: bool = True
    norm_bias: bool = True  # LayerNorm's shift (RMSNorm has none)
    tied: bool = True  # the unembedding is the embedding, transposed

    def __post_init__(self) -> None:
        if problem := self.problem():
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why this description is inconsistent (one sentence), or None."""
        for name in ("n_layers", "n_heads", "n_kv_heads", "d_head", "d_model", "d_ff", "vocab_size", "n_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return f"{name} must be a positive integer (got {value!r})"
        if self.n_heads % self.n_kv_heads:
            return f"{self.n_heads} query heads cannot be shared evenly by {self.n_kv_heads} key/value heads"
        for name, allowed in (("norm", NORMS), ("positions", POSITIONS), ("mlp", MLPS)):
            if getattr(self, name) not in allowed:
                return f"{name} {getattr(self, name)!r} is not one tfund runs; use one of {', '.join(allowed)}"
        if self.positions == "rope" and self.d_head % 2:
            return f"rotary positions need an even head size (got d_head={self.d_head})"
        if self.norm == "rms" and self.norm_bias:
            return "RMSNorm has no bias"
        return None

    @property
    def group(self) -> int:  # query heads per key/value head
        return self.n_heads // self.n_kv_heads

    @property
    def qkv_split(self) -> tuple[int, int]:  # column indices splitting the fused qkv output into q | k | v
        q, kv = self.n_heads * self.d_head, self.n_kv_heads * self.d_head
        return q, q + kv

    def inverse_frequencies(self) -> np.ndarray:  # -> [d_head / 2] float32, radians per position
        """Each rotary pair's angle per position, computed in float32 as transformers does."""
        inv_freq = rotary_inverse_frequencies(self.d_head, self.rope_theta)  # [d_head / 2]
        return inv_freq if self.rope_scaling is None else self.rope_scaling.apply(inv_freq).astype(np.float32)
