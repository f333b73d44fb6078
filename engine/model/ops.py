"""The transformer block from scratch in NumPy, picoGPT style.

Pure functions, one idea each. Shapes: T tokens, d model width, H heads, d_head = d // H.
Parameters are nested dicts named like the GPT-2 checkpoint (`c_attn`, `c_proj`, `c_fc`, LN `g`/`b`),
so a block is called as `block(x, **params, n_head=n_head)`.

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


def linear(x, w, b):  # [T, in], [in, out], [out] -> [T, out]
    return x @ w + b


def gelu(x):  # [...] -> [...]
    return 0.5 * x * (1.0 + np.tanh(GELU_SCALE * (x + 0.044715 * x * x * x)))


def relu(x):  # [...] -> [...]
    return np.maximum(x, 0.0)


ACTIVATIONS = {"gelu": gelu, "relu": relu}


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


def attention(q, k, v, mask):  # [..., Tq, dh], [..., Tk, dh], [..., Tk, dh], [Tq, Tk] -> [..., Tq, dh], [..., Tq, Tk]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]) + mask  # [..., Tq, Tk]
    weights = softmax(scores)  # [..., Tq, Tk] each row sums to 1
    return weights @ v, weights


def split_heads(x, n_head):  # [T, d] -> [H, T, d_head]
    T, d = x.shape
    return x.reshape(T, n_head, d // n_head).transpose(1, 0, 2)


def merge_heads(x):  # [H, T, d_head] -> [T, d]
    H, T, d_head = x.shape
    return x.transpose(1, 0, 2).reshape(T, H * d_head)


def mha(x, c_attn, c_proj, n_head, cache=None, hook_z=None, causal=True):  # [T, d] -> [T, d], [H, T, n_past + T]
    """Multi-head self-attention, causal unless causal=False (an encoder: every token sees every token).
    With a KV cache (one layer's, see gpt2.LayerCache) the new
    keys and values join the n_past cached ones and the T new queries attend over all of them.
    hook_z, if given, sees each head's output z [H, T, d_head] before c_proj and returns what goes on
    (TransformerLens's `attn.hook_z`: ablations and captures, see engine.model.interventions)."""
    qkv = linear(x, **c_attn)  # [T, d] -> [T, 3d]
    q, k, v = (split_heads(part, n_head) for part in np.split(qkv, 3, axis=-1))  # 3 x [H, T, d_head]
    if cache is not None:
        k, v = cache.append(k, v)  # 2 x [H, n_past + T, d_head]
    mask = causal_mask(q.shape[1], k.shape[1], dtype=x.dtype) if causal else np.zeros((q.shape[1], k.shape[1]), x.dtype)  # [T, n_past + T]
    heads, weights = attention(q, k, v, mask)  # [H, T, d_head], [H, T, n_past + T]
    if hook_z is not None:
        heads = hook_z(heads)  # [H, T, d_head]
    return linear(merge_heads(heads), **c_proj), weights  # [T, d], [H, T, n_past + T]


def ffn(x, c_fc, c_proj, activation="gelu", hook_post=None):  # [T, d] -> [T, d], [T, d_ff]
    """Position-wise feed-forward; also returns the hidden activations (after the nonlinearity).
    hook_post, if given, sees those activations and returns what goes on (`mlp.hook_post`)."""
    hidden = ACTIVATIONS[activation](linear(x, **c_fc))  # [T, d] -> [T, d_ff]
    if hook_post is not None:
        hidden = hook_post(hidden)  # [T, d_ff]
    return linear(hidden, **c_proj), hidden  # [T, d_ff] -> [T, d]


def block(
    x,
    ln_1,
    attn,
    ln_2,
    mlp,
    n_head,
    *,
    activation="gelu",
    eps=1e-5,
    cache=None,
    residual=True,
    layer_norm_on=True,
    pre_ln=True,
    causal=True,
    hooks=None,
):
    """One transformer block: [T, d] -> [T, d], captures {name: array} for this block.

    pre-LN (GPT-2):  x = x + MHA(LN(x));  x = x + FFN(LN(x))
    post-LN (2017):  x = LN(x + MHA(x));  x = LN(x + FFN(x))
    residual=False drops the `x +`, layer_norm_on=False drops the LNs, causal=False lets every token see
    every other (an encoder); `cache` is this layer's KV cache.
    hooks: {"attn.hook_z": fn, "mlp.hook_post": fn}, each optional (see mha and ffn).
    """
    hooks = hooks or {}
    hook_z, hook_post = hooks.get("attn.hook_z"), hooks.get("mlp.hook_post")

    def norm(h, ln):  # [T, d] -> [T, d]
        return layer_norm(h, **ln, eps=eps) if layer_norm_on else h

    def add(skip, h):  # [T, d], [T, d] -> [T, d]
        return skip + h if residual else h

    resid_pre = x  # [T, d]
    if pre_ln:
        attn_out, pattern = mha(
            norm(x, ln_1), **attn, n_head=n_head, cache=cache, hook_z=hook_z, causal=causal
        )  # [T, d], [H, T, n_past + T]
        x = add(x, attn_out)  # [T, d]
        resid_mid = x
        mlp_out, mlp_post = ffn(norm(x, ln_2), **mlp, activation=activation, hook_post=hook_post)  # [T, d], [T, d_ff]
        x = add(x, mlp_out)  # [T, d]
    else:
        attn_out, pattern = mha(x, **attn, n_head=n_head, cache=cache, hook_z=hook_z, causal=causal)  # [T, d], [H, T, n_past + T]
        x = norm(add(x, attn_out), ln_1)  # [T, d]
        resid_mid = x
        mlp_out, mlp_post = ffn(x, **mlp, activation=activation, hook_post=hook_post)  # [T, d], [T, d_ff]
        x = norm(add(x, mlp_out), ln_2)  # [T, d]
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
