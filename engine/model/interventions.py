"""Intervene and attribute on the NumPy engine: ablate heads, attention layers and MLPs; direct logit attribution.

Definitions (the torch side, engine.runtime.interventions, implements the same ones), for every family:

- **Head ablation** `L.H`: query head H of layer L writes nothing of its own. Its output z (its
  [T, d_head] slice of the merged heads, before the output projection `attn.o`; TransformerLens's
  `blocks.L.attn.hook_z`) is replaced by zeros (zero ablation) or by its mean over the context's
  positions (mean ablation). Under grouped-query attention a head is a query head: the key/value head
  it shares with its group is untouched, so its neighbours are not ablated with it.
- **Attention-layer ablation** `L.attn`: every query head of layer L ablated, so `L.attn` equals ablating
  `L.0` … `L.{H-1}` exactly. Zero-ablated, the attention sublayer then adds only attn.o's bias (if any).
- **MLP ablation** `L.mlp`: the MLP's hidden activations (`mlp.hook_post`, what mlp.down reads: after
  the nonlinearity, or SwiGLU's gated product) are replaced the same way; zero-ablated, the MLP then
  adds only mlp.down's bias (if any).
  Both keep the sublayer's output bias: an ablation switches off what a component computes from its
  input, not the constant it adds whatever the input. Mean-ablated, a sublayer adds its mean output
  over the context at every position (the output projection is linear, so the mean of z or of the
  hidden activations gives it).
- **Mean ablation** averages over the positions of the forward pass: the whole context when run
  without a KV cache, as `run_numpy` does, position 0 and the last included. With a cache the hook sees
  only the new positions. Given reference means (`reference_means`: each component's mean over every
  position of an intact forward over a reference text), those replace the activations instead, the
  same vector at every position of the context.
- **Direct logit attribution** of token t at the last position: the final residual stream is the sum
  embed + Σ_L (attn_L + mlp_L), and attn_L = Σ_H z_H @ W_O[H] + b_O. Each part c goes through the
  model's own final norm with its scale frozen at the full residual's value, then onto t's unembedding
  u (the real one: untied models have their own): LayerNorm gives (c - mean(c)) / σ(resid) * g · u,
  RMSNorm (no centring) c / rms(resid) * g · u. Both are linear in c, so the parts sum to
  norm_f(resid) · u minus the norm's bias term b · u, which is `bias` (0 for RMSNorm; nothing else is
  left over). A layer's `attn` is the sum of its heads plus its b_O term; heads break `attn` down.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from engine.model.transformer import last_resid

ABLATION_MODES = ("zero", "mean")
SPEC_FORMAT = "L.H (a head), L.attn or L.mlp with 0-based layer L and head H, e.g. 0.1, 1.attn, 0.mlp"
SPEC_PATTERN = re.compile(r"^\s*L?(\d+)\.(?:H?(\d+)|(attn|mlp))\s*$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Ablation:
    """One component to knock out: a head (kind "head", with `head`), a layer's attention or its MLP."""

    layer: int  # 0-based
    kind: str  # "head", "attn" or "mlp"
    head: int | None = None  # 0-based, for kind "head" only

    @property
    def spec(self) -> str:  # what --ablate takes: "0.1", "0.attn", "0.mlp"
        return f"{self.layer}.{self.head if self.kind == 'head' else self.kind}"

    @property
    def label(self) -> str:  # how it is shown and named in attributions: "L0.H1", "L0.attn", "L0.mlp"
        return f"L{self.layer}.H{self.head}" if self.kind == "head" else f"L{self.layer}.{self.kind}"

    def check(self, n_layer: int, n_head: int) -> None:
        """ValueError, in one sentence naming the allowed range, unless this model has the component."""
        if not 0 <= self.layer < n_layer:
            raise ValueError(f"layer {self.layer} is out of range: this model has layers 0-{n_layer - 1} (got {self.spec!r})")
        if self.kind == "head" and not (self.head is not None and 0 <= self.head < n_head):
            raise ValueError(f"head {self.head} is out of range: this model has heads 0-{n_head - 1} per layer (got {self.spec!r})")


def parse_ablation(text: str, n_layer: int | None = None, n_head: int | None = None) -> Ablation:
    """'0.1' -> head 1 of layer 0; '1.attn', '0.mlp'; 'L0.H1' too (labels parse back). With the model's
    sizes the layer and head are checked. ValueError in one sentence."""
    match = SPEC_PATTERN.match(text)
    if match is None:
        raise ValueError(f"expected {SPEC_FORMAT} (got {text!r})")
    layer, head, kind = match.groups()
    ablation = Ablation(int(layer), "head", int(head)) if head is not None else Ablation(int(layer), kind.lower())
    if n_layer is not None and n_head is not None:
        ablation.check(n_layer, n_head)
    return ablation


def check_mode(mode: str) -> None:
    if mode not in ABLATION_MODES:
        raise ValueError(f"ablation mode must be one of {', '.join(ABLATION_MODES)} (got {mode!r})")


def ablated_heads(ablations: Iterable[Ablation], n_layer: int, n_head: int) -> np.ndarray:  # -> [L, H] bool
    """Which heads are knocked out: a head ablation marks one, an attention-layer ablation all of its layer's."""
    mask = np.zeros((n_layer, n_head), dtype=bool)  # [L, H]
    for ablation in ablations:
        ablation.check(n_layer, n_head)
        if ablation.kind == "attn":
            mask[ablation.layer] = True
        elif ablation.kind == "head":
            mask[ablation.layer, ablation.head] = True
    return mask


def ablated_mlps(ablations: Iterable[Ablation], n_layer: int) -> np.ndarray:  # -> [L] bool
    mask = np.zeros(n_layer, dtype=bool)  # [L]
    for ablation in ablations:
        if ablation.kind == "mlp":
            mask[ablation.layer] = True
    return mask


def ablate_z(z, heads, mode="zero", mean=None):  # [H, T, d_head], [H] bool, [H, d_head] -> [H, T, d_head]
    """Replace the marked heads' outputs by zeros, by their mean over positions, or by `mean` (reference means)."""
    out = z.copy()  # [H, T, d_head]
    if mode == "zero":
        out[heads] = 0.0
    else:
        out[heads] = z[heads].mean(axis=1, keepdims=True) if mean is None else mean[heads][:, None]  # [n_ablated, 1, d_head]
    return out


def ablate_neurons(post, mode="zero", mean=None):  # [T, d_ff], [d_ff] -> [T, d_ff]
    """Replace every MLP neuron's activation by zero, by its mean over positions, or by `mean` (reference means)."""
    if mode == "zero":
        return np.zeros_like(post)
    mean = post.mean(axis=0) if mean is None else mean  # [d_ff]
    return np.broadcast_to(mean, post.shape).astype(post.dtype)  # [T, d_ff]


def mean_name(ablation: Ablation) -> str:
    """The hook whose activations an ablation replaces (and whose reference mean it reads)."""
    return f"blocks.{ablation.layer}.mlp.hook_post" if ablation.kind == "mlp" else f"blocks.{ablation.layer}.attn.hook_z"


def reference_means(captures: dict, ablations: Iterable[Ablation]) -> dict[str, np.ndarray]:
    """Each ablated component's activations averaged over every position of one intact forward over a
    reference text: `captures` holds `blocks.L.attn.hook_z` [H, T, d_head] and `blocks.L.mlp.hook_post`
    [T, d_ff] (the NumPy engine's layout) for the layers `ablations` name. -> {name: [H, d_head] or [d_ff]}."""
    names = dict.fromkeys(mean_name(ablation) for ablation in ablations)
    return {name: np.asarray(captures[name]).mean(axis=-2) for name in names}  # average over T


def intervention_hooks(
    ablations: Iterable[Ablation],
    n_layer: int,
    n_head: int,
    mode: str = "zero",
    record: dict | None = None,
    means: dict[str, np.ndarray] | None = None,
) -> dict[str, Callable]:
    """Hooks for NumpyLM.forward / ops.stack: ablate what `ablations` name; with `record` (a dict),
    also store every layer's (ablated) z under its name, `blocks.{i}.attn.hook_z` [H, T, d_head].
    Mean ablation averages over the forward's own positions, or reads `means` (from `reference_means`)."""
    check_mode(mode)
    ablations = list(ablations)
    heads, mlps = ablated_heads(ablations, n_layer, n_head), ablated_mlps(ablations, n_layer)
    means = means or {}
    hooks: dict[str, Callable] = {}
    for i in range(n_layer):
        name = f"blocks.{i}.attn.hook_z"
        if heads[i].any() or record is not None:

            def hook_z(z, mask=heads[i], name=name):  # [H, T, d_head] -> [H, T, d_head]
                z = ablate_z(z, mask, mode, means.get(name)) if mask.any() else z
                if record is not None:
                    record[name] = z
                return z

            hooks[name] = hook_z
        if mlps[i]:
            mean = means.get(f"blocks.{i}.mlp.hook_post")  # [d_ff] or None
            hooks[f"blocks.{i}.mlp.hook_post"] = lambda post, mean=mean: ablate_neurons(post, mode, mean)  # [T, d_ff] -> [T, d_ff]
    return hooks


# ---- one forward over a context, maybe ablated, and what attribution needs from it ----------------


@dataclass
class InterventionRun:
    """One forward over a whole context (maybe ablated), as NumPy data: what inspect and the panes read."""

    logits: np.ndarray  # [V] next-token logits at the last position
    resid: np.ndarray  # [L + 1, d] the residual stream at the last position: the embedding, then after each block
    z: np.ndarray  # [L, H, d_head] each head's output at the last position, after ablation
    mlp_out: np.ndarray  # [L, d] each MLP's output at the last position, after ablation
    attention: np.ndarray  # [L, H, T, T] every head's attention over the context
    ablations: tuple[Ablation, ...] = ()
    mode: str = "zero"

    @property
    def embed(self) -> np.ndarray:  # [d] token (+ position) embedding at the last position
        return self.resid[0]

    @property
    def resid_final(self) -> np.ndarray:  # [d] the residual stream entering the final norm at the last position
        return self.resid[-1]


def run_numpy(net, ids, ablations: Iterable[Ablation] = (), mode: str = "zero", means: dict | None = None) -> InterventionRun:
    """The NumPy engine (engine.model.transformer.NumpyLM) over the whole context `ids` [T], no KV cache;
    `means` (from `reference_means`) for a mean ablation over a reference text instead of the context."""
    ablations = tuple(ablations)
    record: dict = {}
    hooks = intervention_hooks(ablations, net.n_layer, net.n_head, mode, record=record, means=means)
    logits, captures = net.forward(ids, hooks=hooks, logits_to_keep=1)  # [1, V]
    L = net.n_layer
    return InterventionRun(
        logits=logits[-1],
        resid=last_resid(captures, L),  # [L + 1, d]
        z=np.stack([record[f"blocks.{i}.attn.hook_z"][:, -1] for i in range(L)]),  # [L, H, d_head]
        mlp_out=np.stack([captures[f"blocks.{i}.hook_mlp_out"][-1] for i in range(L)]),  # [L, d]
        attention=np.stack([captures[f"blocks.{i}.attn.hook_pattern"] for i in range(L)]),  # [L, H, T, T]
        ablations=ablations,
        mode=mode,
    )


def capture_numpy(net, ids) -> dict[str, np.ndarray]:
    """One intact forward of the NumPy engine over `ids` [T], no KV cache: its captures plus every
    layer's z, `blocks.{i}.attn.hook_z` [H, T, d_head] (what `reference_means` reads)."""
    record: dict = {}
    _, captures = net.forward(ids, hooks=intervention_hooks((), net.n_layer, net.n_head, record=record), logits_to_keep=1)
    return {**captures, **record}


# ---- direct logit attribution --------------------------------------------------------------------


@dataclass
class Attribution:
    """Direct logit attribution of one token at the last position (see the module docstring)."""

    token_id: int
    logit: float  # the model's logit for the token
    embed: float  # token + position embedding
    heads: np.ndarray  # [L, H] each head's z through its slice of attn.o
    attn_bias: np.ndarray  # [L] each attn.o bias (0 without one), counted in that layer's `attn`
    mlp: np.ndarray  # [L] each MLP's output (its down bias included)
    bias: float  # the final norm's bias · the token's unembedding (0 for RMSNorm)

    @property
    def attn(self) -> np.ndarray:  # [L] each attention layer: its heads plus its attn.o bias term
        return self.heads.sum(axis=1) + self.attn_bias

    def total(self) -> float:
        """embed + every layer's attn and mlp + bias: equals `logit` up to rounding."""
        return float(self.embed + self.attn.sum() + self.mlp.sum() + self.bias)

    def components(self) -> dict[str, float]:
        """{"embed", "L0.attn", "L0.H0", …, "L0.mlp", "L1.attn", …} in the order the stream adds them.
        Heads break their layer's attn down, so the sum of embed, the L*.attn, the L*.mlp and `bias` is the logit."""
        parts = {"embed": float(self.embed)}
        for layer in range(self.heads.shape[0]):
            parts[f"L{layer}.attn"] = float(self.attn[layer])
            parts.update({f"L{layer}.H{h}": float(v) for h, v in enumerate(self.heads[layer])})
            parts[f"L{layer}.mlp"] = float(self.mlp[layer])
        return parts


def logit_direction(resid, norm_f, u, eps, norm="layer"):  # [d], {"g": [d], "b"}, [d] -> [d]
    """The vector whose dot product with a residual-stream part is that part's share of the logit:
    the final norm's gain times the unembedding over the full residual's scale (frozen). LayerNorm
    subtracts each vector's mean, so its direction is centred: (c - mean(c)) · w == c · (w - mean(w));
    RMSNorm does not centre, so its direction is not."""
    if norm == "layer":
        centred = resid - resid.mean()  # [d]
        scale = np.sqrt((centred * centred).mean() + eps)  # the full residual's std, frozen
    else:
        scale = np.sqrt((resid * resid).mean() + eps)  # the full residual's root mean square, frozen
    w = norm_f["g"] * u / scale  # [d]
    return w - w.mean() if norm == "layer" else w  # [d]


def direct_logit_attribution(run: InterventionRun, net, token_id: int) -> Attribution:
    """Attribute `token_id`'s logit at the last position of `run` to the embedding, each head (and its
    layer's output-projection bias), each MLP, and the final norm's bias. `net` is the NumpyLM (its
    norm kind and epsilon, unembedding, norm_f and each block's attn.o are read). Computed in float64."""
    L, H, d_head = run.z.shape
    params, arch = net.params, net.arch
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    u = f64(params["unembed"][:, token_id])  # [d] the token's unembedding (tied or not)
    norm_f = {"g": f64(params["norm_f"]["g"]), "b": None if params["norm_f"]["b"] is None else f64(params["norm_f"]["b"])}
    direction = logit_direction(f64(run.resid_final), norm_f, u, arch.norm_eps, arch.norm)  # [d]
    w_o = np.stack([f64(block["attn"]["o"]["w"]) for block in params["blocks"]])  # [L, H * d_head, d]
    head_dirs = (w_o @ direction).reshape(L, H, d_head)  # [L, H, d_head] each head's slice of W_O, onto the direction
    b_o = np.stack(
        [np.zeros(arch.d_model) if b["attn"]["o"]["b"] is None else f64(b["attn"]["o"]["b"]) for b in params["blocks"]]
    )  # [L, d]
    return Attribution(
        token_id=int(token_id),
        logit=float(run.logits[token_id]),
        embed=float(f64(run.embed) @ direction),
        heads=(f64(run.z) * head_dirs).sum(axis=-1),  # [L, H]
        attn_bias=b_o @ direction,  # [L]
        mlp=f64(run.mlp_out) @ direction,  # [L]
        bias=0.0 if norm_f["b"] is None else float(norm_f["b"] @ u),
    )
