"""One numbering on screen: the residual stream is the embeddings ("emb"), then after block 1…L; blocks and
heads count from 1. The engine, the trace, the exports and `--ablate` count both from 0, so block 2 head 3
on screen (B2.H3) is L1.H2 there (`--ablate 1.2`). Token positions count from 0 everywhere."""

from __future__ import annotations

from engine.model.interventions import Ablation


def head_text(head: int | None) -> str:
    """The engine's 0-based head (None: the mean over heads) as shown."""
    return "mean of heads" if head is None else f"head {head + 1}"


def block_head_text(layer: int, head: int | None) -> str:
    """An attention pane's subtitle: "block 1 · head 2", "block 1 · mean of heads"."""
    return f"block {layer + 1} · {head_text(head)}"


def block_label(layer: int) -> str:
    return f"B{layer + 1}"


def head_label(layer: int, head: int) -> str:
    """A head in short, as tiles and details name it: "B1.H2" (L0.H1 in the trace)."""
    return f"{block_label(layer)}.H{head + 1}"


def ablation_label(ablation: Ablation) -> str:
    """A knocked-out component as shown: "B1.H2", "B1.attn", "B1.mlp" (its engine label is "L0.H1", ...)."""
    if ablation.kind == "head":
        return head_label(ablation.layer, ablation.head)
    return f"{block_label(ablation.layer)}.{ablation.kind}"
