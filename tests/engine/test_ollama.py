"""`ollama:NAME[:TAG]` → the GGUF blob in Ollama's store; each bad store is one sentence.

The stores are built here the way Ollama lays them out: a JSON manifest per NAME/TAG whose layers
name content-addressed blobs, the weights layer a GGUF file."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store import StoreError, StoreUnavailableError
from engine.store.gguf_header import describe_file
from engine.store.ollama import MODEL_MEDIA_TYPE, list_models, resolve, store_roots
from engine.tools.gguf_factory import write_tiny_model_gguf


def add_blob(root: Path, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / f"sha256-{digest}").write_bytes(content)
    return f"sha256:{digest}"


def add_model(root: Path, relpath: str, weights: bytes | None, media_type: str = MODEL_MEDIA_TYPE) -> str:
    """A manifest at manifests/<relpath> (host/namespace/name/tag) with a config, a template and a weights layer."""
    config = add_blob(root, b'{"model_format": "gguf"}')
    template = add_blob(root, b"{{ .Prompt }}")
    digest = add_blob(root, weights) if weights is not None else "sha256:" + "0" * 64
    layers = [{"mediaType": "application/vnd.ollama.image.template", "digest": template, "size": 13}]
    layers.append({"mediaType": media_type, "digest": digest, "size": len(weights or b"")})
    manifest = root / "manifests" / relpath
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "config": {"digest": config}, "layers": layers}))
    return digest


@pytest.fixture
def gguf_bytes(tmp_path):
    write_tiny_model_gguf(tmp_path / "tiny.gguf")
    return (tmp_path / "tiny.gguf").read_bytes()


@pytest.fixture
def store(tmp_path, gguf_bytes, monkeypatch):
    root = tmp_path / "ollama-models"
    add_model(root, "registry.ollama.ai/library/tinyllama/latest", gguf_bytes)
    add_model(root, "registry.ollama.ai/library/tinyllama/q8", gguf_bytes)
    add_model(root, "registry.ollama.ai/someone/tiny/v1", gguf_bytes)
    add_model(root, "hf.co/org/repo/Q4_1", gguf_bytes)
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    return root


def test_names_resolve_to_the_gguf_blob(store, gguf_bytes):
    digest = hashlib.sha256(gguf_bytes).hexdigest()
    for name in [
        "ollama:tinyllama",
        "ollama:tinyllama:latest",
        "ollama:tinyllama:q8",
        "ollama:someone/tiny:v1",
        "ollama:hf.co/org/repo:Q4_1",
    ]:
        model = resolve(name)
        assert model.blob == store / "blobs" / f"sha256-{digest}" and model.blob.read_bytes() == gguf_bytes, name
    assert resolve("ollama:tinyllama").name == "tinyllama:latest"
    source = describe_file("ollama", resolve("ollama:tinyllama").blob)  # what the status line, --json and the trace name
    assert source.as_dict() == {"source": "ollama", "path": str(model.blob), "file_type": "F32"} and source.label() == "ollama (GGUF F32)"
    assert list_models() == ["hf.co/org/repo:Q4_1", "tinyllama:latest", "tinyllama:q8", "someone/tiny:v1"]  # in path order


def test_store_roots_in_order(tmp_path, monkeypatch):
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store_roots() == [tmp_path / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "elsewhere"))
    assert store_roots() == [tmp_path / "elsewhere"]


def test_home_store_is_found_without_ollama_models(tmp_path, gguf_bytes, monkeypatch):
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    add_model(tmp_path / ".ollama" / "models", "registry.ollama.ai/library/tinyllama/latest", gguf_bytes)
    assert resolve("ollama:tinyllama").blob.read_bytes() == gguf_bytes


def one_sentence(error_type, name: str) -> str:
    with pytest.raises(error_type) as caught:
        resolve(name)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_manifest_says_how_to_pull_it(store):
    assert (
        one_sentence(StoreError, "ollama:llama3.2:1b")
        == f"Ollama has no model 'llama3.2:1b' in {store} (`ollama pull llama3.2:1b` fetches it)"
    )


def test_manifest_naming_a_missing_blob(store, gguf_bytes):
    (store / "blobs" / f"sha256-{hashlib.sha256(gguf_bytes).hexdigest()}").unlink()
    message = one_sentence(StoreUnavailableError, "ollama:tinyllama")
    assert message.startswith("the manifest of 'tinyllama:latest' names the blob sha256-") and "is missing from" in message
    assert "ollama pull tinyllama:latest" in message


def test_non_gguf_weights_and_no_weights_layer(store):
    add_model(store, "registry.ollama.ai/library/safet/latest", b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    assert "is not a GGUF model" in one_sentence(StoreError, "ollama:safet")
    add_model(store, "registry.ollama.ai/library/adapter/latest", b"GGUF", media_type="application/vnd.ollama.image.adapter")
    assert "has no weights layer" in one_sentence(StoreError, "ollama:adapter")
    (store / "manifests/registry.ollama.ai/library/broken").mkdir()
    (store / "manifests/registry.ollama.ai/library/broken/latest").write_text("{not json")
    assert "is not readable JSON" in one_sentence(StoreUnavailableError, "ollama:broken")


def test_bad_names_and_no_store(store, tmp_path, monkeypatch):
    for name in ["ollama:", "ollama:../x", "ollama:a/b/c/d", "ollama:x:../y"]:
        assert "is not an Ollama model name" in one_sentence(StoreError, name)
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "nowhere"))
    assert one_sentence(StoreError, "ollama:tinyllama").startswith("no Ollama store here (looked in ")
    assert list_models() == []


UNREADABLE_CHECK = """
import sys
from engine.store import StoreError
from engine.store.ollama import list_models, resolve
for attempt in (lambda: resolve("ollama:tinyllama"), list_models):
    try:
        attempt()
    except StoreError as error:
        print(type(error).__name__, error)
"""


def test_unreadable_store_is_one_sentence(store):
    """The Linux service's store belongs to the ollama user (mode 0700). Here the manifests folder is made
    unreadable; root reads everything, so as root the check runs without the capabilities that let it."""
    as_unprivileged = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    (store / "manifests").chmod(0o000)
    try:
        done = subprocess.run(
            [*as_unprivileged, sys.executable, "-c", UNREADABLE_CHECK],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[2],
            timeout=60,
        )
    finally:
        (store / "manifests").chmod(0o700)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    sentence = f"cannot read Ollama's store at {store} (permission denied)"
    assert len(lines) == 2 and all(line.startswith(f"StoreUnavailableError {sentence}") for line in lines), done.stdout
