"""Helpers for the Pilot tests: the usual terminal size, waiting on the app, a model that never ends its text."""

import dataclasses

import pytest

from engine.runtime.loading import load_model
from engine.store.smollm2 import cached_path, is_fetched
from tests.conftest import random_llama_dir, sampler_of, wait_until_async
from tests.support import require

SIZE = (100, 30)


async def wait_until(pilot, condition, what: str) -> None:
    """Poll `condition()` between short pilot pauses (the app runs meanwhile); fail naming `what`."""
    await wait_until_async(condition, what, interval=0.01, pause=pilot.pause)


async def settle(pilot) -> None:
    """Wait until the model is ready and no engine job runs or waits."""
    app = pilot.app
    await wait_until(pilot, lambda: sampler_of(app) is not None and app.session.engine.idle, "the engine")
    await pilot.pause()  # the process is idle now: let the last redraw happen


def notifications(app) -> list[str]:
    """The messages of the app's current notifications (Textual has no public accessor: the one private read)."""
    return [str(n.message) for n in app._notifications]


def endless(model):
    """The loaded model with no end-of-text id, so that a run goes on until it is paused (the sampler stops at
    any of `eos_ids`; the start token an empty prompt begins with is kept)."""
    return dataclasses.replace(model, bos_id=model.start_id, eos_ids=())


@pytest.fixture(scope="module")
def tiny_llama(toy_tokenizer, tmp_path_factory):
    """A random tiny Llama (RMSNorm, RoPE, SwiGLU, 4 query heads on 2 KV heads) with the toy's tokenizer, loaded."""
    return load_model(random_llama_dir(tmp_path_factory.mktemp("llama"), toy_tokenizer, seed=11), device="cpu")


def require_smollm2() -> None:
    require(is_fetched(), f"SmolLM2 (tfund's cache, {cached_path()})", "run `tfund fetch smollm2` once (it downloads 93 MB)")


@pytest.fixture(scope="module")
def smollm2():
    """The real SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by `tfund fetch smollm2`), loaded."""
    require_smollm2()
    return load_model("smollm2", device="cpu")
