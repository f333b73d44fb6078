"""A GGUF model (SmolLM2 in docs/BENCHMARKS.md) on this machine: load to ready, and agreement with
transformers. (Decode speed: `tfund bench decode --model PATH.gguf`.)

    python -m engine.tools.bench_gguf PATH.gguf [--repeats 5]

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
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    result = {
        "agreement": agreement(args.path),
        "load_seconds": bench_load(args.path, args.repeats),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
