"""`tfund project`: the DESIGN.md contract, checked against residuals and a PCA computed here; outliers; bad input."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from engine.model.transformer import NumpyLM
from engine.runtime.sources import TOY_MODEL_DIR
from tests.e2e.test_cli import tfund

PROMPT = "In a small village, there lived a little girl named Lily."
CONTRACT_KEYS = {"tokens", "positions", "excluded", "explained_variance_ratio", "layers"}


def project_json(*args):
    result = tfund("project", "--prompt", PROMPT, "--json", *args)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def sink_model(tmp_path_factory):
    """The toy with its position-0 embedding 300 times longer: the first token's residual dwarfs the others', as a
    real model's attention sink does (SmolLM2: ~20,000 against 150-500)."""
    folder = tmp_path_factory.mktemp("sink-model")
    for path in TOY_MODEL_DIR.iterdir():
        if path.name != "model.safetensors":
            shutil.copy(path, folder / path.name)
    weights = load_file(TOY_MODEL_DIR / "model.safetensors")
    name = next(key for key in weights if key.endswith("wpe.weight"))
    weights[name][0] *= 300.0
    save_file(weights, folder / "model.safetensors")
    return folder


def centred_svd(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [N, d] -> [N, 2], [2]
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :2] * s[:2], s[:2] ** 2 / (s**2).sum()


def residuals_here(model_dir, text: str) -> tuple[list[int], np.ndarray]:  # -> ids, [L + 1, T, d]
    """The residual stream from the NumPy GPT-2's own captures (emb, then every block's output)."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    net = NumpyLM.from_dir(model_dir)
    _, captures = net.forward(ids)
    layers = [captures["blocks.0.hook_resid_pre"], *(captures[f"blocks.{i}.hook_resid_post"] for i in range(net.n_layer))]
    return ids, np.stack(layers).astype(np.float64)


def test_json_has_exactly_the_contract_and_equals_a_pca_computed_here():
    report = project_json("--model", "toy")
    assert set(report) == CONTRACT_KEYS
    ids, resid = residuals_here(TOY_MODEL_DIR, PROMPT)
    n_layer = resid.shape[0] - 1
    assert "".join(report["tokens"]) == PROMPT and len(report["tokens"]) == len(ids)
    assert report["positions"] == list(range(len(ids))) and report["excluded"] == []
    assert [layer["name"] for layer in report["layers"]] == ["emb", *(f"block {i}" for i in range(1, n_layer + 1))]
    coords = np.array([layer["coords"] for layer in report["layers"]])  # [L + 1, T, 2]
    assert coords.shape == (n_layer + 1, len(ids), 2)
    expected, ratio = centred_svd(resid.reshape(-1, resid.shape[-1]))
    for axis in range(2):
        got = coords.reshape(-1, 2)[:, axis]
        np.testing.assert_allclose(got, np.sign(got @ expected[:, axis]) * expected[:, axis], atol=1e-3)
    np.testing.assert_allclose(report["explained_variance_ratio"], ratio, atol=1e-6)


def test_a_first_token_far_beyond_the_others_is_excluded_by_default_and_put_back_on_request(sink_model):
    kept = project_json("--model", str(sink_model))
    every = project_json("--model", str(sink_model), "--include-outliers")
    n_tokens = len(kept["tokens"])
    assert kept["excluded"] == [0] and kept["positions"] == list(range(1, n_tokens))
    assert all(len(layer["coords"]) == n_tokens - 1 for layer in kept["layers"])
    assert every["excluded"] == [] and every["positions"] == list(range(n_tokens))
    assert every["explained_variance_ratio"][0] > 0.9 > kept["explained_variance_ratio"][0]  # one far point takes PC1
    _, resid = residuals_here(sink_model, PROMPT)
    _, ratio = centred_svd(resid[:, 1:].reshape(-1, resid.shape[-1]))
    np.testing.assert_allclose(kept["explained_variance_ratio"], ratio, atol=1e-6)


def test_the_text_table_names_the_left_out_token_and_why(sink_model):
    result = tfund("project", "--model", str(sink_model), "--prompt", PROMPT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("left out: position 0 'In', its norm") and "the median (--include-outliers puts it back)" in lines[1]
    assert lines[2].split()[:3] == ["position", "emb", "block"] and lines[3].split()[:2] == ["1", "'"]


def test_a_missing_model_directory_is_one_line_and_exit_2():
    result = tfund("project", "--model", "/nonexistent/tfund-model", "--prompt", PROMPT, "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--model" in result.stderr and "/nonexistent/tfund-model" in result.stderr


def test_a_model_the_numpy_engine_does_not_run_is_one_line_and_exit_2(tmp_path, toy_tokenizer, bert_dir):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=len(toy_tokenizer), scale_attn_by_inverse_layer_idx=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        GPT2LMHeadModel(config).save_pretrained(tmp_path)
    toy_tokenizer.save_pretrained(tmp_path)
    variant = tfund("project", "--model", str(tmp_path), "--prompt", PROMPT)
    assert variant.returncode == 2 and variant.stdout == "" and variant.stderr.count("\n") == 1
    assert "argument --model: GPT-2 variant with scale_attn_by_inverse_layer_idx=True is not one tfund computes" in variant.stderr
    bert = tfund("project", "--model", str(bert_dir), "--prompt", PROMPT)
    assert bert.returncode == 2 and bert.stderr.count("\n") == 1 and "which tfund does not run" in bert.stderr
