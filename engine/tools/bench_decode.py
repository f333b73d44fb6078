"""Decode speed: the NumPy KV-cache engine vs transformers on CPU, same weights, same run.

Both decode greedily through their backend (backends.base.greedy_tokens): the NumPy engine with what a
run draws (attention rows, residual stream) and with the logit lens too, transformers with all of it and
through `generate` (no captures). Each repeat runs all four back to back (rotating which goes first) on
the same prompt, so machine noise hits them alike; the figures are medians. Times include the prefill.
On a GPU `tfund bench decode --device cuda` runs bench_fast below instead; the
tables for both are formatted here.
"""

from __future__ import annotations

import statistics
import time
from functools import partial
from typing import Any

import numpy as np
import torch

from engine.events import counted
from engine.model.families import architecture_from_config
from engine.model.transformer import NumpyLM
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.cuda_graph import FastTorchBackend
from engine.runtime.backends.numpy_backend import NumpyBackend
from engine.runtime.backends.torch_eager import TorchBackend


def copy_bandwidth(n_bytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """This machine's memory bandwidth as NumPy sees it: bytes read plus bytes written per second by
    the fastest of `repeats` copies of an n_bytes array (too large for any cache)."""
    source = np.ones(n_bytes // 4, np.float32)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2 * n_bytes / best


def weight_bytes_per_token(model: NumpyLM) -> int:
    """Bytes of weights one decode step reads: every block, the final norm and the unembedding (of the
    embedding table only one row)."""
    params = model.params
    arrays = [params["unembed"], *params["norm_f"].values()]
    for block in params["blocks"]:
        arrays += [v for part in block.values() for sub in part.values() for v in (sub.values() if isinstance(sub, dict) else [sub])]
    return sum(a.nbytes for a in arrays if a is not None)


def bench_decode(hf_model, prompt_ids: list[int], n_tokens: int, repeats: int = 5) -> dict:
    """Greedy-decode n_tokens `repeats` times four ways, on the same weights: the NumPy engine with what a
    run draws (attention rows, residual stream; the lens only when shown), the NumPy engine with the
    lens too, transformers with all of it (TorchBackend) and transformers generate (no captures).
    Medians of tok/s, their ratios, and the NumPy run's fraction of the bandwidth floor."""
    hf_model.eval()
    model = NumpyLM.from_hf(hf_model)
    prompt_ids = [int(t) for t in prompt_ids]
    if n_tokens < 1 or repeats < 1:
        raise ValueError(f"tokens and repeats must be >= 1 (got tokens={n_tokens}, repeats={repeats})")
    if not prompt_ids or len(prompt_ids) + n_tokens > model.n_positions:
        raise ValueError(f"prompt + tokens must fit in 1..{model.n_positions} positions")

    numpy_backend, torch_backend = NumpyBackend(model, len(prompt_ids) + n_tokens), TorchBackend(hf_model)
    runs = {
        "numpy_run": lambda: greedy_tokens(numpy_backend, prompt_ids, n_tokens, lens=False),
        "numpy": lambda: greedy_tokens(numpy_backend, prompt_ids, n_tokens),
        "torch": lambda: greedy_tokens(torch_backend, prompt_ids, n_tokens),
        "generate": lambda: generate_tokens(hf_model, prompt_ids, n_tokens),
    }
    for run in runs.values():  # warm-up: first calls allocate and fill caches
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    tokens = {}
    names = list(runs)
    for repeat in range(repeats):
        for name in names[repeat % 4 :] + names[: repeat % 4]:  # rotate which goes first: machine noise hits all alike
            start = time.perf_counter()
            tokens[name] = runs[name]()
            seconds[name].append(time.perf_counter() - start)
    tok_s = {name: n_tokens / statistics.median(seconds[name]) for name in runs}
    bandwidth, weights = copy_bandwidth(), weight_bytes_per_token(model)
    return {
        "prompt_tokens": len(prompt_ids),
        "n_tokens": n_tokens,
        "repeats": repeats,
        "numpy_run_tok_s": tok_s["numpy_run"],
        "numpy_tok_s": tok_s["numpy"],
        "torch_tok_s": tok_s["torch"],
        "generate_tok_s": tok_s["generate"],
        "ratio": tok_s["numpy"] / tok_s["torch"],
        "run_vs_generate": tok_s["numpy_run"] / tok_s["generate"],
        "weight_bytes_per_token": weights,
        "copy_bandwidth": bandwidth,
        "bandwidth_floor_fraction": tok_s["numpy_run"] / (bandwidth / weights),
        "same_tokens": tokens["numpy"] == tokens["torch"] == tokens["numpy_run"] == tokens["generate"],
        "torch_threads": torch.get_num_threads(),
        "seconds": seconds,
    }


def format_decode_table(result: dict, label: str) -> str:
    """The CPU table: the NumPy engine (what a run draws; everything) vs transformers (everything; generate)."""
    floor = result["copy_bandwidth"] / result["weight_bytes_per_token"]
    return "\n".join(
        [
            f"decode benchmark: {label}, cpu, {result['prompt_tokens']} prompt + {result['n_tokens']} new tokens, "
            f"median of {result['repeats']}, {counted(result['torch_threads'], 'torch thread')}",
            f"{'engine':<48}{'tok/s':>10}",
            f"{'numpy, what a run draws (no lens)':<48}{result['numpy_run_tok_s']:>10.1f}",
            f"{'numpy, full capture (lens too)':<48}{result['numpy_tok_s']:>10.1f}",
            f"{'transformers, full capture':<48}{result['torch_tok_s']:>10.1f}",
            f"{'transformers generate, no capture':<48}{result['generate_tok_s']:>10.1f}",
            f"numpy run/generate {result['run_vs_generate']:.2f}x; full capture numpy/transformers {result['ratio']:.2f}x; "
            f"same tokens: {'yes' if result['same_tokens'] else 'NO'}",
            f"bandwidth floor: {result['weight_bytes_per_token'] / 1e6:.0f} MB of weights per token at "
            f"{result['copy_bandwidth'] / 1e9:.1f} GB/s copy = {floor:.1f} tok/s; the numpy run reaches {result['bandwidth_floor_fraction']:.0%}",
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


def bench_ablated(
    hf_model, lengths: tuple[int, ...] = (256, 1024), steps: int = 4, spec: str = "0.1", engine: str = "numpy", mode: str = "zero"
) -> dict:
    """Per-token time of an ablated generation on `engine` (numpy, torch) at each context length, reading the
    whole context again per token (run_numpy, run_torch: "before") and through what the sampler keeps between
    tokens (engine.runtime.interventions.ablated_decoder: "after"; None where nothing can be kept). Medians over `steps` tokens."""
    from engine.model.interventions import parse_ablation, run_numpy
    from engine.runtime.interventions import ablated_decoder, run_torch

    model = NumpyLM.from_hf(hf_model.eval())
    ablations = (parse_ablation(spec, model.n_layer, model.n_head),)
    if max(lengths) + steps > model.n_positions:
        raise ValueError(f"lengths + steps must fit in {model.n_positions} positions")
    full_rerun = partial(run_numpy, model) if engine == "numpy" else partial(run_torch, hf_model)
    rows = []
    for length in lengths:
        ids = [(7 * i + 3) % model.vocab_size for i in range(length + steps)]
        before, after = [], []
        decoder = ablated_decoder(engine, model, hf_model, ablations, mode, length + steps)
        if decoder is not None:
            decoder.forward(ids[:length])  # filled once, when the ablation starts
        for step in range(steps):
            context = ids[: length + step + 1]
            start = time.perf_counter()
            full_rerun(context, ablations, mode)
            before.append(time.perf_counter() - start)
            if decoder is not None:
                start = time.perf_counter()
                decoder.forward(context)
                after.append(time.perf_counter() - start)
        after_ms = statistics.median(after) * 1e3 if after else None
        rows.append({"tokens": length, "before_ms": statistics.median(before) * 1e3, "after_ms": after_ms})
    return {"ablation": spec, "mode": mode, "engine": engine, "steps": steps, "rows": rows}


def format_ablated_table(result: dict, label: str) -> str:
    lines = [
        f"ablated decode ({result['ablation']}, {result['mode']}), {result['engine']} engine: {label}, median of {result['steps']} tokens",
        f"{'context':>8}{'before ms/token':>18}{'after ms/token':>17}{'speed-up':>10}",
    ]
    for row in result["rows"]:
        if row["after_ms"] is None:  # nothing kept between tokens: the whole context again
            lines.append(f"{row['tokens']:>8}{row['before_ms']:>18.1f}{'(same)':>17}{'1.0':>9}x")
        else:
            lines.append(f"{row['tokens']:>8}{row['before_ms']:>18.1f}{row['after_ms']:>17.1f}{row['before_ms'] / row['after_ms']:>9.1f}x")
    return "\n".join(lines)


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
            pad_token_id=hf_model.config.eos_token_id if isinstance(hf_model.config.eos_token_id, int) else 0,
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
    n_positions = architecture_from_config(hf_model.config.to_dict()).n_positions
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
