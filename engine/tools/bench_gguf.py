"""A GGUF model (SmolLM2 in docs/BENCHMARKS.md) on this machine: decode speed, load to ready, agreement.

    python -m engine.tools.bench_gguf PATH.gguf [--tokens 64] [--repeats 5]

- decode: the NumPy engine (KV cache, the app's full capture: attention, residual stream, lens) against
  transformers' `generate` (greedy, its KV cache, no capture) and against tfund's torch backend (full
  capture), same prompt, interleaved, medians; and the bandwidth floor: one pass over the float32 weights
  per token at the memory bandwidth a large NumPy copy reaches here.
- load to ready: a fresh process from start to its first sampled token, for the NumPy and torch engines,
  with an empty conversion cache ("first") and with the conversion kept ("cached"); the toy alongside.
- agreement: max |logit difference| NumPy vs transformers' own reading of the file on a 20-token prompt,
  and the greedy continuation of "The capital of France is" on both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

READY = """
import sys, time
start = time.perf_counter()
from engine.events import SamplingConfig
from engine.runtime.loading import load_model
from engine.runtime.sampler import Sampler
sampler = Sampler(load_model(sys.argv[1], device="cpu", engine=sys.argv[2]), SamplingConfig(temperature=0.0))
sampler.set_prompt("The capital of France is")
sampler.step()
print(time.perf_counter() - start)
"""
AGREEMENT_PROMPT = "The quick brown fox jumps over the lazy dog while the cat watches from the old wooden fence nearby."


def seconds_to_ready(model: str, engine: str, cache: Path) -> float:
    env = {**os.environ, "TFUND_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", READY, model, engine], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_load(path: Path, repeats: int) -> dict:
    """Medians of seconds to ready: toy and the GGUF, NumPy and torch, first (empty cache) and cached."""
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            for engine in ("numpy", "torch"):
                empty = Path(scratch) / f"{engine}-{repeat}"
                runs.setdefault(f"{engine} first", []).append(seconds_to_ready(str(path), engine, empty))
                runs.setdefault(f"{engine} cached", []).append(seconds_to_ready(str(path), engine, empty))
                runs.setdefault(f"toy {engine}", []).append(seconds_to_ready("toy", engine, empty))
    return {name: statistics.median(values) for name, values in runs.items()}


def bandwidth_bytes_per_s(n_bytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Bytes a second one large float32 copy moves here (read + write), best of `repeats`."""
    source = np.ones(n_bytes // 4, dtype=np.float32)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2 * n_bytes / best


def bench_decode(path: Path, n_tokens: int, repeats: int) -> dict:
    import torch

    from engine.runtime.backends.base import greedy_tokens
    from engine.runtime.backends.numpy_backend import NumpyBackend
    from engine.runtime.backends.torch_eager import TorchBackend
    from engine.runtime.loading import load_model

    loaded = load_model(str(path), device="cpu", engine="numpy")
    net, tokenizer, hf_model = loaded.numpy_model(), loaded.tokenizer, loaded.hf_model
    prompt = tokenizer.encode(AGREEMENT_PROMPT * 2)[:32]

    def generate() -> list[int]:
        with torch.no_grad():
            out = hf_model.generate(torch.tensor([prompt]), max_new_tokens=n_tokens, min_new_tokens=n_tokens, do_sample=False)
        return out[0, len(prompt) :].tolist()

    runners = {
        "numpy": lambda: greedy_tokens(NumpyBackend(net), prompt, n_tokens),
        "transformers generate": generate,
        "torch backend": lambda: greedy_tokens(TorchBackend(hf_model), prompt, n_tokens),
    }
    for run in runners.values():  # warm-up
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    tokens = {}
    for repeat in range(repeats):
        for name in list(runners) if repeat % 2 == 0 else list(reversed(runners)):
            start = time.perf_counter()
            tokens[name] = runners[name]()
            seconds[name].append(time.perf_counter() - start)
    tok_s = {name: n_tokens / statistics.median(values) for name, values in seconds.items()}
    weight_bytes = 4 * net.n_params
    floor = bandwidth_bytes_per_s() / weight_bytes  # tok/s if each token read every weight once at copy speed
    return {
        "prompt_tokens": len(prompt),
        "n_tokens": n_tokens,
        "tok_s": tok_s,
        "ratio_numpy_generate": tok_s["numpy"] / tok_s["transformers generate"],
        "floor_tok_s": floor,
        "numpy_fraction_of_floor": tok_s["numpy"] / floor,
        "same_tokens": len({tuple(t) for t in tokens.values()}) == 1,
    }


def agreement(path: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from engine.runtime.loading import load_model

    loaded = load_model(str(path), device="cpu", engine="numpy")
    net, tokenizer = loaded.numpy_model(), loaded.tokenizer
    theirs = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    ids = tokenizer.encode(AGREEMENT_PROMPT)
    with torch.no_grad():
        their_logits = theirs(torch.tensor([ids])).logits[0].numpy()
    ours = net.forward(ids, capture=False)[0]
    question = tokenizer.encode("The capital of France is")
    cache = net.new_cache(max_len=len(question) + 4)
    logits, greedy = net.forward(question, cache=cache, capture=False)[0], []
    for _ in range(3):
        greedy.append(int(np.argmax(logits[-1])))
        logits = net.forward(greedy[-1:], cache=cache, capture=False)[0]
    with torch.no_grad():
        their_greedy = theirs.generate(torch.tensor([question]), max_new_tokens=3, do_sample=False)[0, len(question) :].tolist()
    return {
        "prompt_tokens": len(ids),
        "max_logit_diff": float(np.abs(ours - their_logits).max()),
        "numpy_greedy": tokenizer.decode(greedy),
        "transformers_greedy": tokenizer.decode(their_greedy),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    result = {
        "agreement": agreement(args.path),
        "decode": bench_decode(args.path, args.tokens, args.repeats),
        "load_seconds": bench_load(args.path, args.repeats),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
