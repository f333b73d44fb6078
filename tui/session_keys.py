"""The main screen's keys that send the session its commands (tui/session.py), the prompt line's among
them; the bindings are the screen's.

A mixin, like tui.keys.LayerHeadKeys: the screen has `session`, and draws (`redraw`, `show_progress`).
The Attention pane's block and head (LayerHeadKeys' choice) are the session's, so the all-heads screen
can set them too.
"""

from __future__ import annotations

from textual.widgets import Input

from tui.controls import nudge_setting
from tui.widgets.generation import GenerationView, TokenLines
from tui.widgets.prompt_line import PromptLine


class SessionKeys:
    session: object  # tui.session.Session

    def redraw(self) -> None:
        raise NotImplementedError

    def show_progress(self) -> None:
        raise NotImplementedError

    shown_layer = property(lambda self: self.session.shown_layer, lambda self, layer: setattr(self.session, "shown_layer", layer))
    shown_head = property(lambda self: self.session.shown_head, lambda self, head: setattr(self.session, "shown_head", head))

    def action_nudge(self, name: str, direction: int) -> None:
        """A sampling setting one step down or up (tui.controls.nudge_setting), for the next token."""
        self.session.change_settings(**{name: nudge_setting(name, getattr(self.session.settings, name), direction)})

    def action_ablate(self, kind: str) -> None:
        """x: the shown head (the layer's attention when the heatmap shows the mean); X: the layer's MLP."""
        self.session.toggle_ablation(kind)

    def action_ablation_mode(self) -> None:
        """Zero or mean ablation (the palette's entry)."""
        self.session.set_ablations(self.session.ablations, "mean" if self.session.ablation_mode == "zero" else "zero")

    def action_clear_ablations(self) -> None:
        if self.session.ablations:
            self.session.set_ablations((), self.session.ablation_mode)

    def layer_head_counts(self) -> tuple[int, int] | None:
        info = self.session.model_info
        return None if info is None else (info.n_layer, info.n_head)

    def action_select(self, direction: int) -> None:
        """Left from the live next token selects the newest token; right past the newest returns to live."""
        n_tokens, selected = len(self.session.transcript.positions), self.session.selected_token
        if n_tokens:
            self.select_token(max(0, (n_tokens if selected is None else selected) + direction))

    def select_token(self, index: int) -> None:
        self.session.select_token(index)
        self.redraw()

    def on_token_lines_clicked(self, message: TokenLines.Clicked) -> None:
        self.select_token(message.index)

    def action_select_newest(self) -> None:
        self.select_token(len(self.session.transcript.positions))

    def action_step(self) -> None:
        self.session.step()

    def action_run_pause(self) -> None:
        self.session.run_pause()
        self.show_progress()

    def action_pick(self, rank: int) -> None:
        """1–9: force a candidate of the live next token; time travelling, branch: take it instead of the token chosen then."""
        self.session.pick(rank)

    def action_undo(self) -> None:
        self.session.undo()

    def action_reset(self) -> None:
        self.session.reset()

    # ---- the prompt line (i): enter sets the prompt, escape cancels ----------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """While an input has the keys, i is a letter to type, not the prompt key; escape cancels only then."""
        editing = isinstance(self.focused, Input)
        return not (action == "edit_prompt" and editing) and (action != "cancel_prompt" or editing)

    def action_edit_prompt(self) -> None:
        """i: the prompt line opens and takes the keys at once, so a paste or fast typing lands in it.

        The app hands each key to the focused widget as it reads it; `i` is a priority binding, so this
        runs before the keys after it are handed on, and the focus moves now (Widget.focus() would wait).
        """
        self.query_one(PromptLine).open()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.session.set_prompt(event.value):  # else empty: the line stays open
            self.close_prompt()

    def action_cancel_prompt(self) -> None:
        self.close_prompt()  # cancelled: the prompt stays as it was

    def close_prompt(self) -> None:
        self.query_one(PromptLine).close(self.session.prompt)
        self.set_focus(self.query_one(GenerationView))
