"""`:` go to a block (and head): a small modal input, so that block 27 of 30 is one key and two digits away."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

KEEP = -1  # the head is not named: the one shown stays


def parse_block_head(text: str, n_layer: int, n_head: int) -> tuple[int, int | None]:
    """ "12" → block 12, "12.5" or "12 5" → block 12 head 5, "12 m" → block 12 mean of heads, counting from 1 as
    shown; returns the engine's 0-based (layer, head), head KEEP when not named or None for the mean.
    A ValueError's text is one sentence for the user."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[.\s]\s*(\d+|m|mean)\s*)?", text.lower())
    if not match:
        raise ValueError(f"type a block (1–{n_layer}), optionally a head: 12, 12.5, or 12 m for the mean of heads")
    block = int(match.group(1))
    if not 1 <= block <= n_layer:
        raise ValueError(f"block {block} is out of range: this model has blocks 1–{n_layer}")
    head = match.group(2)
    if head is None:
        return block - 1, KEEP
    if head in ("m", "mean"):
        return block - 1, None
    if not 1 <= int(head) <= n_head:
        raise ValueError(f"head {int(head)} is out of range: each block has heads 1–{n_head}")
    return block - 1, int(head) - 1


class GoToBlockScreen(ModalScreen[tuple[int, int | None] | None]):
    """Dismissed with (layer, head) (head KEEP: unchanged) on enter, None on escape; a bad entry is said and stays."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, n_layer: int, n_head: int) -> None:
        super().__init__()
        self.n_layer, self.n_head = n_layer, n_head

    def compose(self) -> ComposeResult:
        with Vertical(id="goto-box") as box:
            box.border_title = "Go to block"
            box.border_subtitle = "enter goes · escape cancels"
            yield Input(placeholder=f"block 1–{self.n_layer} [.head 1–{self.n_head} or m]", id="goto-input")
            yield Static(f"e.g. {self.n_layer} (the last block), 1.2 (block 1, head 2), 3 m (block 3, mean of heads)", id="goto-note")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(parse_block_head(event.value, self.n_layer, self.n_head))
        except ValueError as error:
            self.query_one("#goto-note", Static).update(f"{error}.")
