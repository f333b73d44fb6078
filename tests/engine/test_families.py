"""One block for GPT-2 and the Llama family: the NumPy engine against transformers on random models the
tests build (GPT-2; Llama with grouped-query attention, tied and untied; Qwen2 with q/k/v biases; Mistral),
and the configs it refuses, each in one sentence."""

import numpy as np
import pytest
import torch

from engine.model.architecture import Architecture
from engine.model.families import architecture_from_config, config_problem
from engine.model.interventions import parse_ablation
from engine.model.transformer import NumpyLM
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.numpy_backend import NumpyBackend
from engine.runtime.backends.torch_eager import TorchBackend
from engine.runtime.interventions import Inspector
from engine.runtime.loading import loaded_from_hf
from engine.tools.factories import random_gpt2, random_llama
from engine.views.parity import incremental_logits, torch_logits

TOLERANCE = 1e-4
LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}
MODELS = {
    "gpt2": lambda: random_gpt2("tiny", seed=5),
    "llama-gqa-untied": lambda: random_llama("tiny", seed=5, tied=False),
    "llama-gqa-tied": lambda: random_llama("tiny", seed=6, tied=True),
    "qwen2-biases": lambda: random_llama("tiny", seed=7, model_type="qwen2"),
    "mistral": lambda: random_llama("tiny", seed=8, model_type="mistral"),
    "llama3-rope-head-dim-32": lambda: random_llama("tiny", seed=9, rope_scaling=LLAMA3_SCALING, head_dim=32),
}


@pytest.fixture(scope="module", params=list(MODELS))
def pair(request):
    """(transformers model, the NumPy engine on its weights, a 40-token prompt)."""
    hf = MODELS[request.param]()
    ids = np.random.default_rng(len(request.param)).integers(0, hf.config.vocab_size, 40).tolist()
    return hf, NumpyLM.from_hf(hf), ids


def test_logits_match_transformers_with_and_without_the_kv_cache(pair):
    hf, net, ids = pair
    full, _ = net.forward(ids, capture=False)  # [T, V]
    expected = torch_logits(hf, ids)
    assert np.abs(expected).max() > 1.0  # the random model's logits spread: a wrong block could not hide
    assert np.abs(full - expected).max() <= TOLERANCE
    assert np.abs(incremental_logits(net, ids) - expected).max() <= TOLERANCE


def test_captures_match_transformers_attention_per_query_head_and_hidden_states(pair):
    hf, net, ids = pair
    with torch.no_grad():
        out = hf(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    _, captures = net.forward(ids)
    for i in range(net.n_layer):
        assert captures[f"blocks.{i}.attn.hook_pattern"].shape == (net.n_head, len(ids), len(ids))  # every query head
        np.testing.assert_allclose(captures[f"blocks.{i}.attn.hook_pattern"], out.attentions[i][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(captures[f"blocks.{i}.hook_resid_pre"], out.hidden_states[i][0].numpy(), atol=1e-4)
    np.testing.assert_allclose(captures["ln_final.hook_normalized"], out.hidden_states[-1][0].numpy(), atol=1e-4)


@pytest.mark.parametrize("spec", ["1.3", "0.mlp"])
def test_ablated_logits_match_transformers_with_hooks(pair, spec):
    hf, _, ids = pair
    loaded = loaded_from_hf(hf)
    ablation = [parse_ablation(spec)]
    numpy_run, torch_run = Inspector(loaded, "numpy").run(ids, ablation), Inspector(loaded, "torch").run(ids, ablation)
    intact = Inspector(loaded, "numpy").run(ids)
    assert np.abs(numpy_run.logits - intact.logits).max() > 1e-3  # the ablation changes the prediction
    assert np.abs(numpy_run.logits - torch_run.logits).max() <= TOLERANCE
    np.testing.assert_allclose(numpy_run.attention, torch_run.attention, atol=1e-5)


def test_greedy_tokens_are_equal_on_both_engines(pair):
    hf, net, ids = pair
    assert greedy_tokens(NumpyBackend(net), ids[:16], 12) == greedy_tokens(TorchBackend(hf), ids[:16], 12)


def test_the_kv_cache_holds_kv_heads_only():
    net = NumpyLM.from_hf(random_llama("tiny", seed=1))
    assert (net.n_head, net.n_kv_heads) == (4, 2)
    assert net.new_cache(max_len=10).k.shape == (2, 2, 10, 16)  # [L, H_kv, positions, d_head]


def test_from_config_and_state_takes_hf_names_and_counts_parameters_as_transformers_does():
    for hf in (random_llama("tiny", seed=3, tied=True), random_llama("tiny", seed=3, model_type="qwen2"), random_gpt2("tiny", seed=3)):
        config = hf.config.to_dict()
        state = {name: tensor.detach().numpy() for name, tensor in hf.state_dict().items()}
        net = NumpyLM.from_config_and_state(config, state)
        assert net.n_params == hf.num_parameters()
        ids = list(range(3, 23))
        assert np.abs(net.forward(ids)[0] - torch_logits(hf, ids)).max() <= TOLERANCE


def test_a_saved_llama_directory_loads_without_torch_and_matches(tmp_path):
    hf = random_llama("tiny", seed=4, model_type="qwen2")
    hf.save_pretrained(tmp_path)
    net = NumpyLM.from_dir(tmp_path)
    ids = list(range(10, 30))
    assert np.abs(net.forward(ids)[0] - torch_logits(hf, ids)).max() <= TOLERANCE


def test_architecture_reads_every_family_choice():
    llama = architecture_from_config(random_llama("tiny", model_type="qwen2", tied=True).config.to_dict())
    assert (llama.norm, llama.positions, llama.mlp, llama.rope_theta) == ("rms", "rope", "swiglu", 100_000.0)
    assert (llama.qkv_bias, llama.o_bias, llama.mlp_bias, llama.norm_bias, llama.tied) == (True, False, False, False, True)
    assert llama.qkv_split == (64, 96)  # q | k | v columns: 4 x 16, then 2 x 16 each
    gpt2 = architecture_from_config(random_gpt2("tiny").config.to_dict())
    assert (gpt2.norm, gpt2.positions, gpt2.mlp, gpt2.n_kv_heads, gpt2.tied) == ("layer", "learned", "gelu", gpt2.n_heads, True)


REFUSED = [
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}}, "rope scaling 'yarn'"),
    ({"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope scaling 'dynamic'"),
    ({"model_type": "mistral", "sliding_window": 4096}, "sliding-window attention"),
    ({"model_type": "qwen2", "use_sliding_window": True, "sliding_window": 64}, "sliding-window attention"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu'"),
    ({"partial_rotary_factor": 0.5}, "partial rotary"),
    ({"num_key_value_heads": 3}, "4 query heads cannot be shared evenly by 3 key/value heads"),
    ({"model_type": "gemma"}, "'gemma' model, which tfund does not run"),
]


@pytest.mark.parametrize(("change", "sentence"), REFUSED)
def test_what_is_not_computed_is_refused_in_one_sentence(change, sentence):
    config = {**random_llama("tiny").config.to_dict(), **change}
    problem = config_problem(config, "numpy")
    assert problem is not None and sentence in problem and "\n" not in problem
    with pytest.raises(ValueError, match=sentence):
        architecture_from_config(config)
    torch_problem = config_problem(config, "torch")  # transformers runs a known family's variants itself
    assert (torch_problem is None) == (config.get("model_type") != "gemma")


def test_post_norm_and_odd_descriptions_are_refused():
    with pytest.raises(ValueError, match="even head size"):
        Architecture("llama", 1, 2, 2, 15, 30, 60, 10, 8, norm="rms", norm_bias=False, positions="rope")
    with pytest.raises(ValueError, match="norm 'batch'"):
        Architecture("gpt2", 1, 2, 2, 16, 32, 64, 10, 8, norm="batch")
