"""The from-scratch ops: each against an independent reference (torch, the seed notebook, GPT-2's block)."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.model.ops import (
    attention,
    block,
    causal_mask,
    ffn,
    gelu,
    layer_norm,
    linear,
    mha,
    relu,
    softmax,
    stack,
)


def random_params(rng, d, d_ff, scale=0.1):  # one block's params, zero biases, LN without affine
    def dense(n_in, n_out):
        return {"w": rng.standard_normal((n_in, n_out)) * scale, "b": np.zeros(n_out)}

    return {
        "norm1": {},
        "attn": {"qkv": dense(d, 3 * d), "o": dense(d, d)},
        "norm2": {},
        "mlp": {"up": dense(d, d_ff), "down": dense(d_ff, d)},
    }


def test_layer_norm_gives_zero_mean_unit_variance_per_token():
    x = np.random.default_rng(0).standard_normal((7, 48)) * 5 + 3
    y = layer_norm(x)
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1, atol=1e-5)  # eps makes it slightly below 1


def test_layer_norm_affine_matches_torch():
    rng = np.random.default_rng(1)
    x, g, b = (rng.standard_normal(s).astype(np.float32) for s in [(5, 16), 16, 16])
    x_t, g_t, b_t = map(torch.from_numpy, (x, g, b))
    expected = torch.nn.functional.layer_norm(x_t, (16,), g_t, b_t, eps=1e-5)
    y = layer_norm(x, g, b)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected.numpy(), atol=1e-5)


def test_gelu_is_gpt2_tanh_form_and_keeps_float32():
    x = np.linspace(-6, 6, 101, dtype=np.float32)
    expected = torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    assert gelu(x).dtype == np.float32
    np.testing.assert_allclose(gelu(x), expected, atol=1e-6)


def test_relu_and_linear():
    x = np.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(relu(x), [[0.0, 2.0]])
    w, b = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]]), np.array([0.5, 0.0, -1.0])  # Conv1D layout [in, out]
    np.testing.assert_array_equal(linear(x, w, b), [[-0.5, 2.0, -1.0]])


def test_softmax_is_stable_and_normalised():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    p = softmax(x)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    np.testing.assert_allclose(p[0], torch.softmax(torch.tensor([0.0, 1.0, -1.0]), -1).double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(p[1], 1 / 3)


def test_causal_mask_hides_the_future_also_with_a_cache_offset():
    mask = causal_mask(4)
    np.testing.assert_array_equal(mask < -1e9, np.triu(np.ones((4, 4), dtype=bool), k=1))
    np.testing.assert_array_equal(mask[np.tril_indices(4)], 0)
    offset = causal_mask(2, 5)  # two new queries at positions 3 and 4 over five keys
    assert (offset[0, :4] == 0).all() and offset[0, 4] < -1e9
    assert (offset[1] == 0).all()
    assert causal_mask(3).dtype == np.float32


def test_attention_weights_are_causal_rows_summing_to_one():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 6, 4)) for _ in range(3))
    out, weights = attention(q, k, v, causal_mask(6, dtype=np.float64))
    assert out.shape == (2, 6, 4) and weights.shape == (2, 6, 6)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0)
    assert (weights[:, np.triu_indices(6, k=1)[0], np.triu_indices(6, k=1)[1]] == 0).all()
    np.testing.assert_allclose(out[:, 0], v[:, 0])  # the first token can only see itself


def test_mha_matches_torch_scaled_dot_product_attention():
    rng = np.random.default_rng(3)
    d, n_head, T = 16, 4, 5
    params = random_params(rng, d, 32)["attn"]
    x = rng.standard_normal((T, d))
    out, weights = mha(x, **params, n_head=n_head)
    qkv = torch.from_numpy(x @ params["qkv"]["w"])
    q, k, v = (t.reshape(T, n_head, d // n_head).transpose(0, 1) for t in qkv.split(d, dim=-1))
    heads = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # [H, T, d_head]
    expected = heads.transpose(0, 1).reshape(T, d).numpy() @ params["o"]["w"]
    np.testing.assert_allclose(out, expected, atol=1e-10)
    assert weights.shape == (n_head, T, T)


def test_block_matches_the_seed_notebook_block():
    """The seed: y = X + MHA(LN(X)); z = y + ReLU(LN(y) W1 + b1) W2 + b2, heads looped one by one."""
    rng = np.random.default_rng(42)
    T, d_model, nheads, d_ff = 8, 32, 4, 64
    d_k = d_model // nheads
    X = rng.standard_normal((T, d_model)) * 0.1
    W_Q, W_K, W_V, W_O = (rng.standard_normal((d_model, d_model)) * 0.1 for _ in range(4))
    W1, b1 = rng.standard_normal((d_model, d_ff)) * 0.1, np.zeros(d_ff)
    W2, b2 = rng.standard_normal((d_ff, d_model)) * 0.1, np.zeros(d_model)

    def split_heads(M):
        return M.reshape(T, nheads, d_k).transpose(1, 0, 2)

    def mha_block(x):
        Qh, Kh, Vh = map(split_heads, (x @ W_Q, x @ W_K, x @ W_V))
        heads = []
        for h in range(nheads):
            scores = (Qh[h] @ Kh[h].T) / np.sqrt(d_k)
            scores = scores - np.triu(np.ones_like(scores), k=1) * 1e9
            heads.append(softmax(scores, -1) @ Vh[h])
        return np.stack(heads, axis=1).reshape(T, d_model) @ W_O

    y = X + mha_block(layer_norm(X))
    z = y + np.maximum(0, layer_norm(y) @ W1 + b1) @ W2 + b2

    params = {
        "norm1": {},
        "attn": {
            "qkv": {"w": np.concatenate([W_Q, W_K, W_V], axis=1), "b": np.zeros(3 * d_model)},
            "o": {"w": W_O, "b": np.zeros(d_model)},
        },
        "norm2": {},
        "mlp": {"up": {"w": W1, "b": b1}, "down": {"w": W2, "b": b2}},
    }
    out, captures = block(X, **params, n_head=nheads, activation="relu")
    np.testing.assert_allclose(out, z, atol=1e-12)
    np.testing.assert_allclose(captures["hook_resid_mid"], y, atol=1e-12)


def test_block_matches_a_gpt2_block(tiny_hf, tiny_numpy):
    ids = torch.tensor([[3, 17, 42, 99, 7, 7, 250]])
    with torch.no_grad():
        out = tiny_hf(ids, output_hidden_states=True, output_attentions=True)
    x = out.hidden_states[0][0].numpy()  # embeddings [T, d]
    y, captures = block(x, **tiny_numpy.params["blocks"][0], n_head=tiny_numpy.n_head)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, out.hidden_states[1][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(captures["attn.hook_pattern"], out.attentions[0][0].numpy(), atol=1e-6)


def test_post_ln_block_ends_normalised_and_switches_compose():
    rng = np.random.default_rng(4)
    params = random_params(rng, 16, 32)
    x = rng.standard_normal((6, 16))
    post, _ = block(x, **params, n_head=2, pre_ln=False)
    np.testing.assert_allclose(post.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(post.var(axis=-1), 1, atol=1e-3)
    bare, captures = block(x, **params, n_head=2, residual=False, layer_norm_on=False, activation="relu")
    attn_out, _ = mha(x, **params["attn"], n_head=2)
    expected, hidden = ffn(attn_out, **params["mlp"], activation="relu")
    np.testing.assert_allclose(bare, expected)
    np.testing.assert_allclose(captures["mlp.hook_post"], hidden)
    assert (hidden >= 0).all()


def test_stack_captures_are_named_like_transformer_lens_and_chain():
    rng = np.random.default_rng(5)
    blocks = [random_params(rng, 16, 32) for _ in range(3)]
    x = rng.standard_normal((5, 16))
    out, captures = stack(x, blocks, n_head=4)
    for i in range(3):
        assert captures[f"blocks.{i}.attn.hook_pattern"].shape == (4, 5, 5)
        assert captures[f"blocks.{i}.mlp.hook_post"].shape == (5, 32)
        assert captures[f"blocks.{i}.hook_resid_mid"].shape == (5, 16)
    np.testing.assert_array_equal(captures["blocks.0.hook_resid_pre"], x)
    np.testing.assert_array_equal(captures["blocks.1.hook_resid_pre"], captures["blocks.0.hook_resid_post"])
    np.testing.assert_array_equal(captures["blocks.2.hook_resid_post"], out)


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(2, 12),
    t=st.integers(0, 10),
    seed=st.integers(0, 2**16),
    pre_ln=st.booleans(),
    residual=st.booleans(),
)
def test_stack_is_causal(T, t, seed, pre_ln, residual):
    """Changing the inputs after position t never changes any output at positions <= t."""
    t = min(t, T - 2)
    rng = np.random.default_rng(seed)
    blocks = [random_params(rng, 16, 32, scale=0.5) for _ in range(2)]
    x = rng.standard_normal((T, 16))
    changed = x.copy()
    changed[t + 1 :] = rng.standard_normal((T - t - 1, 16)) * 3
    switches = dict(pre_ln=pre_ln, residual=residual)
    out, captures = stack(x, blocks, n_head=4, **switches)
    out_changed, captures_changed = stack(changed, blocks, n_head=4, **switches)
    np.testing.assert_allclose(out_changed[: t + 1], out[: t + 1], rtol=0, atol=1e-12)
    pattern, pattern_changed = captures["blocks.1.attn.hook_pattern"], captures_changed["blocks.1.attn.hook_pattern"]
    np.testing.assert_allclose(pattern_changed[:, : t + 1], pattern[:, : t + 1], rtol=0, atol=1e-12)
    assert not math.isclose(float(np.abs(out_changed - out).max()), 0.0)  # the change did reach later rows
