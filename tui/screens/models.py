"""The model picker (`ctrl+o`, or "Open a model" in the palette): what `tfund models` lists; enter opens the choice.

The list is read on a thread (engine.views.models reads headers only: the Hugging Face cache, Ollama's store
and GGUF headers); the choice is loaded by the session's engine thread (Session.switch_model), with the model
in use kept until the new one is ready.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from engine.views.models import CatalogEntry, human, list_models


@dataclass
class ModelsListed(Message):
    entries: list[CatalogEntry]


def entry_line(entry: CatalogEntry, in_use: str) -> str:
    """`smollm2  llama · 134.5M · Q4_1 · 538.1 MB` and, after it, why it cannot be opened or a note."""
    figures = " · ".join([entry.family or "?", human(entry.n_params), entry.file_type or "?", human(entry.memory_bytes, "B")])
    line = f"{entry.name}  {figures}"
    if entry.name == in_use:
        return f"{line}  (in use)"
    if problem := unusable(entry):
        return f"{line}  ✗ {problem}"
    return f"{line}  · {entry.note}" if entry.note else line


def unusable(entry: CatalogEntry) -> str | None:
    """Why no engine runs this entry (the NumPy engine's reason first), or None."""
    if entry.engines and all(reason is not None for reason in entry.engines.values()):
        return entry.engines.get("numpy") or next(iter(entry.engines.values()))
    if not entry.engines and entry.note:  # a file that could not be read
        return entry.note
    return None


class ModelPicker(ModalScreen[str | None]):
    """The models that can be opened here; enter picks one (dismissed with its name), escape keeps the model in use."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Keep the model in use"),
        Binding("ctrl+o", "dismiss(None)", "Close", show=False),
    ]

    def __init__(self, in_use: str) -> None:
        super().__init__()
        self.in_use = in_use

    def compose(self) -> ComposeResult:
        with Vertical(id="models-box") as box:
            box.border_title = "Open a model"
            box.border_subtitle = "enter opens · escape keeps the one in use"
            yield Static(f"In use: {self.in_use}. Reading what can be opened here…", id="models-status")
            yield OptionList(id="models-list")

    def on_mount(self) -> None:
        self.read_models()

    @work(thread=True, exclusive=True, exit_on_error=False, group="models")
    def read_models(self) -> None:
        self.post_message(ModelsListed(list_models()))

    def on_models_listed(self, message: ModelsListed) -> None:
        options = self.query_one(OptionList)
        for entry in message.entries:
            disabled = entry.name == self.in_use or unusable(entry) is not None
            options.add_option(Option(entry_line(entry, self.in_use), id=entry.name, disabled=disabled))
        self.query_one("#models-status", Static).update(
            f"In use: {self.in_use}. The weights load in float32 (MEMORY); the model in use stays until the new one is ready."
        )
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
