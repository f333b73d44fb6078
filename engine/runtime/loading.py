"""Load a GPT-2-architecture causal LM: the embedded toy model, a local directory or a cached hub name.

Every failure becomes a ModelLoadError carrying one clear sentence. Safetensors only unless the caller
opts into pickle; never trust_remote_code; no network unless the user names a hub model and is online.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.events import ModelInfo
from engine.model.gpt2 import config_problem

TOY_MODEL_DIR = Path(__file__).resolve().parent.parent / "toy" / "model"
HUB_HOST = "huggingface.co"


class ModelLoadError(Exception):
    """A model could not be loaded because of what was asked for; str(error) is one sentence."""


class ModelUnavailableError(ModelLoadError):
    """A valid request that cannot be served here and now (offline, out of memory)."""


@dataclass
class LoadedModel:
    name: str  # what the user asked for ("toy", a path, a hub name)
    path: str  # the directory the files came from
    hf_model: Any  # transformers GPT2LMHeadModel, eval mode, eager attention
    tokenizer: Any  # transformers PreTrainedTokenizerFast
    device: str  # "cpu", "cuda", "mps"
    info: ModelInfo


def quiet_transformers() -> None:
    """No progress bars or load reports from transformers and the hub: they would print over a UI.

    Libraries not imported yet read the environment variables when they are (importing them here would
    cost seconds); libraries already imported are switched off directly.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        hf_logging = sys.modules["transformers"].utils.logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def is_out_of_memory(error: BaseException) -> bool:
    """torch's out-of-memory error (checked without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


def out_of_memory_sentence(device: str) -> str:
    return (
        f"{device} ran out of memory at this context length; undo or reset to shorten the context, "
        "or restart with --device cpu or a smaller model"
    )


def resolve_device(device: str = "auto") -> str:
    """auto → cuda > mps > cpu; an explicit device that is not available raises ModelLoadError."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelUnavailableError(f"device '{device}' was asked for but this machine has no usable CUDA GPU; use --device cpu")
        return device
    if device == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ModelUnavailableError("device 'mps' was asked for but Apple's Metal backend is not available here; use --device cpu")
        return "mps"
    raise ModelLoadError(f"unknown device '{device}'; use auto, cpu, cuda or mps")


def _looks_like_path(name: str) -> bool:
    """A filesystem path, not a hub id like "openai-community/gpt2": it exists or starts like a path."""
    return name.startswith(("/", ".", "~")) or os.path.exists(name)


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    """True when the hub answers a TCP connect within timeout_s (DNS included, bounded by a thread)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    reachable = []

    def probe() -> None:
        try:
            socket.create_connection((HUB_HOST, 443), timeout=timeout_s).close()
            reachable.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(reachable)


def _cached_hub_dir(name: str) -> str | None:
    """The local snapshot directory of a hub model in the HF cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config_path = try_to_load_from_cache(name, "config.json")
    except Exception:  # an invalid repo id is simply "not cached"
        return None
    return os.path.dirname(config_path) if isinstance(config_path, str) else None


def locate_model(name: str) -> tuple[str, bool]:
    """Map a model name to (directory or hub id, is_local). Raises ModelLoadError when not found."""
    if not name or not name.strip():
        raise ModelLoadError("the model name or path is empty; use 'toy', a local directory or a cached hub name")
    if name == "toy":
        if not (TOY_MODEL_DIR / "config.json").is_file():
            raise ModelLoadError(f"the embedded toy model is missing; rebuild it with `tfund train-toy --out {TOY_MODEL_DIR}`")
        return str(TOY_MODEL_DIR), True
    if _looks_like_path(name):
        path = os.path.expanduser(name)
        if not os.path.isdir(path):
            raise ModelLoadError(f"no model directory at '{name}'")
        return path, True
    cached = _cached_hub_dir(name)
    if cached:
        return cached, True
    if not _hub_reachable():
        raise ModelUnavailableError(
            f"model '{name}' is not in the Hugging Face cache and the hub is unreachable (offline); "
            f"download it once while online (e.g. `hf download {name}`) or pass a local directory"
        )
    return name, False


def check_model_dir(path: str, allow_pickle: bool) -> None:
    """Refuse directories that are not GPT-2 checkpoints we can load safely, with one sentence."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise ModelLoadError(f"'{path}' has no config.json, so it is not a transformers model directory")
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"'{config_file}' is not valid JSON ({error.__class__.__name__})") from None
    if problem := config_problem(config if isinstance(config, dict) else {}, "transformers", name=f"'{path}'"):
        raise ModelLoadError(problem)
    files = set(os.listdir(path))
    has_safetensors = any(f.endswith(".safetensors") or f == "model.safetensors.index.json" for f in files)
    has_pickle = any(f.endswith((".bin", ".pt", ".pth", ".ckpt")) for f in files)
    if not has_safetensors:
        if has_pickle and not allow_pickle:
            raise ModelLoadError(
                f"'{path}' has only pickle weights (unsafe to load); convert them to safetensors or pass --allow-pickle if you trust them"
            )
        if not has_pickle:
            raise ModelLoadError(f"'{path}' has no weights file (model.safetensors)")
    if not any(f in files for f in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
        raise ModelLoadError(f"'{path}' has no tokenizer files (tokenizer.json or vocab.json + merges.txt)")


def model_info(name: str, hf_model: Any, device: str) -> ModelInfo:
    config = hf_model.config
    return ModelInfo(
        name=name,
        device=device,
        n_layer=config.n_layer,
        n_head=config.n_head,
        d_model=config.n_embd,
        n_positions=config.n_positions,
        vocab_size=config.vocab_size,
        n_params=sum(p.numel() for p in hf_model.parameters()),
    )


def load_model(name_or_path: str = "toy", device: str = "auto", dtype: Any = None, allow_pickle: bool = False) -> LoadedModel:
    """Load model + tokenizer on the best (or requested) device. Raises ModelLoadError."""
    location, is_local = locate_model(name_or_path)
    if is_local:
        check_model_dir(location, allow_pickle)
    resolved_device = resolve_device(device)

    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    quiet_transformers()
    options = dict(local_files_only=is_local, trust_remote_code=False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **options)
        hf_model = GPT2LMHeadModel.from_pretrained(
            location,
            attn_implementation="eager",  # sdpa returns no attention weights
            use_safetensors=None if allow_pickle else True,
            dtype=dtype or torch.float32,
            **options,
        )
    except Exception as error:  # transformers raises many types; the user gets one sentence
        reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise ModelLoadError(f"could not load model '{name_or_path}': {reason}") from None
    try:
        hf_model.to(resolved_device)
    except torch.OutOfMemoryError:
        raise ModelUnavailableError(
            f"not enough memory on {resolved_device} for '{name_or_path}'; use --device cpu or a smaller model"
        ) from None
    hf_model.eval()
    return LoadedModel(
        name=name_or_path,
        path=location,
        hf_model=hf_model,
        tokenizer=tokenizer,
        device=resolved_device,
        info=model_info(name_or_path, hf_model, resolved_device),
    )
