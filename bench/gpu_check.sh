#!/usr/bin/env bash
# The GPU decode fast path on a CUDA machine (repo checked out, `pip install -e .` done):
#   1. correctness on the GPU: captures of the graph-replayed path equal the eager TorchBackend's
#      within fp32 tolerance, greedy tokens identical, crop + re-forward through the graphs;
#   2. the decode benchmark table: fast path with full capture vs eager TorchBackend with full
#      capture vs transformers generate (no capture), random-init GPT-2 small and XL, fp32,
#      128 new tokens, median of 5 runs.
# Exit status 0 only when every check passes. Runs in about 2-4 minutes (capped at 7).
# Dry run on a CPU (tiny shapes): GPU_CHECK_DEVICE=cpu GPU_CHECK_CONFIGS=tiny GPU_CHECK_TOKENS=8 bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
export GPU_CHECK_DEVICE="${GPU_CHECK_DEVICE:-cuda}"   # where to run
export GPU_CHECK_CONFIGS="${GPU_CHECK_CONFIGS:-gpt2 gpt2-xl}"   # shapes from engine.tools.factories.SHAPES
export GPU_CHECK_TOKENS="${GPU_CHECK_TOKENS:-128}"   # new tokens per benchmark run
export GPU_CHECK_REPEATS="${GPU_CHECK_REPEATS:-5}"   # timed runs per engine (median reported)
export GPU_CHECK_DTYPE="${GPU_CHECK_DTYPE:-float32}"   # float32 | bfloat16 | float16

timeout 420 python - <<'PY'
import json
import os
import sys

import numpy as np
import torch

from engine.tools.factories import random_gpt2
from engine.tools.bench_decode import bench_fast
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.cuda_graph import FastTorchBackend, compare_with_eager
from engine.runtime.backends.torch_eager import TorchBackend

device = os.environ["GPU_CHECK_DEVICE"]
configs = os.environ["GPU_CHECK_CONFIGS"].split()
n_tokens = int(os.environ["GPU_CHECK_TOKENS"])
repeats = int(os.environ["GPU_CHECK_REPEATS"])
dtype = getattr(torch, os.environ["GPU_CHECK_DTYPE"])
# fp32 on a GPU, different kernels than transformers'; looser for half precision
tolerance = {"logits": 1e-3, "resid": 1e-3, "attention": 1e-4, "lens_p": 1e-4}
if dtype != torch.float32:
    tolerance = {"logits": 0.1, "resid": 0.1, "attention": 0.02, "lens_p": 0.02}
on_cuda = device.startswith("cuda")
if on_cuda and not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (torch %s)" % torch.__version__)
card = torch.cuda.get_device_name(device) if on_cuda else "cpu"
print(f"device {device} ({card}), torch {torch.__version__}, dtype {dtype}", flush=True)
prompt = torch.randint(0, 50000, (16,), generator=torch.Generator().manual_seed(0)).tolist()
failures = []


def check(name, ok, detail):
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


# ---- 1. correctness on the device (GPT-2-small shape) ----
model = random_gpt2(configs[0], seed=0).to(device=device, dtype=dtype)
vocab = model.config.vocab_size
prompt = [t % vocab for t in prompt]
print(f"correctness, {configs[0]} shape:", flush=True)
steps = min(140, model.config.n_positions - len(prompt) - 1)  # crosses the 64 and 128 graph spans
report = compare_with_eager(model, prompt, steps)
worst = {k: f"{v:.2e}" for k, v in report["max_diff"].items()}
check("captures equal eager", all(report["max_diff"][k] <= tolerance[k] for k in tolerance), worst)
check("argmax agrees every step", report["argmax_agree"] == 1.0, report["argmax_agree"])
check("logit-lens argmax agrees", report["lens_ids_agree"] >= 0.99, f"{report['lens_ids_agree']:.4f} (near-ties may flip)")
check("graphs captured" if on_cuda else "eager on cpu", report["graphed"] == on_cuda, report["graph_error"] or "no error")

fast, eager = FastTorchBackend(model), TorchBackend(model)
fast_tokens = greedy_tokens(fast, prompt, n_tokens)
check("greedy tokens identical to eager", fast_tokens == greedy_tokens(eager, prompt, n_tokens), f"{n_tokens} tokens")
originals = [fast.forward([t]) for t in fast_tokens[:5]]  # 5 more steps after the greedy run
fast.crop(fast.cache.length - 5)
again = [fast.forward([t]) for t in fast_tokens[:5]]
crop_diff = max(float(np.abs(a.logits - b.logits).max()) for a, b in zip(originals, again))
check("crop + re-forward through graphs", crop_diff <= 1e-5, f"max logit diff {crop_diff:.2e}")
del model, fast, eager
if on_cuda:
    torch.cuda.empty_cache()

# ---- 2. benchmark ----
rows = []
for name in configs:
    model = random_gpt2(name, seed=0).to(device=device, dtype=dtype)
    result = bench_fast(model, [t % model.config.vocab_size for t in prompt], n_tokens, device, repeats=repeats)
    result["config"] = name
    rows.append(result)
    check(f"{name}: fast tokens equal eager tokens", result["same_tokens_fast_eager"], "bench run")
    del model
    if on_cuda:
        torch.cuda.empty_cache()

print()
print(f"decode, batch 1, prompt {len(prompt)} tokens, {n_tokens} new tokens, median of {repeats}, {card}, {dtype}")
header = f"{'config':<12}{'fast tok/s':>12}{'eager tok/s':>13}{'generate tok/s':>16}{'fast/generate':>15}{'fast/eager':>12}  graphs"
print(header)
print("-" * len(header))
for r in rows:
    graphs = "yes" if r["graphed"] else f"no ({r['graph_error']})" if r["graph_error"] else "no"
    print(f"{r['config']:<12}{r['fast_tok_s']:>12.1f}{r['eager_tok_s']:>13.1f}{r['generate_tok_s']:>16.1f}"
          f"{r['fast_vs_generate']:>14.2f}x{r['fast_vs_eager']:>11.2f}x  {graphs}")
print()
print(json.dumps({"device": card, "torch": torch.__version__, "rows": [{k: v for k, v in r.items() if k != "seconds"} for r in rows]}))
if failures:
    sys.exit(f"gpu_check: FAILED {failures}")
print("gpu_check: all checks passed")
PY
