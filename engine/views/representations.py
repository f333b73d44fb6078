"""Representations in 2-D, and where each generated token was decided: `tfund project` and the TUI's screen.

Plain data in, plain data out, from one forward pass over the context with captures. Only
architecture-neutral names are read: the residual stream is `blocks.0.hook_resid_pre` (the
embeddings, "emb") and `blocks.{i}.hook_resid_post` (after block i + 1), before the final norm; the
logit lens is the model's own `lens(resid)` (its final norm and unembedding).

Projection: ONE principal-component analysis over the vectors of every layer at the projected
positions together ([(L + 1) * P, d], centred once on their common mean), so a token's point moves
from layer to layer on the same two axes. The sign of each axis is fixed so that the point farthest
along it lies on its positive side (SVD alone leaves the sign arbitrary).

Outliers: some tokens' residual norms dwarf the others' (a real model's first token, an "attention
sink": ~20,000 against 150-500 on SmolLM2); one such point would take the first component almost
alone. A position is left out by default when, at some layer, its norm exceeds OUTLIER_RATIO times
that layer's median norm over the positions. The median ignores the outliers themselves, and fewer
than half the positions can ever exceed it, so most positions are always projected.

Decided: for a generated token, the first block from which the logit lens's top-1, at the position
before the token (the one whose prediction chose it), equals the token and stays so through the
last block. None (never) when the last block's top-1 is another token: the token was sampled below
the top, forced by hand, or chosen while a component was knocked out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.runtime.decoding import pieces_for

OUTLIER_RATIO = 10.0  # a position whose norm passes this many times the layer's median norm is an outlier


@dataclass
class Projection:
    """The projected positions' residual vectors on two principal components shared by every layer."""

    positions: list[int]  # the context positions projected, in order
    excluded: list[int]  # the positions left out (the outliers, unless put back)
    coords: np.ndarray  # [L + 1, P, 2] float64: layer (emb, block 1..L), position, (PC1, PC2)
    explained_variance_ratio: tuple[float, float]  # share of the total variance along PC1 and PC2


def layer_names(n_layer: int) -> list[str]:
    """ "emb", then "block 1" … "block L" (blocks count from 1, as on screen)."""
    return ["emb", *(f"block {i + 1}" for i in range(n_layer))]


def residual_stream(captures: dict[str, np.ndarray]) -> np.ndarray:  # -> [L + 1, T, d]
    """The residual stream of every layer from TransformerLens-named captures: emb, then after each block."""
    n_layer = sum(1 for name in captures if name.startswith("blocks.") and name.endswith(".hook_resid_post"))
    layers = [captures["blocks.0.hook_resid_pre"], *(captures[f"blocks.{i}.hook_resid_post"] for i in range(n_layer))]
    return np.stack([np.asarray(layer, dtype=np.float32) for layer in layers])  # [L + 1, T, d]


def context_residuals(net: Any, ids: list[int]) -> np.ndarray:  # [T] -> [L + 1, T, d]
    """One forward over `ids` from position 0 (no cache): `net.forward(ids) -> (logits, TransformerLens-named captures)`."""
    _, captures = net.forward(ids)  # captures are on by default
    return residual_stream(captures)


def norm_ratios(resid: np.ndarray) -> np.ndarray:  # [L + 1, T, d] -> [T]
    """Per position, the largest over layers of its residual norm ÷ that layer's median norm over positions."""
    norms = np.linalg.norm(resid.astype(np.float64), axis=-1)  # [L + 1, T]
    medians = np.median(norms, axis=1, keepdims=True)  # [L + 1, 1]
    return (norms / np.maximum(medians, np.finfo(np.float64).tiny)).max(axis=0)  # [T]


def outlier_positions(resid: np.ndarray, ratio: float = OUTLIER_RATIO) -> list[int]:
    """Positions whose norm passes `ratio` × the median at some layer (see the module's docstring)."""
    return [int(t) for t in np.flatnonzero(norm_ratios(resid) > ratio)]


def fixed_signs(coords: np.ndarray) -> np.ndarray:  # [N, 2] -> [2] of ±1
    """Flip each axis so that its coordinate of largest magnitude is positive."""
    farthest = np.abs(coords).argmax(axis=0)  # [2]
    return np.where(coords[farthest, [0, 1]] < 0, -1.0, 1.0)


def project(resid: np.ndarray, positions: list[int]) -> tuple[np.ndarray, np.ndarray]:  # [L + 1, T, d] -> [L + 1, P, 2], [2]
    """PCA of every layer's vectors at `positions` together: (coords [L + 1, P, 2], explained variance ratio [2])."""
    n_layers = resid.shape[0]
    vectors = resid[:, positions].astype(np.float64).reshape(n_layers * len(positions), -1)  # [(L + 1) * P, d]
    centred = vectors - vectors.mean(axis=0)  # [(L + 1) * P, d] one mean for all layers
    _, singular, components = np.linalg.svd(centred, full_matrices=False)  # [k], [k, d]
    axes = np.zeros((vectors.shape[1], 2))  # [d, 2] (a single point has no direction: zeros)
    axes[:, : min(2, len(singular))] = components[:2].T
    coords = centred @ axes  # [(L + 1) * P, 2]
    coords *= fixed_signs(coords)
    variance = singular**2  # [k]
    total = variance.sum()
    ratio = np.zeros(2)
    if total > 0:
        ratio[: min(2, len(variance))] = variance[:2] / total
    return coords.reshape(n_layers, len(positions), 2), ratio


def projection(resid: np.ndarray, include_outliers: bool = False) -> Projection:
    """The positions to project (all, or all but the outliers) and their shared 2-D projection."""
    excluded = [] if include_outliers else outlier_positions(resid)
    positions = [t for t in range(resid.shape[1]) if t not in excluded]
    coords, ratio = project(resid, positions)
    return Projection(positions, excluded, coords, (float(ratio[0]), float(ratio[1])))


def projection_json(tokens: list[str], names: list[str], shown: Projection) -> dict:
    """`tfund project --json`: {"tokens", "positions", "excluded", "explained_variance_ratio", "layers"}."""
    return {
        "tokens": tokens,
        "positions": shown.positions,
        "excluded": shown.excluded,
        "explained_variance_ratio": list(shown.explained_variance_ratio),
        "layers": [{"name": name, "coords": layer.tolist()} for name, layer in zip(names, shown.coords)],
    }


def project_prompt(net: Any, tokenizer: Any, ids: list[int], include_outliers: bool = False) -> tuple[dict, np.ndarray]:
    """`tfund project`: (the JSON report, each position's norm ratio) for the token ids of a prompt."""
    resid = context_residuals(net, ids)  # [L + 1, T, d]
    report = projection_json(pieces_for(tokenizer, ids), layer_names(resid.shape[0] - 1), projection(resid, include_outliers))
    return report, norm_ratios(resid)


def format_projection(report: dict, ratios: np.ndarray) -> str:
    """The text table: the variance explained, the outliers and why, then one row per token of its (x, y) per layer."""
    tokens, positions, layers = report["tokens"], report["positions"], report["layers"]
    r1, r2 = report["explained_variance_ratio"]
    lines = [f"{len(tokens)} tokens, {len(positions)} projected · PC1 {r1:.1%} · PC2 {r2:.1%} of the variance"]
    for t in report["excluded"]:
        lines.append(f"left out: position {t} {tokens[t]!r}, its norm {ratios[t]:.0f}x the median (--include-outliers puts it back)")
    width = max(len(repr(tokens[t])) for t in positions) + 6
    lines.append(f"{'position':<{width}}" + "".join(f"{layer['name']:>14}" for layer in layers))
    for i, t in enumerate(positions):
        cells = "".join(f"{f'{x:+.1f},{y:+.1f}':>14}" for x, y in (layer["coords"][i] for layer in layers))
        lines.append(f"{t:>4}  {tokens[t]!r:<{width - 6}}" + cells)
    return "\n".join(lines)


def lens_top1(net: Any, resid: np.ndarray, positions: list[int]) -> np.ndarray:  # [L + 1, T, d] -> [L, len(positions)]
    """The logit lens's top-1 token after each block at `positions`: `net.lens` (final norm + unembedding)."""
    return np.stack([net.lens(resid[layer, positions]).argmax(axis=-1) for layer in range(1, resid.shape[0])])


def decided_block(top1: np.ndarray, token_id: int) -> int | None:  # [L] -> 0-based layer, or None
    """The first layer from which top1 equals token_id through the last layer; None when the last one differs."""
    agrees = top1 == token_id  # [L]
    if not agrees[-1]:
        return None
    disagree = np.flatnonzero(~agrees)
    return int(disagree[-1]) + 1 if len(disagree) else 0


def decided_blocks(net: Any, resid: np.ndarray, ids: list[int], first_generated: int) -> list[int | None]:
    """For each generated token (positions first_generated … T - 1): its decided_block (0-based), from the lens
    at the position before it. A token at position 0 (the window slid past the prompt) has nothing before it: None."""
    generated = range(first_generated, len(ids))
    predicted = [t for t in generated if t > 0]  # the positions with a position before them
    by_position = {}
    if predicted:
        top1 = lens_top1(net, resid, [t - 1 for t in predicted])  # [L, n]
        by_position = {t: decided_block(top1[:, i], ids[t]) for i, t in enumerate(predicted)}
    return [by_position.get(t) for t in generated]
