"""EditLine: a one-line text input that has the keys only while a key (or a click) opened it for editing.

Tab passes it by (the pane holding it is the tab stop), so a screen key such as E never types into a field
the focus wandered into. Its editing keys (ctrl+a, ctrl+k, home, backspace, enter …) act in the order they
were typed: Textual hands a field's printable keys to it at once but runs its key bindings only after the
key has bubbled back up to the app, behind the keys typed after it, so a paste or fast typing (`i`, then
ctrl+a ctrl+k and a new prompt) would lose its text.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import Input


class EditLine(Input, can_focus=False):
    DEFAULT_CSS = """
    EditLine > .input--selection { text-style: reverse; }  /* the text selected on opening shows, NO_COLOR too */
    """

    BINDINGS = [Binding("enter", "submit", "Apply", key_display="⏎")]  # in the footer while editing (letter keys hide there)

    editing = False  # opened by edit(); closed when the focus leaves

    def allow_focus(self) -> bool:
        return self.editing

    def edit(self) -> None:
        """Take the keys now, the whole text selected (typing replaces it). The focus moves at once: the keys
        typed next go here even when they are already queued (Widget.focus() would wait)."""
        self.editing = True
        self.screen.set_focus(self)

    def _on_blur(self, event: events.Blur) -> None:
        self.editing = False
        super()._on_blur(event)

    def on_click(self) -> None:
        if not self.editing:
            self.edit()

    async def _on_key(self, event: events.Key) -> None:
        """Its own bindings act here, in order with the letters typed (see the module docstring)."""
        bindings = self._bindings.key_to_bindings.get(event.key, ())
        if not bindings:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        await self.run_action(bindings[0].action)
