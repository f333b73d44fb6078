"""Ablation and attribution on either engine: the NumPy engine, or transformers' *ForCausalLM with hooks.

The definitions are engine.model.interventions' (read its docstring). On the torch side the same
activations are reached with hooks on the model's own modules (engine.model.families.TORCH_PATHS names
them per family: GPT-2's `transformer.h[i].attn.c_proj`, Llama's `model.layers[i].self_attn.o_proj`, ...):

    head z        forward pre-hook on the attention's output projection: its input is the merged heads
                  [B, T, H * d_head]; query head h is the slice h * d_head : (h + 1) * d_head
    MLP hidden    forward pre-hook on the MLP's down projection (its input is mlp.hook_post)
    MLP output    forward hook on the MLP
    norm input    forward pre-hook on the final norm; the embedding is hidden_states[0]

Hooks fire only on the thread that registered them (two samplers may share one model) and are
removed before `run_torch` returns. torch is imported only when the torch engine is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from engine.model.families import TORCH_PATHS, architecture_from_config, params_from_state
from engine.model.interventions import (
    Ablation,
    Attribution,
    InterventionRun,
    ablated_heads,
    ablated_mlps,
    capture_numpy,
    check_mode,
    direct_logit_attribution,
    intervention_hooks,
    mean_name,
    reference_means,
    run_numpy,
)
from engine.model.transformer import NumpyLM, last_resid

ENGINES = ("numpy", "torch")


def run_torch(
    hf_model: Any, ids: list[int], ablations: Iterable[Ablation] = (), mode: str = "zero", means: dict | None = None, cache: Any = None
) -> InterventionRun:
    """transformers' *ForCausalLM over the whole context `ids` [T] (no cache), ablated by hooks;
    `means` (engine.model.interventions.reference_means) for a mean over a reference text. With `cache`
    (a transformers cache the same ablations filled) `ids` are the new tokens after what it holds, and
    it is extended; `attention` is then [L, H, T_new, T_total]. A context mean needs the whole context:
    no cache (ValueError)."""
    import torch

    from engine.runtime.backends.torch_eager import cache_kwarg

    check_mode(mode)
    if cache is not None and mode == "mean" and means is None:
        raise ValueError("a mean over the context changes every position's activations each token: run it without a cache")
    ablations = tuple(ablations)
    arch = architecture_from_config(hf_model.config.to_dict())
    paths = TORCH_PATHS[arch.family]
    L, H, d_head = arch.n_layers, arch.n_heads, arch.d_head
    heads, mlps = ablated_heads(ablations, L, H), ablated_mlps(ablations, L)
    blocks = hf_model.get_submodule(paths["blocks"])
    owner = threading.get_ident()
    z_last: list[Any] = [None] * L  # [H, d_head] per layer
    mlp_last: list[Any] = [None] * L  # [d] per layer
    final: list[Any] = []
    means = means or {}

    def reference(name, like):  # the reference mean named `name`, as a tensor like `like`, or None
        return None if name not in means else torch.from_numpy(means[name]).to(device=like.device, dtype=like.dtype)

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
                mean = reference(f"blocks.{i}.attn.hook_z", z)  # [H, d_head] or None
                if mode == "zero":
                    z[:, :, marked_d] = 0.0
                else:
                    z[:, :, marked_d] = z[:, :, marked_d].mean(dim=1, keepdim=True) if mean is None else mean[marked_d]
            z_last[i] = z[0, -1]  # [H, d_head]
            return (z.reshape(merged.shape), *args[1:])

        return hook

    def on_neurons(i):
        def hook(module, args):
            if threading.get_ident() != owner:
                return None
            post = args[0]  # [B, T, d_ff]
            mean = reference(f"blocks.{i}.mlp.hook_post", post)  # [d_ff] or None
            if mode == "zero":
                replaced = torch.zeros_like(post)
            else:
                replaced = (post.mean(dim=1, keepdim=True) if mean is None else mean).expand_as(post).contiguous()
            return (replaced, *args[1:])

        return hook

    def on_mlp_out(i):
        def hook(module, args, output):
            if threading.get_ident() == owner:
                mlp_last[i] = output[0, -1]  # [d]

        return hook

    def on_ln_f(module, args):
        if threading.get_ident() == owner:
            final.append(args[0][0, -1])  # [d]

    handles = [hf_model.get_submodule(paths["norm_f"]).register_forward_pre_hook(on_ln_f)]
    for i, block in enumerate(blocks):
        handles.append(block.get_submodule(paths["attn_o"]).register_forward_pre_hook(on_z(i)))
        handles.append(block.get_submodule(paths["mlp"]).register_forward_hook(on_mlp_out(i)))
        if mlps[i]:
            handles.append(block.get_submodule(paths["mlp_down"]).register_forward_pre_hook(on_neurons(i)))
    device = next(hf_model.parameters()).device
    try:
        with torch.inference_mode():
            out = hf_model(
                input_ids=torch.tensor([list(ids)], dtype=torch.long, device=device),
                use_cache=cache is not None,
                output_attentions=True,
                output_hidden_states=True,
                **({cache_kwarg(hf_model): cache} if cache is not None else {}),
            )
    finally:
        for handle in handles:
            handle.remove()

    def host(t):  # -> float32 NumPy
        return t.float().cpu().numpy()

    return InterventionRun(
        logits=host(out.logits[0, -1]),
        # the embedding and each block's input (hidden_states[L] is after the final norm), then the final norm's input
        resid=host(torch.stack([h[0, -1].to(final[0].device) for h in out.hidden_states[:-1]] + [final[0]])),  # [L + 1, d]
        z=host(torch.stack(z_last)),  # [L, H, d_head]
        mlp_out=host(torch.stack(mlp_last)),  # [L, d]
        attention=host(torch.stack([a[0] for a in out.attentions])),  # [L, H, T, T]
        ablations=ablations,
        mode=mode,
    )


def capture_torch(hf_model: Any, ids: list[int], names: Iterable[str]) -> dict[str, np.ndarray]:
    """One intact forward of transformers' model over `ids` [T] (no cache), recording the activations
    `names` asks for in the NumPy engine's layout: `blocks.L.attn.hook_z` [H, T, d_head] (the output
    projection's input) and `blocks.L.mlp.hook_post` [T, d_ff] (the down projection's input)."""
    import torch

    arch = architecture_from_config(hf_model.config.to_dict())
    paths = TORCH_PATHS[arch.family]
    blocks = hf_model.get_submodule(paths["blocks"])
    owner = threading.get_ident()
    captured: dict[str, np.ndarray] = {}

    def record(name, to_layout):
        def hook(module, args):
            if threading.get_ident() == owner:
                captured[name] = to_layout(args[0][0]).float().cpu().numpy()

        return hook

    def z_layout(merged):  # [T, H * d_head] -> [H, T, d_head]
        return merged.view(merged.shape[0], arch.n_heads, arch.d_head).transpose(0, 1)

    handles = []
    for name in dict.fromkeys(names):
        _, layer, *rest = name.split(".")
        block = blocks[int(layer)]
        if rest[0] == "attn":
            handles.append(block.get_submodule(paths["attn_o"]).register_forward_pre_hook(record(name, z_layout)))
        else:
            handles.append(block.get_submodule(paths["mlp_down"]).register_forward_pre_hook(record(name, lambda post: post)))
    device = next(hf_model.parameters()).device
    try:
        with torch.inference_mode():
            hf_model(input_ids=torch.tensor([list(ids)], dtype=torch.long, device=device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def kept_prefix(held: list[int], tokens: list[int]) -> int:
    """How many positions an ablated cache holding `held` keeps for the context `tokens`: their common
    prefix, less the last token, which is read again for its logits."""
    same = 0
    for a, b in zip(held, tokens):
        if a != b:
            break
        same += 1
    return min(same, len(tokens) - 1)


class AblatedDecoder:
    """The NumPy engine under zero ablations with its own KV cache: `logits(tokens)` reads in only the
    tokens its cache does not hold yet (all of them the first time; one per step after that; after an
    undo it rolls back, after a new prompt or a window slide it starts over)."""

    def __init__(self, net: NumpyLM, ablations: Iterable[Ablation], max_len: int | None = None):
        self.net = net
        self.hooks = intervention_hooks(tuple(ablations), net.n_layer, net.n_head, "zero")
        self.cache = net.new_cache(max_len)
        self.tokens: list[int] = []  # what the cache holds

    def forward(self, tokens: list[int]) -> tuple[np.ndarray, np.ndarray]:  # [T] -> [V], [L + 1, d]
        """The next token's logits and the residual stream at the last position (embedding, then each block), ablated."""
        same = kept_prefix(self.tokens, tokens)
        self.cache.crop(same)
        logits, captures = self.net.forward(tokens[same:], cache=self.cache, logits_to_keep=1, hooks=self.hooks)  # [1, V]
        self.tokens = list(tokens)
        return logits[-1], last_resid(captures, self.net.n_layer)


class MeanAblatedDecoder:
    """The NumPy engine under mean ablations (means over the context), keeping what such a mean allows.

    The mean moves with every token, and with it what every position receives from the ablated
    components: from the lowest ablated block up, every position's keys and values change each token, so
    those blocks read the whole context again. The blocks below it are the intact model's: their KV cache
    and the residual stream they hand up ([T, d]) are advanced a token at a time, as AblatedDecoder's."""

    def __init__(self, net: NumpyLM, ablations: Iterable[Ablation], max_len: int | None = None):
        ablations = tuple(ablations)
        self.net = net
        self.first = min(ablation.layer for ablation in ablations)  # the lowest ablated block, at least 1 (ablated_decoder)
        lower_arch = replace(net.arch, n_layers=self.first)
        self.lower = NumpyLM(lower_arch, {**net.params, "blocks": net.params["blocks"][: self.first]})  # the same arrays
        self.cache = self.lower.new_cache(max_len)
        self.hooks = intervention_hooks(ablations, net.n_layer, net.n_head, "mean")
        self.tokens: list[int] = []  # what the cache holds
        self.resid = np.zeros((0, net.d_model), np.float32)  # [T, d] entering block `first`, for those tokens

    def forward(self, tokens: list[int]) -> tuple[np.ndarray, np.ndarray]:  # [T] -> [V], [L + 1, d]
        """The next token's logits and the residual stream at the last position (embedding, then each block), ablated."""
        same = kept_prefix(self.tokens, tokens)
        self.cache.crop(same)
        _, captures = self.lower.forward(tokens[same:], cache=self.cache, logits_to_keep=1)
        new = captures[f"blocks.{self.first - 1}.hook_resid_post"]  # [T_new, d]
        self.resid = np.concatenate([self.resid[:same], new])  # [T, d]
        self.tokens = list(tokens)
        logits, upper = self.net.forward_from(self.resid, self.first, self.hooks)  # [V], [L - first, d]
        return logits, np.concatenate([last_resid(captures, self.first), upper])  # [L + 1, d]


class TorchAblatedDecoder:
    """AblatedDecoder's twin on the torch engine: transformers' model under zero ablations (run_torch's
    hooks) with its own cache, filled once when the ablation starts, then a token at a time."""

    def __init__(self, hf_model: Any, ablations: Iterable[Ablation]):
        self.hf_model = hf_model
        self.ablations = tuple(ablations)
        self.cache: Any = None  # transformers' DynamicCache of the ablated model
        self.tokens: list[int] = []  # what the cache holds

    def forward(self, tokens: list[int]) -> tuple[np.ndarray, np.ndarray]:  # [T] -> [V], [L + 1, d]
        """The next token's logits and the residual stream at the last position (embedding, then each block), ablated."""
        from transformers import DynamicCache

        from engine.runtime.backends.torch_eager import crop_cache

        same = kept_prefix(self.tokens, tokens)
        if self.cache is None or same == 0:
            self.cache = DynamicCache(config=self.hf_model.config)
        else:
            crop_cache(self.cache, same)
        run = run_torch(self.hf_model, tokens[same:], self.ablations, "zero", cache=self.cache)
        self.tokens = list(tokens)
        return run.logits, run.resid


def ablated_decoder(engine: str, net: Any, hf_model: Any, ablations: tuple[Ablation, ...], mode: str, max_len: int) -> Any | None:
    """What an ablated generation on `engine` reads its next-token logits and residual stream through (`.forward(tokens)`),
    keeping all it can between tokens: a zero ablation its own KV cache on either engine, a mean ablation
    on the NumPy engine the blocks below the lowest ablated one. None where nothing can be kept (a mean
    ablation of block 0, or on torch): read the whole context again (run_numpy, run_torch).
    `net`: the NumpyLM (NumPy engine); `hf_model`: transformers' model (torch)."""
    if mode == "zero":
        return AblatedDecoder(net, ablations, max_len) if engine == "numpy" else TorchAblatedDecoder(hf_model, ablations)
    if engine == "numpy" and min(ablation.layer for ablation in ablations) > 0:
        return MeanAblatedDecoder(net, ablations, max_len)
    return None


def numpy_view(hf_model: Any) -> NumpyLM:
    """A NumpyLM on an in-memory transformers model's weights: NumPy views where the layout already is
    [in, out] on the CPU, copies where it must be transposed or fused (what attribution reads)."""
    config = hf_model.config.to_dict()
    arch = architecture_from_config(config)
    state = {name: tensor.detach().float().cpu().numpy() for name, tensor in hf_model.state_dict().items()}
    return NumpyLM(arch, params_from_state(arch, state))


class Inspector:
    """Ablated forwards and direct logit attribution over whole contexts, on the loaded model's engine.

    A NumPy session inspects the NumpyLM it already holds (torch is never imported); a torch session
    runs transformers' model with hooks and attributes with the same weights read as NumPy.
    `run` and `attribution` are pure in their arguments.
    """

    def __init__(self, loaded: Any, engine: str | None = None):
        """`loaded`: an engine.runtime.loading.LoadedModel; `engine` defaults to the one it was loaded for."""
        engine = engine or loaded.engine
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
        self.engine = engine
        self.loaded = loaded
        self.net = loaded.numpy_model() if engine == "numpy" else numpy_view(loaded.hf_model)
        self.n_layer, self.n_head, self.n_positions = self.net.n_layer, self.net.n_head, self.net.n_positions

    def check(self, ids: list[int], ablations: tuple[Ablation, ...], what: str = "the context") -> None:
        """ValueError in one sentence unless this model has every component and `ids` fits its window."""
        for ablation in ablations:
            ablation.check(self.n_layer, self.n_head)
        if not ids:
            raise ValueError(f"{what} needs at least one token")
        if len(ids) > self.n_positions:
            raise ValueError(f"{what} holds {len(ids)} tokens; this model reads at most {self.n_positions}")

    def run(self, ids: list[int], ablations: Iterable[Ablation] = (), mode: str = "zero", means: dict | None = None) -> InterventionRun:
        """One forward over `ids` with `ablations` (checked against this model's sizes); a mean ablation
        reads `means` (from `reference_means`) when given, else averages over `ids`' own positions."""
        ablations = tuple(ablations)
        self.check(ids, ablations)
        if self.engine == "numpy":
            return run_numpy(self.net, ids, ablations, mode, means)
        return run_torch(self.loaded.hf_model, ids, ablations, mode, means)

    def reference_means(self, ids: list[int], ablations: Iterable[Ablation]) -> dict:
        """Each of `ablations`' activations averaged over every position of an intact forward over the
        reference text `ids` (engine.model.interventions.reference_means), on this inspector's engine."""
        ablations = tuple(ablations)
        self.check(ids, ablations, "the reference text")
        if self.engine == "numpy":
            captures = capture_numpy(self.net, ids)
        else:
            captures = capture_torch(self.loaded.hf_model, ids, [mean_name(a) for a in ablations])
        return reference_means(captures, ablations)

    def attribution(self, run: InterventionRun, token_id: int) -> Attribution:
        return direct_logit_attribution(run, self.net, token_id)
