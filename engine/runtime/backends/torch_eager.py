"""The eager torch backend: transformers' *ForCausalLM forward (GPT-2 or the Llama family) with a DynamicCache, on any device."""

from __future__ import annotations

import inspect
import threading
from typing import Any

import numpy as np

from engine.model.families import FAMILY_OF, TORCH_PATHS
from engine.runtime.backends.base import ForwardOutput
from engine.runtime.placement import input_device


def cache_kwarg(hf_model: Any) -> str:
    """The name transformers' forward takes its KV cache by: `cache` (5.x), `past_key_values` (4.x)."""
    return "cache" if "cache" in inspect.signature(hf_model.forward).parameters else "past_key_values"


def crop_cache(cache: Any, n: int) -> None:
    """Keep a transformers cache's first n positions. A negative count removes from the end in every transformers 4.x/5.x."""
    to_remove = cache.get_seq_length() - n
    if to_remove > 0:
        cache.crop(-to_remove)


def run_with_residuals(model: Any, norm_f: Any, input_ids: Any, **kwargs: Any) -> tuple[Any, tuple]:
    """transformers' forward with the residual stream of every layer: (its output, L + 1 x [1, T, d]: the
    embeddings, then after each block, before the final norm). hidden_states[-1] is after the final norm,
    so the last block's output is taken as the norm's input, by a hook that hears this thread only (two
    samplers may share one model from two threads)."""
    final_resid = []
    owner = threading.get_ident()

    def capture(module, args) -> None:
        if threading.get_ident() == owner:
            final_resid.append(args[0])

    hook = norm_f.register_forward_pre_hook(capture)
    try:
        out = model(input_ids=input_ids, output_hidden_states=True, **kwargs)
    finally:
        hook.remove()
    return out, out.hidden_states[:-1] + (final_resid[0],)


class TorchNet:
    """transformers' model read as a net by engine.views.representations: `forward(ids)` over a whole
    context from position 0 gives the residual-stream captures under the NumPy engine's names, `lens(resid)`
    the model's own final norm and unembedding. It reads the session's torch model itself: no NumPy copy
    of the weights."""

    def __init__(self, hf_model: Any):
        import torch

        self.torch = torch
        self.model = hf_model
        self.device = input_device(hf_model)
        paths = TORCH_PATHS[FAMILY_OF[hf_model.config.model_type]]
        self.norm_f, self.unembed = hf_model.get_submodule(paths["norm_f"]), hf_model.get_submodule(paths["unembed"])

    def forward(self, ids: list[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # [T] -> [T, V], {name: [T, d]}
        torch = self.torch
        with torch.inference_mode():
            input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)  # [1, T]
            out, hidden = run_with_residuals(self.model, self.norm_f, input_ids, use_cache=False)  # L + 1 x [1, T, d]
        layers = [h[0].float().cpu().numpy() for h in hidden]  # L + 1 x [T, d]
        captures = {"blocks.0.hook_resid_pre": layers[0]} | {f"blocks.{i}.hook_resid_post": h for i, h in enumerate(layers[1:])}
        return out.logits[0].float().cpu().numpy(), captures

    def lens(self, resid: np.ndarray) -> np.ndarray:  # [n, d] -> [n, V]
        """The logit lens: the final norm and the unembedding applied to residual-stream vectors."""
        torch = self.torch
        with torch.inference_mode():
            hidden = torch.from_numpy(np.ascontiguousarray(resid)).to(device=self.device, dtype=next(self.model.parameters()).dtype)
            return self.unembed(self.norm_f(hidden)).float().cpu().numpy()


class TorchBackend:
    """transformers' *ForCausalLM with a DynamicCache (any device), eager attention so its weights are returned."""

    def __init__(self, hf_model: Any):
        import torch

        self.torch = torch
        self.model = hf_model
        self.device = input_device(hf_model)  # a model spread by --device-map takes its inputs where its embedding runs
        paths = TORCH_PATHS[FAMILY_OF[hf_model.config.model_type]]
        self.norm_f, self.unembed = hf_model.get_submodule(paths["norm_f"]), hf_model.get_submodule(paths["unembed"])
        self.cache = None
        self._cache_kwarg = cache_kwarg(hf_model)

    def reset(self) -> None:
        self.cache = None

    def crop(self, n: int) -> None:
        crop_cache(self.cache, n)

    def forward(self, ids: list[int]) -> ForwardOutput:
        torch = self.torch
        with torch.inference_mode():
            input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)  # [1, T_new]
            out, hidden = run_with_residuals(
                self.model, self.norm_f, input_ids, use_cache=True, output_attentions=True, **{self._cache_kwarg: self.cache}
            )
            self.cache = getattr(out, "cache", None) or out.past_key_values
            resid = torch.stack([h[0, -1].to(self.device) for h in hidden])  # [L + 1, d] (blocks may sit on several devices)
            attention = torch.stack([a[0].to(self.device) for a in out.attentions])  # [L, H, T_new, T_total]
            return ForwardOutput(
                logits=out.logits[0, -1].float().cpu().numpy(),
                attention=attention.float().cpu().numpy(),
                resid=resid.float().cpu().numpy(),
                lens_of=self.lens_top,
            )

    def lens_top(self, resid):  # [L + 1, d] -> [L] ids, [L] probabilities (NumPy)
        """The logit lens after each block: its most likely token and that token's probability."""
        torch = self.torch
        with torch.inference_mode():
            hidden = torch.from_numpy(resid[1:]).to(device=self.device, dtype=next(self.model.parameters()).dtype)  # [L, d]
            lens_p, lens_ids = torch.softmax(self.unembed(self.norm_f(hidden)).float(), dim=-1).max(dim=-1)  # [L], [L]
        return lens_ids.cpu().numpy(), lens_p.cpu().numpy()
