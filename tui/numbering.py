"""One numbering on screen: the residual stream is the embeddings ("emb"), then after block 1…L; blocks and
heads count from 1. The engine, the trace, the exports and `--ablate` count both from 0, so block 2 head 3
on screen (B2.H3) is L1.H2 there (`--ablate 1.2`). Token positions count from 0 everywhere. KV heads (grouped-query attention) count from 1 on screen too."""

from __future__ import annotations

from engine.model.interventions import Ablation


def kv_group(head: int | None, n_head: int, n_kv_heads: int | None) -> int | None:
    """The 0-based key/value head a query head reads with grouped-query attention (query heads 0..g-1 share KV head 0,
    g = n_head // n_kv_heads); None without grouping (n_kv_heads None) or for the mean over heads."""
    if head is None or not n_kv_heads or n_kv_heads >= n_head:
        return None
    return head // (n_head // n_kv_heads)


def head_text(head: int | None, group: int | None = None) -> str:
    """The engine's 0-based head (None: the mean over heads) as shown, with its KV head when grouped."""
    if head is None:
        return "mean of heads"
    return f"head {head + 1}" + ("" if group is None else f" · kv {group + 1}")


def block_head_text(layer: int, head: int | None, group: int | None = None) -> str:
    """An attention pane's subtitle: "block 1 · head 2", "block 1 · head 5 · kv 2", "block 1 · mean of heads"."""
    return f"block {layer + 1} · {head_text(head, group)}"


def block_label(layer: int) -> str:
    return f"B{layer + 1}"


def head_label(layer: int, head: int, group: int | None = None) -> str:
    """A head in short, as tiles and details name it: "B1.H2" (L0.H1 in the trace); "B1.H5·kv2" with its KV head."""
    return f"{block_label(layer)}.H{head + 1}" + ("" if group is None else f"·kv{group + 1}")


def ablation_label(ablation: Ablation) -> str:
    """A knocked-out component as shown: "B1.H2", "B1.attn", "B1.mlp" (its engine label is "L0.H1", ...)."""
    if ablation.kind == "head":
        return head_label(ablation.layer, ablation.head)
    return f"{block_label(ablation.layer)}.{ablation.kind}"
