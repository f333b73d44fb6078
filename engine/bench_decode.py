"""Decode speed: the NumPy KV-cache engine vs transformers on CPU, same weights, same run.

Each repeat runs both engines back to back (alternating which goes first) on the same prompt, so
machine noise hits both alike; the figures are medians. Times include the prompt's prefill.
On a GPU `tfund bench decode --device cuda` runs engine.fast_decode.bench_fast instead; the
tables for both are formatted here.
"""

from __future__ import annotations

import statistics
import time

import torch

from engine.gpt2_numpy import GPT2Numpy
from engine.parity import numpy_greedy, torch_greedy

# name -> (n_layer, n_head, n_embd, vocab_size, n_positions)
SHAPES = {
    "tiny": (2, 4, 64, 256, 64),  # for tests: builds in milliseconds
    "gpt2": (12, 12, 768, 50257, 1024),  # GPT-2 small, 124M
    "gpt2-medium": (24, 16, 1024, 50257, 1024),  # 355M
    "gpt2-large": (36, 20, 1280, 50257, 1024),  # 774M
    "gpt2-xl": (48, 25, 1600, 50257, 1024),  # 1.5B
}


def random_gpt2(config_name: str = "gpt2", seed: int = 0, **overrides):
    """A random-init GPT2LMHeadModel of a known shape (no hub), fp32, eager attention, eval mode.

    `overrides` go to GPT2Config (e.g. n_positions=32). The seed is applied inside a forked torch RNG,
    so the caller's global torch random state is left as it was.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    if config_name not in SHAPES:
        raise ValueError(f"config name must be one of {sorted(SHAPES)} (got {config_name!r})")
    n_layer, n_head, n_embd, vocab_size, n_positions = SHAPES[config_name]
    settings = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size, n_positions=n_positions)
    settings.update(overrides)
    last_id = settings["vocab_size"] - 1  # GPT-2's end-of-text is its last id
    config = GPT2Config(bos_token_id=last_id, eos_token_id=last_id, attn_implementation="eager", **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model.eval()


def timed(decode, *args) -> tuple[float, list[int]]:  # -> seconds, generated ids
    start = time.perf_counter()
    tokens = decode(*args)
    return time.perf_counter() - start, tokens


def bench_decode(hf_model, prompt_ids: list[int], n_tokens: int, repeats: int = 5) -> dict:
    """Greedy-decode n_tokens with both engines `repeats` times; tok/s medians and their ratio."""
    hf_model.eval()
    model = GPT2Numpy.from_hf(hf_model)
    prompt_ids = [int(t) for t in prompt_ids]
    if n_tokens < 1 or repeats < 1:
        raise ValueError(f"tokens and repeats must be >= 1 (got tokens={n_tokens}, repeats={repeats})")
    if not prompt_ids or len(prompt_ids) + n_tokens > model.n_positions:
        raise ValueError(f"prompt + tokens must fit in 1..{model.n_positions} positions")

    engines = {"numpy": (numpy_greedy, model), "torch": (torch_greedy, hf_model)}
    for decode, engine in engines.values():  # warm-up: first calls allocate and fill caches
        decode(engine, prompt_ids, 2)
    seconds = {name: [] for name in engines}
    tokens = {}
    for repeat in range(repeats):
        order = list(engines) if repeat % 2 == 0 else list(reversed(engines))
        for name in order:
            decode, engine = engines[name]
            elapsed, tokens[name] = timed(decode, engine, prompt_ids, n_tokens)
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
            f"{'numpy (KV cache)':<32}{result['numpy_tok_s']:>10.1f}",
            f"{'transformers (eager)':<32}{result['torch_tok_s']:>10.1f}",
            f"ratio numpy/transformers {result['ratio']:.2f}x; same tokens: {'yes' if result['same_tokens'] else 'NO'}",
        ]
    )


def format_fast_table(result: dict, label: str) -> str:
    """The GPU table (engine.fast_decode.bench_fast): our step loop with full capture vs transformers generate."""
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
