"""GPT-2 decoding with a static KV cache and, on CUDA, a captured graph replayed per token.

The eager TorchBackend calls transformers once per token and copies each capture to the host
separately: on a GPU that is hundreds of kernel launches and several syncs per token. Here the
decode step is our own torch code on the model's own weights (referenced, never copied):

    prefill  several tokens, a plain eager pass that writes their keys/values into the static cache
    decode   one token over a fixed span of cache slots (64, 128, ... up to n_positions; a mask hides
             the unfilled ones), so every shape is fixed and the step for each span can be captured
             once with torch.cuda.CUDAGraph and replayed;
             logits, every layer's attention row, the residual stream and the logit lens are written
             into one flat fp32 buffer, copied to pinned host memory in one non-blocking copy,
             then one sync per token.

The model functions mirror engine/model/ops.py line for line (layer_norm, linear, causal_mask,
attention, split_heads, merge_heads, mha, ffn, block), in torch so that CUDA graphs can capture them;
read the block there first. They differ only where a graph needs it: the cache is written with
index_copy_ at position tensors and read over a fixed span of slots, and the score scale is per layer.

On the CPU the decode step runs eagerly over the filled part of the cache only (same functions,
no graph). If capture fails, or its replay disagrees with the eager step, decoding stays eager and
`graph_error` says why. Before the sampler uses this backend, `checked_fast_backend` compares its
first steps with transformers' eager forward and falls back to that when they disagree.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.model.families import architecture_from_config, gpt2_roles
from engine.runtime.backends.base import ForwardOutput
from engine.runtime.backends.torch_eager import TorchBackend

TORCH_ACTIVATIONS = {"gelu": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}  # ops.ACTIVATIONS in torch
SMALLEST_SPAN = 64  # graphs attend over 64, 128, 256, ... slots: short contexts read less cache
GRAPH_CHECK_RTOL = 1e-3  # a replayed graph must match the eager step it was captured from
GRAPH_CHECK_ATOL = 1e-4
SELF_CHECK_PROMPT = 8  # probe tokens prefilled by the self-check on first use
SELF_CHECK_STEPS = 4  # decode steps it compares with eager decoding
SELF_CHECK_TOLERANCE = {  # dtype -> (max |logit diff|, max |attention diff|) accepted against eager
    torch.float32: (1e-3, 1e-4),
    torch.bfloat16: (0.5, 2e-2),
    torch.float16: (0.1, 5e-3),
}


class UnsupportedModelError(ValueError):
    """The model is not a GPT-2 architecture this backend implements (use TorchBackend)."""


# ---- the model as pure functions: engine/model/ops.py in torch, same names, same order --------


def layer_norm(x, g, b, eps):  # [T, d], [d], [d] -> [T, d]
    return F.layer_norm(x, g.shape, g, b, eps)  # torch accumulates in fp32 for bf16/fp16 inputs


def linear(x, w, b):  # [T, in], [in, out], [out] -> [T, out]
    return torch.addmm(b, x, w)


def causal_mask(positions, key_positions, dtype):  # [T], [S] -> [T, S] additive: 0 visible, -inf hidden
    visible = key_positions[None, :] <= positions[:, None]  # [T, S]
    return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill_(~visible, float("-inf"))


def attention(q, k, v, mask, scale):  # [H, T, Dh], [H, S, Dh], [H, S, Dh], [T, S] -> [H, T, Dh], [H, T, S] fp32
    scores = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=scale)  # [H, T, S]
    weights = torch.softmax(scores.float(), dim=-1)  # [H, T, S] each row sums to 1
    return weights.to(v.dtype) @ v, weights


def split_heads(x, n_head):  # [T, d] -> [H, T, Dh]
    T, d = x.shape
    return x.view(T, n_head, d // n_head).transpose(0, 1)


def merge_heads(x):  # [H, T, Dh] -> [T, d]
    H, T, d_head = x.shape
    return x.transpose(0, 1).reshape(T, H * d_head)


def mha(x, qkv, o, n_head, cache, positions, mask, scale):  # [T, d] -> [T, d], [H, T, S]
    """Causal self-attention: this step's keys/values are written into the cache at `positions`,
    then the T queries attend over the first S = mask.shape[-1] slots (graph-capturable: no slicing by length)."""
    q, k, v = (split_heads(part, n_head) for part in linear(x, **qkv).chunk(3, dim=-1))  # 3 x [H, T, Dh]
    k_cache, v_cache = cache  # [H, P, Dh] x2, this layer's
    k_cache.index_copy_(1, positions, k)
    v_cache.index_copy_(1, positions, v)
    span = mask.shape[-1]
    heads, weights = attention(q, k_cache[:, :span], v_cache[:, :span], mask, scale)  # [H, T, Dh], [H, T, S]
    return linear(merge_heads(heads), **o), weights


def ffn(x, up, gate, down, activation):  # [T, d] -> [T, d]  (gate: None, GPT-2 has no SwiGLU)
    return linear(activation(linear(x, **up)), **down)


def block(x, norm1, attn, norm2, mlp, n_head, *, activation, eps, cache, positions, mask, scale):  # [T, d] -> [T, d], [H, T, S]
    """GPT-2's pre-LN block: x = x + MHA(LN(x)); x = x + FFN(LN(x))."""
    attn_out, pattern = mha(
        layer_norm(x, **norm1, eps=eps), **attn, n_head=n_head, cache=cache, positions=positions, mask=mask, scale=scale
    )
    x = x + attn_out  # [T, d]
    x = x + ffn(layer_norm(x, **norm2, eps=eps), **mlp, activation=activation)  # [T, d]
    return x, pattern


def gpt2_forward(params, ids, positions, cache, key_positions, settings):
    # [T], [T], StaticCache, [S] -> [L + 1, d] resid at the last position, L x [H, T, S] attention
    """Embed new tokens at `positions` and run the blocks, attending over the first S cache slots."""
    x = params["embed"][ids] + params["pos_embed"][positions]  # [T, d]
    mask = causal_mask(positions, key_positions, x.dtype)  # [T, S]
    resid, patterns = [x[-1]], []
    for i, layer in enumerate(params["blocks"]):
        x, pattern = block(
            x,
            **layer,
            n_head=settings.n_head,
            activation=settings.activation,
            eps=settings.eps,
            cache=(cache.k[i], cache.v[i]),
            positions=positions,
            mask=mask,
            scale=settings.scales[i],
        )  # [T, d], [H, T, S]
        resid.append(x[-1])
        patterns.append(pattern)
    return torch.stack(resid), patterns


def lens(resid, norm_f, unembed, eps):  # [L + 1, d] -> [L, V] fp32 probs, [V] logits
    """Final LN + unembedding on each block's output; the last block's row is the model's logits."""
    layer_logits = (layer_norm(resid[1:], **norm_f, eps=eps) @ unembed).float()  # [L, V]
    return torch.softmax(layer_logits, dim=-1), layer_logits[-1]


# ---- the weights and the config check (engine.model.families', shared with the NumPy engine) ------


def check_supported(hf_model: Any) -> None:
    """Raise UnsupportedModelError, in one sentence, unless this is a GPT-2 the NumPy engine computes too."""
    config = hf_model.config.to_dict()
    try:
        arch = architecture_from_config(config)
    except ValueError as error:
        raise UnsupportedModelError(str(error)) from None
    if arch.family != "gpt2":
        raise UnsupportedModelError(
            f"the CUDA-graph decode path runs GPT-2 only, not this {config['model_type']} model (untested without a GPU)"
        )


def torch_params(hf_model: Any) -> dict:
    """References to a GPT2LMHeadModel's weights, named by role as engine.model.families lays them out (no copies)."""
    weights = dict(hf_model.named_parameters())
    arch = architecture_from_config(hf_model.config.to_dict())
    return gpt2_roles(lambda name: weights[f"transformer.{name}" if f"transformer.{name}" in weights else name].detach(), arch)


def static_span(n_keys: int, max_len: int) -> int:
    """The fixed number of slots a captured step attends over: the power of two (>= 64) holding n_keys."""
    span = SMALLEST_SPAN
    while span < n_keys:
        span *= 2
    return min(span, max_len)


# ---- state ----------------------------------------------------------------------------------


@dataclass
class StaticCache:
    """Keys and values for every slot of the context, allocated once; `length` slots are filled."""

    k: torch.Tensor  # [L, H, P, Dh] in the model's dtype
    v: torch.Tensor  # [L, H, P, Dh]
    length: int = 0  # filled slots; crop() just lowers it (stale slots are masked, then overwritten)


@dataclass
class ModelSettings:
    """What the pure functions need besides the weights, read once from the HF config."""

    n_layer: int
    n_head: int
    d_model: int
    vocab_size: int
    eps: float  # layer-norm epsilon
    scales: list[float]  # attention score scale per layer (1/sqrt(Dh))
    activation: Any  # the MLP activation function (torch)

    @classmethod
    def from_config(cls, config: Any) -> ModelSettings:
        arch = architecture_from_config(config.to_dict())  # GPT-2's standard variant: 1/sqrt(d_head) in every layer
        return cls(
            n_layer=arch.n_layers,
            n_head=arch.n_heads,
            d_model=arch.d_model,
            vocab_size=arch.vocab_size,
            eps=arch.norm_eps,
            scales=[arch.d_head**-0.5] * arch.n_layers,
            activation=TORCH_ACTIVATIONS[arch.mlp],
        )


@dataclass
class StepLayout:
    """Where each capture lives in the flat fp32 buffer one decode step fills.

    [ logits V | resid (L+1)*d | lens_p L | lens_ids L | attention P*L*H ]; attention is last and
    laid out [P, L, H], so the host copies only a prefix that grows with the context length.
    """

    vocab_size: int
    n_layer: int
    n_head: int
    d_model: int
    max_len: int

    @property
    def resid_at(self) -> int:
        return self.vocab_size

    @property
    def lens_p_at(self) -> int:
        return self.resid_at + (self.n_layer + 1) * self.d_model

    @property
    def lens_ids_at(self) -> int:
        return self.lens_p_at + self.n_layer

    @property
    def attention_at(self) -> int:
        return self.lens_ids_at + self.n_layer

    def size(self, n_positions: int) -> int:  # floats needed to carry `n_positions` attention slots
        return self.attention_at + n_positions * self.n_layer * self.n_head


def unpack_step(flat: np.ndarray, layout: StepLayout, n_keys: int) -> ForwardOutput:  # [size] -> ForwardOutput
    """Fresh NumPy arrays from a decode step's flat buffer (the buffer is reused next token)."""
    L, H, d = layout.n_layer, layout.n_head, layout.d_model
    attention = flat[layout.attention_at : layout.size(n_keys)].reshape(n_keys, L, H)  # [T, L, H]
    return ForwardOutput(
        logits=flat[: layout.vocab_size].copy(),
        attention=np.ascontiguousarray(attention.transpose(1, 2, 0)[:, :, None, :]),  # [L, H, 1, T]
        resid=flat[layout.resid_at : layout.lens_p_at].reshape(L + 1, d).copy(),
        lens=(flat[layout.lens_ids_at : layout.attention_at].astype(np.int64), flat[layout.lens_p_at : layout.lens_ids_at].copy()),
    )


# ---- the backend ----------------------------------------------------------------------------


class FastTorchBackend:
    """Same interface as TorchBackend (reset, crop, forward -> ForwardOutput), faster per token.

    Build it after the model is on its device and in its dtype: it references the weights.
    """

    def __init__(
        self,
        hf_model: Any,
        max_len: int | None = None,
        use_cuda_graph: bool | None = None,
        static_spans: bool | None = None,
    ):
        check_supported(hf_model)
        config = hf_model.config
        self.model = hf_model
        self.params = torch_params(hf_model)
        self.settings = ModelSettings.from_config(config)
        self.device = self.params["embed"].device
        self.dtype = self.params["embed"].dtype
        self.max_len = config.n_positions if max_len is None else max_len
        if not 1 <= self.max_len <= config.n_positions:
            raise ValueError(f"max_len must be in [1, {config.n_positions}] (got {max_len})")
        on_cuda = self.device.type == "cuda"
        self.use_cuda_graph = on_cuda if use_cuda_graph is None else bool(use_cuda_graph and on_cuda)
        # decode over a fixed bucket of slots (what a graph needs) rather than exactly the filled ones;
        # on by default with graphs, and settable on the CPU to test the graphs' computation eagerly
        self.static_spans = self.use_cuda_graph if static_spans is None else static_spans
        self.graph_error: str | None = None  # why decoding fell back to eager, if it did
        self.graphs: dict[int, Any] = {}  # span -> captured decode step, each made at its first use

        s = self.settings
        shape = (s.n_layer, s.n_head, self.max_len, s.d_model // s.n_head)
        self.cache = StaticCache(
            k=torch.zeros(shape, dtype=self.dtype, device=self.device),
            v=torch.zeros(shape, dtype=self.dtype, device=self.device),
        )
        if s.vocab_size >= 2**24:
            raise UnsupportedModelError("token ids above 2**24 do not survive the fp32 output buffer")
        self.layout = StepLayout(s.vocab_size, s.n_layer, s.n_head, s.d_model, self.max_len)
        self.key_positions = torch.arange(self.max_len, device=self.device)  # [P]
        self.token_in = torch.zeros(1, dtype=torch.long, device=self.device)  # the graph's inputs
        self.position_in = torch.zeros(1, dtype=torch.long, device=self.device)
        self.flat = torch.zeros(self.layout.size(self.max_len), dtype=torch.float32, device=self.device)
        # on CUDA the step's outputs land in page-locked host memory (an asynchronous copy); on CPU
        # the flat buffer already is host memory
        self.host = torch.zeros(self.flat.shape, dtype=torch.float32, pin_memory=True) if on_cuda else self.flat

    @property
    def graphed(self) -> bool:
        """True once decode steps replay captured CUDA graphs."""
        return bool(self.graphs)

    def reset(self) -> None:
        self.cache.length = 0

    def crop(self, n: int) -> None:
        """Keep the first n positions."""
        if n < 0:
            raise ValueError(f"crop length must be >= 0 (got {n})")
        self.cache.length = min(self.cache.length, n)

    def forward(self, ids: list[int]) -> ForwardOutput:
        if not ids:
            raise ValueError("forward needs at least one token id")
        if self.cache.length + len(ids) > self.max_len:
            raise IndexError(f"context full: {self.cache.length} + {len(ids)} tokens exceed {self.max_len} positions")
        on_device = torch.cuda.device(self.device) if self.device.type == "cuda" else nullcontext()
        with torch.no_grad(), on_device:
            out = self._decode(ids[0]) if len(ids) == 1 else self._prefill(ids)
        self.cache.length += len(ids)
        return out

    def lens_top(self, resid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [L + 1, d] -> [L] ids, [L] probabilities
        """The logit lens after each block of any residual stream (an ablated model's): its top token and p."""
        with torch.no_grad():
            lens_probs, _ = lens(
                torch.from_numpy(resid).to(self.device, self.dtype), self.params["norm_f"], self.params["unembed"], self.settings.eps
            )
            lens_p, lens_ids = lens_probs.max(dim=-1)  # [L], [L]
        return lens_ids.cpu().numpy(), lens_p.cpu().numpy()

    # ---- prefill: eager, any number of tokens ----
    def _prefill(self, ids: list[int]) -> ForwardOutput:
        start, n_keys = self.cache.length, self.cache.length + len(ids)
        ids_t = torch.tensor(ids, dtype=torch.long, device=self.device)  # [T]
        positions = torch.arange(start, n_keys, device=self.device)  # [T]
        resid, patterns = gpt2_forward(self.params, ids_t, positions, self.cache, self.key_positions[:n_keys], self.settings)
        lens_probs, logits = lens(resid, self.params["norm_f"], self.params["unembed"], self.settings.eps)  # [L, V], [V]
        lens_p, lens_ids = lens_probs.max(dim=-1)  # [L], [L]
        return ForwardOutput(
            logits=logits.cpu().numpy(),
            attention=torch.stack(patterns).cpu().numpy(),  # [L, H, T, T_total]
            resid=resid.float().cpu().numpy(),
            lens=(lens_ids.cpu().numpy(), lens_p.cpu().numpy()),
        )

    # ---- decode: one token, captured on CUDA ----
    def _step_into_flat(self, span: int) -> None:
        """The decode step over `span` slots: reads token_in/position_in, fills self.flat; no host syncs."""
        layout, flat = self.layout, self.flat
        resid, patterns = gpt2_forward(self.params, self.token_in, self.position_in, self.cache, self.key_positions[:span], self.settings)
        lens_probs, logits = lens(resid, self.params["norm_f"], self.params["unembed"], self.settings.eps)
        lens_p, lens_ids = lens_probs.max(dim=-1)  # [L], [L]
        flat[: layout.vocab_size].copy_(logits)
        flat[layout.resid_at : layout.lens_p_at].view(-1, layout.d_model).copy_(resid)
        flat[layout.lens_p_at : layout.lens_ids_at].copy_(lens_p)
        flat[layout.lens_ids_at : layout.attention_at].copy_(lens_ids)
        rows = flat[layout.attention_at : layout.size(span)].view(span, layout.n_layer, layout.n_head)  # [S, L, H]
        for i, probs in enumerate(patterns):  # [H, 1, S]
            rows[:, i, :].copy_(probs[:, 0, :].T)

    def _decode(self, token_id: int) -> ForwardOutput:
        n_keys = self.cache.length + 1
        self.token_in.fill_(token_id)
        self.position_in.fill_(self.cache.length)
        span = static_span(n_keys, self.max_len) if self.static_spans else n_keys
        if self.use_cuda_graph and span not in self.graphs and self.graph_error is None:
            self._capture(span)
        if span in self.graphs:
            self.graphs[span].replay()
        else:
            self._step_into_flat(span)
        if self.host is not self.flat:
            size = self.layout.size(n_keys)
            self.host[:size].copy_(self.flat[:size], non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()  # the one sync per token
        return unpack_step(self.host.numpy(), self.layout, n_keys)

    def _capture(self, span: int) -> None:
        """Capture the step over `span` slots; on any failure drop all graphs, stay eager, say why.

        Warm-up runs execute the real step for the current token (writing the same keys/values the
        replay will write), so neither warm-up nor a failed capture disturbs the cache.
        """
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):  # first calls pick kernels and allocate workspaces outside the capture
                    self._step_into_flat(span)
            torch.cuda.current_stream(self.device).wait_stream(side)
            size = self.layout.size(span)
            expected = self.flat[:size].clone()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._step_into_flat(span)
            self.flat[:size].fill_(float("nan"))  # the replay must write every output itself
            graph.replay()
            if not torch.allclose(self.flat[:size], expected, rtol=GRAPH_CHECK_RTOL, atol=GRAPH_CHECK_ATOL):
                raise RuntimeError("the replayed graph disagrees with the eager step")
            self.graphs[span] = graph
        except Exception as error:  # capture is an optimisation: any failure means eager decoding
            self.graphs.clear()
            self.graph_error = f"{type(error).__name__}: {error}"


# ---- the check against eager -------------------------------------------------------------


def compare_with_eager(hf_model: Any, prompt_ids: list[int], n_tokens: int, **fast_options) -> dict:
    """Prefill + n_tokens greedy steps through TorchBackend and FastTorchBackend side by side.

    Both get the eager path's greedy token each step. Returns the max |difference| per capture over
    all steps, the share of steps whose argmax agreed and the share of logit-lens argmaxes that
    agreed (a near-tie may flip one on a GPU), and the fast backend's graph state.
    """
    eager, fast = TorchBackend(hf_model), FastTorchBackend(hf_model, **fast_options)
    fields = ("logits", "attention", "resid", "lens_p")
    max_diff = dict.fromkeys(fields, 0.0)
    argmax_agree, lens_agree = [], []
    ids = list(prompt_ids)
    for _ in range(n_tokens + 1):
        a, b = eager.forward(ids), fast.forward(ids)
        for name in fields:
            max_diff[name] = max(max_diff[name], float(np.abs(getattr(a, name) - getattr(b, name)).max()))
        argmax_agree.append(int(np.argmax(a.logits)) == int(np.argmax(b.logits)))
        lens_agree.extend(a.lens_ids == b.lens_ids)
        ids = [int(np.argmax(a.logits))]
    return {
        "max_diff": max_diff,
        "argmax_agree": float(np.mean(argmax_agree)),
        "lens_ids_agree": float(np.mean(lens_agree)),
        "graphed": fast.graphed,
        "graph_error": fast.graph_error,
    }


def probe_ids(vocab_size: int, n: int = SELF_CHECK_PROMPT) -> list[int]:
    """A fixed prompt for the self-check: spread over the vocabulary, the same every run."""
    return [(7 * i + 3) % vocab_size for i in range(n)]


def self_check_problem(report: dict, dtype: torch.dtype) -> str | None:
    """Why compare_with_eager's report rules the fast backend out (one clause), or None."""
    logits_tol, attention_tol = SELF_CHECK_TOLERANCE[dtype]
    diff = report["max_diff"]
    if diff["logits"] > logits_tol:
        return f"its logits differ by {diff['logits']:.1e} (tolerance {logits_tol:.0e})"
    if diff["attention"] > attention_tol:
        return f"its attention differs by {diff['attention']:.1e} (tolerance {attention_tol:.0e})"
    if report["argmax_agree"] < 1.0:
        return "its greedy tokens differ"
    return None


def checked_fast_backend(hf_model: Any, **fast_options) -> tuple[Any, str | None]:
    """FastTorchBackend if its first steps match eager decoding on a probe prompt, else TorchBackend and
    the sentence saying why (to be said once). UnsupportedModelError for what it does not implement."""
    check_supported(hf_model)
    ids = probe_ids(hf_model.config.vocab_size, max(1, min(SELF_CHECK_PROMPT, hf_model.config.n_positions - SELF_CHECK_STEPS - 1)))
    report = compare_with_eager(hf_model, ids, SELF_CHECK_STEPS, **fast_options)
    problem = self_check_problem(report, next(hf_model.parameters()).dtype)
    if problem is None:
        return FastTorchBackend(hf_model, **fast_options), None
    return TorchBackend(hf_model), f"the fast CUDA decoder failed its self-check ({problem}); decoding eagerly instead"
