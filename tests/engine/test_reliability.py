"""Bad prompts never break the sampler; sampling properties hold for any logits (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.events import SamplingConfig
from engine.model.sampling import warp_probs
from engine.runtime.loading import load_model
from engine.runtime.sampler import Sampler


@pytest.fixture(scope="module")
def sampler():
    return Sampler(load_model("toy", device="cpu"), SamplingConfig(temperature=1.0, seed=0))


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "   \t\n ",
        "a" * 100_000,
        "bell\x07 escape\x1b[2J null\x00 end",
        "emoji 🙂🚀👩‍👩‍👧",
        "combining e\u0301 a\u0308 Z\u0335\u0321",
        "RTL مرحبا بالعالم שלום",
        "surrogate-escaped bytes \udcff\udcfe",
    ],
    ids=["empty", "whitespace", "100k-chars", "control-chars", "emoji", "combining", "rtl", "non-utf8-bytes"],
)
def test_any_prompt_gives_tokens_and_valid_text(sampler, prompt):
    sampler.set_prompt(prompt)
    assert 1 <= len(sampler.tokens) < sampler.n_positions
    events = list(sampler.run(5))
    assert events and all(0 <= ev.token_id < sampler.info.vocab_size for ev in events)
    sampler.text.encode("utf-8", errors="surrogatepass")  # always encodable text
    if len(prompt) == 100_000:
        assert sampler.prompt_dropped > 0  # the window says it dropped the start


logits_strategy = arrays(np.float32, st.integers(2, 64), elements=st.floats(-30, 30, width=32))


@settings(max_examples=60, deadline=None)
@given(logits=logits_strategy, temperature=st.floats(0.05, 5), top_k=st.integers(0, 70), top_p=st.floats(0.01, 1.0))
def test_warped_probabilities_are_a_distribution_within_top_k(logits, temperature, top_k, top_p):
    probs = warp_probs(logits, temperature, top_k, top_p)
    assert probs.sum() == pytest.approx(1.0, abs=1e-9) and (probs >= 0).all()
    if top_k > 0:
        kth = np.sort(logits)[-min(top_k, len(logits))]
        assert (probs > 0).sum() <= max(top_k, int((logits >= kth).sum()))  # ties with the k-th stay


@settings(max_examples=60, deadline=None)
@given(logits=logits_strategy, top_p=st.floats(0.05, 0.99))
def test_top_p_keeps_the_smallest_set_reaching_p(logits, top_p):
    probs = warp_probs(logits, 1.0, 0, top_p)
    kept = probs > 0
    full = warp_probs(logits, 1.0)
    assert full[kept].sum() >= top_p - 1e-5  # the kept set reaches p
    if kept.sum() > 1:  # and dropping its least likely member would not
        assert full[kept].sum() - full[kept].min() < top_p + 1e-5


@settings(max_examples=40, deadline=None)
@given(logits=logits_strategy)
def test_temperature_towards_zero_becomes_greedy(logits):
    if np.sort(logits)[-1] - np.sort(logits)[-2] < 1e-2:
        return  # a near-tie is not decided by a small temperature
    probs = warp_probs(logits, 1e-3)
    assert probs.argmax() == logits.argmax() and probs.max() > 0.99
    assert warp_probs(logits, 0.0)[logits.argmax()] == 1.0
