"""The NumPy backend: the project's from-scratch engine (engine.model.transformer) with its own KV cache, on the CPU."""

from __future__ import annotations

import numpy as np

from engine.model.ops import softmax
from engine.model.transformer import NumpyLM, last_resid
from engine.runtime.backends.base import ForwardOutput


class NumpyBackend:
    """The project's from-scratch NumPy engine with its own KV cache (CPU), room for max_len positions
    (default: the model's context)."""

    def __init__(self, net: NumpyLM, max_len: int | None = None):
        self.net = net
        self.cache = net.new_cache(max_len)

    def reset(self) -> None:
        self.cache.crop(0)

    def crop(self, n: int) -> None:
        self.cache.crop(n)

    def forward(self, ids: list[int]) -> ForwardOutput:
        logits, captures = self.net.forward(ids, cache=self.cache, capture=True)  # [T_new, V]
        n_layer = self.net.n_layer
        resid = last_resid(captures, n_layer)  # [L + 1, d]
        attention = np.empty((n_layer, *captures["blocks.0.attn.hook_pattern"].shape), np.float32)  # [L, H, T_new, T]
        for i in range(n_layer):  # each layer's capture freed once copied: a long prefill holds one [L, H, T, T], not two
            attention[i] = captures.pop(f"blocks.{i}.attn.hook_pattern")
        return ForwardOutput(
            logits=logits[-1],
            attention=attention,
            resid=resid,
            lens_of=self.lens_top,
        )

    def lens_top(self, resid):  # [L + 1, d] -> [L] ids, [L] probabilities
        """The logit lens after each block: its most likely token and that token's probability."""
        lens_probs = softmax(self.net.lens(resid[1:]))  # [L, V]
        return lens_probs.argmax(axis=-1), lens_probs.max(axis=-1)
