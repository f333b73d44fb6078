"""A model read from a GGUF names where it came from (a path, `smollm2`, `ollama:NAME`) and the file's type
in its ModelInfo, `tfund generate --json` and the trace's session line (the TUI's status line:
tests/tui/test_tui_model_source.py); the toy names neither."""

import json

import pytest

from engine.cli import main as tfund
from engine.events import DEFAULT_PROMPT
from engine.runtime.loading import load_model
from engine.runtime.sampler import Sampler
from engine.store import smollm2
from engine.tools.gguf_factory import make_case
from tests.engine.test_ollama import add_model


@pytest.fixture(autouse=True)
def tfund_cache(tmp_path, monkeypatch):
    """Conversions go to a cache of the test, never the user's."""
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "tfund-cache"))


@pytest.fixture(scope="module")
def q8_gguf(tmp_path_factory):
    return make_case("llama", tmp_path_factory.mktemp("model"), "Q8_0").path


def generate_json(capsys, tmp_path, model):
    """`tfund generate --json --trace` on `model`: (the JSON it prints, the trace's session line)."""
    trace = tmp_path / "trace.jsonl"
    argv = ["generate", "--model", model, "--engine", "numpy", "--max-new-tokens", "2", "--json", "--trace", str(trace)]
    assert tfund(argv) == 0
    result = json.loads(capsys.readouterr().out)
    header = json.loads(trace.read_text(encoding="utf-8").splitlines()[0])
    return result, header["session"]


def test_a_gguf_path_names_its_source_and_file_type_in_json_and_trace(capsys, tmp_path, q8_gguf):
    result, session = generate_json(capsys, tmp_path, str(q8_gguf))
    assert (result["model"], result["source"], result["file_type"]) == (str(q8_gguf), "gguf", "Q8_0")
    assert session == {"model": str(q8_gguf), "prompt": DEFAULT_PROMPT, "source": "gguf", "file_type": "Q8_0"}


def test_the_toy_names_neither(capsys, tmp_path):
    result, session = generate_json(capsys, tmp_path, "toy")
    assert "source" not in result and "file_type" not in result
    assert session == {"model": "toy", "prompt": DEFAULT_PROMPT}
    assert load_model("toy", device="cpu", engine="numpy").info.provenance() == {}


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_an_ollama_name_gives_source_ollama_on_both_engines(tmp_path, monkeypatch, q8_gguf, engine):
    add_model(tmp_path / "store", "registry.ollama.ai/library/tiny/latest", q8_gguf.read_bytes())
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "store"))
    model = load_model("ollama:tiny", device="cpu", engine=engine)
    assert (model.info.source, model.info.file_type) == ("ollama", "Q8_0")
    assert Sampler(model).info.provenance() == {"source": "ollama", "file_type": "Q8_0"}  # the sampler's info keeps it


def test_smollm2_gives_source_smollm2(tmp_path, monkeypatch):
    pinned = make_case("llama", tmp_path, "F32").path  # stands in for the fetched SmolLM2 file
    monkeypatch.setattr(smollm2, "ensure_smollm2", lambda progress=None: pinned)
    info = load_model("smollm2", device="cpu", engine="numpy").info
    assert info.provenance() == {"source": "smollm2", "file_type": "F32"}
