"""The real SmolLM2 file, fetched by `tfund fetch smollm2` (.ci/run does it before the tests): its hash and
its header as measured (llama, 30 blocks, 9 heads, 3 KV heads, 576 wide, Q4_1), and the NumPy engine on
it against transformers' own GGUF loader.

Without the fetch this skips, naming the command; with TFUND_REQUIRE_ALL=1 (set by .ci/run) a missing
fetch is a failure instead (tests/support.py)."""

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.runtime.loading import load_model
from engine.runtime.sampler import Sampler
from engine.store.gguf_header import read_header
from engine.store.smollm2 import SMOLLM2, SMOLLM2_HEADER, cached_path, describe, is_fetched, sha256_of
from engine.views.models import list_models
from tests.support import require

PARITY_PROMPT = "The quick brown fox jumps over the lazy dog, because it wanted to see what was on the other side of the hill."


@pytest.fixture(scope="module")
def smollm2_path():
    require(is_fetched(), f"SmolLM2 (tfund's cache, {cached_path()})", "run `tfund fetch smollm2` once (it downloads 93 MB)")
    return cached_path()


@pytest.fixture(scope="module")
def numpy_smollm2(smollm2_path):
    return load_model("smollm2", device="cpu", engine="numpy")


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


def test_the_numpy_engine_equals_transformers_own_gguf_load(smollm2_path, numpy_smollm2):
    """Two independent readers of one file: tfund's (gguf package, Q/K rows unpermuted, NumPy block) and
    transformers' GGUF loader with its torch model; a 16+ token prompt shows a wrong row order."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(smollm2_path.parent), smollm2_path.name
    hf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager").eval()
    ids = AutoTokenizer.from_pretrained(folder, gguf_file=name).encode(PARITY_PROMPT, add_special_tokens=False)
    assert len(ids) >= 16
    assert numpy_smollm2.tokenizer.encode(PARITY_PROMPT, add_special_tokens=False) == ids
    with torch.inference_mode():
        expected = hf_model(torch.tensor([ids])).logits[0].numpy()  # [T, V]
    logits, _ = numpy_smollm2.numpy_model().forward(ids, capture=False)  # [T, V]
    assert np.abs(logits - expected).max() <= 1e-3


def test_greedy_answers_paris(numpy_smollm2):
    sampler = Sampler(numpy_smollm2, SamplingConfig(temperature=0.0, seed=0))
    sampler.set_prompt("The capital of France is")
    assert sampler.step().text == " Paris"
