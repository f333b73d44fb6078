"""A bordered container with its title (and subtitle) on the border: every pane of every screen."""

from __future__ import annotations

from textual.containers import Vertical


def pane(title: str, id: str, subtitle: str = "", classes: str = "pane") -> Vertical:
    """Use as `with pane("Attention", "attention-pane"):` in compose; tests find panes by these ids."""
    box = Vertical(id=id, classes=classes)
    box.border_title = title
    if subtitle:
        box.border_subtitle = subtitle
    return box
