"""Where a model comes from: the embedded toy, a local directory, a GGUF file (or a directory holding one)
or a cached hub name -> a local path.

`locate_model` answers without reading weights; `check_model_dir` refuses, in one sentence, a directory
tfund cannot load safely. No network unless the user names a hub model that is not cached and is online.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from engine.model.families import config_problem
from engine.runtime.errors import ModelLoadError, ModelUnavailableError
from engine.runtime.tokenizer import light_tokenizer_problem
from engine.store import StoreError, StoreUnavailableError, ollama, smollm2

TOY_MODEL_DIR = Path(__file__).resolve().parent.parent / "toy" / "model"
HUB_HOST = "huggingface.co"
SMOLLM2_NAME = "smollm2"  # SmolLM2-135M-Instruct, the Q4_1 GGUF pinned in engine.store.smollm2


class ModelSource(NamedTuple):
    """Where a model's files are: `path` is a local directory, or a hub id to download (kind "hub")."""

    path: str
    kind: str  # "toy", "directory", "gguf" (a file, or a folder of one), "hub-cache" (a cached hub snapshot) or "hub" (not downloaded yet)
    origin: str | None = None  # a GGUF's: "smollm2" (the pinned download), "ollama" (Ollama's store) or "gguf" (a path)

    @property
    def is_local(self) -> bool:
        return self.kind != "hub"


def _looks_like_path(name: str) -> bool:
    """A filesystem path, not a hub id like "openai-community/gpt2": it exists or starts like a path."""
    return name.startswith(("/", ".", "~")) or os.path.exists(name)


def _is_gguf_source(path: str) -> bool:
    """A file (tfund reads it as GGUF and says so if it is not one), or a folder with .gguf files and no config.json."""
    if os.path.isfile(path):
        return True
    return os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")) and any(Path(path).glob("*.gguf"))


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


def locate_model(name: str, progress: Callable[[str], None] | None = None) -> ModelSource:
    """Map a model name to where its files are. Raises ModelLoadError when not found.

    `smollm2` is fetched into tfund's cache first if it is missing (`progress` hears how it goes);
    `ollama:NAME[:TAG]` is the GGUF blob Ollama keeps for that name."""
    if not name or not name.strip():
        raise ModelLoadError("the model name or path is empty; use 'toy', a local directory or a cached hub name")
    if name == "toy":
        if not (TOY_MODEL_DIR / "config.json").is_file():
            raise ModelLoadError(f"the embedded toy model is missing; rebuild it with `tfund train-toy --out {TOY_MODEL_DIR}`")
        return ModelSource(str(TOY_MODEL_DIR), "toy")
    if name == SMOLLM2_NAME or ollama.is_ollama_name(name):
        return _stored_gguf(name, progress)
    if _looks_like_path(name):
        path = os.path.expanduser(name)
        if _is_gguf_source(path):
            return ModelSource(path, "gguf", "gguf")
        if not os.path.isdir(path):
            raise ModelLoadError(f"no model directory at '{name}'")
        return ModelSource(path, "directory")
    cached = _cached_hub_dir(name)
    if cached:
        return ModelSource(cached, "hub-cache")
    if not _hub_reachable():
        raise ModelUnavailableError(
            f"model '{name}' is not in the Hugging Face cache and the hub is unreachable (offline); "
            f"download it once while online (e.g. `hf download {name}`) or pass a local directory"
        )
    return ModelSource(name, "hub")


def _stored_gguf(name: str, progress: Callable[[str], None] | None) -> ModelSource:
    """The GGUF behind `smollm2` (fetched if missing) or `ollama:NAME`; a StoreError becomes the load error."""
    try:
        path = smollm2.ensure_smollm2(progress) if name == SMOLLM2_NAME else ollama.resolve(name).blob
    except StoreUnavailableError as error:
        raise ModelUnavailableError(str(error)) from None
    except StoreError as error:
        raise ModelLoadError(str(error)) from None
    return ModelSource(str(path), "gguf", SMOLLM2_NAME if name == SMOLLM2_NAME else "ollama")


def check_model_dir(path: str, allow_pickle: bool) -> None:
    """Refuse, in one sentence, directories that are not checkpoints of a family tfund runs or that cannot be loaded safely."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise ModelLoadError(f"'{path}' has no config.json, so it is not a transformers model directory")
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"'{config_file}' is not valid JSON ({error.__class__.__name__})") from None
    if problem := config_problem(config if isinstance(config, dict) else {}, "torch", name=f"'{path}'"):
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


def read_config(location: str, is_local: bool) -> dict:
    """config.json of a local directory (check_model_dir read it already); {} for a hub id."""
    if not is_local:
        return {}
    with open(os.path.join(location, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def light_loadable(location: str, is_local: bool) -> bool:
    """The NumPy path can read this directory itself: one safetensors file and a tokenizer.json."""
    return is_local and os.path.isfile(os.path.join(location, "model.safetensors")) and light_tokenizer_problem(Path(location)) is None
