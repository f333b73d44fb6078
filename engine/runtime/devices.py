"""Where the engine runs: the device (cpu, cuda, mps) and its CPU threads (torch's intra-op, NumPy's BLAS).

Nothing here imports torch unless a GPU is asked about and torch may have one.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

from engine.runtime.errors import ModelLoadError, ModelUnavailableError

SMALL_MODEL_PARAMS = 50_000_000  # below this the engine runs one thread on the CPU (thread_policy)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # set by the user: torch follows them instead
BLAS_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # NumPy's BLAS read them at import


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
