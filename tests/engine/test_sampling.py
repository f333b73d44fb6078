"""NumPy warpers vs transformers' Temperature/TopK/TopP warpers on the same logits; the draw itself."""

import numpy as np
import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from engine.model.sampling import raw_probs, sample, warp_probs
from tests.engine.conftest import SAMPLING_SETTINGS, chi2_critical, chi2_of_draws


def transformers_probs(logits, temperature, top_k, top_p):  # [V] -> [V] as `generate` would draw from
    """The warpers `generate` adds for these settings (it skips the no-op ones), in its order."""
    scores = torch.tensor(logits, dtype=torch.float32)[None]  # [1, V]
    warpers = []
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    for warper in warpers:
        scores = warper(None, scores)
    return torch.softmax(scores, dim=-1)[0].double().numpy()


def logits_sets():
    rng = np.random.default_rng(0)
    return {
        "normal": rng.standard_normal(1000) * 3,
        "peaked": np.concatenate([[12.0, 11.5], rng.standard_normal(300)]),
        "ties": np.round(rng.standard_normal(200) * 2),  # many exactly equal logits
        "flat": np.zeros(50),
    }


SETTINGS = [
    (1.0, 0, 1.0),
    (0.7, 0, 1.0),
    (1.5, 0, 1.0),
    (1.0, 1, 1.0),
    (1.0, 5, 1.0),
    (1.0, 2000, 1.0),  # k larger than the vocabulary
    (1.0, 0, 0.9),
    (1.0, 0, 0.5),
    (1.0, 0, 0.01),  # keeps at least one token
    (0.8, 40, 0.95),
    (2.0, 10, 0.3),
    (0.3, 3, 0.99),
]


@pytest.mark.parametrize("name", list(logits_sets()))
@pytest.mark.parametrize("temperature, top_k, top_p", SETTINGS)
def test_warped_distribution_equals_transformers(name, temperature, top_k, top_p):
    logits = logits_sets()[name]
    ours = warp_probs(logits, temperature, top_k, top_p)
    theirs = transformers_probs(logits, temperature, top_k, top_p)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(np.sort(ours), np.sort(theirs), atol=1e-6)  # the same distribution
    # the same tokens, except which of the tokens tied exactly at the top-p boundary survive
    not_tied_at_boundary = logits != logits[theirs > 0].min()
    np.testing.assert_array_equal((ours > 0)[not_tied_at_boundary], (theirs > 0)[not_tied_at_boundary])
    np.testing.assert_allclose(ours[not_tied_at_boundary], theirs[not_tied_at_boundary], atol=1e-6)
    assert ours.sum() == pytest.approx(1.0, abs=1e-12)


def test_top_k_keeps_every_token_tied_with_the_kth():
    logits = np.array([3.0, 2.0, 2.0, 2.0, 1.0])
    np.testing.assert_array_equal(warp_probs(logits, 1.0, top_k=2) > 0, [True, True, True, True, False])


def test_top_p_keeps_as_many_tied_tokens_as_transformers_lowest_ids_first():
    logits = np.array([0.0, 1.0, 1.0, 1.0, 1.0, -1.0])  # four tied tokens straddle the nucleus boundary
    for top_p, n_kept in ((0.3, 2), (0.5, 3), (0.6, 3), (0.8, 4)):
        ours = warp_probs(logits, 1.0, top_p=top_p)
        assert np.count_nonzero(transformers_probs(logits, 1.0, 0, top_p)) == n_kept
        np.testing.assert_array_equal(np.flatnonzero(ours), [1, 2, 3, 4][:n_kept])


def test_temperature_zero_is_greedy_with_ties_to_the_lowest_id():
    np.testing.assert_array_equal(warp_probs(np.array([0.1, 2.0, -1.0, 2.0]), 0, top_k=3, top_p=0.5), [0, 1, 0, 0])


def test_raw_probs_is_softmax_at_temperature_one():
    logits = np.random.default_rng(1).standard_normal(100) * 4 + 500  # large offset: must stay stable
    expected = torch.softmax(torch.tensor(logits - 500), dim=-1).numpy()
    np.testing.assert_allclose(raw_probs(logits), expected, rtol=1e-12)
    logits32 = logits.astype(np.float32)  # the warpers work in float32, like torch
    np.testing.assert_array_equal(raw_probs(logits32), warp_probs(logits32, 1.0))


def test_sample_repeats_with_the_same_seed_and_follows_the_probabilities():
    probs = warp_probs(np.log(np.array([0.5, 0.3, 0.15, 0.05, 1e-3])), 1.0, top_k=4)
    draws = [sample(probs, np.random.default_rng(3)) for _ in range(3)]
    assert len(set(draws)) == 1
    rng = np.random.default_rng(4)
    counts = np.bincount([sample(probs, rng) for _ in range(20000)], minlength=5)
    assert counts[4] == 0  # removed by top-k: never drawn
    np.testing.assert_allclose(counts / counts.sum(), probs, atol=0.015)  # ~4 standard errors
    assert isinstance(sample(probs, rng), int)


@pytest.fixture(scope="module")
def toy_logits(toy):  # [V]: the toy model's next-token logits after a prompt, a real peaked distribution
    ids = toy.tokenizer.encode("Once upon a time, a little", add_special_tokens=False)
    with torch.no_grad():
        return toy.hf_model(torch.tensor([ids])).logits[0, -1].numpy()


N_DRAWS = 20_000


@pytest.mark.parametrize("settings", SAMPLING_SETTINGS)
def test_draws_follow_the_warped_distribution(toy_logits, settings):
    """χ² over many draws: `sample` draws from exactly what `warp_probs` returns, never outside its support."""
    probs = warp_probs(toy_logits, **settings)
    rng = np.random.default_rng(1234)
    chi2, dof = chi2_of_draws([sample(probs, rng) for _ in range(N_DRAWS)], probs)
    assert dof >= 2
    assert chi2 < chi2_critical(dof), (chi2, dof)


@pytest.mark.parametrize("shift", [1, -1])
def test_the_chi2_check_catches_draws_one_id_off(toy_logits, shift):
    """The check above can fail: draws from the distribution shifted by one id are rejected."""
    probs = warp_probs(toy_logits, 1.0)
    rng = np.random.default_rng(1234)
    draws = [(sample(probs, rng) + shift) % len(probs) for _ in range(N_DRAWS)]
    unsupported = np.asarray(draws)[probs[np.asarray(draws)] == 0]
    assert unsupported.size == 0  # temperature 1 has full support: it is the χ² itself that must fail
    chi2, dof = chi2_of_draws(draws, probs)
    assert chi2 > chi2_critical(dof), (chi2, dof)
