"""What every backend gives the sampler: one forward pass over new tokens, as NumPy data.

A backend has `reset()` (empty the KV cache), `crop(n)` (keep the first n positions) and
`forward(ids) -> ForwardOutput` (run new tokens after what the cache holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ForwardOutput:
    """What one forward pass over new tokens yields, as NumPy data."""

    logits: np.ndarray  # [V] next-token logits at the last new position
    attention: np.ndarray  # [L, H, T_new, T_total] attention of each new position
    resid: np.ndarray  # [L + 1, d] residual stream at the last new position (embedding, then each block)
    lens_ids: np.ndarray  # [L] logit-lens argmax per layer at the last new position
    lens_p: np.ndarray  # [L] its probability


def greedy_tokens(backend, prompt_ids: list[int], n_tokens: int) -> list[int]:
    """Greedy decoding through a backend's forward (full capture each token); no end-of-text stop."""
    backend.reset()
    out = backend.forward(list(prompt_ids))
    tokens: list[int] = []
    while len(tokens) < n_tokens:
        tokens.append(int(np.argmax(out.logits)))
        if len(tokens) < n_tokens:
            out = backend.forward([tokens[-1]])
    return tokens
