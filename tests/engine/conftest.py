"""Helpers for the engine tests: a χ² goodness-of-fit check of token draws against a distribution."""

import math

import numpy as np

# The settings the sampling statistics are checked under: plain, cooled, top-k, top-p.
SAMPLING_SETTINGS = [dict(temperature=1.0), dict(temperature=0.6), dict(temperature=1.5, top_k=5), dict(temperature=1.0, top_p=0.8)]


def chi2_critical(dof: int, z: float = 3.09) -> float:
    """Wilson–Hilferty approximation of the chi-square quantile (z = 3.09 → p = 0.999)."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def chi2_of_draws(draws, probs) -> tuple[float, int]:  # [n] ids, [V] -> (χ², degrees of freedom)
    """Pearson's χ² of the draws' counts against `probs`: one cell per token expected at least 5 times,
    one cell for all the rest. Fails at once if a draw has probability 0."""
    probs = np.asarray(probs, dtype=np.float64)
    draws = np.asarray(draws)
    n = len(draws)
    outside = draws[probs[draws] == 0]
    assert outside.size == 0, f"drew tokens outside the support: {sorted(set(outside.tolist()))}"
    counts = np.bincount(draws, minlength=len(probs))
    big = probs * n >= 5
    observed = np.append(counts[big], counts[~big].sum())
    expected = np.append(probs[big] * n, probs[~big].sum() * n)
    keep = expected > 0
    observed, expected = observed[keep], expected[keep]
    assert len(expected) >= 2, "one cell only: nothing to test"
    return float(((observed - expected) ** 2 / expected).sum()), len(expected) - 1
