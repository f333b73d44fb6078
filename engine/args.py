"""Argument types and shared flags for tfund's command lines (`tfund`, `tfund-tui`, the TUI benchmarks).

Every type names its allowed range, and OneLineParser reports a bad argument in one line, exit 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable

from engine.events import SamplingConfig


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits 2, prefixed by the program's name alone
    ("tfund: error: …" for a subcommand too, as the errors found after parsing are)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog.split()[0]}: error: {message}\n")
        raise SystemExit(2)


# ---- argument types: each names the allowed range ---------------------------------------------
def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def ranged(parse: Callable[[str], float], ok: Callable[[float], bool], allowed: str) -> Callable[[str], float]:
    def check(text: str):
        value = parse(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {allowed} (got {text})")
        return value

    return check


temperature_arg = ranged(number, lambda v: v >= 0, "a number >= 0 (0 = greedy)")
top_p_arg = ranged(number, lambda v: 0 < v <= 1, "in (0, 1]")
top_k_arg = ranged(integer, lambda v: v >= 0, "an integer >= 0 (0 = off)")
seed_arg = ranged(integer, lambda v: 0 <= v < 2**63, "an integer in [0, 2^63)")
max_new_tokens_arg = ranged(integer, lambda v: 0 <= v <= 100_000, "an integer in [0, 100000]")
positive_tokens_arg = ranged(integer, lambda v: 1 <= v <= 100_000, "an integer in [1, 100000]")
steps_arg = ranged(integer, lambda v: 1 <= v <= 1_000_000, "an integer in [1, 1000000]")
port_arg = ranged(integer, lambda v: 1 <= v <= 65535, "an integer in [1, 65535]")
threads_arg = ranged(integer, lambda v: 1 <= v <= 1024, "an integer in [1, 1024]")


def model_arg(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a model: 'toy', a local directory or a cached hub name (got an empty string)")
    # a path (as engine.runtime.sources.locate_model tells one from a hub name) must be a directory or a (GGUF) file: said before any UI
    if (text.startswith(("/", ".", "~")) or os.path.exists(text)) and not os.path.exists(os.path.expanduser(text)):
        raise argparse.ArgumentTypeError(f"no model directory at '{text}'; use 'toy', a local directory or a cached hub name")
    return text


def ablation_arg(text: str):
    """--ablate SPEC: L.H, L.attn or L.mlp (0-based); the model's ranges are checked once it is loaded."""
    from engine.model.interventions import parse_ablation

    try:
        return parse_ablation(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_sampling_args(parser: argparse.ArgumentParser, max_new_tokens: int = 64) -> None:
    defaults = SamplingConfig()
    parser.add_argument("--temperature", type=temperature_arg, default=defaults.temperature, help="0 = greedy (default %(default)s)")
    parser.add_argument("--top-k", type=top_k_arg, default=defaults.top_k, help="0 = off (default %(default)s)")
    parser.add_argument("--top-p", type=top_p_arg, default=defaults.top_p, help="in (0, 1]; 1 = off (default %(default)s)")
    parser.add_argument("--seed", type=seed_arg, default=defaults.seed)
    parser.add_argument("--max-new-tokens", type=max_new_tokens_arg, default=max_new_tokens)


def add_model_args(parser: argparse.ArgumentParser, devices: bool = True) -> None:
    parser.add_argument("--model", type=model_arg, default="toy", help="'toy' (embedded), a local directory or a cached hub name")
    if devices:
        parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    parser.add_argument("--allow-pickle", action="store_true", help="allow loading pickle (.bin) weights you trust")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=["auto", "numpy", "torch"],
        default="auto",
        help="auto (default): torch on CUDA/MPS, the from-scratch NumPy GPT-2 on a CPU; numpy; torch (transformers)",
    )
    parser.add_argument(
        "--threads",
        type=threads_arg,
        default=None,
        help="the engine's CPU threads, torch's or NumPy's BLAS (default: 1 for small models, else half the cores; OMP_NUM_THREADS)",
    )


def add_device_map_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device-map",
        choices=["auto"],
        default=None,
        help="auto: spread the model over the GPUs, then the CPU's RAM, then the disk (accelerate; the torch engine; "
        "for models bigger than one device)",
    )


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    return SamplingConfig(
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed, max_new_tokens=args.max_new_tokens
    )
