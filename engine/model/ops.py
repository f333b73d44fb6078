"""The transformer block from scratch in NumPy, picoGPT style: one block for GPT-2 and the Llama family.

Pure functions, one idea each. Shapes: T tokens, d model width, H query heads, H_kv key/value heads
(H_kv = H unless grouped-query attention), d_head per head. Parameters are nested dicts named by role
(engine.model.families), every matrix [in, out], so a block is called as `block(x, **params, n_head=H)`.
What differs between families is a switch: `norm` (layer | rms), `activation` (gelu | relu | swiglu),
`rope` (rotary positions: the cos and sin of each position's angles, or None for a learned table that
the embedding already added) and `n_kv_heads`.

Every function keeps the input dtype (float32 stays float32): constants are Python floats, which
NumPy never lets upcast an array.
"""

from __future__ import annotations

import math

import numpy as np

GELU_SCALE = math.sqrt(2.0 / math.pi)  # GPT-2's tanh approximation of GELU
MASKED = -1e10  # added to attention scores of future positions; exp() of it is exactly 0


def layer_norm(x, g=None, b=None, eps=1e-5):  # [..., d], [d], [d] -> [..., d]
    mean = x.mean(axis=-1, keepdims=True)  # [..., 1]
    centred = x - mean  # [..., d]
    variance = (centred * centred).mean(axis=-1, keepdims=True)  # [..., 1]
    x = centred / np.sqrt(variance + eps)  # [..., d] zero mean, unit variance per token
    if g is not None:
        x = x * g  # [..., d]
    if b is not None:
        x = x + b  # [..., d]
    return x


def rms_norm(x, g=None, b=None, eps=1e-6):  # [..., d], [d], None -> [..., d]
    """Scale each vector to unit root-mean-square, then by the gain (Llama's norm: no centring, no bias)."""
    x = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)  # [..., d]
    return x if g is None else x * g


NORMS = {"layer": layer_norm, "rms": rms_norm}


def linear(x, w, b=None):  # [T, in], [in, out], [out] or None -> [T, out]
    return x @ w if b is None else x @ w + b


def gelu(x):  # [...] -> [...]
    return 0.5 * x * (1.0 + np.tanh(GELU_SCALE * (x + 0.044715 * x * x * x)))


def relu(x):  # [...] -> [...]
    return np.maximum(x, 0.0)


def silu(x):  # [...] -> [...]  x * sigmoid(x), the gate of SwiGLU
    return x / (1.0 + np.exp(-x))


ACTIVATIONS = {"gelu": gelu, "relu": relu}  # the MLPs of the form down(act(up(x))); "swiglu" gates instead


def softmax(x, axis=-1):  # [...] -> [...]
    exp = np.exp(x - x.max(axis=axis, keepdims=True))  # subtract the max: exp never overflows
    return exp / exp.sum(axis=axis, keepdims=True)


def causal_mask(T, n_key=None, dtype=np.float32):  # -> [T, n_key]
    """Additive mask: 0 where a query may look, MASKED on the future.

    With a KV cache the T new queries sit at the end of n_key keys: query i is at position
    n_key - T + i and sees keys 0..n_key - T + i.
    """
    n_key = T if n_key is None else n_key
    future = np.triu(np.ones((T, n_key), dtype=bool), k=n_key - T + 1)  # [T, n_key]
    return np.where(future, MASKED, 0.0).astype(dtype)


def rotary_inverse_frequencies(d_head, theta=10_000.0):  # -> [d_head / 2] float32, radians per position
    """Pair i of a head turns by theta ** (-2i / d_head) radians per position, computed in float32 as transformers does."""
    exponents = np.arange(0, d_head, 2, dtype=np.float32) / np.float32(d_head)  # [d_head / 2]
    return (1.0 / np.float32(theta) ** exponents).astype(np.float32)


def rotary_angles(inv_freq, start, end):  # [d_head / 2], positions start..end-1 -> cos, sin: [T, d_head / 2] float32
    """The angle of each rotary pair at each position (float32, as transformers computes it)."""
    angles = np.arange(start, end, dtype=np.float32)[:, None] * inv_freq[None, :]  # [T, d_head / 2]
    return np.cos(angles), np.sin(angles)


def rope(x, cos, sin):  # [H, T, d_head], [T, d_head / 2] x2 -> [H, T, d_head]
    """Rotate each pair (x_i, x_{i + d_head/2}) by its angle (the "rotate half" pairing Llama checkpoints use):
    a query and a key then score by how far apart they are, not where they are."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # [H, T, d_head / 2] x2
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def attention(q, k, v, mask):  # [H, Tq, dh], [H_kv, Tk, dh], [H_kv, Tk, dh], [Tq, Tk] -> [H, Tq, dh], [H, Tq, Tk]
    """Scaled dot-product attention; H // H_kv consecutive query heads share each key/value head
    (grouped-query attention), computed by stacking their queries, never by copying keys and values."""
    H, Tq, d_head = q.shape
    n_kv = k.shape[0]
    grouped = q.reshape(n_kv, H // n_kv * Tq, d_head)  # [H_kv, group * Tq, dh] each KV head's queries stacked
    scores = (grouped @ np.swapaxes(k, -1, -2) / math.sqrt(d_head)).reshape(H, Tq, -1) + mask  # [H, Tq, Tk]
    weights = softmax(scores)  # [H, Tq, Tk] each row sums to 1
    heads = weights.reshape(n_kv, -1, weights.shape[-1]) @ v  # [H_kv, group * Tq, dh]
    return heads.reshape(H, Tq, d_head), weights


def split_heads(x, n_head):  # [T, d] -> [H, T, d_head]
    T, d = x.shape
    return x.reshape(T, n_head, d // n_head).transpose(1, 0, 2)


def merge_heads(x):  # [H, T, d_head] -> [T, d]
    H, T, d_head = x.shape
    return x.transpose(1, 0, 2).reshape(T, H * d_head)


def mha(x, qkv, o, n_head, n_kv_heads=None, rope_angles=None, cache=None, hook_z=None, causal=True):  # [T, d] -> [T, d], [H, T, n_past + T]
    """Multi-head self-attention, causal unless causal=False (an encoder: every token sees every token).
    One fused matmul gives q | k | v (H, H_kv, H_kv heads); rope_angles (cos, sin) rotate q and k.
    With a KV cache (one layer's, see engine.model.transformer.LayerCache) the new keys and values join
    the n_past cached ones and the T new queries attend over all of them.
    hook_z, if given, sees each head's output z [H, T, d_head] before `o` and returns what goes on
    (TransformerLens's `attn.hook_z`: ablations and captures, see engine.model.interventions)."""
    n_kv_heads = n_kv_heads or n_head
    fused = linear(x, **qkv)  # [T, d] -> [T, (H + 2 H_kv) d_head]
    d_head = fused.shape[-1] // (n_head + 2 * n_kv_heads)
    q, k, v = np.split(fused, [n_head * d_head, (n_head + n_kv_heads) * d_head], axis=-1)  # [T, H dh], [T, H_kv dh] x2
    q, k, v = split_heads(q, n_head), split_heads(k, n_kv_heads), split_heads(v, n_kv_heads)  # [H, T, dh], [H_kv, T, dh] x2
    if rope_angles is not None:
        q, k = rope(q, *rope_angles), rope(k, *rope_angles)  # positions enter here, not in the embedding
    if cache is not None:
        k, v = cache.append(k, v)  # 2 x [H_kv, n_past + T, d_head]
    mask = causal_mask(q.shape[1], k.shape[1], dtype=x.dtype) if causal else np.zeros((q.shape[1], k.shape[1]), x.dtype)  # [T, n_past + T]
    heads, weights = attention(q, k, v, mask)  # [H, T, d_head], [H, T, n_past + T]
    if hook_z is not None:
        heads = hook_z(heads)  # [H, T, d_head]
    return linear(merge_heads(heads), **o), weights  # [T, d], [H, T, n_past + T]


def ffn(x, up, down, gate=None, activation="gelu", hook_post=None):  # [T, d] -> [T, d], [T, d_ff]
    """Position-wise feed-forward: down(act(up(x))), or SwiGLU's down(silu(gate(x)) * up(x)); also returns
    the hidden activations (what `down` reads). hook_post, if given, sees them and returns what goes on."""
    if activation == "swiglu":
        hidden = silu(linear(x, **gate)) * linear(x, **up)  # [T, d] -> [T, d_ff]
    else:
        hidden = ACTIVATIONS[activation](linear(x, **up))  # [T, d] -> [T, d_ff]
    if hook_post is not None:
        hidden = hook_post(hidden)  # [T, d_ff]
    return linear(hidden, **down), hidden  # [T, d_ff] -> [T, d]


def block(
    x,
    norm1,
    attn,
    norm2,
    mlp,
    n_head,
    *,
    n_kv_heads=None,
    norm="layer",
    activation="gelu",
    eps=1e-5,
    rope_angles=None,
    cache=None,
    residual=True,
    layer_norm_on=True,
    pre_ln=True,
    causal=True,
    hooks=None,
):
    """One transformer block: [T, d] -> [T, d], captures {name: array} for this block.

    pre-norm (GPT-2, Llama):  x = x + MHA(norm1(x));  x = x + FFN(norm2(x))
    post-norm (2017):         x = norm1(x + MHA(x));  x = norm2(x + FFN(x))
    residual=False drops the `x +`, layer_norm_on=False drops the norms, causal=False lets every token
    see every other (an encoder); `cache` is this layer's KV cache.
    hooks: {"attn.hook_z": fn, "mlp.hook_post": fn}, each optional (see mha and ffn).
    """
    hooks = hooks or {}
    hook_z, hook_post = hooks.get("attn.hook_z"), hooks.get("mlp.hook_post")
    normalize = NORMS[norm]

    def norm_of(h, gain):  # [T, d] -> [T, d]
        return normalize(h, **gain, eps=eps) if layer_norm_on else h

    def add(skip, h):  # [T, d], [T, d] -> [T, d]
        return skip + h if residual else h

    def attend(h):  # [T, d] -> [T, d], [H, T, n_past + T]
        return mha(h, **attn, n_head=n_head, n_kv_heads=n_kv_heads, rope_angles=rope_angles, cache=cache, hook_z=hook_z, causal=causal)

    resid_pre = x  # [T, d]
    if pre_ln:
        attn_out, pattern = attend(norm_of(x, norm1))  # [T, d], [H, T, n_past + T]
        x = add(x, attn_out)  # [T, d]
        resid_mid = x
        mlp_out, mlp_post = ffn(norm_of(x, norm2), **mlp, activation=activation, hook_post=hook_post)  # [T, d], [T, d_ff]
        x = add(x, mlp_out)  # [T, d]
    else:
        attn_out, pattern = attend(x)  # [T, d], [H, T, n_past + T]
        x = norm_of(add(x, attn_out), norm1)  # [T, d]
        resid_mid = x
        mlp_out, mlp_post = ffn(x, **mlp, activation=activation, hook_post=hook_post)  # [T, d], [T, d_ff]
        x = norm_of(add(x, mlp_out), norm2)  # [T, d]
    captures = {
        "hook_resid_pre": resid_pre,
        "attn.hook_pattern": pattern,
        "hook_attn_out": attn_out,
        "hook_resid_mid": resid_mid,
        "mlp.hook_post": mlp_post,
        "hook_mlp_out": mlp_out,
        "hook_resid_post": x,
    }
    return x, captures


def stack(x, blocks, n_head, caches=None, capture=True, hooks=None, **switches):  # [T, d] -> [T, d], captures
    """Run the blocks in order (block i with caches[i], if given); captures are named like
    TransformerLens (`blocks.{i}.hook_resid_post`), none kept with capture=False.
    hooks: {"blocks.{i}.attn.hook_z" or "blocks.{i}.mlp.hook_post": fn}, as in TransformerLens."""
    captures = {}
    hooks = hooks or {}
    for i, params in enumerate(blocks):
        cache = None if caches is None else caches[i]
        prefix = f"blocks.{i}."
        layer_hooks = {name.removeprefix(prefix): fn for name, fn in hooks.items() if name.startswith(prefix)}
        x, block_captures = block(x, **params, n_head=n_head, cache=cache, hooks=layer_hooks, **switches)  # [T, d] -> [T, d]
        if capture:
            captures.update({f"blocks.{i}.{name}": value for name, value in block_captures.items()})
    return x, captures
