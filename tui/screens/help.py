"""`?`: every key of the main screen, the block lab and the app, generated from their bindings."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

COLOURS_NOTE = (
    "Generation: tokens alternate backgrounds (underlines without colour); generated tokens are "
    "coloured by the model's probability for them, red (rare) → green (likely); italic = forced.\n"
    "Attention: row = the token attending, column = the token attended to; grey (·) above the "
    "diagonal is the causal mask; ◀ marks the newest or selected token."
)

COMMAND_LINE_NOTE = (
    "From the command line (tfund-tui --help lists every flag):\n"
    "  --replay FILE.jsonl   step through a recorded session: n forward, backspace back, g plays, r rewinds;\n"
    "                        record one with --trace FILE.jsonl, or save one with e\n"
    "  --export-dir DIR      where e saves the figures (default ./tfund-exports)\n"
    "  --serve [--port N]    the same app in a web browser, on http://localhost:8000\n"
    "  tfund compare, tfund tokenize, tfund generate: the same views as plain text or --json"
)

KEY_NAMES = {
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "left_curly_bracket": "{",
    "right_curly_bracket": "}",
    "question_mark": "?",
    "less_than_sign": "<",
    "greater_than_sign": ">",
    "backspace": "backspace",
}


def key_label(binding: Binding) -> str:
    """The key as typed; a key range (1-9) as displayed."""
    if binding.key_display and "-" in binding.key_display:
        return binding.key_display
    return ", ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(","))


def help_lines(bindings: list[Binding]) -> list[tuple[str, str]]:
    """(key, what it does) for every binding; a range shown once stands for the keys it covers."""
    lines = []
    covered: set[str] = set()
    for binding in bindings:
        if binding.key_display and "-" in binding.key_display:
            first, last = binding.key_display.split("-")
            covered |= {chr(c) for c in range(ord(first), ord(last) + 1)} - {binding.key}
        elif binding.key in covered:
            continue
        lines.append((key_label(binding), binding.tooltip or binding.description))
    return lines


def bindings_text(title: str, bindings: list[Binding]) -> Text:
    """A titled two-column list: key(s), then what they do."""
    text = Text(title, style="bold underline")
    for key, does in help_lines(bindings):
        text.append(f"\n{key:<14}", style="bold")
        text.append(does)
    return text


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
        Binding("e", "app.export", "Save", show=False),  # a modal hides the app's keys: e says there is nothing to save
    ]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Keys"
            box.border_subtitle = "escape to close"
            for title, bindings in self.sections:
                yield Static(bindings_text(title, bindings), classes="help-section")
            yield Static(COLOURS_NOTE, classes="help-note")
            yield Static(COMMAND_LINE_NOTE, classes="help-note")
