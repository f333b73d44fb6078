"""A GGUF's conversion kept in tfund's cache: the NumPy engine's weights in its own layout, written once and
memory-mapped back bit for bit; the torch engine's checkpoint beside them; redone when the file changes."""

import os

import numpy as np
import pytest

import engine.runtime.conversions as conversions
import engine.store.cache as cache
from engine.formats.gguf import GGUFMemoryError, open_gguf
from engine.model.families import architecture_from_config, params_from_state
from engine.model.transformer import NumpyLM
from engine.runtime.conversions import NUMPY_PART, TORCH_PART, GGUFModelFile, conversion_dir
from engine.tools.gguf_factory import SAMPLE_TEXTS, make_case


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return make_case("llama", tmp_path_factory.mktemp("model"), "Q4_1")


@pytest.fixture(scope="module")
def uncached(case):
    """The model as the GGUF itself gives it: (architecture, params), no cache involved."""
    gguf_file = open_gguf(case.path)
    arch = architecture_from_config(gguf_file.config())
    return arch, params_from_state(arch, gguf_file.state_dict())


def numpy_params(path, root, progress=None):
    model_file = GGUFModelFile(path, root)
    return model_file.numpy_params(architecture_from_config(model_file.config()), progress)


def leaves(tree):  # nested dicts and lists -> [array or None], in order
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in leaves(value)]
    if isinstance(tree, list):
        return [leaf for value in tree for leaf in leaves(value)]
    return [tree]


def assert_same_params(params, expected):
    got, want = leaves(params), leaves(expected)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == np.float32 and (a.flags.c_contiguous, a.flags.f_contiguous) == (b.flags.c_contiguous, b.flags.f_contiguous)
            np.testing.assert_array_equal(a, b)


def logits(arch, params, case):  # -> [T, V], on a prompt of >= 16 tokens
    ids = case.tokenizer.encode(SAMPLE_TEXTS["english"]).ids
    assert len(ids) >= 16
    return NumpyLM(arch, params).forward(ids, capture=False)[0]


def test_second_load_maps_the_kept_layout_and_gives_the_same_logits(case, uncached, tmp_path, monkeypatch):
    heard = []
    first = numpy_params(case.path, tmp_path, progress=heard.append)
    arch, expected = uncached
    folder = conversion_dir((case.path,), tmp_path) / NUMPY_PART
    assert (folder / "params.json").is_file() and (folder / "weights.bin").stat().st_size >= 4 * sum(
        p.size for p in leaves(expected) if p is not None
    )
    assert heard[0].startswith("reading llama-Q4_1.gguf")
    assert_same_params(first, expected)

    def no_parsing(path):
        raise AssertionError("the GGUF was parsed again")

    monkeypatch.setattr(conversions, "open_gguf", no_parsing)
    heard.clear()
    mapped = numpy_params(case.path.parent, tmp_path, progress=heard.append)  # the directory names the same file
    assert heard == [f"mapping the conversion of llama-Q4_1.gguf kept in {tmp_path / 'conversions'}"]
    assert_same_params(mapped, expected)
    qkv = mapped["blocks"][0]["attn"]["qkv"]["w"]
    assert type(qkv) is np.ndarray and isinstance(qkv.base, np.memmap) and not qkv.flags.writeable  # mapped, not copied
    np.testing.assert_array_equal(logits(arch, mapped, case), logits(arch, expected, case))  # bit-equal
    model_file = GGUFModelFile(case.path, tmp_path)
    assert (model_file.config(), model_file.file_type) == (open_gguf(case.path).config(), "Q4_1")


def test_a_changed_file_is_converted_again(case, tmp_path, monkeypatch):
    numpy_params(case.path, tmp_path)
    stat = case.path.stat()
    os.utime(case.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    parsed = []
    real_open = conversions.open_gguf
    monkeypatch.setattr(conversions, "open_gguf", lambda path: parsed.append(path) or real_open(path))
    numpy_params(case.path, tmp_path)
    assert parsed == [case.path]
    monkeypatch.setattr(conversions, "CONVERSION_VERSION", conversions.CONVERSION_VERSION + 1)  # a newer tfund
    numpy_params(case.path, tmp_path)
    assert parsed == [case.path, case.path]


def test_damaged_layout_is_redone(case, uncached, tmp_path):
    numpy_params(case.path, tmp_path)
    index = conversion_dir((case.path,), tmp_path) / NUMPY_PART / "params.json"
    index.write_text('{"params": {}}')  # JSON, but not an index
    assert_same_params(numpy_params(case.path, tmp_path), uncached[1])
    weights = conversion_dir((case.path,), tmp_path) / NUMPY_PART / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:200])
    assert_same_params(numpy_params(case.path, tmp_path), uncached[1])
    assert_same_params(numpy_params(case.path, tmp_path), uncached[1])  # and kept whole again
    assert weights.stat().st_size > 200


def test_the_torch_checkpoint_joins_the_numpy_layout(case, tmp_path):
    from safetensors.numpy import load_file

    numpy_params(case.path, tmp_path)
    directory = conversion_dir((case.path,), tmp_path)
    layout = sorted(p.name for p in (directory / NUMPY_PART).iterdir())
    assert not (directory / TORCH_PART).exists()
    assert GGUFModelFile(case.path, tmp_path).keep() == directory
    state = load_file(str(directory / TORCH_PART))
    for name, value in open_gguf(case.path).state_dict().items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)
    assert sorted(p.name for p in (directory / NUMPY_PART).iterdir()) == layout  # the NumPy part untouched
    (directory / TORCH_PART).write_bytes((directory / TORCH_PART).read_bytes()[:100])
    assert GGUFModelFile(case.path, tmp_path).keep() == directory  # a damaged checkpoint is written again
    assert load_file(str(directory / TORCH_PART)).keys() == state.keys()


def test_big_models_and_unwritable_caches_are_not_kept(case, uncached, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CONVERSION_LIMIT_BYTES", 1000)
    numpy_params(case.path, tmp_path)
    assert GGUFModelFile(case.path, tmp_path).keep() is None
    assert not (tmp_path / "conversions").exists()
    monkeypatch.undo()
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    assert_same_params(numpy_params(case.path, blocked), uncached[1])  # the cache cannot be made: load anyway


def test_kept_conversion_that_does_not_fit_is_refused(case, tmp_path, monkeypatch):
    numpy_params(case.path, tmp_path)
    monkeypatch.setattr(conversions, "open_gguf", lambda path: pytest.fail("the check must not parse the file"))
    monkeypatch.setattr(conversions, "available_memory", lambda: 1000)
    with pytest.raises(GGUFMemoryError, match="needs about 0.0 GB of memory once dequantized"):
        numpy_params(case.path, tmp_path)


def test_without_a_root_the_conversion_goes_under_tfund_cache(case, tmp_path, monkeypatch):
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "mine"))
    model_file = GGUFModelFile(case.path)
    assert model_file.directory.parent == cache.conversions_dir() == tmp_path / "mine" / "conversions"
    numpy_params(case.path, None)
    assert (model_file.directory / NUMPY_PART / "params.json").is_file()
