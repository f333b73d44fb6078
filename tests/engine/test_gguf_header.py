"""engine.store.gguf_header: the header scan agrees with gguf's own reader, and a damaged file is one sentence."""

import gguf
import pytest

from engine.store import StoreError
from engine.store.gguf_header import read_header
from tests.engine.tiny_gguf import write_tiny_gguf

Q = gguf.GGMLQuantizationType


@pytest.mark.parametrize(
    "file_type, tensor_type, name",
    [
        (gguf.LlamaFileType.ALL_F32, Q.F32, "F32"),
        (gguf.LlamaFileType.MOSTLY_Q8_0, Q.Q8_0, "Q8_0"),
        (gguf.LlamaFileType.MOSTLY_Q4_1, Q.Q4_1, "Q4_1"),
    ],
)
def test_header_matches_what_was_written_and_ggufs_own_reader(tmp_path, file_type, tensor_type, name):
    path = tmp_path / "tiny.gguf"
    n_params = write_tiny_gguf(path, file_type=file_type, tensor_type=tensor_type, n_layer=3)
    header = read_header(path)
    reference = gguf.GGUFReader(path)  # llama.cpp's reader decodes everything: an independent count
    assert header.n_params == n_params == sum(int(t.n_elements) for t in reference.tensors)
    assert (header.architecture, header.file_type) == ("llama", name)
    assert (header.n_layer, header.n_head, header.n_head_kv, header.d_model, header.context_length) == (3, 4, 2, 32, 64)
    assert header.memory_bytes == 4 * n_params


def test_big_endian_file_and_a_file_without_file_type(tmp_path):
    path = tmp_path / "big.gguf"
    n_params = write_tiny_gguf(path, big_endian=True)
    assert (read_header(path).n_params, read_header(path).architecture) == (n_params, "llama")
    path = tmp_path / "old.gguf"
    write_tiny_gguf(path, tensor_type=Q.Q8_0, with_file_type=False)  # most tensors Q8_0: that names the type
    assert read_header(path).file_type == "Q8_0"


def test_gpt2_header_gives_its_sizes(tmp_path):
    path = tmp_path / "gpt2.gguf"
    write_tiny_gguf(path, architecture="gpt2")
    header = read_header(path)
    assert (header.architecture, header.n_layer, header.n_head, header.d_model, header.context_length) == ("gpt2", 2, 4, 32, 64)


def test_damaged_files_are_one_sentence(tmp_path):
    good = tmp_path / "good.gguf"
    write_tiny_gguf(good)
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
