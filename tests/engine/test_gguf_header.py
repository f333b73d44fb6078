"""tfund's one GGUF header reader (engine.formats.gguf.read_gguf_header): it agrees with gguf's own
reader on every field and tensor; the model store's quick scan (engine.store.gguf_header) goes through it;
a damaged file is one sentence."""

import gguf
import numpy as np
import pytest

from engine.formats.gguf import read_gguf_header
from engine.store import StoreError
from engine.store.gguf_header import read_header
from engine.tools.gguf_factory import make_case, write_tiny_model_gguf


def assert_same_as_ggufs_reader(path):
    ours, theirs = read_gguf_header(path), gguf.GGUFReader(path)
    assert ours.fields == {name: field.contents() for name, field in theirs.fields.items() if not name.startswith("GGUF.")}
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for mine, reference in zip(ours.tensors, theirs.tensors):
        assert (mine.tensor_type, mine.shape, mine.n_elements) == (
            reference.tensor_type,
            tuple(reference.shape.tolist()),
            reference.n_elements,
        )
        assert (mine.data_offset, mine.n_bytes, mine.data.shape) == (reference.data_offset, reference.n_bytes, reference.data.shape)
        np.testing.assert_array_equal(mine.data, reference.data)
    skipped = read_gguf_header(path, arrays=False)  # the store's quick scan: the same, arrays left undecoded
    assert skipped.fields == {name: None if isinstance(value, list) else value for name, value in ours.fields.items()}
    assert [(t.name, t.data_offset) for t in skipped.tensors] == [(t.name, t.data_offset) for t in ours.tensors]


@pytest.mark.parametrize("file_type", ["F32", "Q8_0", "Q4_1"])
def test_the_reader_agrees_with_ggufs_on_a_model_file(tmp_path, file_type):
    assert_same_as_ggufs_reader(make_case("qwen2", tmp_path, file_type).path)


@pytest.mark.parametrize("file_type", ["F32", "Q8_0", "Q4_1"])
def test_header_matches_what_was_written_and_ggufs_own_reader(tmp_path, file_type):
    path = tmp_path / "tiny.gguf"
    n_params = write_tiny_model_gguf(path, tensor_type=file_type, file_type=file_type, n_layer=3)
    assert_same_as_ggufs_reader(path)
    header = read_header(path)
    assert header.n_params == n_params == sum(int(t.n_elements) for t in gguf.GGUFReader(path).tensors)
    assert (header.architecture, header.file_type) == ("llama", file_type)
    assert (header.n_layer, header.n_head, header.n_head_kv, header.d_model, header.context_length) == (3, 4, 2, 32, 64)
    assert header.memory_bytes == 4 * n_params


def test_big_endian_file_and_a_file_without_file_type(tmp_path):
    path = tmp_path / "big.gguf"
    n_params = write_tiny_model_gguf(path, big_endian=True)
    assert (read_header(path).n_params, read_header(path).architecture) == (n_params, "llama")
    big = read_gguf_header(path)
    assert big.fields["llama.block_count"] == 2 and big.fields["tfund.test.floats"] == [0.5, 1.5, 2.5]
    little = tmp_path / "little.gguf"
    write_tiny_model_gguf(little)
    for a, b in zip(big.tensors, read_gguf_header(little).tensors):  # the same numbers, read in the file's byte order
        np.testing.assert_array_equal(a.data, b.data)
    path = tmp_path / "old.gguf"
    write_tiny_model_gguf(path, tensor_type="Q8_0", file_type=None)  # most matrices Q8_0: that names the type
    assert read_header(path).file_type == "Q8_0"


def test_gpt2_header_gives_its_sizes(tmp_path):
    path = tmp_path / "gpt2.gguf"
    write_tiny_model_gguf(path, arch="gpt2")
    header = read_header(path)
    assert (header.architecture, header.n_layer, header.n_head, header.d_model, header.context_length) == ("gpt2", 2, 4, 32, 64)


def test_damaged_files_are_one_sentence(tmp_path):
    good = tmp_path / "good.gguf"
    write_tiny_model_gguf(good)
    data = good.read_bytes()
    cases = {
        "truncated.gguf": (data[:200], "truncated"),
        "magic.gguf": (b"GGML" + data[4:], "GGUF magic"),
        "empty.gguf": (b"", "GGUF magic"),
        "version.gguf": (data[:4] + (99).to_bytes(4, "little") + data[8:], "version 99"),
    }
    for name, (content, words) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(StoreError) as caught:
            read_header(tmp_path / name)
        message = str(caught.value)
        assert words in message and name in message and "\n" not in message, message
    with pytest.raises(StoreError, match="No such file"):
        read_header(tmp_path / "missing.gguf")
