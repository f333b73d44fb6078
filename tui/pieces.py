"""Token pieces as short labels, and lines that keep their most important parts; `visible` (control pictures,
"↵", "→") is the engine's."""

from __future__ import annotations

from engine.views.pieces import visible

ELLIPSIS = "…"


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters: a cut one ends in "…", so it never reads as another word or number."""
    if len(text) <= width:
        return text
    return text[: width - 1] + ELLIPSIS if width > 0 else ""


def label_text(piece: str, width: int) -> str:
    """A piece as a short label: spaces as '·', cut with "…" to width; an empty piece as '∅'."""
    return cut(visible(piece).replace(" ", "·") or "∅", width)


def fit_parts(parts: list[str], width: int, sep: str = " · ", keep: list[int] | None = None) -> str:
    """The parts joined by `sep` in their order, leaving out whole parts (never cutting one) until the line fits
    `width`: the parts are left out last to first, or in the reverse of `keep` (indices, most important first)."""
    keep = list(range(len(parts))) if keep is None else keep
    for n in range(len(keep), 0, -1):
        kept = sorted(keep[:n])
        line = sep.join(parts[i] for i in kept)
        if len(line) <= width:
            return line
    return cut(parts[keep[0]], width) if parts else ""


def first_fit(variants: tuple[str, ...] | list[str], width: int) -> str:
    """The first of a line's variants (longest first) that fits `width`, else the last one cut with "…"."""
    return next((text for text in variants if len(text) <= width), cut(variants[-1], width))
