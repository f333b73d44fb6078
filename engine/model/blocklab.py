"""The seed notebook's experiment: a stack of random-weight blocks, and how representations evolve.

`run_block_lab(BlockLabConfig(...))` builds random weights like the seed (randn * 0.1, zero biases,
no LN affine), pushes a random input X through `n_layers` blocks and measures, layer by layer, the
residual-stream norm, how much each layer changes it, how alike the tokens become, and how focused
each attention head is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.model.ops import ACTIVATIONS, stack

# the lab's limits, checked by BlockLabConfig.validate and offered by the TUI's keys
SEQ_LEN_MAX = 64  # T: longer inputs stop being readable as a heatmap
D_MODEL_CHOICES = tuple(2**i for i in range(1, 11))  # residual widths 2 … 1024 (any integer up to the last validates)
D_FF_CHOICES = tuple(2**i for i in range(1, 13))  # feed-forward widths 2 … 4096
N_HEADS_MAX = 64
N_LAYERS_MAX = 48  # deeper stacks stop being interactive
LIMITS = {"T": SEQ_LEN_MAX, "d_model": D_MODEL_CHOICES[-1], "n_heads": N_HEADS_MAX, "d_ff": D_FF_CHOICES[-1], "n_layers": N_LAYERS_MAX}


@dataclass
class BlockLabConfig:
    T: int = 8  # tokens in the random input sequence (seed: 8)
    d_model: int = 32  # residual-stream width (seed: 32)
    n_heads: int = 4  # attention heads; d_model must divide evenly (seed: 4, so d_head = 8)
    d_ff: int = 64  # feed-forward hidden width (seed: 64, i.e. 2 x d_model)
    activation: str = "relu"  # FFN nonlinearity: the seed uses ReLU, GPT-2 uses GELU
    seed: int = 42  # seeds the generator for X and every weight (seed notebook: 42)
    n_layers: int = 4  # blocks stacked, to watch representations evolve layer by layer
    residual: bool = True  # x + f(x); off shows how deep stacks lose the input without skips
    layer_norm: bool = True  # LN before (or after) each sublayer; off shows the norm drift
    pre_ln: bool = True  # pre-LN as in GPT-2; False gives the original post-LN block
    weight_scale: float = 0.1  # std of the random weights and of X (seed: randn * 0.1)

    def validate(self) -> None:
        """Raise ValueError naming the field and its allowed range."""
        for name, upper in LIMITS.items():
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= upper):
                raise ValueError(f"{name} must be an integer in [1, {upper}] (got {value!r})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be divisible by n_heads (got d_model={self.d_model}, n_heads={self.n_heads})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} (got {self.activation!r})")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0 (got {self.seed!r})")
        if not (isinstance(self.weight_scale, (int, float)) and 0 < self.weight_scale <= 10):
            raise ValueError(f"weight_scale must be in (0, 10] (got {self.weight_scale!r})")


@dataclass
class BlockLabResult:
    config: BlockLabConfig
    captures: dict[str, np.ndarray]  # TransformerLens names: blocks.{i}.hook_resid_post, ...
    resid: np.ndarray  # [n_layers + 1, T, d] the input X, then the stream after each block
    attention: np.ndarray  # [n_layers, H, T, T] attention weights
    metrics: dict[str, np.ndarray]  # resid_norm, layer_cosine, token_cosine, attn_entropy


def random_block_params(rng, d_model, d_ff, scale):  # -> one block's params, named like GPT-2
    def dense(n_in, n_out):  # [n_in, n_out] weights, zero bias
        return {"w": rng.standard_normal((n_in, n_out)) * scale, "b": np.zeros(n_out)}

    return {
        "ln_1": {},  # the seed's LN has no learned gain or bias
        "attn": {"c_attn": dense(d_model, 3 * d_model), "c_proj": dense(d_model, d_model)},  # W_Q|W_K|W_V, W_O
        "ln_2": {},
        "mlp": {"c_fc": dense(d_model, d_ff), "c_proj": dense(d_ff, d_model)},  # W1, W2
    }


def unit(x, eps=1e-9):  # [..., d] -> [..., d] rows scaled to length 1
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + eps)


def representation_metrics(resid, attention):  # [L+1, T, d], [L, H, T, T] -> dict of per-layer arrays
    directions = unit(resid)  # [L+1, T, d]
    T = resid.shape[1]
    pair_cosines = directions @ directions.transpose(0, 2, 1)  # [L+1, T, T]
    off_diagonal = ~np.eye(T, dtype=bool)  # [T, T] pairs of distinct tokens
    # [L+1]; a lone token (T = 1) has no pairs and counts as perfectly alike
    token_cosine = pair_cosines[:, off_diagonal].mean(axis=-1) if T > 1 else np.ones(len(resid))
    entropy = -(attention * np.log(np.clip(attention, 1e-12, None))).sum(axis=-1)  # [L, H, T]
    return {
        "resid_norm": np.linalg.norm(resid, axis=-1).mean(axis=-1),  # [L+1] mean over tokens
        "layer_cosine": (directions[1:] * directions[:-1]).sum(axis=-1).mean(axis=-1),  # [L] cos(i, i-1)
        "token_cosine": token_cosine,  # [L+1] mean cosine between distinct tokens
        "attn_entropy": entropy.mean(axis=-1),  # [L, H] nats; 0 = one-hot, log(T) would be uniform
    }


def run_block_lab(cfg: BlockLabConfig) -> BlockLabResult:
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    x = rng.standard_normal((cfg.T, cfg.d_model)) * cfg.weight_scale  # [T, d] the seed's random X
    blocks = [random_block_params(rng, cfg.d_model, cfg.d_ff, cfg.weight_scale) for _ in range(cfg.n_layers)]
    _, captures = stack(
        x,
        blocks,
        cfg.n_heads,
        activation=cfg.activation,
        residual=cfg.residual,
        layer_norm_on=cfg.layer_norm,
        pre_ln=cfg.pre_ln,
    )
    layers = range(cfg.n_layers)
    resid = np.stack([x] + [captures[f"blocks.{i}.hook_resid_post"] for i in layers])  # [L+1, T, d]
    attention = np.stack([captures[f"blocks.{i}.attn.hook_pattern"] for i in layers])  # [L, H, T, T]
    return BlockLabResult(cfg, captures, resid, attention, representation_metrics(resid, attention))
