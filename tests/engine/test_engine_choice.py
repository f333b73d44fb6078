"""--engine auto: the NumPy engine on a CPU without torch or transformers, the torch model on first use,
the light tokenizer's ids and text equal to transformers', the thread policy and the CUDA self-check."""

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.runtime.backends import cuda_graph
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.cuda_graph import FastTorchBackend, checked_fast_backend
from engine.runtime.backends.torch_eager import TorchBackend
from engine.runtime.devices import thread_policy
from engine.runtime.engines import choose_engine
from engine.runtime.loading import ModelLoadError, load_model
from engine.runtime.sampler import Sampler
from engine.runtime.tokenizer import TextTokenizer
from engine.tools.factories import random_llama
from tests.conftest import random_gpt2_dir

PROMPT = "In a small village,"
TEXTS = [PROMPT, "", " ", "Привет, 世界! 🙂 naïve café", "a\n\nb\tc  d", "<|endoftext|>Once upon", "don't stop . , ?"]


def test_default_engine_loads_and_steps_the_toy_without_torch():
    code = (
        "import sys\n"
        "from engine import load_model, Sampler, SamplingConfig\n"
        "s = Sampler(load_model('toy'), SamplingConfig(temperature=0.8, seed=0))\n"
        "s.set_prompt('In a small village,')\n"
        "[s.step() for _ in range(5)]\n"
        "print(s.engine, sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["numpy", "[]"]


def test_auto_on_cpu_is_numpy_and_torch_loads_on_first_use():
    model = load_model("toy", device="cpu")
    assert (model.engine, model.device, model.info.engine) == ("numpy", "cpu", "numpy")
    assert not model.torch_loaded and model.torch_threads is None
    assert model.hf_model.config.n_layer == model.info.n_layer and model.torch_loaded


def test_engines_agree_on_greedy_tokens_pieces_and_candidates(toy):
    torch_model = load_model("toy", device="cpu", engine="torch")

    def run(model):
        sampler = Sampler(model, SamplingConfig(temperature=0.0))
        sampler.set_prompt(PROMPT)
        events = [sampler.step() for _ in range(40)]
        return sampler.engine, [e.token_id for e in events], sampler.pieces, [[c.text for c in e.candidates] for e in events]

    numpy_run, torch_run = run(toy), run(torch_model)
    assert (numpy_run[0], torch_run[0]) == ("numpy", "torch")
    assert numpy_run[1:] == torch_run[1:]


@pytest.mark.parametrize("text", TEXTS)
def test_light_tokenizer_equals_transformers(toy, toy_tokenizer, text):
    light = toy.tokenizer
    ids = light.encode(text, add_special_tokens=False)
    assert ids == toy_tokenizer.encode(text, add_special_tokens=False)
    assert light.decode(ids) == toy_tokenizer.decode(ids)
    assert [light.decode([i]) for i in ids] == [toy_tokenizer.decode([i]) for i in ids]


def test_light_tokenizer_vocabulary_and_end_of_text(toy, toy_tokenizer):
    light = toy.tokenizer
    assert light.eos_token_id == toy_tokenizer.eos_token_id
    assert len(light) == len(toy_tokenizer) and light.get_vocab() == toy_tokenizer.get_vocab()
    every_id = list(range(len(light)))
    assert [light.decode([i]) for i in every_id] == [toy_tokenizer.decode([i]) for i in every_id]


def test_what_the_light_tokenizer_does_not_do_loads_through_transformers(tmp_path, toy_tokenizer):
    random_gpt2_dir(tmp_path, toy_tokenizer, seed=0)
    config_file = tmp_path / "tokenizer_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "clean_up_tokenization_spaces": True}))
    model = load_model(str(tmp_path), device="cpu")
    assert model.engine == "numpy" and model.torch_loaded and not isinstance(model.tokenizer, TextTokenizer)
    sampler = Sampler(model, SamplingConfig(temperature=0.0))
    sampler.set_prompt(PROMPT)
    assert sampler.step().token_id == greedy_tokens(TorchBackend(model.hf_model), sampler.tokens[:-1], 1)[0]


def test_choose_engine():
    gpt2 = {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": 100}
    assert choose_engine("auto", "cpu", gpt2) == ("numpy", "cpu")
    assert choose_engine("auto", "cpu", {**gpt2, "activation_function": "silu"}) == ("torch", "cpu")
    llama = random_llama("tiny", model_type="mistral").config.to_dict()
    assert choose_engine("auto", "cpu", llama) == ("numpy", "cpu")  # the NumPy engine runs the Llama family
    assert choose_engine("auto", "cpu", {**llama, "sliding_window": 32}) == ("torch", "cpu")  # what it does not compute: transformers
    assert choose_engine("torch", "cpu", gpt2) == ("torch", "cpu")
    with pytest.raises(ModelLoadError, match="CPU only"):
        choose_engine("numpy", "cuda", gpt2)


def test_thread_policy_is_one_thread_for_small_models():
    assert thread_policy(600_000, 2) == 1 and thread_policy(600_000, 64) == 1
    assert thread_policy(124_000_000, 8) == 4 and thread_policy(124_000_000, 1) == 1


def test_threads_flag_sets_torch_threads(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        model = load_model("toy", device="cpu", engine="torch", threads=2)
        assert model.torch_threads == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        torch.set_num_threads(3)
        assert load_model("toy", device="cpu", engine="torch").torch_threads == 3  # the environment wins over the policy
    finally:
        torch.set_num_threads(before)


def test_numpy_engine_runs_the_thread_policy_on_blas_unless_told(monkeypatch):
    from threadpoolctl import threadpool_limits

    from engine.runtime.devices import blas_threads, cpu_cores

    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = blas_threads()
    try:
        threadpool_limits(2, user_api="blas")  # as OpenBLAS starts on a 2-core machine
        model = load_model("toy", engine="numpy")
        assert model.engine_threads == blas_threads() == 1  # the toy is small: one BLAS thread
        two = min(2, cpu_cores())  # OpenBLAS runs at most one thread per core
        assert load_model("toy", engine="numpy", threads=2).engine_threads == two  # --threads
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
        assert load_model("toy", engine="numpy").engine_threads == two  # the environment's, as NumPy read it
    finally:
        threadpool_limits(before, user_api="blas")


def test_fast_backend_passes_its_self_check_on_cpu(toy):
    backend, note = checked_fast_backend(toy.hf_model, static_spans=True)
    assert isinstance(backend, FastTorchBackend) and note is None


def test_fast_backend_that_disagrees_falls_back_to_eager(toy, monkeypatch):
    real_lens = cuda_graph.lens

    def wrong_lens(resid, norm_f, unembed, eps):  # the fast path's logits, off by 0.1
        probs, logits = real_lens(resid, norm_f, unembed, eps)
        return probs, logits + 0.1

    monkeypatch.setattr(cuda_graph, "lens", wrong_lens)
    backend, note = checked_fast_backend(toy.hf_model)
    assert isinstance(backend, TorchBackend) and not isinstance(backend, FastTorchBackend)
    assert "self-check" in note and "logits differ" in note


def test_sampler_on_cuda_says_once_that_it_fell_back(toy, monkeypatch):
    monkeypatch.setattr("engine.runtime.engines.on_cuda", lambda hf_model: True)
    monkeypatch.setattr(cuda_graph, "self_check_problem", lambda report, dtype: "its logits differ by 1.0e+00 (tolerance 1e-03)")
    sampler = Sampler(toy, SamplingConfig(temperature=0.0), engine="torch")
    assert isinstance(sampler.backend, TorchBackend) and "decoding eagerly" in sampler.note
    sampler.set_prompt(PROMPT)
    expected = Sampler(toy, SamplingConfig(temperature=0.0), engine="numpy")
    expected.set_prompt(PROMPT)
    assert [sampler.step().token_id for _ in range(5)] == [expected.step().token_id for _ in range(5)]


def test_light_path_reads_the_same_weights_as_transformers(toy):
    net = toy.numpy_model()
    hf = toy.hf_model
    np.testing.assert_array_equal(net.params["embed"], hf.transformer.wte.weight.detach().numpy())
    assert net.n_params == hf.num_parameters() == toy.info.n_params
