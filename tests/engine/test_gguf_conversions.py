"""A GGUF's conversion kept in tfund's cache: written once, read back the same, redone when the file changes."""

import os

import numpy as np
import pytest

import engine.runtime.conversions as conversions
import engine.store.cache as cache
from engine.formats.gguf import GGUFMemoryError, open_gguf
from engine.runtime.conversions import GGUFModelFile, conversion_dir
from engine.tools.gguf_factory import make_case


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return make_case("llama", tmp_path_factory.mktemp("model"), "Q4_1")


def read_gguf(path, root, progress=None):
    return GGUFModelFile(path, root).converted(progress)


def assert_same(converted, gguf_file):
    assert converted.config == gguf_file.config()
    assert converted.tokenizer_json == gguf_file.tokenizer_json()
    assert converted.tokenizer_config == gguf_file.tokenizer_config()
    assert converted.file_type == "Q4_1"
    expected = gguf_file.state_dict()
    assert set(converted.state) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(converted.state[name], value, err_msg=name)


def test_second_read_comes_from_the_cache(case, tmp_path, monkeypatch):
    heard = []
    first = read_gguf(case.path, root=tmp_path, progress=heard.append)
    directory = conversion_dir((case.path,), tmp_path)
    assert (directory / "model.safetensors").is_file() and (directory / "tokenizer.json").is_file()
    assert heard[0].startswith("reading llama-Q4_1.gguf")
    gguf_file = open_gguf(case.path)
    assert_same(first, gguf_file)

    def no_parsing(path):
        raise AssertionError("the GGUF was parsed again")

    monkeypatch.setattr(conversions, "open_gguf", no_parsing)
    heard.clear()
    assert_same(read_gguf(case.path.parent, root=tmp_path, progress=heard.append), gguf_file)  # the directory names the same file
    assert heard == [f"reading the conversion of llama-Q4_1.gguf kept in {tmp_path / 'conversions'}"]
    model_file = GGUFModelFile(case.path, tmp_path)
    assert (model_file.config(), model_file.file_type, model_file.keepable()) == (gguf_file.config(), "Q4_1", True)


def test_a_changed_file_is_converted_again(case, tmp_path, monkeypatch):
    read_gguf(case.path, root=tmp_path)
    stat = case.path.stat()
    os.utime(case.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    parsed = []
    real_open = conversions.open_gguf
    monkeypatch.setattr(conversions, "open_gguf", lambda path: parsed.append(path) or real_open(path))
    read_gguf(case.path, root=tmp_path)
    assert parsed == [case.path]


def test_damaged_conversion_is_redone(case, tmp_path):
    read_gguf(case.path, root=tmp_path)
    weights = conversion_dir((case.path,), tmp_path) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert_same(read_gguf(case.path, root=tmp_path), open_gguf(case.path))


def test_big_models_and_unwritable_caches_are_not_kept(case, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CONVERSION_LIMIT_BYTES", 1000)
    read_gguf(case.path, root=tmp_path)
    assert not (tmp_path / "conversions").exists()
    monkeypatch.undo()
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    assert_same(read_gguf(case.path, root=blocked), open_gguf(case.path))  # the cache cannot be made: load anyway


def test_kept_conversion_that_does_not_fit_is_refused(case, tmp_path, monkeypatch):
    read_gguf(case.path, root=tmp_path)
    monkeypatch.setattr(conversions, "available_memory", lambda: 1000)
    with pytest.raises(GGUFMemoryError, match="needs about 0.0 GB of memory once dequantized"):
        read_gguf(case.path, root=tmp_path)


def test_without_a_root_the_conversion_goes_under_tfund_cache(case, tmp_path, monkeypatch):
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "mine"))
    model_file = GGUFModelFile(case.path)
    assert model_file.directory.parent == cache.conversions_dir() == tmp_path / "mine" / "conversions"
    model_file.converted()
    assert (model_file.directory / "model.safetensors").is_file()
