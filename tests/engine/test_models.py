"""load_model: the toy model, local directories, and one clear sentence for every bad model."""

import json
import shutil

import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from engine.runtime import devices, sources
from engine.runtime.loading import ModelLoadError, ModelUnavailableError, load_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, toy_tokenizer):
    """A tiny random GPT-2 with the toy tokenizer, saved as a user would."""
    path = tmp_path_factory.mktemp("tiny")
    toy = load_model("toy", device="cpu")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=toy.info.vocab_size)
    GPT2LMHeadModel(config).save_pretrained(path)
    toy_tokenizer.save_pretrained(path)
    return path


def copy_of(src, tmp_path, drop=()):
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    return dst


def test_toy_loads_offline_with_eager_attention(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    toy = load_model("toy", device="cpu")
    assert toy.device == "cpu" and toy.info.n_layer >= 2 and toy.info.vocab_size == len(toy.tokenizer)
    assert toy.hf_model.config._attn_implementation == "eager"
    assert not toy.hf_model.training


def test_local_directory_loads(tiny_dir):
    model = load_model(str(tiny_dir), device="cpu")
    assert model.info.n_layer == 2 and model.info.n_positions == 64


def test_auto_device_is_cpu_without_accelerators():
    assert devices.resolve_device("auto") in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailableError, match="no usable CUDA"):
            devices.resolve_device("cuda")


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing", "no model directory"),
        ("empty", "no config.json"),
        ("no_tokenizer", "no tokenizer files"),
        ("corrupt_weights", "could not load model"),
        ("pickle_only", "only pickle weights"),
        ("bad_json", "not valid JSON"),
    ],
)
def test_bad_model_directories_give_one_sentence(tiny_dir, tmp_path, breakage, message):
    if breakage == "missing":
        path = tmp_path / "absent"
    elif breakage == "empty":
        path = tmp_path / "empty"
        path.mkdir()
    elif breakage == "no_tokenizer":
        path = copy_of(tiny_dir, tmp_path)
        for f in path.iterdir():
            if f.name.startswith(("tokenizer", "vocab", "merges", "special")):
                f.unlink()
    elif breakage == "corrupt_weights":
        path = copy_of(tiny_dir, tmp_path)
        (path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    elif breakage == "pickle_only":
        path = copy_of(tiny_dir, tmp_path, drop=["model.safetensors"])
        torch.save({"x": torch.zeros(1)}, path / "pytorch_model.bin")
    else:
        path = copy_of(tiny_dir, tmp_path)
        (path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(str(path), device="cpu")
    assert "\n" not in str(info.value)


def test_non_gpt2_architecture_is_refused(tmp_path):
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="'bert' model"):
        load_model(str(tmp_path), device="cpu")


def test_uncached_hub_name_offline_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sources, "_cached_hub_dir", lambda name: None)
    with pytest.raises(ModelUnavailableError, match="not in the Hugging Face cache.*hf download gpt2"):
        load_model("gpt2")


def test_cached_hub_name_loads_from_the_cache_without_network(monkeypatch, tiny_dir):
    monkeypatch.setattr(sources, "_cached_hub_dir", lambda name: str(tiny_dir) if name == "someone/tiny" else None)
    monkeypatch.setattr(sources, "_hub_reachable", lambda: pytest.fail("the network must not be probed for a cached model"))
    model = load_model("someone/tiny", device="cpu")
    assert model.path == str(tiny_dir)


def test_config_json_model_type_is_checked_before_any_weights_load(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma"}))
    with pytest.raises(ModelLoadError, match="'gemma' model"):
        load_model(str(tmp_path), device="cpu")
