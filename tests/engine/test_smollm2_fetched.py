"""The real SmolLM2 file, fetched by `tfund fetch smollm2` (.ci/run does it before the tests): its hash and
its header as measured (llama, 30 blocks, 9 heads, 3 KV heads, 576 wide, Q4_1).

Without the fetch this skips, naming the command; with TFUND_REQUIRE_ALL=1 (set by .ci/run) a missing
fetch is a failure instead."""

import os

import pytest

from engine.store.gguf_header import read_header
from engine.store.smollm2 import SMOLLM2, SMOLLM2_HEADER, cached_path, describe, is_fetched, sha256_of
from engine.views.models import list_models


@pytest.fixture(scope="module")
def smollm2_path():
    if not is_fetched():
        reason = f"SmolLM2 is not in tfund's cache ({cached_path()}): run `tfund fetch smollm2` once (it downloads 93 MB)"
        if os.environ.get("TFUND_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; TFUND_REQUIRE_ALL=1 makes a missing fetch a failure")
        pytest.skip(reason)
    return cached_path()


def test_the_fetched_file_is_the_pinned_one_with_the_measured_header(smollm2_path):
    assert sha256_of(smollm2_path) == SMOLLM2.sha256
    header = read_header(smollm2_path)
    assert (header.architecture, header.n_layer, header.n_head, header.n_head_kv, header.d_model) == ("llama", 30, 9, 3, 576)
    assert (header.file_type, header.context_length, header.n_params) == ("Q4_1", 8192, 134_515_008)
    assert header == SMOLLM2_HEADER  # what `tfund models` shows before the fetch
    source = describe()
    assert source.as_dict() == {"source": "smollm2", "path": str(smollm2_path), "file_type": "Q4_1"}
    assert source.label() == "smollm2 (GGUF Q4_1)"


def test_models_lists_it_as_fetched(smollm2_path):
    entry = next(entry for entry in list_models() if entry.name == "smollm2")
    assert (entry.path, entry.note, entry.family, entry.file_type) == (str(smollm2_path), None, "llama", "Q4_1")
    assert entry.memory_bytes == 4 * 134_515_008
