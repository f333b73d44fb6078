"""Shared fixtures: the shipped toy model, and random-init GPT-2 models built locally (no hub)."""

import pytest

from engine.model.gpt2 import GPT2Numpy
from engine.runtime.loading import load_model
from engine.tools.factories import random_gpt2


@pytest.fixture
def anyio_backend():
    """Pilot tests run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="module")
def toy():
    """The embedded toy model on the CPU (loaded once per test module)."""
    return load_model("toy", device="cpu")


@pytest.fixture(scope="session")
def tiny_hf():
    """2 layers, 4 heads, 64 wide, vocab 256, context 64; fp32, eager attention, eval mode."""
    return random_gpt2("tiny", seed=1)


@pytest.fixture(scope="session")
def tiny_numpy(tiny_hf):
    return GPT2Numpy.from_hf(tiny_hf)


@pytest.fixture(scope="session")
def short_context_hf():
    """The tiny shape with a 24-position context, to reach the last positions cheaply."""
    return random_gpt2("tiny", seed=2, n_positions=24)


@pytest.fixture(scope="session")
def tiny_dir(tiny_hf, tmp_path_factory):
    """The tiny model saved with save_pretrained (config.json + model.safetensors)."""
    path = tmp_path_factory.mktemp("tiny_gpt2")
    tiny_hf.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def gpt2_small_hf():
    """GPT-2-small-shaped (124M: 12 layers, 12 heads, 768 wide, vocab 50257), random init, seed 0."""
    return random_gpt2("gpt2", seed=0)


@pytest.fixture(scope="session")
def gpt2_small_numpy(gpt2_small_hf):
    return GPT2Numpy.from_hf(gpt2_small_hf)
