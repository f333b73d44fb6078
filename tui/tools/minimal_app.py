"""The smallest Textual app: the start-up baseline `tfund bench startup` compares tfund-tui with.

`python -m tui.tools.minimal_app` shows one line of text and a footer; `q` quits.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

READY_TEXT = "minimal Textual app"  # what the benchmark waits for on screen


class MinimalApp(App):
    BINDINGS = [Binding("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Static(READY_TEXT)
        yield Footer()


def main() -> None:
    MinimalApp().run()


if __name__ == "__main__":
    main()
