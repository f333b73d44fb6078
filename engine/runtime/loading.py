"""Load a GPT-2-architecture causal LM: the embedded toy model, a local directory or a cached hub name.

Every failure becomes a ModelLoadError carrying one clear sentence. Safetensors only unless the caller
opts into pickle; never trust_remote_code; no network unless the user names a hub model and is online.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.events import ModelInfo
from engine.model.gpt2 import GPT2Numpy, config_problem
from engine.runtime.tokenizer import TextTokenizer, light_tokenizer_problem

TOY_MODEL_DIR = Path(__file__).resolve().parent.parent / "toy" / "model"
HUB_HOST = "huggingface.co"
ENGINES = ("auto", "numpy", "torch")
SMALL_MODEL_PARAMS = 50_000_000  # below this the engine runs one thread on the CPU (thread_policy)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # set by the user: torch follows them instead
BLAS_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # NumPy's BLAS read them at import


class ModelLoadError(Exception):
    """A model could not be loaded because of what was asked for; str(error) is one sentence."""


class ModelUnavailableError(ModelLoadError):
    """A valid request that cannot be served here and now (offline, out of memory)."""


@dataclass
class LoadedModel:
    """A model ready for the Sampler. On the NumPy path `net` holds the weights and `tokenizer` is a
    TextTokenizer: neither torch nor transformers is imported until something asks for `hf_model`."""

    name: str  # what the user asked for ("toy", a path, a hub name)
    path: str  # the directory (or hub id) the files came from
    engine: str  # "numpy" or "torch": the engine a Sampler runs unless told otherwise
    device: str  # "cpu", "cuda", "mps"
    tokenizer: Any  # TextTokenizer, or transformers' PreTrainedTokenizerFast on the torch path
    info: ModelInfo
    net: GPT2Numpy | None = None  # the NumPy weights, once read or converted
    threads: int | None = None  # the engine's CPU threads, torch's intra-op or NumPy's BLAS (--threads), None: thread_policy
    allow_pickle: bool = False
    _hf_model: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def torch_loaded(self) -> bool:
        return self._hf_model is not None

    @property
    def hf_model(self) -> Any:
        """transformers' GPT2LMHeadModel (eval mode, eager attention), loaded on first use: seconds."""
        with self._lock:
            if self._hf_model is None:
                self._hf_model = load_hf_model(self.name, self.path, self.device, self.allow_pickle, self.threads)
            return self._hf_model

    @property
    def torch_threads(self) -> int | None:
        """torch's intra-op CPU threads in force; None while torch is not loaded."""
        return sys.modules["torch"].get_num_threads() if self.torch_loaded else None

    @property
    def engine_threads(self) -> int | None:
        """The CPU threads computing this model's steps: torch's (once loaded), or NumPy's BLAS threads."""
        return self.torch_threads if self.engine == "torch" else blas_threads()

    def numpy_model(self) -> GPT2Numpy:
        """The from-scratch NumPy GPT-2 on these weights (read once, shared by every sampler)."""
        if self.net is None:
            self.net = GPT2Numpy.from_hf(self.hf_model)
            set_blas_threads(count_params(self.net.params), self.threads)
        return self.net


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
    if device == "cpu":
        return "cpu"
    if device not in ("auto", "mps") and not device.startswith("cuda"):
        raise ModelLoadError(f"unknown device '{device}'; use auto, cpu, cuda or mps")
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelUnavailableError(f"device '{device}' was asked for but this machine has no usable CUDA GPU; use --device cpu")
        return device
    if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():  # device == "mps"
        raise ModelUnavailableError("device 'mps' was asked for but Apple's Metal backend is not available here; use --device cpu")
    return "mps"


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


def accelerator_likely() -> bool:
    """Whether torch may see a GPU, judged without importing torch (that costs seconds): torch already
    imported and seeing one, or a CUDA/ROCm build of torch with a GPU device node, or Apple silicon."""
    if "torch" in sys.modules:
        return resolve_device("auto") != "cpu"
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return False
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    build = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    gpu_build = re.search(r"^(cuda|hip)\b.*=\s*'", build, re.MULTILINE) is not None  # cuda: Optional[str] = '12.4'
    return gpu_build and any(os.path.exists(node) for node in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd"))


def choose_engine(engine: str, device: str, config: dict) -> tuple[str, str]:
    """(engine, device) for `--engine` and `--device`: auto is torch on CUDA/MPS and, on the CPU, the
    NumPy engine for the GPT-2s it runs (faster there), torch for the rest."""
    if engine not in ENGINES:
        raise ModelLoadError(f"unknown engine '{engine}'; use auto, numpy or torch")
    if engine == "numpy":
        if device not in ("auto", "cpu"):
            raise ModelLoadError(f"the NumPy engine runs on the CPU only; use --device cpu or --engine torch (got --device {device})")
        return "numpy", "cpu"
    if engine == "torch" or device not in ("auto", "cpu"):
        return "torch", resolve_device(device)
    if device == "auto" and accelerator_likely() and (accelerator := resolve_device("auto")) != "cpu":
        return "torch", accelerator
    return ("numpy" if config_problem(config, "numpy") is None else "torch"), "cpu"


def thread_policy(n_params: int, cores: int) -> int:
    """The engine's threads on the CPU (torch's intra-op, NumPy's BLAS): one for small models (threads
    waiting on each other cost more than they share, and collapse when other processes want the cores),
    half the cores above that."""
    return 1 if n_params < SMALL_MODEL_PARAMS else max(1, cores // 2)


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_to_set(n_params: int, threads: int | None, environment: tuple[str, ...]) -> int | None:
    """--threads, else None when the user set one of `environment` (the library read it), else thread_policy."""
    if threads is None and not any(os.environ.get(name) for name in environment):
        return thread_policy(n_params, cpu_cores())
    return threads


def set_torch_threads(torch: Any, n_params: int, threads: int | None) -> int:
    """Apply --threads, else the environment's OMP/MKL_NUM_THREADS (torch read them), else thread_policy."""
    threads = threads_to_set(n_params, threads, THREAD_ENV)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def set_blas_threads(n_params: int, threads: int | None) -> None:
    """The same policy for NumPy's BLAS (process-wide): --threads, else OPENBLAS/OMP/MKL_NUM_THREADS, else
    thread_policy. A toy step's second BLAS thread only waited: 2.5 ms a step alone, 9-17 ms while the
    app drew on the other core. (OpenBLAS 0.3.31 here took a count set from any thread, the app's engine
    thread included, until the main thread set one; after that it kept the main thread's.)"""
    from threadpoolctl import threadpool_limits

    threads = threads_to_set(n_params, threads, BLAS_THREAD_ENV)
    if threads is not None:
        threadpool_limits(threads, user_api="blas")


def blas_threads() -> int | None:
    """NumPy's BLAS threads in force (None if NumPy runs without a BLAS library threadpoolctl knows)."""
    from threadpoolctl import threadpool_info

    counts = [library["num_threads"] for library in threadpool_info() if library["user_api"] == "blas"]
    return max(counts) if counts else None


def model_info(name: str, config: dict, engine: str, device: str, n_params: int) -> ModelInfo:
    return ModelInfo(
        name=name,
        device=device,
        engine=engine,
        n_layer=config["n_layer"],
        n_head=config["n_head"],
        d_model=config["n_embd"],
        n_positions=config["n_positions"],
        vocab_size=config["vocab_size"],
        n_params=n_params,
    )


def read_config(location: str, is_local: bool) -> dict:
    """config.json of a local directory (check_model_dir read it already); {} for a hub id."""
    if not is_local:
        return {}
    with open(os.path.join(location, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def light_loadable(location: str, is_local: bool) -> bool:
    """The NumPy path can read this directory itself: one safetensors file and a tokenizer.json."""
    return is_local and os.path.isfile(os.path.join(location, "model.safetensors")) and light_tokenizer_problem(Path(location)) is None


def load_hf_model(
    name: str,
    location: str,
    device: str,
    allow_pickle: bool,
    threads: int | None,
    dtype: Any = None,
    device_map: str | None = None,
    max_memory: dict | None = None,
) -> Any:
    """transformers' GPT2LMHeadModel from `location` on `device` (or spread by `device_map`, capped by
    `max_memory`: engine.runtime.placement), eval mode, eager attention."""
    import torch
    from transformers import GPT2LMHeadModel

    from engine.runtime.placement import placement_kwargs

    quiet_transformers()
    try:
        hf_model = GPT2LMHeadModel.from_pretrained(
            location,
            attn_implementation="eager",  # sdpa returns no attention weights
            use_safetensors=None if allow_pickle else True,
            dtype=dtype or torch.float32,
            local_files_only=os.path.isdir(location),
            trust_remote_code=False,
            **placement_kwargs(device_map, max_memory),
        )
    except Exception as error:  # transformers raises many types; the user gets one sentence
        raise ModelLoadError(f"could not load model '{name}': {first_line(error)}") from None
    if device == "cpu":
        set_torch_threads(torch, hf_model.num_parameters(), threads)
    if device_map is not None:  # accelerate placed it already
        return hf_model.eval()
    try:
        hf_model.to(device)
    except torch.OutOfMemoryError:
        raise ModelUnavailableError(f"not enough memory on {device} for '{name}'; use --device cpu or a smaller model") from None
    return hf_model.eval()


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def load_model(
    name_or_path: str = "toy",
    device: str = "auto",
    dtype: Any = None,
    allow_pickle: bool = False,
    engine: str = "auto",
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    device_map: str | None = None,
    max_memory: dict | None = None,
) -> LoadedModel:
    """Load model + tokenizer for `engine` (auto, numpy, torch) on `device`. Raises ModelLoadError.

    `device_map="auto"` (torch engine only) spreads the model over the GPUs, the CPU and the disk,
    each capped by `max_memory` ({device: bytes}); `device` is then where the inputs go.

    The NumPy engine on a directory with model.safetensors and tokenizer.json imports neither torch nor
    transformers: the weights go straight into NumPy, the tokenizer through `tokenizers`.
    `progress(text)` hears what is being done (the slow step is importing torch and transformers).
    """
    progress = progress or (lambda text: None)
    location, is_local = locate_model(name_or_path)
    if is_local:
        check_model_dir(location, allow_pickle)
    config = read_config(location, is_local)
    if device_map is not None:
        if engine == "numpy":
            raise ModelLoadError(
                "--device-map spreads a model for the torch engine; the NumPy engine holds it all in RAM (use --engine torch)"
            )
        engine = "torch"
    engine, device = choose_engine(engine, device, config)  # a hub id not downloaded yet has no config: torch
    common = dict(name=name_or_path, path=location, engine=engine, device=device, threads=threads, allow_pickle=allow_pickle)
    if engine == "numpy" and light_loadable(location, is_local) and dtype is None:
        progress(f"reading {name_or_path} into NumPy")
        try:
            net = GPT2Numpy.from_dir(location)
            tokenizer = TextTokenizer.from_dir(location)
        except Exception as error:  # a damaged file: one sentence
            raise ModelLoadError(f"could not load model '{name_or_path}': {first_line(error)}") from None
        n_params = count_params(net.params)
        set_blas_threads(n_params, threads)
        return LoadedModel(tokenizer=tokenizer, info=model_info(name_or_path, config, engine, device, n_params), net=net, **common)
    progress("importing torch and transformers")
    hf_model = load_hf_model(name_or_path, location, device, allow_pickle, threads, dtype, device_map, max_memory)
    if device_map is not None:
        from engine.runtime.placement import input_device, placement_label

        common["device"], device = str(input_device(hf_model)), placement_label(hf_model)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=is_local, trust_remote_code=False)
    except Exception as error:
        raise ModelLoadError(f"could not load the tokenizer of '{name_or_path}': {first_line(error)}") from None
    info = model_info(name_or_path, hf_model.config.to_dict(), engine, device, hf_model.num_parameters())
    return LoadedModel(tokenizer=tokenizer, info=info, _hf_model=hf_model, **common)


def count_params(params: Any) -> int:
    """Numbers in nested params (dicts and lists of arrays)."""
    if isinstance(params, dict):
        return sum(count_params(value) for value in params.values())
    if isinstance(params, list):
        return sum(count_params(value) for value in params)
    return params.size
