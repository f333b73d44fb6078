"""Decode speed: the NumPy KV-cache engine vs transformers on CPU, same weights, same run.

Both decode greedily through their backend (backends.base.greedy_tokens), with the full capture the
app uses (attention, residual stream, logit lens). Each repeat runs both engines back to back (alternating which goes first) on the same prompt, so
machine noise hits both alike; the figures are medians. Times include the prompt's prefill.
On a GPU `tfund bench decode --device cuda` runs bench_fast below instead; the
tables for both are formatted here.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from engine.model.transformer import NumpyLM
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.cuda_graph import FastTorchBackend
from engine.runtime.backends.numpy_backend import NumpyBackend
from engine.runtime.backends.torch_eager import TorchBackend


def timed(backend, prompt_ids: list[int], n_tokens: int) -> tuple[float, list[int]]:  # -> seconds, generated ids
    start = time.perf_counter()
    tokens = greedy_tokens(backend, prompt_ids, n_tokens)
    return time.perf_counter() - start, tokens


def bench_decode(hf_model, prompt_ids: list[int], n_tokens: int, repeats: int = 5) -> dict:
    """Greedy-decode n_tokens with both engines `repeats` times; tok/s medians and their ratio."""
    hf_model.eval()
    model = NumpyLM.from_hf(hf_model)
    prompt_ids = [int(t) for t in prompt_ids]
    if n_tokens < 1 or repeats < 1:
        raise ValueError(f"tokens and repeats must be >= 1 (got tokens={n_tokens}, repeats={repeats})")
    if not prompt_ids or len(prompt_ids) + n_tokens > model.n_positions:
        raise ValueError(f"prompt + tokens must fit in 1..{model.n_positions} positions")

    engines = {"numpy": NumpyBackend(model), "torch": TorchBackend(hf_model)}
    for backend in engines.values():  # warm-up: first calls allocate and fill caches
        greedy_tokens(backend, prompt_ids, 2)
    seconds = {name: [] for name in engines}
    tokens = {}
    for repeat in range(repeats):
        order = list(engines) if repeat % 2 == 0 else list(reversed(engines))
        for name in order:
            elapsed, tokens[name] = timed(engines[name], prompt_ids, n_tokens)
            seconds[name].append(elapsed)

    numpy_tok_s = n_tokens / statistics.median(seconds["numpy"])
    torch_tok_s = n_tokens / statistics.median(seconds["torch"])
    return {
        "prompt_tokens": len(prompt_ids),
        "n_tokens": n_tokens,
        "repeats": repeats,
        "numpy_tok_s": numpy_tok_s,
        "torch_tok_s": torch_tok_s,
        "ratio": numpy_tok_s / torch_tok_s,
        "same_tokens": tokens["numpy"] == tokens["torch"],
        "torch_threads": torch.get_num_threads(),
        "numpy_seconds": seconds["numpy"],
        "torch_seconds": seconds["torch"],
    }


def format_decode_table(result: dict, label: str) -> str:
    """The CPU table: NumPy KV-cache engine vs transformers, tok/s and their ratio."""
    return "\n".join(
        [
            f"decode benchmark: {label}, cpu, {result['prompt_tokens']} prompt + {result['n_tokens']} new tokens, "
            f"median of {result['repeats']}, {result['torch_threads']} torch threads",
            f"{'engine':<32}{'tok/s':>10}",
            f"{'numpy (KV cache, full capture)':<32}{result['numpy_tok_s']:>10.1f}",
            f"{'transformers (full capture)':<32}{result['torch_tok_s']:>10.1f}",
            f"ratio numpy/transformers {result['ratio']:.2f}x; same tokens: {'yes' if result['same_tokens'] else 'NO'}",
        ]
    )


def format_fast_table(result: dict, label: str) -> str:
    """The GPU table (bench_fast below): our step loop with full capture vs transformers generate."""
    graphs = "yes" if result["graphed"] else f"no ({result['graph_error']})" if result["graph_error"] else "no"
    return "\n".join(
        [
            f"decode benchmark: {label}, {result['device']} ({result['device_name']}), {result['dtype']}, "
            f"{result['prompt_tokens']} prompt + {result['n_tokens']} new tokens, median of {result['repeats']}",
            f"{'engine':<48}{'tok/s':>10}",
            f"{'tfund step loop, full capture (static cache)':<48}{result['fast_tok_s']:>10.1f}",
            f"{'tfund eager TorchBackend, full capture':<48}{result['eager_tok_s']:>10.1f}",
            f"{'transformers generate, no capture':<48}{result['generate_tok_s']:>10.1f}",
            f"ratio step loop/generate {result['fast_vs_generate']:.2f}x, step loop/eager {result['fast_vs_eager']:.2f}x; "
            f"CUDA graphs: {graphs}; same tokens as eager: {'yes' if result['same_tokens_fast_eager'] else 'NO'}",
        ]
    )


# ---- CUDA: our step loop with full capture vs eager vs transformers generate ----------------


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generate_tokens(hf_model: Any, prompt_ids: list[int], n_tokens: int) -> list[int]:
    """transformers generate, greedy, exactly n_tokens new tokens, no captures."""
    device = next(hf_model.parameters()).device
    input_ids = torch.tensor([prompt_ids], device=device)
    with torch.no_grad():
        out = hf_model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=n_tokens,
            min_new_tokens=n_tokens,
            pad_token_id=hf_model.config.eos_token_id,
        )
    return out[0, len(prompt_ids) :].tolist()


def bench_fast(hf_model: Any, prompt_ids: list[int], n_tokens: int, device: str | None = None, repeats: int = 5) -> dict:
    """Greedy tok/s: fast path with full capture vs eager TorchBackend with full capture vs generate.

    Same model, device, dtype, prompt and token count; `device` moves the model there first. Each
    repeat runs the three back to back (rotating which goes first); figures are medians and include
    the prompt's prefill. A warm-up run of each (graph capture included) is not timed.
    """
    if n_tokens < 1 or repeats < 1:
        raise ValueError(f"tokens and repeats must be >= 1 (got tokens={n_tokens}, repeats={repeats})")
    n_positions = hf_model.config.n_positions
    prompt_ids = [int(t) for t in prompt_ids]
    if not prompt_ids or len(prompt_ids) + n_tokens > n_positions:
        raise ValueError(f"prompt + tokens must fit in 1..{n_positions} positions")
    if device is not None:
        hf_model.to(device)
    hf_model.eval()
    run_device = next(hf_model.parameters()).device
    fast, eager = FastTorchBackend(hf_model), TorchBackend(hf_model)
    runs = {
        "fast": lambda: greedy_tokens(fast, prompt_ids, n_tokens),
        "eager": lambda: greedy_tokens(eager, prompt_ids, n_tokens),
        "generate": lambda: generate_tokens(hf_model, prompt_ids, n_tokens),
    }
    tokens = {name: run() for name, run in runs.items()}  # warm-up (and graph capture)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for repeat in range(repeats):
        for name in names[repeat % 3 :] + names[: repeat % 3]:
            _synchronize(run_device)
            start = time.perf_counter()
            tokens[name] = runs[name]()
            _synchronize(run_device)
            seconds[name].append(time.perf_counter() - start)
    tok_s = {name: n_tokens / statistics.median(seconds[name]) for name in runs}
    return {
        "device": str(run_device),
        "device_name": torch.cuda.get_device_name(run_device) if run_device.type == "cuda" else "cpu",
        "dtype": str(next(hf_model.parameters()).dtype).removeprefix("torch."),
        "prompt_tokens": len(prompt_ids),
        "n_tokens": n_tokens,
        "repeats": repeats,
        "fast_tok_s": tok_s["fast"],
        "eager_tok_s": tok_s["eager"],
        "generate_tok_s": tok_s["generate"],
        "fast_vs_generate": tok_s["fast"] / tok_s["generate"],
        "fast_vs_eager": tok_s["fast"] / tok_s["eager"],
        "same_tokens_fast_eager": tokens["fast"] == tokens["eager"],
        "same_tokens_fast_generate": tokens["fast"] == tokens["generate"],
        "graphed": fast.graphed,
        "graph_error": fast.graph_error,
        "torch_threads": torch.get_num_threads(),
        "seconds": seconds,
    }
