"""Quantization: a model against itself with its matrices rounded through llama.cpp's types (--quantize-b)."""

import json

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.model.quantization import QUANT_TYPES, quantized, round_trip
from engine.model.transformer import NumpyLM
from engine.runtime.errors import QuantizationRefused
from engine.runtime.loading import load_model, quantized_model
from engine.tools.factories import random_gpt2, random_llama
from engine.tools.gguf_factory import make_case
from engine.views.compare import compare_run, format_compare_table
from tests.e2e.test_cli import assert_one_line_exit_2, run_cli

PROMPT = "In a small village,"


@pytest.fixture(scope="module")
def smollm_q4_1(tmp_path_factory):
    """A tiny SmolLM-style GGUF stored as llama.cpp's Q4_1 file type (its embedding Q8_0, as SmolLM2's)."""
    return make_case("smollm", tmp_path_factory.mktemp("q4_1"), "Q4_1").path


def matrices(net: NumpyLM) -> list[np.ndarray]:
    blocks = net.params["blocks"]
    return [b["attn"][name]["w"] for b in blocks for name in ("qkv", "o")] + [
        b["mlp"][name]["w"] for b in blocks for name in ("up", "gate", "down") if b["mlp"][name] is not None
    ]


def test_the_matrices_are_rounded_and_everything_else_stays_float32(toy):
    net = toy.numpy_model()
    before = {key: value.copy() for key, value in net.params["blocks"][0]["norm1"].items()}
    errors = {}
    for qtype in ("q8_0", "q4_0"):
        net_q, report = quantized(net, qtype)
        assert report.type == qtype.upper() and report.source_type == "F32" and report.note == ""
        assert report.matrices == 4 * net.n_layer + 1 and report.kept_f32 == []  # qkv, o, up, down per block; the unembedding
        for original, rounded in zip(matrices(net), matrices(net_q), strict=True):
            assert rounded.shape == original.shape and rounded.dtype == np.float32 and not np.array_equal(rounded, original)
        errors[qtype] = max(float(np.abs(r - o).max()) for o, r in zip(matrices(net), matrices(net_q), strict=True))
        for i, block in enumerate(net_q.params["blocks"]):  # norms and biases: the very same numbers
            original = net.params["blocks"][i]
            for part in ("norm1", "norm2"):
                assert all(np.array_equal(block[part][k], original[part][k]) for k in ("g", "b"))
            assert np.array_equal(block["attn"]["qkv"]["b"], original["attn"]["qkv"]["b"])
            assert np.array_equal(block["mlp"]["down"]["b"], original["mlp"]["down"]["b"])
        assert np.array_equal(net_q.params["pos_embed"], net.params["pos_embed"])
        assert np.array_equal(net_q.params["unembed"], round_trip(net.params["unembed"], "q8_0"))  # Q8_0 at any type
        assert np.array_equal(net_q.params["embed"], net_q.params["unembed"].T)  # tied: one matrix
    assert errors["q4_0"] > 5 * errors["q8_0"] > 0  # 4 bits round much more coarsely than 8
    assert all(np.array_equal(net.params["blocks"][0]["norm1"][k], v) for k, v in before.items())  # the original untouched


def test_round_trip_works_in_blocks_of_32_along_the_input_dimension():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 3)).astype(np.float32)  # [in, out]
    w[:32, 0] *= 100  # one block of column 0 is large: only that block's scale grows
    error = np.abs(round_trip(w, "q4_0") - w)
    assert error[:32, 0].max() > 20 * error[32:, 0].max()
    assert error[32:, 0].max() < 0.5 and error[:, 1:].max() < 0.5


def test_an_untied_model_keeps_its_output_at_q8_0_and_its_embedding_takes_the_type():
    net = NumpyLM.from_hf(random_llama("tiny", tied=False))
    net_q, report = quantized(net, "q4_0")
    assert np.array_equal(net_q.params["unembed"], round_trip(net.params["unembed"], "q8_0"))
    assert np.array_equal(net_q.params["embed"], round_trip(net.params["embed"].T, "q4_0").T)
    assert report.matrices == 5 * net.n_layer + 2  # qkv, o, up, gate, down; the embedding and the unembedding


def test_a_matrix_whose_rows_are_not_a_multiple_of_32_stays_float32():
    net = NumpyLM.from_hf(random_gpt2("tiny", n_embd=40))  # d 40: qkv, o and up read 40 numbers; down reads 160
    net_q, report = quantized(net, "q8_0")
    assert report.kept_f32 == ["0.attn.qkv", "0.attn.o", "0.mlp.up", "1.attn.qkv", "1.attn.o", "1.mlp.up", "unembed"]
    assert report.matrices == 2  # the two down matrices
    assert np.array_equal(net_q.params["blocks"][0]["attn"]["qkv"]["w"], net.params["blocks"][0]["attn"]["qkv"]["w"])
    assert not np.array_equal(net_q.params["blocks"][0]["mlp"]["down"]["w"], net.params["blocks"][0]["mlp"]["down"]["w"])


def test_a_gguf_is_re_quantized_from_its_type_and_its_own_type_is_refused(smollm_q4_1):
    model = load_model(str(smollm_q4_1), engine="numpy")
    assert model.info.file_type == "Q4_1"
    net = model.numpy_model()
    for w in matrices(net):  # why its own type is refused: Q4_1 read back and rounded to Q4_1 again is the same
        assert np.array_equal(round_trip(w, "q4_1"), w)
    with pytest.raises(QuantizationRefused, match=r"is already Q4_1; re-quantizing Q4_1 to Q4_1 gives back the same weights"):
        quantized_model(model, "q4_1")
    b, report = quantized_model(model, "q4_0")
    assert report.note == "re-quantized from Q4_1" and b.info.file_type == "Q4_0" and b.name.endswith("at Q4_0")
    assert model.net is net and b.net is not net and b.engine == "numpy"


def test_compare_with_quantize_b_is_one_model_against_itself_rounded(toy):
    config = SamplingConfig(temperature=0.0)
    result = compare_run(toy, "toy", PROMPT, 6, config, config, quantize_b="q4_0")
    assert json.loads(json.dumps(result)) == result
    assert result["mode"] == "vocab" and result["model_b"] == "toy at Q4_0"
    assert result["quantize_b"] == {"type": "Q4_0", "from": "F32", "matrices": 25, "kept_f32": [], "note": ""}
    assert result["mean_kl_raw"] > 0  # rounded weights: the distributions move
    exact = compare_run(toy, "toy", PROMPT, 6, config, config)
    assert exact["mean_kl_raw"] == 0.0 and exact["quantize_b"] is None
    assert "B's 25 matrices rounded to Q4_0 (from F32" in format_compare_table(result)


def test_cli_quantize_b_json_and_refusals(capsys, smollm_q4_1):
    code, out, err = run_cli(capsys, "compare", "--quantize-b", "q8_0", "--max-new-tokens", "3", "--json")
    result = json.loads(out)
    assert code == 0 and result["quantize_b"]["type"] == "Q8_0" and len(result["steps"]) == 3
    assert {"kl", "kl_raw", "top1_agree"} <= set(result["steps"][0]) and 0 <= result["top1_agreement"] <= 1
    path = str(smollm_q4_1)
    code, out, err = run_cli(capsys, "compare", "--model-a", path, "--model-b", path, "--quantize-b", "q4_1", "--max-new-tokens", "2")
    assert_one_line_exit_2(code, out, err, "--quantize-b")
    assert "is already Q4_1; re-quantizing Q4_1 to Q4_1 gives back the same weights (exactly lossless)" in err
    code, out, err = run_cli(capsys, "compare", "--quantize-b", "q3_k")
    assert_one_line_exit_2(code, out, err, "--quantize-b")
    assert all(qtype in err for qtype in QUANT_TYPES)
