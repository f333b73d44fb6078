"""parity_report, bench_decode and random_gpt2: the functions behind `tfund parity` and `tfund bench decode`."""

import numpy as np
import pytest
import torch

import engine.views.parity
from engine.model.transformer import NumpyLM
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.numpy_backend import NumpyBackend
from engine.runtime.backends.torch_eager import TorchBackend
from engine.tools.bench_decode import bench_decode
from engine.tools.factories import random_gpt2
from engine.views.parity import TOLERANCE, parity_report


class JoinIds:
    """A stand-in tokenizer: decode writes the ids out."""

    def decode(self, ids):
        return " ".join(map(str, ids))


def test_parity_report_on_a_tiny_model(tiny_hf):
    ids = np.random.default_rng(0).integers(0, 256, 12).tolist()
    report = parity_report(tiny_hf, JoinIds(), ids, n_greedy=20)
    assert report["ok"] and report["greedy_match"]
    assert report["tolerance"] == TOLERANCE == 1e-4
    assert report["max_abs_diff"] <= TOLERANCE and report["kv_cache_max_abs_diff"] <= TOLERANCE
    assert len(report["greedy_numpy"]) == 20 and report["greedy_numpy"] == report["greedy_torch"]
    assert report["text_numpy"] == " ".join(map(str, report["greedy_numpy"]))


def test_parity_report_on_the_gpt2_small_shape(gpt2_small_hf, gpt2_small_numpy):
    """124M random model: logits within 1e-4 and 20 greedy tokens identical (the issue's bar)."""
    ids = np.random.default_rng(1).integers(0, 50257, 8).tolist()
    report = parity_report(gpt2_small_hf, None, ids, n_greedy=20, numpy_model=gpt2_small_numpy)
    assert report["max_abs_diff"] <= TOLERANCE and report["kv_cache_max_abs_diff"] <= TOLERANCE
    assert report["greedy_match"] and len(report["greedy_torch"]) == 20
    assert report["ok"] and "text_numpy" not in report


def test_parity_greedy_stops_at_the_context_end(short_context_hf):
    ids = list(range(20))
    report = parity_report(short_context_hf, None, ids, n_greedy=20)
    assert len(report["greedy_numpy"]) == 24 - 20  # prompt + continuation fill the 24 positions exactly
    assert report["ok"]
    with pytest.raises(ValueError, match="1 to 24 tokens"):
        parity_report(short_context_hf, None, list(range(25)))
    with pytest.raises(ValueError):
        parity_report(short_context_hf, None, [])


def test_greedy_decoders_agree_token_for_token(tiny_hf, tiny_numpy):
    """The one greedy loop through both CPU backends, on a longer run than the report's."""
    ids = [5, 6, 7]
    assert greedy_tokens(NumpyBackend(tiny_numpy), ids, 40) == greedy_tokens(TorchBackend(tiny_hf), ids, 40)


def test_parity_report_fails_when_the_engines_disagree(tiny_hf, monkeypatch):
    """A report is only meaningful if it can fail: give the NumPy side a perturbed copy of the weights."""
    perturbed = NumpyLM.from_hf(tiny_hf)
    perturbed.params["blocks"][1]["mlp"]["down"]["b"][0] += 0.5  # one direction: LN cannot cancel it
    monkeypatch.setattr(engine.views.parity.NumpyLM, "from_hf", classmethod(lambda cls, model: perturbed))
    report = parity_report(tiny_hf, None, [1, 2, 3, 4], n_greedy=5)
    assert report["max_abs_diff"] > TOLERANCE
    assert not report["ok"]


def test_bench_decode_reports_both_engines(tiny_hf):
    result = bench_decode(tiny_hf, [1, 2, 3, 4], n_tokens=8, repeats=2)
    assert result["numpy_tok_s"] > 0 and result["torch_tok_s"] > 0
    assert result["ratio"] == pytest.approx(result["numpy_tok_s"] / result["torch_tok_s"])
    assert result["same_tokens"]
    assert all(len(times) == 2 for times in result["seconds"].values()) and len(result["seconds"]) == 4
    with pytest.raises(ValueError):
        bench_decode(tiny_hf, [1], n_tokens=0)
    with pytest.raises(ValueError):
        bench_decode(tiny_hf, [1] * 60, n_tokens=5)  # 65 positions > 64


def test_random_gpt2_shapes_and_seeding(gpt2_small_hf):
    assert sum(p.numel() for p in gpt2_small_hf.parameters()) == 124_439_808  # GPT-2 small
    assert gpt2_small_hf.config._attn_implementation == "eager" and not gpt2_small_hf.training
    state = torch.random.get_rng_state()
    a, b, c = random_gpt2("tiny", seed=5), random_gpt2("tiny", seed=5), random_gpt2("tiny", seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert torch.equal(a.transformer.wte.weight, b.transformer.wte.weight)
    assert not torch.equal(a.transformer.wte.weight, c.transformer.wte.weight)
    assert random_gpt2("tiny", n_positions=16).config.n_positions == 16
    with pytest.raises(ValueError, match="config name"):
        random_gpt2("gpt3")
