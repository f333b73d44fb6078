"""GPT-2 in NumPy vs transformers (fp32, eager): logits, captures, KV cache, loading, context end."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from engine.model.ops import layer_norm
from engine.model.transformer import NumpyLM
from engine.tools.factories import random_gpt2
from engine.views.parity import incremental_logits, torch_logits

TOLERANCE = 1e-4


def random_ids(seed, n, vocab_size):
    return np.random.default_rng(seed).integers(0, vocab_size, n).tolist()


def max_diff(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.mark.parametrize("length", [1, 2, 9, 33, 64])
def test_tiny_logits_match_transformers(tiny_hf, tiny_numpy, length):
    ids = random_ids(length, length, tiny_numpy.vocab_size)
    logits, _ = tiny_numpy.forward(ids)
    assert logits.dtype == np.float32 and logits.shape == (length, 256)
    assert max_diff(logits, torch_logits(tiny_hf, ids)) <= TOLERANCE


def test_gpt2_small_shape_logits_match_transformers(gpt2_small_hf, gpt2_small_numpy):
    """124M shape; prompt lengths sampled from 1..64 (plus both ends)."""
    model = gpt2_small_numpy
    shape = (model.n_layer, model.n_head, model.d_model, model.vocab_size, model.n_positions)
    assert shape == (12, 12, 768, 50257, 1024)
    lengths = [1, 64, *np.random.default_rng(0).integers(2, 64, 2).tolist()]
    for length in lengths:
        ids = random_ids(length, length, model.vocab_size)
        logits, _ = model.forward(ids, capture=False)
        assert max_diff(logits, torch_logits(gpt2_small_hf, ids)) <= TOLERANCE, length


def test_gpt2_small_shape_kv_cache_equals_full_recompute(gpt2_small_numpy):
    ids = random_ids(7, 16, gpt2_small_numpy.vocab_size)
    full, _ = gpt2_small_numpy.forward(ids, capture=False)
    assert max_diff(incremental_logits(gpt2_small_numpy, ids), full) <= TOLERANCE


@pytest.mark.parametrize("splits", [[1] * 12, [5, 1, 1, 5], [3, 4, 5], [12]])
def test_kv_cache_chunks_equal_full_recompute(tiny_numpy, splits):
    ids = random_ids(3, 12, tiny_numpy.vocab_size)
    full, full_captures = tiny_numpy.forward(ids)
    cache, rows, start = tiny_numpy.new_cache(), [], 0
    for n in splits:
        logits, captures = tiny_numpy.forward(ids[start : start + n], cache)
        assert captures["blocks.1.attn.hook_pattern"].shape == (4, n, start + n)
        expected_pattern = full_captures["blocks.1.attn.hook_pattern"][:, start : start + n, : start + n]
        np.testing.assert_allclose(captures["blocks.1.attn.hook_pattern"], expected_pattern, atol=1e-6)
        rows.append(logits)
        start += n
        assert len(cache) == start
    assert max_diff(np.concatenate(rows), full) <= 1e-5


def test_captures_match_transformers_hidden_states_and_attentions(tiny_hf, tiny_numpy):
    ids = random_ids(4, 10, tiny_numpy.vocab_size)
    with torch.no_grad():
        out = tiny_hf(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    logits, captures = tiny_numpy.forward(ids)
    for i in range(tiny_numpy.n_layer):
        np.testing.assert_allclose(captures[f"blocks.{i}.hook_resid_pre"], out.hidden_states[i][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(captures[f"blocks.{i}.attn.hook_pattern"], out.attentions[i][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(captures["ln_final.hook_normalized"], out.hidden_states[-1][0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(captures["blocks.0.hook_resid_post"], captures["blocks.1.hook_resid_pre"])
    assert all(value.dtype == np.float32 for value in captures.values())
    no_captures_logits, no_captures = tiny_numpy.forward(ids, capture=False)
    assert no_captures == {}
    np.testing.assert_array_equal(no_captures_logits, logits)


def test_logits_to_keep_unembeds_only_the_last_rows(tiny_numpy):
    ids = random_ids(12, 9, tiny_numpy.vocab_size)
    full, _ = tiny_numpy.forward(ids)
    last_two, _ = tiny_numpy.forward(ids, logits_to_keep=2)
    assert last_two.shape == (2, 256)
    np.testing.assert_allclose(last_two, full[-2:], atol=1e-6)


def test_logit_lens_of_the_last_stream_is_the_logits(tiny_numpy):
    ids = random_ids(5, 6, tiny_numpy.vocab_size)
    logits, captures = tiny_numpy.forward(ids)
    np.testing.assert_allclose(tiny_numpy.lens(captures["blocks.1.hook_resid_post"]), logits, atol=1e-5)
    early = tiny_numpy.lens(captures["blocks.0.hook_resid_post"])
    assert early.shape == logits.shape and not np.allclose(early, logits)


def test_context_end_positions_match_transformers(short_context_hf):
    model = NumpyLM.from_hf(short_context_hf)
    n_positions = model.n_positions
    assert n_positions < 64  # the short-context fixture, so every position is cheap to reach
    ids = random_ids(6, n_positions, model.vocab_size)
    expected = torch_logits(short_context_hf, ids)
    assert max_diff(model.forward(ids)[0], expected) <= TOLERANCE
    cache = model.new_cache()
    model.forward(ids[:-3], cache)
    last_rows = np.concatenate([model.forward([token], cache)[0] for token in ids[-3:]])  # the last 3 positions
    assert len(cache) == n_positions
    assert max_diff(last_rows, expected[-3:]) <= TOLERANCE
    with pytest.raises(ValueError, match="n_positions"):
        model.forward([1], cache)
    with pytest.raises(ValueError, match="n_positions"):
        model.forward(ids + [1])


def test_crop_rolls_the_cache_back(tiny_numpy):
    ids = random_ids(8, 10, tiny_numpy.vocab_size)
    cache = tiny_numpy.new_cache()
    tiny_numpy.forward(ids, cache)
    cache.crop(6)
    assert len(cache) == 6
    other = [1, 2, 3]
    logits, _ = tiny_numpy.forward(other, cache)
    assert max_diff(logits, tiny_numpy.forward(ids[:6] + other)[0][6:]) <= 1e-5
    with pytest.raises(ValueError):
        cache.crop(10)


def test_bad_token_ids_are_rejected(tiny_numpy):
    for ids in ([], [-1], [256]):
        with pytest.raises(ValueError):
            tiny_numpy.forward(ids)


def test_from_dir_equals_from_hf(tiny_dir, tiny_numpy):
    loaded = NumpyLM.from_dir(tiny_dir)
    assert (loaded.n_layer, loaded.n_head, loaded.d_model, loaded.n_positions) == (2, 4, 64, 64)
    assert loaded.arch == tiny_numpy.arch
    ids = random_ids(9, 16, 256)
    np.testing.assert_array_equal(loaded.forward(ids)[0], tiny_numpy.forward(ids)[0])


def write_checkpoint(path, config, tensors):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(path / "model.safetensors"))


def test_from_dir_reads_hub_style_names_and_half_precision(tiny_dir, tiny_numpy, tmp_path):
    """The original gpt2 checkpoint has no `transformer.` prefix and stores attn.bias mask buffers."""
    config = json.loads((tiny_dir / "config.json").read_text())
    state = {k.removeprefix("transformer."): v for k, v in load_file(str(tiny_dir / "model.safetensors")).items()}
    state["h.0.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), dtype=np.float32))
    write_checkpoint(tmp_path / "hub", config, state)
    hub = NumpyLM.from_dir(tmp_path / "hub")
    ids = random_ids(10, 8, 256)
    np.testing.assert_array_equal(hub.forward(ids)[0], tiny_numpy.forward(ids)[0])
    write_checkpoint(tmp_path / "half", config, {k: v.astype(np.float16) for k, v in state.items()})
    half = NumpyLM.from_dir(tmp_path / "half")
    assert half.params["embed"].dtype == np.float32
    assert max_diff(half.forward(ids)[0], tiny_numpy.forward(ids)[0]) < 0.05


def test_from_dir_reads_bfloat16(tmp_path):
    hf = random_gpt2("tiny", seed=3).to(torch.bfloat16)
    hf.save_pretrained(tmp_path)
    weight = NumpyLM.from_dir(tmp_path).params["blocks"][0]["attn"]["qkv"]["w"]
    assert weight.dtype == np.float32
    np.testing.assert_array_equal(weight, hf.transformer.h[0].attn.c_attn.weight.detach().float().numpy())


def test_missing_directory_and_files_raise_file_not_found(tmp_path, tiny_dir):
    with pytest.raises(FileNotFoundError, match="not found"):
        NumpyLM.from_dir(tmp_path / "nope")
    (tmp_path / "only_config").mkdir()
    (tmp_path / "only_config" / "config.json").write_text((tiny_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        NumpyLM.from_dir(tmp_path / "only_config")


def test_checkpoints_not_computed_raise_value_error(tiny_dir, tmp_path):
    config = json.loads((tiny_dir / "config.json").read_text())
    tensors = load_file(str(tiny_dir / "model.safetensors"))
    write_checkpoint(tmp_path / "bert", {**config, "model_type": "bert"}, tensors)
    with pytest.raises(ValueError, match="'bert' model, which tfund does not run"):
        NumpyLM.from_dir(tmp_path / "bert")
    write_checkpoint(tmp_path / "llama", {**config, "model_type": "llama"}, tensors)
    with pytest.raises(ValueError, match="no integer hidden_size"):  # a GPT-2 config called llama
        NumpyLM.from_dir(tmp_path / "llama")
    del tensors["transformer.h.1.mlp.c_fc.weight"]
    write_checkpoint(tmp_path / "missing", config, tensors)
    with pytest.raises(ValueError, match="h.1.mlp.c_fc.weight"):
        NumpyLM.from_dir(tmp_path / "missing")
    write_checkpoint(tmp_path / "erf", {**config, "activation_function": "gelu"}, {})
    with pytest.raises(ValueError, match="activation_function"):
        NumpyLM.from_dir(tmp_path / "erf")


def test_from_hf_copies_weights(tiny_hf):
    model = NumpyLM.from_hf(tiny_hf)
    assert not np.shares_memory(model.params["embed"], tiny_hf.transformer.wte.weight.detach().numpy())
    assert model.params["embed"].flags["C_CONTIGUOUS"] and model.unembedding.flags["C_CONTIGUOUS"]


def test_new_cache_preallocates_float32_buffers(tiny_numpy):
    cache = tiny_numpy.new_cache()
    assert len(cache) == 0
    assert cache.k.shape == cache.v.shape == (2, 4, 64, 16) and cache.k.dtype == np.float32


@settings(max_examples=20, deadline=None)
@given(ids=st.lists(st.integers(0, 255), min_size=2, max_size=20), t=st.integers(0, 18), data=st.data())
def test_gpt2_numpy_is_causal(tiny_numpy, ids, t, data):
    """Changing tokens after position t never changes logits or captures at positions <= t."""
    t = min(t, len(ids) - 2)
    tail = data.draw(st.lists(st.integers(0, 255), min_size=len(ids) - t - 1, max_size=len(ids) - t - 1))
    changed = ids[: t + 1] + tail
    logits, captures = tiny_numpy.forward(ids)
    logits_changed, captures_changed = tiny_numpy.forward(changed)
    np.testing.assert_allclose(logits_changed[: t + 1], logits[: t + 1], rtol=0, atol=1e-6)
    for name in ("blocks.1.hook_resid_post", "blocks.1.attn.hook_pattern"):
        before, after = captures[name], captures_changed[name]
        rows = (slice(None), slice(0, t + 1)) if before.ndim == 3 else slice(0, t + 1)
        np.testing.assert_allclose(after[rows], before[rows], rtol=0, atol=1e-6)


def test_ln_final_capture_is_the_final_layer_norm_of_the_last_stream(tiny_numpy):
    _, captures = tiny_numpy.forward(random_ids(11, 7, 256))
    eps = tiny_numpy.arch.norm_eps
    expected = layer_norm(captures["blocks.1.hook_resid_post"], **tiny_numpy.params["norm_f"], eps=eps)
    np.testing.assert_array_equal(captures["ln_final.hook_normalized"], expected)
