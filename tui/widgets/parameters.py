"""The Parameters pane: every setting as a `name value` line."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.events import SamplingConfig


def parameter_lines(model: str, device: str, config: SamplingConfig, layer: int, head: int | None) -> list[tuple[str, str]]:
    """`layer` and `head` (0-based, None: the mean) are the Attention pane's, shown counting from 1 (tui.numbering).
    The engine computing the tokens is the pane's subtitle (MainScreen.engine_label)."""
    return [
        ("model", model),
        ("device", device),
        ("temperature", f"{config.temperature:.2f}"),
        ("top-k", str(config.top_k)),
        ("top-p", f"{config.top_p:.2f}"),
        ("max new tokens", str(config.max_new_tokens)),
        ("seed", str(config.seed)),
        ("block", f"{layer + 1} head {'mean' if head is None else head + 1}"),  # one line (fits 80 columns): room for "ablated …"
    ]


class ParametersView(Widget):
    """`name value` lines; values too long for the pane end in '…'."""

    lines: reactive[list[tuple[str, str]]] = reactive(list)  # (name, value); a new list that differs repaints

    def show(self, lines: list[tuple[str, str]]) -> None:
        self.lines = lines

    def render(self) -> Text:
        width = max(self.size.width, 1)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (name, value) in enumerate(self.lines):
            room = max(width - len(name) - 1, 1)
            shown = value if len(value) <= room else value[: room - 1] + "…"
            text.append(name, style="dim")
            text.append(" ")
            text.append(shown, style="bold")
            if i < len(self.lines) - 1:
                text.append("\n")
        return text
