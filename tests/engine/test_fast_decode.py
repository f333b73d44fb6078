"""The static-cache decode path: same captures and greedy tokens as the eager TorchBackend (CPU)."""

import copy

import numpy as np
import pytest
import torch

from engine.events import SamplingConfig
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.cuda_graph import FastTorchBackend, UnsupportedModelError, compare_with_eager, static_span
from engine.runtime.backends.torch_eager import TorchBackend
from engine.runtime.sampler import Sampler
from engine.tools.bench_decode import bench_fast
from engine.tools.factories import random_gpt2

TOLERANCE = 1e-4  # fp32, same weights, different kernels
PROMPT_IDS = [5, 17, 42, 8, 99, 3]
FIELDS = ("logits", "attention", "resid", "lens_p")


def assert_same_output(a, b, tolerance=TOLERANCE):
    assert a.attention.shape == b.attention.shape
    for name in FIELDS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=tolerance, rtol=0, err_msg=name)
    np.testing.assert_array_equal(a.lens_ids, b.lens_ids)


def hf_generate_greedy(hf_model, prompt_ids, n):
    with torch.no_grad():
        out = hf_model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=n,
            eos_token_id=None,
            pad_token_id=0,
        )
    return out[0, len(prompt_ids) :].tolist()


@pytest.mark.parametrize("static_spans", [False, True], ids=["exact-span", "graph-span"])
def test_prefill_and_20_decode_steps_match_torch_backend(tiny_hf, static_spans):
    # graph-span runs on the CPU exactly what a CUDA graph replays: attention over 64 masked slots
    report = compare_with_eager(tiny_hf, PROMPT_IDS, 20, static_spans=static_spans)
    assert all(diff < TOLERANCE for diff in report["max_diff"].values()), report
    assert report["argmax_agree"] == report["lens_ids_agree"] == 1.0
    assert not report["graphed"] and report["graph_error"] is None  # no CUDA here: eager, nothing failed


def test_output_shapes_follow_the_forward_output_contract(tiny_hf):
    fast = FastTorchBackend(tiny_hf)
    L, H, d, V = 2, 4, 64, 256
    prefill = fast.forward(PROMPT_IDS)
    step = fast.forward([7])
    T = len(PROMPT_IDS)
    assert prefill.attention.shape == (L, H, T, T) and step.attention.shape == (L, H, 1, T + 1)
    for out in (prefill, step):
        assert out.logits.shape == (V,) and out.resid.shape == (L + 1, d)
        assert out.lens_ids.shape == (L,) and out.lens_ids.dtype == np.int64 and out.lens_p.shape == (L,)
        np.testing.assert_allclose(out.attention.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.triu(prefill.attention[0, 0], k=1) == 0)  # causal: no weight on later tokens


def test_greedy_tokens_equal_torch_backend_and_generate(tiny_hf):
    fast_tokens = greedy_tokens(FastTorchBackend(tiny_hf), PROMPT_IDS, 30)
    assert fast_tokens == greedy_tokens(TorchBackend(tiny_hf), PROMPT_IDS, 30)
    assert fast_tokens == hf_generate_greedy(tiny_hf, PROMPT_IDS, 30)


def test_lens_top_of_any_residual_stream_is_the_steps_own_lens(tiny_hf):
    """lens_top reads the lens of a residual stream computed elsewhere (an ablated model's, for the Layers pane)."""
    fast = FastTorchBackend(tiny_hf)
    for out in (fast.forward(PROMPT_IDS), fast.forward([7])):
        ids, p = fast.lens_top(out.resid)
        assert np.array_equal(ids, out.lens_ids) and np.allclose(p, out.lens_p, atol=1e-5)


def test_outputs_are_not_overwritten_by_the_next_step(tiny_hf):
    fast = FastTorchBackend(tiny_hf)
    fast.forward(PROMPT_IDS)
    first = fast.forward([11])
    kept = copy.deepcopy(first)
    fast.forward([12])
    assert_same_output(first, kept, tolerance=0)


@pytest.mark.parametrize("static_spans", [False, True], ids=["exact-span", "graph-span"])
def test_crop_then_reforward_equals_the_original(tiny_hf, static_spans):
    fast = FastTorchBackend(tiny_hf, static_spans=static_spans)
    fast.forward(PROMPT_IDS)
    tokens = [20, 21, 22, 23, 24]
    originals = [fast.forward([token]) for token in tokens]
    fast.crop(len(PROMPT_IDS) + 2)  # keep the prompt and the first two tokens
    for token, original in zip(tokens[2:], originals[2:]):
        assert_same_output(fast.forward([token]), original, tolerance=1e-6)
    # a different token after a crop sees none of the stale slots: it equals a fresh prefill
    fast.crop(len(PROMPT_IDS) + 2)
    diverged = fast.forward([99])
    fresh = FastTorchBackend(tiny_hf).forward(PROMPT_IDS + tokens[:2] + [99])
    fresh.attention = fresh.attention[:, :, -1:]  # the last position's row
    assert_same_output(diverged, fresh)


@pytest.mark.parametrize("static_spans", [False, True], ids=["exact-span", "graph-span"])
def test_context_fills_up_to_n_positions(short_context_hf, static_spans):
    n_positions = short_context_hf.config.n_positions  # 24
    eager, fast = TorchBackend(short_context_hf), FastTorchBackend(short_context_hf, static_spans=static_spans)
    ids = PROMPT_IDS
    for _ in range(n_positions - len(PROMPT_IDS) + 1):
        a, b = eager.forward(ids), fast.forward(ids)
        assert_same_output(a, b)
        ids = [int(np.argmax(a.logits))]
    assert fast.cache.length == n_positions and b.attention.shape[-1] == n_positions
    with pytest.raises(IndexError, match="context full"):
        fast.forward(ids)
    fast.crop(n_positions - 1)  # room again for one token
    assert fast.forward(ids).attention.shape[-1] == n_positions


def test_max_len_bounds_the_cache(tiny_hf):
    fast = FastTorchBackend(tiny_hf, max_len=8)
    assert fast.cache.k.shape == (2, 4, 8, 16)
    fast.forward(PROMPT_IDS)
    fast.forward([1])
    fast.forward([2])
    with pytest.raises(IndexError):
        fast.forward([3])
    with pytest.raises(ValueError, match="max_len"):
        FastTorchBackend(tiny_hf, max_len=65)


def test_static_spans_are_powers_of_two_from_64_capped_by_the_cache():
    assert [static_span(n, 1024) for n in (1, 64, 65, 128, 129, 1000, 1024)] == [64, 64, 128, 128, 256, 1024, 1024]
    assert static_span(20, 24) == 24


def test_failed_capture_falls_back_to_eager_and_says_why(tiny_hf):
    fast = FastTorchBackend(tiny_hf)
    assert fast.use_cuda_graph is False  # auto: graphs only on CUDA
    fast.use_cuda_graph = True  # force a capture attempt: on this CPU-only torch it must fail cleanly
    eager = TorchBackend(tiny_hf)
    assert_same_output(fast.forward(PROMPT_IDS), eager.forward(PROMPT_IDS))
    for token in (3, 4, 5):
        assert_same_output(fast.forward([token]), eager.forward([token]))
    assert not fast.graphed and fast.graph_error  # the reason is kept, and it is tried only once
    assert "cuda" in fast.graph_error.lower()


def test_bfloat16_model_follows_its_dtype(tiny_hf):
    model = copy.deepcopy(tiny_hf).to(torch.bfloat16)
    fast = FastTorchBackend(model)
    assert fast.cache.k.dtype == torch.bfloat16
    report = compare_with_eager(model, PROMPT_IDS, 10)
    assert report["max_diff"]["logits"] < 0.05 and report["max_diff"]["attention"] < 0.01, report
    reference = FastTorchBackend(tiny_hf).forward(PROMPT_IDS)
    np.testing.assert_allclose(fast.forward(PROMPT_IDS).logits, reference.logits, atol=0.05)


def test_unsupported_activation_is_refused():
    model = random_gpt2("tiny", seed=3, activation_function="quick_gelu")
    with pytest.raises(UnsupportedModelError, match="quick_gelu"):
        FastTorchBackend(model)


def test_weights_are_referenced_not_copied(tiny_hf):
    fast = FastTorchBackend(tiny_hf)
    assert fast.params["blocks"][1]["mlp"]["up"]["w"].data_ptr() == tiny_hf.transformer.h[1].mlp.c_fc.weight.data_ptr()
    assert fast.params["embed"].data_ptr() == tiny_hf.transformer.wte.weight.data_ptr()


def test_bench_fast_reports_three_rates_on_the_same_tokens(tiny_hf):
    report = bench_fast(tiny_hf, PROMPT_IDS, 4, device="cpu", repeats=1)
    assert all(report[key] > 0 for key in ("fast_tok_s", "eager_tok_s", "generate_tok_s"))
    assert report["same_tokens_fast_eager"] and report["device"] == "cpu" and report["dtype"] == "float32"
    assert report["fast_vs_generate"] == pytest.approx(report["fast_tok_s"] / report["generate_tok_s"])


def test_gpt2_small_shape_matches_torch_backend(gpt2_small_hf):
    # the real head size (64), vocabulary (50257) and depth; static spans as on a GPU
    report = compare_with_eager(gpt2_small_hf, PROMPT_IDS, 2, static_spans=True)
    assert all(diff < TOLERANCE for diff in report["max_diff"].values()), report
    assert report["argmax_agree"] == report["lens_ids_agree"] == 1.0


def test_prefill_in_two_chunks_equals_torch_backend(tiny_hf):
    eager, fast = TorchBackend(tiny_hf), FastTorchBackend(tiny_hf)
    for chunk in (PROMPT_IDS[:2], PROMPT_IDS[2:], [7]):
        assert_same_output(eager.forward(chunk), fast.forward(chunk))


@pytest.mark.parametrize("static_spans", [False, True], ids=["exact-span", "graph-span"])
def test_toy_model_captures_match_torch_backend(toy, static_spans):
    prompt_ids = toy.tokenizer.encode("In a small village,", add_special_tokens=False)
    report = compare_with_eager(toy.hf_model, prompt_ids, 20, static_spans=static_spans)
    assert all(diff < TOLERANCE for diff in report["max_diff"].values()), report
    assert report["argmax_agree"] == report["lens_ids_agree"] == 1.0


def test_toy_sampler_events_are_the_same_with_the_fast_backend(toy):
    def events(fast):
        sampler = Sampler(toy, SamplingConfig(temperature=0.8, seed=3))
        if fast:
            sampler.backend = FastTorchBackend(toy.hf_model)
        sampler.set_prompt("In a small village,")
        out = [sampler.step() for _ in range(12)]
        sampler.undo()
        sampler.undo()
        out.append(sampler.force(out[0].token_id))
        out += [sampler.step() for _ in range(4)]
        return out

    for a, b in zip(events(False), events(True), strict=True):
        assert (a.token_id, a.position) == (b.token_id, b.position)
        assert [e.token_id for e in a.lens] == [e.token_id for e in b.lens]
        np.testing.assert_allclose(a.attention, b.attention, atol=TOLERANCE)
        np.testing.assert_allclose(a.norms, b.norms, rtol=1e-4)


def test_toy_greedy_equals_generate(toy):
    prompt_ids = toy.tokenizer.encode("In a small village,", add_special_tokens=False)
    expected = hf_generate_greedy(toy.hf_model, prompt_ids, 30)
    assert greedy_tokens(FastTorchBackend(toy.hf_model), prompt_ids, 30) == expected
