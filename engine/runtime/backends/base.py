"""What every backend gives the sampler: one forward pass over new tokens, as NumPy data.

A backend has `reset()` (empty the KV cache), `crop(n)` (keep the first n positions) and
`forward(ids) -> ForwardOutput` (run new tokens after what the cache holds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ForwardOutput:
    """What one forward pass over new tokens yields, as NumPy data.

    The logit lens is computed when first read (`lens_ids`, `lens_p`): on a 49k vocabulary it is one
    [L, d] x [d, V] product per token, more than all the blocks, so a run pays for it only at the
    steps someone looks at. A backend that has it already (the CUDA-graph step) passes `lens`."""

    logits: np.ndarray  # [V] next-token logits at the last new position
    attention: np.ndarray  # [L, H, T_new, T_total] attention of each new position
    resid: np.ndarray  # [L + 1, d] residual stream at the last new position (embedding, then each block)
    lens_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None  # resid -> (lens_ids, lens_p)
    lens: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # (lens_ids [L], lens_p [L]) once computed

    def _lens(self) -> tuple[np.ndarray, np.ndarray]:
        if self.lens is None:
            self.lens = self.lens_of(self.resid)
        return self.lens

    @property
    def lens_ids(self) -> np.ndarray:  # [L] logit-lens argmax per layer at the last new position
        return self._lens()[0]

    @property
    def lens_p(self) -> np.ndarray:  # [L] its probability
        return self._lens()[1]


def greedy_tokens(backend, prompt_ids: list[int], n_tokens: int, lens: bool = True) -> list[int]:
    """Greedy decoding through a backend's forward (attention and residual stream captured each token,
    and the logit lens read too unless lens=False); no end-of-text stop."""
    backend.reset()
    out = backend.forward(list(prompt_ids))
    tokens: list[int] = []
    while len(tokens) < n_tokens:
        if lens:
            out.lens_ids  # noqa: B018 (reading it computes the lens)
        tokens.append(int(np.argmax(out.logits)))
        if len(tokens) < n_tokens:
            out = backend.forward([tokens[-1]])
    return tokens
