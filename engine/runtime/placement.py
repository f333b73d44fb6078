"""`--device-map auto`: one model spread over the GPUs, the CPU and the disk by accelerate.

transformers hands `device_map="auto"` to accelerate, which fills each GPU up to its `max_memory`,
then the CPU's RAM, and leaves the rest on disk, streamed in for each forward: read straight from a
safetensors checkpoint, or from copies in an offload folder for other formats.
Only the torch engine runs such a model (the NumPy engine holds all its weights in RAM).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from typing import Any

DEVICE_MAPS = ("auto",)
OFFLOAD_PREFIX = "offload-"


def placement_kwargs(device_map: str | None, max_memory: dict | None) -> dict[str, Any]:
    """from_pretrained's arguments for `device_map` ({} without one): accelerate's map, the memory caps
    ({device: bytes or "2GiB"}), and a folder for the weights that fit nowhere (removed at exit)."""
    if device_map is None:
        return {}
    if device_map not in DEVICE_MAPS:
        raise ValueError(f"unknown device map {device_map!r}; use one of {DEVICE_MAPS}")
    from engine.store.cache import cache_dir

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    offload = tempfile.mkdtemp(prefix=OFFLOAD_PREFIX, dir=root)  # under the cache, not /tmp: /tmp is often RAM
    atexit.register(shutil.rmtree, offload, ignore_errors=True)
    return {"device_map": device_map, "max_memory": max_memory, "offload_folder": offload}


def device_map_of(hf_model: Any) -> dict[str, Any] | None:
    """accelerate's map (module name → device index, "cpu" or "disk") of a dispatched model, else None."""
    return getattr(hf_model, "hf_device_map", None)


def input_device(hf_model: Any) -> Any:
    """Where the input ids go: the embedding's execution device (the CPU for a CPU- or disk-offloaded
    one, whose parameters sit on the meta device between forwards), else the parameters' device."""
    import torch

    device_map = device_map_of(hf_model)
    if not device_map:
        return next(hf_model.parameters()).device
    first = next(iter(device_map.values()))
    if first in ("cpu", "disk"):
        return torch.device("cpu")
    return torch.device(f"cuda:{first}" if isinstance(first, int) else first)


def placement_label(hf_model: Any) -> str:
    """Where the model runs: its parameters' device, or for a dispatched model every device it uses in
    the map's order ("cuda:0+cuda:1+cpu+disk")."""
    device_map = device_map_of(hf_model)
    if not device_map:
        return str(next(hf_model.parameters()).device)
    return "+".join(dict.fromkeys(f"cuda:{device}" if isinstance(device, int) else str(device) for device in device_map.values()))
