"""`tfund models`: toy, smollm2, the hub cache, Ollama's store and GGUF paths, read from headers only."""

import json
import os
import subprocess
import sys

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from engine.tools.gguf_factory import write_tiny_model_gguf
from engine.views.models import engine_support, format_models, list_models
from tests.conftest import random_gpt2_dir
from tests.engine.test_ollama import add_model


@pytest.fixture
def places(tmp_path, monkeypatch, toy_tokenizer):
    """A hub cache with a GPT-2 and a Llama, an Ollama store with one model, an empty tfund cache."""
    hub = tmp_path / "hub"
    gpt2 = hub / "models--someone--tiny-gpt2"
    snapshot = gpt2 / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    random_gpt2_dir(snapshot, toy_tokenizer, seed=0)
    (gpt2 / "refs").mkdir()
    (gpt2 / "refs" / "main").write_text("abc123")
    llama = hub / "models--org--tiny-llama" / "snapshots" / "def456"
    config = LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, vocab_size=64
    )
    LlamaForCausalLM(config).save_pretrained(llama)
    (hub / "models--org--half-downloaded" / "snapshots" / "0").mkdir(parents=True)
    damaged = hub / "models--org--damaged" / "snapshots" / "1"
    damaged.mkdir(parents=True)
    (damaged / "config.json").write_text('{"model_type": "gpt2"}')
    (damaged / "model.safetensors").write_bytes((8).to_bytes(8, "little") + b"[1, 2]  ")  # a header that is JSON, not a table
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    write_tiny_model_gguf(tmp_path / "tiny.gguf", n_layer=3)
    add_model(tmp_path / "ollama", "registry.ollama.ai/library/tinyllama/latest", (tmp_path / "tiny.gguf").read_bytes())
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "cache"))
    return {"hub": hub, "gpt2": snapshot, "llama": llama, "gguf": tmp_path / "tiny.gguf", "config": config}


def test_every_source_is_listed_with_its_figures(places, tmp_path):
    write_tiny_model_gguf(tmp_path / "gpt2.gguf", arch="gpt2")
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00")
    entries = {
        entry.name: entry for entry in list_models([str(places["gguf"]), str(tmp_path / "gpt2.gguf"), str(tmp_path / "broken.gguf")])
    }
    assert list(entries)[:2] == ["toy", "smollm2"]

    toy = entries["toy"]
    assert (toy.source, toy.family, toy.file_type, toy.engines) == ("toy", "gpt2", "F32", {"numpy": None, "torch": None})
    assert toy.n_params == 2_997_696 and toy.memory_bytes == 4 * toy.n_params  # the toy's safetensors (ties wte and lm_head)

    smollm2 = entries["smollm2"]  # not fetched: the pinned file's header, and how to fetch it
    assert (smollm2.family, smollm2.n_params, smollm2.file_type, smollm2.path) == ("llama", 134_515_008, "Q4_1", None)
    assert "tfund fetch smollm2" in smollm2.note

    gpt2 = entries["someone/tiny-gpt2"]
    params = sum(p.numel() for p in __import__("transformers").GPT2LMHeadModel.from_pretrained(places["gpt2"]).parameters())
    assert (gpt2.source, gpt2.family, gpt2.n_params, gpt2.file_type, gpt2.path) == ("hf-cache", "gpt2", params, "F32", str(places["gpt2"]))
    assert gpt2.engines == {"numpy": None, "torch": None}

    llama = entries["org/tiny-llama"]
    assert llama.family == "llama" and llama.n_params == LlamaForCausalLM(places["config"]).num_parameters()
    assert llama.engines == {"numpy": None, "torch": None}  # the Llama family runs on both engines
    assert "no readable config.json" in entries["org/half-downloaded"].note
    assert (entries["org/damaged"].n_params, entries["org/damaged"].note) == (None, "no readable safetensors weights: size unknown")

    ollama = entries["ollama:tinyllama:latest"]
    assert (ollama.source, ollama.family, ollama.file_type) == ("ollama", "llama", "F32")
    assert ollama.n_params == entries[str(places["gguf"])].n_params == write_tiny_model_gguf(tmp_path / "again.gguf", n_layer=3)

    assert entries[str(tmp_path / "gpt2.gguf")].engines == {"numpy": None, "torch": None}
    assert "is not a readable GGUF file" in entries[str(tmp_path / "broken.gguf")].note


def test_table_names_every_model_and_each_refusal_once(places):
    table = format_models(list_models())
    lines = table.splitlines()
    assert lines[0].split() == ["MODEL", "SOURCE", "FAMILY", "PARAMS", "TYPE", "MEMORY", "NUMPY", "TORCH"]
    assert lines[1].split() == ["toy", "toy", "gpt2", "3.0M", "F32", "12.0", "MB", "yes", "yes"]
    assert lines[2].split()[:7] == ["smollm2", "smollm2", "llama", "134.5M", "Q4_1", "538.1", "MB"]
    llama_row = next(line for line in lines if line.startswith("org/tiny-llama"))
    assert llama_row.split()[-2:] == ["yes", "yes"]


def test_engine_support_follows_the_engines_refusal_function():
    assert engine_support({"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8, "n_positions": 8, "vocab_size": 16}) == {
        "numpy": None,
        "torch": None,
    }
    odd = engine_support(
        {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8, "n_positions": 8, "vocab_size": 16, "activation_function": "swish"}
    )
    assert odd["torch"] is None and "activation_function 'swish'" in odd["numpy"]


def test_cli_json_and_an_unreadable_ollama_store(places, tmp_path):
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(places["hub"]),
        "OLLAMA_MODELS": str(tmp_path / "ollama"),
        "TFUND_CACHE": str(tmp_path / "cache"),
    }
    as_unprivileged = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    (tmp_path / "ollama" / "manifests").chmod(0o000)
    try:
        done = subprocess.run(
            [*as_unprivileged, sys.executable, "-m", "engine.cli", "models", "--json", str(places["gguf"])],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        (tmp_path / "ollama" / "manifests").chmod(0o700)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    result = json.loads(done.stdout)
    by_name = {model["name"]: model for model in result["models"]}
    assert by_name["toy"]["memory_bytes"] == 4 * by_name["toy"]["n_params"] and by_name["someone/tiny-gpt2"]["engines"]["numpy"] is None
    assert by_name["ollama:*"]["note"].startswith(f"cannot read Ollama's store at {tmp_path / 'ollama'} (permission denied)")
    assert by_name[str(places["gguf"])]["family"] == "llama" and result["cache"] == str(tmp_path / "cache")


def test_listing_imports_neither_torch_nor_transformers(places):
    check = "import sys; from engine.views.models import format_models, list_models; format_models(list_models()); print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env={**os.environ, "HF_HUB_CACHE": str(places["hub"])}, timeout=60
    )
    assert done.returncode == 0 and done.stdout == "[]\n", done.stderr


def test_a_weights_file_whose_header_length_passes_its_size_is_size_unknown_not_a_memory_error(tmp_path):
    from engine.views.models import directory_entry

    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8, "vocab_size": 16}')
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")  # its first 8 bytes read as ~8e18
    entry = directory_entry("damaged", "hf-cache", tmp_path)
    assert entry.n_params is None and entry.note == "no readable safetensors weights: size unknown"
