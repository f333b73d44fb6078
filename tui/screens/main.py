"""The main screen: Parameters, Generation, Candidates, Attention and Layers panes, and their keys.

The screen owns only what is on screen (which layer, head and token are shown); the app owns the
engine and the settings. Every key is a Binding, so the footer, the help screen and the command
palette list the same keys.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input

from tui.controls import (
    MAX_NEW_TOKENS_LADDER,
    TOP_K_LADDER,
    cycle,
    cycle_head,
    ladder_step,
    nudge_temperature,
    nudge_top_p,
)
from tui.heatmap import head_grid
from tui.widgets.attention_map import AttentionMap
from tui.widgets.candidates import CandidatesView
from tui.widgets.generation import GenerationView
from tui.widgets.layers import LayersView
from tui.widgets.parameters import ParametersView, parameter_lines

NARROW_WIDTH = 100  # below this the panes shrink and the candidates pane narrows
LAYERS_LEGEND = "norm÷max · cos(l, l-1)"  # a legend that changed every token would repaint the whole pane


class MainScreen(Screen):
    BINDINGS = [
        Binding("n", "step", "Step", tooltip="Generate one token"),
        Binding("space", "step", "Step one token", show=False),
        Binding("g", "run_pause", "Run/pause", tooltip="Run up to max new tokens; press again to pause"),
        Binding("t", "temperature(-1)", "Temp", key_display="t/T", tooltip="Temperature down 0.1 (0 = greedy)"),
        Binding("T", "temperature(1)", "Temperature up", show=False),
        Binding("k", "top_k(-1)", "Top-k down", show=False),
        Binding("K", "top_k(1)", "Top-k up", show=False),
        Binding("p", "top_p(-1)", "Top-p down", show=False),
        Binding("P", "top_p(1)", "Top-p up", show=False),
        Binding("m", "max_new_tokens(-1)", "Max new tokens down", show=False),
        Binding("M", "max_new_tokens(1)", "Max new tokens up", show=False),
        Binding("s", "seed(-1)", "Seed down", show=False),
        Binding("S", "seed(1)", "Seed up", show=False),
        Binding("left_square_bracket", "layer(-1)", "Previous layer", show=False),
        Binding("right_square_bracket", "layer(1)", "Next layer", show=False),
        Binding("left_curly_bracket", "head(-1)", "Previous head (or mean)", show=False),
        Binding("right_curly_bracket", "head(1)", "Next head (or mean)", show=False),
        Binding("1", "pick(1)", "Pick", key_display="1-9", tooltip="Force candidate 1–9 as the next token"),
        *[Binding(str(i), f"pick({i})", f"Pick candidate {i}", show=False) for i in range(2, 10)],
        Binding("backspace", "undo", "Undo", key_display="⌫", tooltip="Remove the last generated token"),
        Binding("r", "reset", "Reset: back to the prompt, generator re-seeded", show=False),
        Binding("left", "select(-1)", "Select the previous token", show=False),
        Binding("right", "select(1)", "Select the next token", show=False),
        Binding("end", "select_newest", "Select the newest token", show=False),
        Binding("i", "edit_prompt", "Edit the prompt (enter applies and resets)", show=False),
        Binding("b", "block_lab", "Lab", tooltip="Block lab: the NumPy block stack and the parity check"),
        Binding("c", "compare", "Compare", tooltip="One model at two temperatures (or two models): per-step KL and top-1 agreement"),
        Binding("w", "tokenize", "Tokens", tooltip="How a sentence splits into tokens, in many languages"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view_layer = 0  # the layer the heatmap shows
        self.view_head: int | None = None  # None = mean over heads
        self.selected_token: int | None = None  # None follows the newest token
        self.subtitles: dict[str, str] = {}  # pane selector -> the border subtitle last set

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            with Vertical(id="parameters-pane", classes="pane") as pane:
                pane.border_title = "Parameters"
                yield ParametersView(id="parameters")
            with Vertical(id="generation-pane", classes="pane") as pane:
                pane.border_title = "Generation"
                yield Input(placeholder="prompt (i to edit, enter to apply)", id="prompt")
                yield GenerationView(id="generation")
            with Vertical(id="candidates-pane", classes="pane") as pane:
                pane.border_title = "Candidates"
                pane.border_subtitle = "p before │ after T·k·p"
                yield CandidatesView(id="candidates")
        with Horizontal(id="bottom"):
            with Vertical(id="attention-pane", classes="pane") as pane:
                pane.border_title = "Attention"
                yield AttentionMap(id="attention")
            with Vertical(id="layers-pane", classes="pane") as pane:
                pane.border_title = "Layers"
                pane.border_subtitle = LAYERS_LEGEND  # constant: the chart's own legend gives the norm's scale
                yield LayersView(id="layers")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).value = self.app.prompt
        self.query_one("#generation", GenerationView).focus()
        self.show_loading(True)
        self.set_status(f"loading {self.app.model_name}…")
        self.redraw()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_WIDTH, "-narrow")

    @property
    def drawable(self) -> bool:
        """False while the app shuts down: late worker messages must not touch removed widgets."""
        return self.is_mounted and self.app.is_running

    def show_loading(self, loading: bool) -> None:
        if not self.drawable:
            return
        for pane in ("#candidates", "#attention", "#layers"):
            self.query_one(pane).loading = loading

    def set_status(self, text: str) -> None:
        if self.drawable:
            self.set_subtitle("#generation-pane", text)

    def set_subtitle(self, selector: str, text: str) -> None:
        """Setting a border subtitle repaints the whole pane, children included: only when it changes."""
        if self.subtitles.get(selector) != text:
            self.subtitles[selector] = text
            self.query_one(selector).border_subtitle = text

    # ---- drawing -----------------------------------------------------------------------------
    def highlighted_token(self) -> int | None:
        n_tokens = len(self.app.transcript.positions)
        if n_tokens == 0:
            return None
        return n_tokens - 1 if self.selected_token is None else min(self.selected_token, n_tokens - 1)

    def redraw(self) -> None:
        if not self.drawable:
            return
        app = self.app
        transcript = app.transcript
        info = app.info
        self.query_one(ParametersView).show(
            parameter_lines(app.model_name, info.device if info else "…", app.settings, self.view_layer, self.view_head)
        )
        highlight = self.highlighted_token()
        self.query_one(GenerationView).show(transcript.positions, self.selected_token, app.shade, follow=self.selected_token is None)
        self.query_one(CandidatesView).show(transcript.candidates)
        if info is not None and transcript.positions:
            grid = head_grid(transcript.rows, self.view_layer, self.view_head)  # [T, T]
            self.query_one(AttentionMap).show(grid, transcript.pieces, highlight, app.shade)
            self.set_subtitle(
                "#attention-pane",
                f"layer {self.view_layer} · {'mean of heads' if self.view_head is None else f'head {self.view_head}'}",
            )
        self.query_one(LayersView).show(transcript.norms, transcript.cosines, transcript.lens)

    # ---- settings keys: applied to the next token --------------------------------------------
    def action_temperature(self, direction: int) -> None:
        self.app.change_settings(temperature=nudge_temperature(self.app.settings.temperature, direction))

    def action_top_k(self, direction: int) -> None:
        self.app.change_settings(top_k=ladder_step(self.app.settings.top_k, TOP_K_LADDER, direction))

    def action_top_p(self, direction: int) -> None:
        self.app.change_settings(top_p=nudge_top_p(self.app.settings.top_p, direction))

    def action_max_new_tokens(self, direction: int) -> None:
        self.app.change_settings(max_new_tokens=ladder_step(self.app.settings.max_new_tokens, MAX_NEW_TOKENS_LADDER, direction))

    def action_seed(self, direction: int) -> None:
        self.app.change_settings(seed=max(0, self.app.settings.seed + direction))

    # ---- view keys ---------------------------------------------------------------------------
    def action_layer(self, direction: int) -> None:
        if self.app.info is not None:
            self.view_layer = cycle(self.view_layer, self.app.info.n_layer, direction)
            self.redraw()

    def action_head(self, direction: int) -> None:
        if self.app.info is not None:
            self.view_head = cycle_head(self.view_head, self.app.info.n_head, direction)
            self.redraw()

    def action_select(self, direction: int) -> None:
        n_tokens = len(self.app.transcript.positions)
        if n_tokens == 0:
            return
        current = n_tokens - 1 if self.selected_token is None else self.selected_token
        chosen = max(0, min(n_tokens - 1, current + direction))
        self.selected_token = None if chosen == n_tokens - 1 else chosen
        self.redraw()

    def action_select_newest(self) -> None:
        self.selected_token = None
        self.redraw()

    # ---- engine keys -------------------------------------------------------------------------
    def action_step(self) -> None:
        self.app.submit("step")

    def action_run_pause(self) -> None:
        self.app.toggle_run()

    def action_pick(self, rank: int) -> None:
        self.app.submit("force", rank)

    def action_undo(self) -> None:
        self.app.submit("undo")

    def action_reset(self) -> None:
        self.selected_token = None
        self.app.submit("reset")

    def action_edit_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def action_block_lab(self) -> None:
        self.app.open_block_lab()

    def action_compare(self) -> None:
        self.app.open_compare()

    def action_tokenize(self) -> None:
        self.app.open_tokenize()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.selected_token = None
        self.app.submit("prompt", event.value)
        self.query_one(GenerationView).focus()

    def key_escape(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one(GenerationView).focus()
