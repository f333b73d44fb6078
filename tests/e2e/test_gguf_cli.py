"""`tfund ... --model file.gguf` as a user runs it: greedy text alike on both engines; a bad file is one
line on stderr and exit 2 (a file tfund cannot read) or 1 (a model that does not fit in memory)."""

import json

import gguf
import numpy as np
import pytest

import engine.formats.gguf as reader
import engine.runtime.conversions as conversions
from engine.tools.gguf_factory import make_case, set_first_tensor_type, write_minimal_gguf
from tests.e2e.test_cli import run_cli
from tests.e2e.test_cli import tfund as cli_process


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_case("smollm", tmp_path_factory.mktemp("smollm"), "Q8_0").path


@pytest.fixture(autouse=True)
def tfund_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path_factory.getbasetemp() / "tfund-cache"))


def tfund(*args):
    return cli_process(*args, timeout=300)


def test_generate_from_a_gguf_agrees_across_engines(model_path):
    outputs = {}
    for engine in ("numpy", "torch"):
        result = tfund(
            "generate", "--model", str(model_path), "--engine", engine, "--prompt", "The quick brown fox", "--temperature", "0",
            "--max-new-tokens", "8", "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs[engine] = json.loads(result.stdout)
        assert outputs[engine]["engine"] == engine
    assert [t["id"] for t in outputs["numpy"]["tokens"]] == [t["id"] for t in outputs["torch"]["tokens"]]
    assert len(outputs["numpy"]["tokens"]) == 8


def bad_file(kind, folder, model_path):
    path = folder / "bad.gguf"
    if kind == "wrong-magic":
        path.write_bytes(b"\x89PNG\r\n\x1a\n not a model")
    elif kind == "truncated":
        path.write_bytes(model_path.read_bytes()[:3000])
    elif kind == "unknown-architecture":
        write_minimal_gguf(path, arch="mamba")
    elif kind == "unknown-version":
        data = write_minimal_gguf(path).read_bytes()
        path.write_bytes(data[:4] + (99).to_bytes(4, "little") + data[8:])
    elif kind == "unknown-quantization":
        write_minimal_gguf(path)
        set_first_tensor_type(path, 250)
    elif kind == "undequantizable-quantization":
        block_size, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_K]
        write_minimal_gguf(path, tensors={"token_embd.weight": (np.zeros((2, type_size), np.uint8), gguf.GGMLQuantizationType.Q8_K)})
    return path


@pytest.mark.parametrize(
    "kind, sentence",
    [
        ("wrong-magic", "is not a GGUF file: it starts with"),
        ("truncated", "is truncated or damaged"),
        ("unknown-architecture", "is a 'mamba' model; tfund runs GGUF files of the llama"),
        ("unknown-version", "is GGUF version 99; tfund reads versions 2 and 3"),
        ("unknown-quantization", "holds tensors of type number 250, a quantization the gguf package does not know"),
        ("undequantizable-quantization", "stores token_embd.weight as Q8_K, which the gguf package cannot dequantize"),
    ],
)
@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_a_bad_gguf_is_one_line_exit_2(capsys, tmp_path, model_path, kind, sentence, engine):
    path = bad_file(kind, tmp_path, model_path)
    code, out, err = run_cli(capsys, "generate", "--model", str(path), "--engine", engine, "--max-new-tokens", "1")
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("tfund: error: ") and sentence in err, err


def test_a_model_that_does_not_fit_is_one_line_exit_1(capsys, model_path, monkeypatch):
    monkeypatch.setattr(reader, "available_memory", lambda: 100_000)
    monkeypatch.setattr(conversions, "available_memory", lambda: 100_000)
    code, out, err = run_cli(capsys, "generate", "--model", str(model_path), "--max-new-tokens", "1")
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "needs about 0.0 GB of memory once dequantized to float32" in err and "more than the 0.0 GB available here" in err


def test_a_folder_of_several_ggufs_is_one_line_exit_2(capsys, tmp_path, model_path):
    for name in ("a-Q8_0.gguf", "a-Q4_K_M.gguf"):
        (tmp_path / name).write_bytes(model_path.read_bytes())
    code, out, err = run_cli(capsys, "generate", "--model", str(tmp_path), "--max-new-tokens", "1")
    assert code == 2 and err.count("\n") == 1 and "holds 2 GGUF models (a-Q4_K_M.gguf, a-Q8_0.gguf); pass the one to load" in err, err


def test_tokenize_and_bench_decode_take_a_gguf(capsys, model_path):
    from tokenizers import Tokenizer

    from engine.formats.gguf import open_gguf

    code, out, err = run_cli(capsys, "tokenize", "--model", str(model_path), "--json", "Привет 1234 🎉")
    assert code == 0, err
    ids = Tokenizer.from_str(open_gguf(model_path).tokenizer_json()).encode("Привет 1234 🎉").ids
    assert json.loads(out)["ids"] == ids
    code, out, err = run_cli(
        capsys, "bench", "decode", "--model", str(model_path), "--tokens", "2", "--prompt-tokens", "4", "--repeats", "1", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["same_tokens"] is True
