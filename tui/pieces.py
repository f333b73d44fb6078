"""Token pieces as short labels; `visible` (control pictures, "↵", "→") is the engine's."""

from __future__ import annotations

from engine.views.pieces import visible


def label_text(piece: str, width: int) -> str:
    """A piece as a short label: spaces as '·', cut to width; an empty piece as '∅'."""
    return (visible(piece).replace(" ", "·") or "∅")[:width]
