"""Keys shared by the screens: pairs that lower and raise a setting, and the attention screens' layer/head keys."""

from __future__ import annotations

from textual.binding import Binding

from tui.controls import cycle, cycle_head
from tui.goto import KEEP, GoToBlockScreen

# First in every screen's footer, so that they show at any width (the app's own bindings come last).
QUIT_HELP_SAVE = [
    Binding("q", "app.quit", "Quit"),
    Binding("question_mark", "app.help", "Help", key_display="?", tooltip="Every key, and what the symbols on screen mean"),
    Binding("e", "app.export", "Save", tooltip="Save the figures of this screen (SVG screenshot and its data)"),
    Binding("E", "app.explain", "Explain", tooltip="Explain the focused pane in plain words (tab moves the focus); again: hide"),
    Binding("G", "app.lessons", "Lessons", tooltip="Guided lessons that follow the notebook; ( and ) move between them"),
]


def back_keys(key: str) -> list[Binding]:
    """The key that opened a screen closes it again, and so does escape."""
    return [
        Binding(key, "app.pop_screen", "Back", tooltip="Back to generation"),
        Binding("escape", "app.pop_screen", "Back to generation", show=False),
    ]


def key_pair(
    down: str, up: str, action: str, down_text: str, up_text: str, footer: str | None = None, key_display: str | None = None
) -> list[Binding]:
    """`down` lowers a setting (or moves back) and `up` raises it; `action` holds {} for the direction (-1 or 1).

    With `footer`, the pair is shown in the footer as "down/up footer" (or `key_display`); help lists both texts.
    """
    shown = key_display or f"{down}/{up}"
    first = Binding(down, action.format(-1), footer or down_text, key_display=shown, show=footer is not None, tooltip=down_text)
    return [first, Binding(up, action.format(1), up_text, show=False)]


LAYER_HEAD_BINDINGS = [
    Binding("left_square_bracket", "layer(-1)", "Previous block", show=False),
    Binding("right_square_bracket", "layer(1)", "Next block", show=False),
    Binding("left_curly_bracket", "head(-1)", "Previous head (or mean)", show=False),
    Binding("right_curly_bracket", "head(1)", "Next head (or mean)", show=False),
]


BLOCK_JUMP_BINDINGS = [  # many blocks (30 on SmolLM2): a jump, not thirty presses of ]
    Binding("colon", "go_to_block", "Go to a block (and head): type 27, 27.3 or 27 m", key_display=":", show=False),
    Binding("circumflex_accent", "block_end(-1)", "The first block", key_display="^", show=False),  # ^ and $: a line's ends in vi
    Binding("dollar_sign", "block_end(1)", "The last block", key_display="$", show=False),
]


class LayerHeadKeys:
    """A screen's layer/head choice and the keys that change it.

    The screen says how many layers and heads there are (`layer_head_counts`, None while unknown)
    and redraws (`redraw`); shown_head None is the mean over heads.
    """

    shown_layer: int = 0
    shown_head: int | None = None

    def layer_head_counts(self) -> tuple[int, int] | None:
        raise NotImplementedError

    def redraw(self) -> None:
        raise NotImplementedError

    def action_layer(self, direction: int) -> None:
        counts = self.layer_head_counts()
        if counts is not None:
            self.shown_layer = cycle(self.shown_layer, counts[0], direction)
            self.redraw()

    def action_head(self, direction: int) -> None:
        counts = self.layer_head_counts()
        if counts is not None:
            self.shown_head = cycle_head(self.shown_head, counts[1], direction)
            self.redraw()

    def action_block_end(self, direction: int) -> None:
        """The first (direction -1) or the last block."""
        counts = self.layer_head_counts()
        if counts is not None:
            self.shown_layer = 0 if direction < 0 else counts[0] - 1
            self.redraw()

    def action_go_to_block(self) -> None:
        """`:` opens the go-to input (tui.screens.goto); enter shows the block (and head) typed."""
        counts = self.layer_head_counts()
        if counts is None:
            return

        def went(choice: tuple[int, int | None] | None) -> None:
            if choice is not None:
                self.shown_layer = choice[0]
                if choice[1] != KEEP:
                    self.shown_head = choice[1]
                self.redraw()

        self.app.push_screen(GoToBlockScreen(*counts), went)
