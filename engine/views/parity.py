"""NumPy engine vs transformers on the same weights and token ids: logits and greedy continuations."""

from __future__ import annotations

import numpy as np
import torch

from engine.model.transformer import NumpyLM
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.numpy_backend import NumpyBackend
from engine.runtime.backends.torch_eager import TorchBackend

TOLERANCE = 1e-4  # max |logit difference| accepted in fp32


@torch.inference_mode()
def torch_logits(hf_model, token_ids: list[int]) -> np.ndarray:  # [T] -> [T, V] float32
    return hf_model(torch.tensor([token_ids])).logits[0].float().numpy()


def incremental_logits(model: NumpyLM, token_ids: list[int]) -> np.ndarray:  # [T] -> [T, V]
    """Logits from a half-prompt prefill followed by one token at a time through the KV cache."""
    cache = model.new_cache()
    split = max(1, len(token_ids) // 2)
    rows = [model.forward(token_ids[:split], cache, capture=False)[0]]
    rows += [model.forward([token_id], cache, capture=False)[0] for token_id in token_ids[split:]]
    return np.concatenate(rows)


def parity_report(hf_model, tokenizer_or_none, token_ids: list[int], n_greedy: int = 20, numpy_model: NumpyLM | None = None) -> dict:
    """Compare the NumPy engine with transformers (fp32, eager attention) on the same ids.

    Pass an fp32 model; it is switched to eval mode (no dropout). The greedy continuation is shortened
    so prompt + continuation fits in n_positions. With a tokenizer, the report also holds both
    continuations as text. `numpy_model` reuses weights already converted from this hf_model.
    """
    token_ids = [int(t) for t in token_ids]
    hf_model.eval()
    model = NumpyLM.from_hf(hf_model) if numpy_model is None else numpy_model
    if not 1 <= len(token_ids) <= model.n_positions:
        raise ValueError(f"the prompt must have 1 to {model.n_positions} tokens (got {len(token_ids)})")
    n_greedy = max(0, min(n_greedy, model.n_positions - len(token_ids)))

    full, _ = model.forward(token_ids, capture=False)  # [T, V]
    max_abs_diff = float(np.abs(full - torch_logits(hf_model, token_ids)).max())
    kv_cache_max_abs_diff = float(np.abs(incremental_logits(model, token_ids) - full).max())
    greedy_numpy = greedy_tokens(NumpyBackend(model), token_ids, n_greedy)
    greedy_torch = greedy_tokens(TorchBackend(hf_model), token_ids, n_greedy)
    greedy_match = greedy_numpy == greedy_torch
    report = {
        "n_prompt_tokens": len(token_ids),
        "max_abs_diff": max_abs_diff,
        "kv_cache_max_abs_diff": kv_cache_max_abs_diff,
        "greedy_numpy": greedy_numpy,
        "greedy_torch": greedy_torch,
        "greedy_match": greedy_match,
        "tolerance": TOLERANCE,
        "ok": max_abs_diff <= TOLERANCE and kv_cache_max_abs_diff <= TOLERANCE and greedy_match,
    }
    if tokenizer_or_none is not None:
        report["text_numpy"] = tokenizer_or_none.decode(greedy_numpy)
        report["text_torch"] = tokenizer_or_none.decode(greedy_torch)
    return report
