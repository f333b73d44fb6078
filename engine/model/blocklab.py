"""The seed notebook's experiment: a stack of random-weight blocks, and how representations evolve.

`run_block_lab(BlockLabConfig(...))` draws X and the weights exactly as the notebook does (one
`np.random.RandomState(seed)`, in the notebook's order: X, then per block W_Q, W_K, W_V, W_O, W1, W2,
each randn * scale; zero biases; no LN affine), pushes X through `n_layers` blocks and measures, layer
by layer, the residual-stream norm, how much each layer changes it, how alike the tokens become, and how
focused each attention head is. The default config is the notebook's ("notebook" preset): its one
block's output equals the notebook's `z` bit for bit.

The modern block's switches (norm_kind "rms", positions "learned" / "rope", activation "swiglu", n_kv_heads)
change the block one idea at a time, computed by engine.model.ops as for a real Llama. What they add is
drawn from its own generator (`extra_stream`: the position table, the SwiGLU gates), never from the
notebook's, so every other weight stays bit for bit what it was. Grouped-query attention draws nothing:
each group of query heads shares the keys and values of its first head, whose pattern is thus unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from engine.model.head_stats import attention_entropy
from engine.model.ops import ACTIVATIONS, NORMS, rope, rotary_angles, rotary_inverse_frequencies, stack

# the lab's limits, checked by BlockLabConfig.validate and offered by the TUI's keys
SEQ_LEN_MAX = 64  # T: longer inputs stop being readable as a heatmap
D_MODEL_CHOICES = tuple(2**i for i in range(1, 11))  # residual widths 2 … 1024 (any integer up to the last validates)
D_FF_CHOICES = tuple(2**i for i in range(1, 13))  # feed-forward widths 2 … 4096
N_HEADS_MAX = 64
N_LAYERS_MAX = 48  # deeper stacks stop being interactive
SEED_MAX = 2**32 - 1  # the notebook's legacy np.random generator takes no larger seed
POSITIONS = ("none", "learned", "rope")  # the notebook's X has no positions; GPT-2 adds a learned table; Llama rotates q and k
LAB_ACTIVATIONS = (*ACTIVATIONS, "swiglu")  # swiglu gates the MLP: down(silu(gate(x)) * up(x))
LAB_BYTES = 8  # the lab computes in float64, as the notebook does
NORM_EPS = 1e-5  # the notebook's layer norm epsilon, for RMSNorm too
STREAMS = {"positions": 1, "gate": 2}  # extra_stream's salt per new weight: the notebook's generator is stream 0
LIMITS = {"T": SEQ_LEN_MAX, "d_model": D_MODEL_CHOICES[-1], "n_heads": N_HEADS_MAX, "d_ff": D_FF_CHOICES[-1], "n_layers": N_LAYERS_MAX}


@dataclass
class BlockLabConfig:
    T: int = 8  # tokens in the random input sequence (seed: 8)
    d_model: int = 32  # residual-stream width (seed: 32)
    n_heads: int = 4  # attention heads; d_model must divide evenly (seed: 4, so d_head = 8)
    d_ff: int = 64  # feed-forward hidden width (seed: 64, i.e. 2 x d_model)
    activation: str = "relu"  # FFN nonlinearity: the seed uses ReLU, GPT-2 uses GELU, Llama gates with SwiGLU ("swiglu")
    seed: int = 42  # seeds the generator for X and every weight (seed notebook: 42)
    n_layers: int = 1  # blocks stacked (the notebook runs one; more show representations evolve layer by layer)
    residual: bool = True  # x + f(x); off shows how deep stacks lose the input without skips
    layer_norm: bool = True  # LN before (or after) each sublayer; off shows the norm drift
    pre_ln: bool = True  # pre-LN as in GPT-2; False gives the original post-LN block
    causal: bool = True  # the causal mask; off, every token sees every token (an encoder such as BERT)
    attention: bool = True  # off, the attention sublayers add nothing: only the position-wise FFNs act
    changed_token: int | None = None  # this row of X points the other way (-X[i]): which output rows change?
    weight_scale: float = 0.1  # std of the random weights and of X (seed: randn * 0.1)
    norm_kind: str = "layer"  # "layer" (LayerNorm: centre, then scale) or "rms" (RMSNorm, Llama's: scale only)
    positions: str = "none"  # "none" (the notebook), "learned" (a random table added to X, GPT-2's kind) or "rope"
    n_kv_heads: int | None = None  # key/value heads; None: one per query head. Fewer: grouped-query attention

    @property
    def kv_heads(self) -> int:  # the key/value heads actually used
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    def validate(self) -> None:
        """Raise ValueError naming the field and its allowed range."""
        for name, upper in LIMITS.items():
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= upper):
                raise ValueError(f"{name} must be an integer in [1, {upper}] (got {value!r})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be divisible by n_heads (got d_model={self.d_model}, n_heads={self.n_heads})")
        for name, allowed in (("activation", LAB_ACTIVATIONS), ("norm_kind", tuple(NORMS)), ("positions", POSITIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")
        kv = self.n_kv_heads
        if kv is not None and not (isinstance(kv, int) and not isinstance(kv, bool) and kv >= 1 and self.n_heads % kv == 0):
            raise ValueError(f"n_kv_heads must divide n_heads={self.n_heads} evenly (got {kv!r})")
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError(f"positions 'rope' needs an even head size (got d_head={self.d_model // self.n_heads})")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= SEED_MAX):
            raise ValueError(f"seed must be an integer in [0, {SEED_MAX}] (got {self.seed!r})")
        if self.changed_token is not None and not (isinstance(self.changed_token, int) and 0 <= self.changed_token < self.T):
            raise ValueError(f"changed_token must be a row of X, in [0, {self.T - 1}] (got {self.changed_token!r})")
        if not (isinstance(self.weight_scale, (int, float)) and 0 < self.weight_scale <= 10):
            raise ValueError(f"weight_scale must be in (0, 10] (got {self.weight_scale!r})")


@dataclass
class BlockLabResult:
    config: BlockLabConfig
    captures: dict[str, np.ndarray]  # TransformerLens names: blocks.{i}.hook_resid_post, ...
    resid: np.ndarray  # [n_layers + 1, T, d] the input X (plus the position table, if any), then the stream after each block
    attention: np.ndarray  # [n_layers, H, T, T] attention weights
    metrics: dict[str, np.ndarray]  # resid_norm, layer_cosine, token_cosine, attn_entropy
    blocks: list[dict]  # each block's params, named by role (engine.model.families)


def notebook_block_params(rng, d_model, d_ff, scale):  # -> one block's params, named by role (engine.model.families)
    """W_Q, W_K, W_V, W_O, W1, W2 drawn in the notebook's order from its legacy generator; zero biases."""
    w_q, w_k, w_v, w_o = (rng.randn(d_model, d_model) * scale for _ in range(4))  # [d, d] each
    w_1, w_2 = rng.randn(d_model, d_ff) * scale, rng.randn(d_ff, d_model) * scale  # [d, d_ff], [d_ff, d]
    return {
        "norm1": {},  # the notebook's LN has no learned gain or bias
        "attn": {
            "qkv": {"w": np.concatenate([w_q, w_k, w_v], axis=1), "b": np.zeros(3 * d_model)},  # [d, 3d]
            "o": {"w": w_o, "b": np.zeros(d_model)},
        },
        "norm2": {},
        "mlp": {"up": {"w": w_1, "b": np.zeros(d_ff)}, "down": {"w": w_2, "b": np.zeros(d_model)}},
    }


def extra_stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one modern switch's new weights (STREAMS): its own, so the notebook's draws never move."""
    return np.random.default_rng([seed, STREAMS[name]])


def share_key_values(attn: dict, n_heads: int, n_kv_heads: int) -> dict:  # [d, 3d] qkv -> [d, (H + 2 H_kv) d_head]
    """Grouped-query attention from the notebook's weights: query heads g·group … (g+1)·group-1 share the keys
    and values of head g·group (its W_K and W_V columns); nothing is drawn."""
    w, b = attn["qkv"]["w"], attn["qkv"]["b"]
    d = w.shape[0]
    d_head, group = d // n_heads, n_heads // n_kv_heads
    kept = np.concatenate([np.arange(g * group * d_head, (g * group + 1) * d_head) for g in range(n_kv_heads)])  # [H_kv d_head]
    columns = np.concatenate([np.arange(d), d + kept, 2 * d + kept])  # q | the kept k | the kept v
    return {**attn, "qkv": {"w": w[:, columns], "b": b[columns]}}


def lab_blocks(cfg: BlockLabConfig, rng) -> list[dict]:
    """The notebook's blocks from its generator, then what the modern switches change."""
    blocks = [notebook_block_params(rng, cfg.d_model, cfg.d_ff, cfg.weight_scale) for _ in range(cfg.n_layers)]
    if cfg.activation == "swiglu":
        gates = extra_stream(cfg.seed, "gate")
        for params in blocks:  # block by block: one block more keeps the earlier blocks' gates
            params["mlp"]["gate"] = {"w": gates.standard_normal((cfg.d_model, cfg.d_ff)) * cfg.weight_scale, "b": np.zeros(cfg.d_ff)}
    if cfg.kv_heads != cfg.n_heads:
        for params in blocks:
            params["attn"] = share_key_values(params["attn"], cfg.n_heads, cfg.kv_heads)
    return blocks


def position_table(cfg: BlockLabConfig) -> np.ndarray:  # -> [T, d] learned-style positions, random here
    """Row p is position p's vector, drawn row by row: more tokens keep the earlier rows."""
    return extra_stream(cfg.seed, "positions").standard_normal((cfg.T, cfg.d_model)) * cfg.weight_scale


def lab_rotary_angles(cfg: BlockLabConfig, start: int = 0, end: int | None = None):  # -> cos, sin: [T, d_head / 2]
    """Rotary angles of positions start..end-1 (default 0..T-1) at the lab's head size, theta 10,000 as in Llama 2."""
    return rotary_angles(rotary_inverse_frequencies(cfg.d_model // cfg.n_heads), start, cfg.T if end is None else end)


def unit(x, eps=1e-9):  # [..., d] -> [..., d] rows scaled to length 1
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + eps)


def representation_metrics(resid, attention):  # [L+1, T, d], [L, H, T, T] -> dict of per-layer arrays
    directions = unit(resid)  # [L+1, T, d]
    T = resid.shape[1]
    pair_cosines = directions @ directions.transpose(0, 2, 1)  # [L+1, T, T]
    off_diagonal = ~np.eye(T, dtype=bool)  # [T, T] pairs of distinct tokens
    # [L+1]; a lone token (T = 1) has no pairs and counts as perfectly alike
    token_cosine = pair_cosines[:, off_diagonal].mean(axis=-1) if T > 1 else np.ones(len(resid))
    return {
        "resid_norm": np.linalg.norm(resid, axis=-1).mean(axis=-1),  # [L+1] mean over tokens
        "layer_cosine": (directions[1:] * directions[:-1]).sum(axis=-1).mean(axis=-1),  # [L] cos(i, i-1)
        "token_cosine": token_cosine,  # [L+1] mean cosine between distinct tokens
        # [L, H] nats, the mean over rows 1..T-1 as on the all-heads screen (row 0 has no choice under the mask);
        # 0 = one-hot; uniform causal attention gives the mean of log(i + 1) over those rows, not log(T)
        "attn_entropy": attention_entropy(attention),
    }


def run_block_lab(cfg: BlockLabConfig) -> BlockLabResult:
    """The stack's streams, attention and metrics. Without layer norm, large weights make the stream grow
    by orders of magnitude per block until it overflows (inf, then NaN): an outcome shown as "overflow"
    (first_overflow, lab_number), not a NumPy warning."""
    cfg.validate()
    rng = np.random.RandomState(cfg.seed)  # the notebook's np.random.seed(42) generator, but the lab's own
    x = rng.randn(cfg.T, cfg.d_model) * cfg.weight_scale  # [T, d] the notebook's X
    blocks = lab_blocks(cfg, rng)
    if cfg.changed_token is not None:  # after every draw, so the weights stay the same
        x = x.copy()
        x[cfg.changed_token] *= -1
    if cfg.positions == "learned":
        x = x + position_table(cfg)  # [T, d] what GPT-2's embedding does: token vector + position vector
    layers = range(cfg.n_layers)
    no_attention = {} if cfg.attention else {f"blocks.{i}.attn.hook_z": np.zeros_like for i in layers}  # its output: the zero bias
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _, captures = stack(
            x,
            blocks,
            cfg.n_heads,
            n_kv_heads=cfg.kv_heads,
            norm=cfg.norm_kind,
            eps=NORM_EPS,
            rope_angles=lab_rotary_angles(cfg) if cfg.positions == "rope" else None,
            activation=cfg.activation,
            residual=cfg.residual,
            layer_norm_on=cfg.layer_norm,
            pre_ln=cfg.pre_ln,
            causal=cfg.causal,
            hooks=no_attention,
        )
        resid = np.stack([x] + [captures[f"blocks.{i}.hook_resid_post"] for i in layers])  # [L+1, T, d]
        attention = np.stack([captures[f"blocks.{i}.attn.hook_pattern"] for i in layers])  # [L, H, T, T]
        metrics = representation_metrics(resid, attention)
    return BlockLabResult(cfg, captures, resid, attention, metrics, blocks)


def kv_cache_bytes(cfg: BlockLabConfig, kv_heads: int | None = None) -> int:
    """What one token adds to the KV cache in the lab's float64: a key and a value per KV head in every block."""
    kv_heads = cfg.kv_heads if kv_heads is None else kv_heads
    return 2 * cfg.n_layers * kv_heads * (cfg.d_model // cfg.n_heads) * LAB_BYTES


def query_key(result: BlockLabResult, head: int = 0):  # -> q, k: [T, d_head] each, block 1's, before any rotation
    """Block 1's queries of `head` and the keys of the KV head it reads, as its attention computes them."""
    cfg, params = result.config, result.blocks[0]
    x = result.captures["blocks.0.hook_resid_pre"]  # [T, d]
    read = NORMS[cfg.norm_kind](x, eps=NORM_EPS) if cfg.layer_norm and cfg.pre_ln else x  # [T, d] what attention reads
    fused = read @ params["attn"]["qkv"]["w"] + params["attn"]["qkv"]["b"]  # [T, (H + 2 H_kv) d_head]
    d_head = cfg.d_model // cfg.n_heads
    q, k = fused[:, : cfg.n_heads * d_head], fused[:, cfg.n_heads * d_head : (cfg.n_heads + cfg.kv_heads) * d_head]
    kv_head = head // (cfg.n_heads // cfg.kv_heads)
    return q[:, head * d_head : (head + 1) * d_head], k[:, kv_head * d_head : (kv_head + 1) * d_head]


def rotated_score(cfg: BlockLabConfig, q, k, query_at: int, key_at: int) -> float:  # [d_head], [d_head] -> q·k / √d_head
    """The attention score of one query and one key, rotated to the positions they are placed at."""
    cos_q, sin_q = lab_rotary_angles(cfg, query_at, query_at + 1)  # [1, d_head / 2] x2
    cos_k, sin_k = lab_rotary_angles(cfg, key_at, key_at + 1)
    q_rot, k_rot = rope(q[None, None], cos_q, sin_q), rope(k[None, None], cos_k, sin_k)  # [1, 1, d_head] each
    return float((q_rot * k_rot).sum() / np.sqrt(q.shape[-1]))


def rope_scores(result: BlockLabResult, starts=(0, 10, 50), distances=range(4)) -> np.ndarray:  # -> [starts, distances]
    """Block 1 head 1: the last token's query and token 0's key, placed `distance` apart with the key at each
    start: with rotary positions each column holds one number (the score depends only on the distance)."""
    q, k = query_key(result)
    return np.array([[rotated_score(result.config, q[-1], k[0], start + gap, start) for gap in distances] for start in starts])


def modern_facts(result: BlockLabResult) -> list[str]:
    """One line per modern switch that is on: what it changes, in the lab's numbers."""
    cfg, lines = result.config, []
    if cfg.norm_kind == "rms" and cfg.layer_norm:
        normed = NORMS["rms"](result.resid[0], eps=NORM_EPS)  # [T, d] the input, RMS-normed
        mean = np.abs(normed.mean(axis=-1)).mean()
        lines.append(f"RMSNorm: rows scaled to length √d_model, not centred (|mean| {mean:.2f}; LN 0)")
    if cfg.positions == "learned":
        x_norm = np.linalg.norm(result.resid[0] - position_table(cfg), axis=-1).mean()
        lines.append(
            f"learned positions: X + P (a random row per position), norm {lab_number(x_norm)} → {lab_number(result.metrics['resid_norm'][0])}"
        )
    if cfg.positions == "rope":
        scores = rope_scores(result)[0]  # [distances] the same at every start
        lines.append(f"RoPE: q·k at distance 0–{len(scores) - 1}: {' '.join(f'{v:.2f}' for v in scores)} at every position")
    if cfg.activation == "swiglu":
        weights = cfg.d_model * cfg.d_ff
        lines.append(f"SwiGLU: down(silu(gate)·up): {3 * weights:,} MLP weights a block (GELU or ReLU: {2 * weights:,})")
    if cfg.kv_heads != cfg.n_heads:
        ours, full = kv_cache_bytes(cfg), kv_cache_bytes(cfg, cfg.n_heads)
        lines.append(
            f"GQA: {cfg.kv_heads} KV head{'s' if cfg.kv_heads > 1 else ''}: KV cache {ours:,} B/token in float64 "
            f"({cfg.n_heads} heads: {full:,}), −{1 - ours / full:.0%}"
        )
    return lines


def first_overflow(metrics: dict) -> int | None:
    """The first stream (0 = the input X, k = after block k) whose norm is not a finite number, or None."""
    bad = np.flatnonzero(~np.isfinite(metrics["resid_norm"]))
    return int(bad[0]) if bad.size else None


def lab_number(value: float, digits: int = 2) -> str:
    """A lab figure for reading: "overflow" when not finite, scientific notation from 100000 up."""
    if not np.isfinite(value):
        return "overflow"
    return f"{value:.{digits}e}" if abs(value) >= 1e5 else f"{value:.{digits}f}"


def finite_or_none(value: float) -> float | None:  # JSON has no inf or NaN
    return float(value) if np.isfinite(value) else None


def block_lab_json(result: BlockLabResult) -> dict:
    """The lab's settings, its output (the last block's [T, d], one list per token) and its per-layer metrics."""
    metrics = result.metrics
    layers = [
        {
            "layer": i,  # 0 = the input X, then after block 1, 2, …
            "resid_norm": finite_or_none(metrics["resid_norm"][i]),  # None: overflowed
            "token_cosine": finite_or_none(metrics["token_cosine"][i]),
            "layer_cosine": None if i == 0 else finite_or_none(metrics["layer_cosine"][i - 1]),
            "attn_entropy": None if i == 0 else [finite_or_none(h) for h in metrics["attn_entropy"][i - 1]],
        }
        for i in range(len(metrics["resid_norm"]))
    ]
    output = [[finite_or_none(v) for v in row] for row in result.resid[-1]]
    return {"settings": asdict(result.config), "output": output, "overflow_at": first_overflow(result.metrics), "layers": layers}


def norm_name(cfg: BlockLabConfig) -> str:
    """Where the norm sits and which: pre-LN, post-LN, pre-RMSNorm, post-RMSNorm, or off."""
    if not cfg.layer_norm:
        return "off"
    return f"{'pre' if cfg.pre_ln else 'post'}-{'LN' if cfg.norm_kind == 'layer' else 'RMSNorm'}"


def format_block_lab(result: BlockLabResult) -> str:
    """The output matrix, then one line per layer: norm, cosine with the layer before, cosine between tokens."""
    cfg = result.config
    lines = [
        f"block lab: T {cfg.T} · d_model {cfg.d_model} · heads {cfg.n_heads} (KV {cfg.kv_heads}) · d_ff {cfg.d_ff} · "
        f"layers {cfg.n_layers} · seed {cfg.seed} · residual {'on' if cfg.residual else 'off'} · layer norm {norm_name(cfg)} · "
        f"{cfg.activation} · positions {cfg.positions} · causal mask {'on' if cfg.causal else 'off'}",
        f"output (after block {cfg.n_layers}), [{cfg.T}, {cfg.d_model}]:",
        np.array2string(result.resid[-1], precision=4, suppress_small=True, max_line_width=120, threshold=10**6),
        "",
        f"{'layer':<18}{'norm':>8}{'cos(l, l-1)':>13}{'token cos':>11}",
    ]
    metrics = result.metrics
    for i, norm in enumerate(metrics["resid_norm"]):
        name = ("input X + P" if cfg.positions == "learned" else "input X") if i == 0 else f"after block {i}"
        layer_cos = "" if i == 0 else lab_number(metrics["layer_cosine"][i - 1], 4)
        lines.append(f"{name:<18}{lab_number(norm, 4):>8}{layer_cos:>13}{lab_number(metrics['token_cosine'][i], 4):>11}")
    overflow = first_overflow(metrics)
    if overflow is not None:
        lines.append(f"the residual stream overflowed (inf/NaN) after block {overflow}")
    return "\n".join(lines + modern_facts(result))
