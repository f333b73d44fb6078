"""`--device-map auto`: accelerate spreads a model the torch engine runs; with a CPU cap smaller than
the model, the blocks go to disk and are streamed in for each forward, and the numbers do not change."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.runtime.loading import ModelLoadError, load_model
from engine.runtime.placement import device_map_of
from engine.runtime.sampler import Sampler
from tests.conftest import random_gpt2_dir

PROMPT = "Once upon a time there was a little girl who liked to play in the garden with her dog"


@pytest.fixture(scope="module")
def model_dir(toy_tokenizer, tmp_path_factory):
    return random_gpt2_dir(tmp_path_factory.mktemp("device_map"), toy_tokenizer, seed=4)


def run(model, n=8):
    sampler = Sampler(model, SamplingConfig(temperature=0, max_new_tokens=n))
    sampler.set_prompt(PROMPT)
    events = list(sampler.run())
    return sampler, events


@pytest.mark.parametrize("share, placed", [(0.85, "cpu+disk"), (0.0, "disk")])
def test_offloaded_model_gives_the_same_tokens_logits_and_attention(model_dir, tmp_path, monkeypatch, share, placed):
    """85% of the float32 weights on the CPU: the last blocks on disk; none: all of it on disk (its
    parameters wait on the meta device, and the inputs still go to the CPU)."""
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path))  # the offload folder is made under the cache
    whole = load_model(model_dir, engine="torch", device="cpu")
    spread = load_model(model_dir, device_map="auto", max_memory={"cpu": int(whole.hf_model.num_parameters() * 4 * share)})
    assert "+".join(dict.fromkeys(device_map_of(spread.hf_model).values())) == placed
    assert spread.engine == "torch" and spread.info.device == placed and spread.device == "cpu"
    (a, a_events), (b, b_events) = run(whole), run(spread)
    assert len(a.tokens) >= 16 + 8 and a.info.device == "cpu" and b.info.device == placed
    assert [e.token_id for e in a_events] == [e.token_id for e in b_events]
    for x, y in zip(a.views, b.views):
        np.testing.assert_allclose(x.attention, y.attention, atol=1e-6)
        np.testing.assert_allclose(x.norms, y.norms, rtol=1e-5)
    np.testing.assert_allclose(a.backend.forward([5]).logits, b.backend.forward([5]).logits, atol=1e-5)


def test_device_map_needs_the_torch_engine(model_dir):
    with pytest.raises(ModelLoadError, match="--device-map spreads a model for the torch engine"):
        load_model(model_dir, engine="numpy", device_map="auto")


def tfund_generate(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "engine.cli",
        "generate",
        "--prompt",
        PROMPT,
        "--max-new-tokens",
        "4",
        "--temperature",
        "0",
        "--json",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)


def test_cli_device_map(tmp_path):
    plain, spread = tfund_generate("--engine", "torch"), tfund_generate("--device-map", "auto")
    assert plain.returncode == spread.returncode == 0, spread.stderr
    plain, spread = json.loads(plain.stdout), json.loads(spread.stdout)
    assert spread["engine"] == "torch" and spread["tokens"] == plain["tokens"]
    for bad in (["--engine", "numpy"], ["--device", "cpu"]):
        done = tfund_generate("--device-map", "auto", *bad)
        assert done.returncode == 2 and done.stdout == ""
        assert (
            done.stderr
            == "tfund: error: argument --device-map: it places the model for the torch engine itself; drop --device and --engine numpy\n"
        )
