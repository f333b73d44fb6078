"""A Llama-family directory on both engines: what the sampler shows (tokens, candidates, attention per
query head, logit lens, norms, cosines) agrees; the CUDA-graph path refuses it in one sentence."""

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.runtime.backends.cuda_graph import UnsupportedModelError, checked_fast_backend
from engine.runtime.backends.torch_eager import TorchBackend
from engine.runtime.loading import load_model
from engine.runtime.sampler import Sampler

PROMPT = "In a small village, there lived an old man who"


def run(model, n=12):
    sampler = Sampler(model, SamplingConfig(temperature=0.0))
    sampler.set_prompt(PROMPT)
    events = [sampler.step() for _ in range(n)]
    return sampler, events


def test_both_engines_show_the_same_steps(llama_dir):
    numpy_model, torch_model = load_model(llama_dir, device="cpu", engine="numpy"), load_model(llama_dir, device="cpu", engine="torch")
    assert numpy_model.engine == "numpy" and not numpy_model.torch_loaded  # read straight into NumPy
    assert numpy_model.info.n_head == 4 and numpy_model.info.n_layer == 2
    (a, events_a), (b, events_b) = run(numpy_model), run(torch_model)
    assert len(a.tokens) >= 16 and [e.token_id for e in events_a] == [e.token_id for e in events_b]
    for x, y in zip(events_a, events_b):
        assert [c.token_id for c in x.candidates] == [c.token_id for c in y.candidates]
        assert x.attention.shape == y.attention.shape == (2, 4, len(a.tokens) - len(events_a) + events_a.index(x) + 1)
        np.testing.assert_allclose(x.attention, y.attention, atol=1e-5)  # [L, H query heads, T]
        np.testing.assert_allclose(x.norms, y.norms, rtol=1e-4)
        np.testing.assert_allclose(x.cosines, y.cosines, atol=1e-4)
        assert [entry.token_id for entry in x.lens] == [entry.token_id for entry in y.lens]
        np.testing.assert_allclose([e.p for e in x.lens], [e.p for e in y.lens], atol=1e-4)
    # the kept rows are float16: two engines 1e-6 apart may round to neighbouring float16s, one step (<= 2**-11) apart
    np.testing.assert_allclose(a.attention_matrix(), b.attention_matrix(), atol=2**-11)


def test_the_cuda_graph_path_refuses_the_llama_family_in_one_sentence(llama_dir, monkeypatch):
    model = load_model(llama_dir, device="cpu", engine="torch")
    with pytest.raises(UnsupportedModelError, match="runs GPT-2 only, not this (llama|qwen2) model"):
        checked_fast_backend(model.hf_model)
    monkeypatch.setattr("engine.runtime.engines.on_cuda", lambda hf_model: True)  # as if on a GPU
    sampler = Sampler(model, SamplingConfig(temperature=0.0))
    assert isinstance(sampler.backend, TorchBackend) and "GPT-2 only" in sampler.note and sampler.note.count(".") <= 1
