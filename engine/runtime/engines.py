"""Which engine runs a model, and the backend that runs it: the one place that decides.

`--engine auto` is torch on CUDA/MPS; on the CPU the from-scratch NumPy engine for every architecture it
runs (faster there, and no torch import), torch for the rest. `--engine numpy` is the CPU only.
"""

from __future__ import annotations

from typing import Any

from engine.model.families import config_problem
from engine.runtime.devices import accelerator_likely, resolve_device
from engine.runtime.errors import ModelLoadError
from engine.runtime.placement import device_map_of

ENGINES = ("auto", "numpy", "torch")


def engine_device_problem(engine: str, device: str | None) -> str | None:
    """Why `engine` cannot run on `device` (one sentence), or None."""
    if engine not in ENGINES:
        return f"unknown engine '{engine}'; use auto, numpy or torch"
    if engine == "numpy" and device not in (None, "auto", "cpu"):
        return f"the NumPy engine runs on the CPU only; use --device cpu or --engine torch (got --device {device})"
    return None


def choose_engine(engine: str, device: str, config: dict) -> tuple[str, str]:
    """(engine, device) for `--engine` and `--device`: auto is torch on CUDA/MPS and, on the CPU, the
    NumPy engine for every architecture it computes (faster there), torch for the rest."""
    if problem := engine_device_problem(engine, device):
        raise ModelLoadError(problem)
    if engine == "numpy":
        return "numpy", "cpu"
    if engine == "torch" or device not in ("auto", "cpu"):
        return "torch", resolve_device(device)
    if device == "auto" and accelerator_likely() and (accelerator := resolve_device("auto")) != "cpu":
        return "torch", accelerator
    return ("numpy" if config_problem(config, "numpy") is None else "torch"), "cpu"


def on_cuda(hf_model: Any) -> bool:
    return next(hf_model.parameters()).device.type == "cuda"


def make_backend(engine: str, model: Any, max_len: int | None = None) -> tuple[Any, str | None]:
    """The backend behind a sampler, and a note for the user if the fast path was given up. The NumPy
    engine's KV cache has room for max_len positions (the session's window; default the model's context).

    numpy: the from-scratch NumPy engine (CPU), imported without torch. torch on CUDA: static KV cache
    + CUDA graphs for GPT-2, checked against eager decoding on first use; torch otherwise (or for what
    the CUDA-graph path does not implement): transformers' own forward.
    """
    if engine == "numpy":
        from engine.runtime.backends.numpy_backend import NumpyBackend

        return NumpyBackend(model.numpy_model(), max_len), None
    hf_model = model.hf_model
    if on_cuda(hf_model) and device_map_of(hf_model) is None:  # the CUDA-graph path needs the whole model on one GPU
        from engine.runtime.backends.cuda_graph import UnsupportedModelError, checked_fast_backend

        try:
            return checked_fast_backend(hf_model)
        except UnsupportedModelError as error:
            from engine.runtime.backends.torch_eager import TorchBackend

            return TorchBackend(hf_model), f"{error}; decoding eagerly"
    from engine.runtime.backends.torch_eager import TorchBackend

    return TorchBackend(hf_model), None


def scratch_backend(engine: str, model: Any, max_len: int | None = None) -> Any:
    """A second backend with its own KV cache, for looking at earlier positions without touching the live one."""
    if engine == "numpy":
        from engine.runtime.backends.numpy_backend import NumpyBackend

        return NumpyBackend(model.numpy_model(), max_len)
    from engine.runtime.backends.torch_eager import TorchBackend

    return TorchBackend(model.hf_model)
