"""Reference values shown beside numbers, so that a learner can tell whether a number is a lot.

Pure functions of sizes and values; the facts they stand for are stated in the glossary
(tui/screens/help.py) and the explanation cards.
"""

from __future__ import annotations

import math

KL_SCALE = ((0.01, "negligible"), (1.0, "noticeable"), (math.inf, "very different"))  # (below, word), in nats


def chance_text(vocab_size: int) -> str:
    """1/V, the probability of a uniform guess over the vocabulary, as a percentage: 1453 tokens -> "0.069%"."""
    return f"{100 / vocab_size:.2g}%"


def max_entropy(vocab_size: int) -> float:
    """ln V: the entropy (nats) of the flattest next-token distribution, every token equally likely."""
    return math.log(vocab_size)


def kl_word(kl: float) -> str:
    """A rough scale for a KL divergence in nats."""
    return next(word for below, word in KL_SCALE if kl < below)


def angle(cosine: float) -> str:
    """A cosine as the angle it stands for: 0.96 -> "16°" (a stream that overflowed has none)."""
    if not math.isfinite(cosine):
        return "no angle"
    return f"{math.degrees(math.acos(max(-1.0, min(1.0, cosine)))):.0f}°"
