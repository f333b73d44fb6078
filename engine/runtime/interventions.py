"""Ablation and attribution on either engine: the NumPy GPT-2, or transformers' GPT2LMHeadModel with hooks.

The definitions are engine.model.interventions' (read its docstring). On the torch side the same
activations are reached with hooks on the model's own modules:

    head z        forward pre-hook on transformer.h[i].attn.c_proj: its input is the merged heads
                  [B, T, H * d_head]; head h is the slice h * d_head : (h + 1) * d_head
    MLP neurons   forward pre-hook on transformer.h[i].mlp.c_proj (its input is mlp.hook_post)
    MLP output    forward hook on transformer.h[i].mlp
    ln_f's input  forward pre-hook on transformer.ln_f; the embedding is hidden_states[0]

Hooks fire only on the thread that registered them (two samplers may share one model) and are
removed before `run_torch` returns. torch is imported only when the torch engine is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from engine.model.gpt2 import GPT2Numpy, gpt2_params
from engine.model.interventions import (
    Ablation,
    Attribution,
    InterventionRun,
    ablated_heads,
    ablated_mlps,
    check_mode,
    direct_logit_attribution,
    run_numpy,
)

ENGINES = ("numpy", "torch")


def run_torch(hf_model: Any, ids: list[int], ablations: Iterable[Ablation] = (), mode: str = "zero") -> InterventionRun:
    """transformers' GPT2LMHeadModel over the whole context `ids` [T] (no cache), ablated by hooks."""
    import torch

    check_mode(mode)
    ablations = tuple(ablations)
    config = hf_model.config
    L, H = config.n_layer, config.n_head
    heads, mlps = ablated_heads(ablations, L, H), ablated_mlps(ablations, L)
    d_head = config.n_embd // H
    blocks = hf_model.transformer.h
    owner = threading.get_ident()
    z_last: list[Any] = [None] * L  # [H, d_head] per layer
    mlp_last: list[Any] = [None] * L  # [d] per layer
    final: list[Any] = []

    def on_z(i):
        marked = torch.from_numpy(heads[i])  # [H] bool

        def hook(module, args):
            if threading.get_ident() != owner:
                return None
            merged = args[0]  # [B, T, H * d_head]
            z = merged.view(*merged.shape[:-1], H, d_head)  # [B, T, H, d_head]
            if marked.any():
                z = z.clone()
                marked_d = marked.to(z.device)
                z[:, :, marked_d] = 0.0 if mode == "zero" else z[:, :, marked_d].mean(dim=1, keepdim=True)
            z_last[i] = z[0, -1]  # [H, d_head]
            return (z.reshape(merged.shape), *args[1:])

        return hook

    def on_neurons(module, args):
        if threading.get_ident() != owner:
            return None
        post = args[0]  # [B, T, d_ff]
        replaced = torch.zeros_like(post) if mode == "zero" else post.mean(dim=1, keepdim=True).expand_as(post).contiguous()
        return (replaced, *args[1:])

    def on_mlp_out(i):
        def hook(module, args, output):
            if threading.get_ident() == owner:
                mlp_last[i] = output[0, -1]  # [d]

        return hook

    def on_ln_f(module, args):
        if threading.get_ident() == owner:
            final.append(args[0][0, -1])  # [d]

    handles = [hf_model.transformer.ln_f.register_forward_pre_hook(on_ln_f)]
    for i, block in enumerate(blocks):
        handles.append(block.attn.c_proj.register_forward_pre_hook(on_z(i)))
        handles.append(block.mlp.register_forward_hook(on_mlp_out(i)))
        if mlps[i]:
            handles.append(block.mlp.c_proj.register_forward_pre_hook(on_neurons))
    device = next(hf_model.parameters()).device
    try:
        with torch.inference_mode():
            out = hf_model(
                input_ids=torch.tensor([list(ids)], dtype=torch.long, device=device),
                use_cache=False,
                output_attentions=True,
                output_hidden_states=True,
            )
    finally:
        for handle in handles:
            handle.remove()

    def host(t):  # -> float32 NumPy
        return t.float().cpu().numpy()

    return InterventionRun(
        logits=host(out.logits[0, -1]),
        embed=host(out.hidden_states[0][0, -1]),
        z=host(torch.stack(z_last)),  # [L, H, d_head]
        mlp_out=host(torch.stack(mlp_last)),  # [L, d]
        resid_final=host(final[0]),
        attention=host(torch.stack([a[0] for a in out.attentions])),  # [L, H, T, T]
        ablations=ablations,
        mode=mode,
    )


def numpy_params(hf_model: Any) -> dict:
    """The GPT-2 params attribution reads, as NumPy views of the model's weights (copies off the CPU)."""
    weights = dict(hf_model.transformer.named_parameters())
    return gpt2_params(lambda name: weights[name].detach().float().cpu().numpy(), hf_model.config.n_layer)


class Inspector:
    """Ablated forwards and direct logit attribution over whole contexts, on one engine.

    Build once per loaded model (the NumPy engine copies the weights once); `run` and `attribution`
    are then pure in their arguments.
    """

    def __init__(self, hf_model: Any, engine: str = "numpy"):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
        self.engine = engine
        self.hf_model = hf_model
        config = hf_model.config
        self.n_layer, self.n_head, self.n_positions = config.n_layer, config.n_head, config.n_positions
        self.eps = float(config.layer_norm_epsilon)
        if engine == "numpy":
            self.net = GPT2Numpy.from_hf(hf_model)
            self.params = self.net.params
        else:
            self.net = None
            self.params = numpy_params(hf_model)

    def run(self, ids: list[int], ablations: Iterable[Ablation] = (), mode: str = "zero") -> InterventionRun:
        """One forward over `ids` with `ablations` (checked against this model's sizes)."""
        ablations = tuple(ablations)
        for ablation in ablations:
            ablation.check(self.n_layer, self.n_head)
        if not ids:
            raise ValueError("inspect needs at least one token of context")
        if len(ids) > self.n_positions:
            raise ValueError(f"the context holds {len(ids)} tokens; this model reads at most {self.n_positions}")
        if self.net is not None:
            return run_numpy(self.net, ids, ablations, mode)
        return run_torch(self.hf_model, ids, ablations, mode)

    def attribution(self, run: InterventionRun, token_id: int) -> Attribution:
        return direct_logit_attribution(run, self.params, token_id, self.eps)
