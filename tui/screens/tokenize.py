"""Tokenize: how one sentence splits into tokens, in any language, for any tokenizer that loads offline.

The seed's multilingual bonus: pieces, ids, the bytes each token covers, tokens per word and a
round trip, with ready examples (Russian, Chinese, Arabic, Hindi, …) on the digit keys. When the
tokenizer comes from a BERT-like encoder directory, the encoder's attention over the sentence is
shown too: attention without generation, so every token sees the whole sentence.

Tokenizing is fast and runs on the UI thread; loading another tokenizer and the encoder's forward
pass run in thread workers that only post messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from engine.runtime.loading import ModelLoadError
from engine.views.pieces import visible
from engine.views.tokenization import (
    EXAMPLES,
    TRANSLATIONS,
    EncoderAttention,
    TokenizationView,
    TokenizerCount,
    encoder_attention,
    load_tokenizer,
    side_by_side,
    tokenize,
)
from tui.keys import LAYER_HEAD_BINDINGS, QUIT_HELP_SAVE, LayerHeadKeys
from tui.numbering import block_head_text
from tui.widgets.attention_map import AttentionMap
from tui.widgets.edit_line import EditLine
from tui.widgets.pane import ExplainsPanes, pane

N_EXAMPLE_KEYS = min(len(EXAMPLES), 9)  # digits 1–9 load the first examples
MAX_SIDE_BY_SIDE = 5  # tokenizers kept side by side (the oldest picked one goes first)
ROUND_TRIP_SHOWN = 40  # characters of a differing round trip shown in the summary


def summary_text(tokenization: TokenizationView, english_tokens: int | None = None) -> Text:
    """Counts, characters per token, the round trip, and tokens per word where words are space-separated.

    Chinese or Japanese text has no spaces between words: there, "words" would be the whole sentence,
    so only characters per token is shown. `english_tokens`: the English example's token count, for a
    translation of it (× English: the cost of the same sentence, comparable across scripts).
    """
    spaced = len(tokenization.words) > 1
    text = Text()
    words = f" · words {len(tokenization.words)}" if spaced else ""
    text.append(f"characters {tokenization.n_chars} · bytes {tokenization.n_bytes}{words} · tokens {tokenization.n_tokens}\n", style="bold")
    if english_tokens:
        text.append(f"× English {tokenization.n_tokens / english_tokens:.1f} (the same sentence) · ", style="bold")
    text.append(f"characters per token {tokenization.chars_per_token:.2f} · ")
    if spaced:
        text.append(f"tokens per word {tokenization.n_tokens / len(tokenization.words):.2f} · ")
    if tokenization.round_trip_ok:
        text.append("round trip exact" + (" (byte-level: always)" if tokenization.byte_level else ""), style="green")
    else:
        shown = visible(tokenization.round_trip)
        shown = shown if len(shown) <= ROUND_TRIP_SHOWN else shown[: ROUND_TRIP_SHOWN - 1] + "…"
        text.append(f"round trip differs: decode gives {shown!r}", style="yellow")
    if spaced:
        text.append("\nper word:", style="bold")
        for n, (word, count) in enumerate(zip(tokenization.words, tokenization.tokens_per_word)):
            text.append(" · " if n else " ")
            text.append(visible(word), style="dim")
            text.append(f"\u00a0{count}", style="bold" if count > 1 else "")  # a no-break space: a word keeps its count on its line
    return text


def side_by_side_text(rows: list[TokenizerCount], shown: str) -> Text:
    """One line per tokenizer: its name (bold: the one in the table), its tokens, × English (a translation), its pieces."""
    width = max(len(row.name) for row in rows)
    text = Text(no_wrap=True, overflow="ellipsis")
    for n, row in enumerate(rows):
        text.append("\n" if n else "")
        text.append(f"{row.name:<{width}} ", style="bold" if row.name == shown else "")
        text.append(f"{row.n_tokens:>3}")
        if row.per_english is not None:
            text.append(f" ×{row.per_english:.1f}", style="bold")
        text.append("  " + "·".join(row.pieces), style="dim")
    return text


def table_rows(tokenization: TokenizationView) -> list[tuple[str, str, str, str, str]]:
    """One row per token: position, id, piece, the text it covers and its bytes (hex)."""
    return [
        (str(n), str(token_id), piece, visible(tokenization.text[start:end]), hex_bytes)
        for n, (token_id, piece, hex_bytes, (start, end)) in enumerate(
            zip(tokenization.ids, tokenization.pieces, tokenization.token_bytes, tokenization.offsets)
        )
    ]


class TokenizeScreen(ExplainsPanes, LayerHeadKeys, Screen):
    HELP_TITLE = "Tokenization (w)"
    LESSON_NAME = "tokenize"  # the lessons read lesson_facts() while this screen is shown
    AUTO_FOCUS = "#tok-table"  # not an input, so the digit keys load examples
    EXPLANATIONS = {
        "tok-inputs": (
            "The sentence to split (i edits it, enter tokenizes; 1–8 or ctrl+n load examples in other languages) and "
            "the tokenizer (s edits: toy, a local folder, a cached hub name). escape leaves an input."
        ),
        "tok-table-pane": (
            "One row per token: # its position, id its number in the vocabulary, piece as the tokenizer writes it "
            "(␣ a space, ↵ a newline, ⇥ a tab, \\xNN a byte of a character split across tokens, ## glued to the piece "
            "before), text the characters it covers, bytes their UTF-8 bytes in hex."
        ),
        "tok-summary-pane": (
            "Counts: characters, UTF-8 bytes, words, tokens. × English: tokens for the same sentence as the English "
            "example (characters per token compare only within one script). Round trip: decoding the ids gives the "
            "text back (byte-level BPE always does). "
            "per word: the tokens of each word."
        ),
        "tok-side-pane": (
            "One sentence through several tokenizers: the toy's, the loaded model's, each one s loaded. Per line: "
            "tokens; for a translation of the English example (1–6), × = those tokens ÷ its own tokens for the English "
            "sentence (one meaning's cost per language); the pieces."
        ),
        "tok-attention-pane": (
            "An encoder's (BERT-like) attention over the sentence: every token sees every other, before and after "
            "it, so nothing is masked. Rows attend to columns; [ ] block, { } head or mean of heads."
        ),
    }
    BINDINGS = [
        *QUIT_HELP_SAVE,
        Binding("escape", "back", "Back", show=False, tooltip="Back to generation (from an input: leave it)"),
        Binding(
            "1",
            "example(1)",
            "Examples",
            key_display=f"1-{N_EXAMPLE_KEYS}",
            tooltip="Load an example: " + ", ".join(f"{i} {e.label}" for i, e in enumerate(EXAMPLES[:N_EXAMPLE_KEYS], start=1)),
        ),
        *[Binding(str(i), f"example({i})", f"Example {i}: {EXAMPLES[i - 1].label}", show=False) for i in range(2, N_EXAMPLE_KEYS + 1)],
        Binding("ctrl+n", "next_example", "Next example", show=False, tooltip="The next example (works while typing too)"),
        Binding("i", "edit_sentence", "Sentence", tooltip="Edit the sentence; enter tokenizes it"),
        Binding("s", "edit_source", "Tokenizer", tooltip="Type another tokenizer (toy, a local dir, a cached hub name); enter loads it"),
        *LAYER_HEAD_BINDINGS,
    ]

    class SourceLoaded(Message):
        """Another tokenizer loaded (tokenizer), or the sentence saying why not (error)."""

        def __init__(self, name: str, tokenizer: Any, error: str | None) -> None:
            super().__init__()
            self.name = name
            self.tokenizer = tokenizer
            self.error = error

    class EncoderComputed(Message):
        """The encoder's attention over `text` (result), or why there is none for this source (error)."""

        def __init__(self, model_dir: str, text: str, result: EncoderAttention | None, error: str | None) -> None:
            super().__init__()
            self.model_dir = model_dir
            self.text = text
            self.result = result
            self.error = error

    def __init__(self, tokenizer: Any, source_name: str, model_dir: str | None, others: dict[str, Any] | None = None) -> None:
        """`tokenizer`: a loaded (fast) tokenizer; `model_dir`: where its model lives, for the encoder attention;
        `others`: more tokenizers to show side by side (name -> tokenizer; the toy's beside a real model's)."""
        super().__init__()
        self.tokenizer = tokenizer
        self.source_name = source_name
        self.compared = {**(others or {}), source_name: tokenizer}  # side by side, in this order
        self.model_dir = model_dir
        self.tokenization: TokenizationView | None = None
        self.encoder: EncoderAttention | None = None  # the encoder's attention over the current sentence
        self.encoder_note = "no model directory: nothing to show attention for"
        self.encoder_possible = model_dir is not None  # False once the source turned out not to be an encoder
        self.example = 0  # the example ctrl+n moves on from

    def compose(self) -> ComposeResult:
        with pane(f"Tokenize · {self.source_name}", "tok-inputs", classes="box"):
            yield EditLine(EXAMPLES[0].text, placeholder="a sentence (i to edit, enter tokenizes)", id="sentence")
            yield EditLine(
                self.source_name, placeholder="tokenizer: toy, a local dir, a cached hub name (s to edit, enter loads)", id="source"
            )
        with Horizontal(id="tok-body"):
            with pane("Tokens", "tok-table-pane", classes="box"):
                yield DataTable(id="tok-table", zebra_stripes=True, cursor_type="row")
            with Vertical(id="tok-right"):
                with pane("Summary", "tok-summary-pane", classes="box"):
                    yield Static(id="tok-summary")
                with pane("Tokenizers · ×EN", "tok-side-pane", classes="box"):
                    yield Static(id="tok-side")
                with pane("Encoder attention", "tok-attention-pane", classes="box"):
                    encoder_map = AttentionMap(id="tok-attention")
                    encoder_map.causal = False  # an encoder's token sees the whole sentence: no mask drawn
                    yield encoder_map
                    yield Static(id="tok-attention-note")
        yield Static(id="tok-status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#tok-table", DataTable).add_columns("#", "id", "piece", "text", "bytes")
        self.retokenize()

    def lesson_facts(self) -> dict:
        """What the lessons read here: the sentence's tokenization, the tokenizer and its name (tui/lessons.py)."""
        return {
            "tokenization": self.tokenization,
            "tokenizer": self.tokenizer,
            "source": self.source_name,
            "side_by_side": self.side_rows(),
        }

    def figures(self) -> dict:
        """What `e` saves here: the sentence, the tokenizer and the pieces table."""
        shown = self.tokenization
        rows = [  # the position and id as numbers, as every other export has them
            {"#": int(n), "id": int(token_id), "piece": piece, "text": text, "bytes": hex_bytes}
            for n, token_id, piece, text, hex_bytes in (table_rows(shown) if shown else [])
        ]
        side = [{"tokenizer": row.name, "tokens": row.n_tokens, "per_english": row.per_english} for row in self.side_rows()]
        return {
            "data": {"tokens": {"tokenizer": self.source_name, "text": shown.text if shown else "", "rows": rows, "side_by_side": side}}
        }

    def side_rows(self) -> list[TokenizerCount]:
        return [] if self.tokenization is None else side_by_side(self.compared, self.tokenization.text)

    # ---- the sentence --------------------------------------------------------------------------
    def retokenize(self) -> None:
        """Tokenize the sentence in the input (fast: on the UI thread); the encoder attention follows in a thread."""
        text = self.query_one("#sentence", Input).value
        try:
            self.tokenization = tokenize(self.tokenizer, text)
        except Exception as error:  # a tokenizer's own failure: one sentence, the screen stays
            self.set_status(f"Could not tokenize with {self.source_name}: {type(error).__name__}: {error}")
            return
        self.encoder = None
        self.draw_tokens()
        if self.encoder_possible:
            self.encoder_note = "computing the encoder's attention…"
            self.compute_encoder(self.model_dir, text)
        self.draw_attention()
        self.set_status(f"{self.source_name} · {self.tokenization.n_tokens} tokens")

    def draw_tokens(self) -> None:
        table = self.query_one("#tok-table", DataTable)
        table.clear()
        table.add_rows(table_rows(self.tokenization))
        self.query_one("#tok-summary", Static).update(summary_text(self.tokenization, self.english_tokens()))
        self.query_one("#tok-side", Static).update(side_by_side_text(self.side_rows(), self.source_name))
        self.query_one("#tok-inputs").border_title = f"Tokenize · {self.source_name}"

    def english_tokens(self) -> int | None:
        """The English example's token count with this tokenizer, when the sentence shown is a translation of it."""
        if self.tokenization is None or self.tokenization.text not in TRANSLATIONS:
            return None
        return tokenize(self.tokenizer, EXAMPLES[0].text).n_tokens

    def set_status(self, text: str) -> None:
        self.query_one("#tok-status", Static).update(text)

    # ---- the tokenizer source ------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="tokenizer")
    def load_source(self, name: str) -> None:
        """Runs in a thread: load the tokenizer, post it (or the sentence saying why not)."""
        try:
            tokenizer = load_tokenizer(name)
        except ModelLoadError as error:
            self.post_message(self.SourceLoaded(name, None, str(error)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.SourceLoaded(name, tokenizer, None))

    def on_tokenize_screen_source_loaded(self, message: SourceLoaded) -> None:
        if message.error is not None:
            self.set_status(f"Tokenizer unchanged: {message.error.rstrip('.')}.")
            return
        self.tokenizer, self.source_name, self.model_dir = message.tokenizer, message.name, message.name
        self.compared.pop(message.name, None)  # picked again: it moves to the end
        self.compared[message.name] = message.tokenizer
        while len(self.compared) > MAX_SIDE_BY_SIDE:
            del self.compared[next(iter(self.compared))]
        self.encoder_possible = True
        self.shown_layer, self.shown_head = 0, None
        self.retokenize()

    # ---- encoder attention ---------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="encoder")
    def compute_encoder(self, model_dir: str, text: str) -> None:
        """Runs in a thread: the encoder's attention over `text`, or the sentence saying why there is none."""
        try:
            result, error = encoder_attention(model_dir, text), None
        except ModelLoadError as failure:
            result, error = None, str(failure)
        if not get_current_worker().is_cancelled:
            self.post_message(self.EncoderComputed(model_dir, text, result, error))

    def on_tokenize_screen_encoder_computed(self, message: EncoderComputed) -> None:
        if message.model_dir != self.model_dir or self.tokenization is None or message.text != self.tokenization.text:
            return  # a newer sentence or source is on screen
        if message.error is not None:
            self.encoder_possible = False  # not an encoder (or no model): stop trying for this source
            self.encoder_note = f"No encoder attention: {message.error.rstrip('.')}."
        self.encoder = message.result
        self.draw_attention()

    def draw_attention(self) -> None:
        box = self.query_one("#tok-attention-pane")
        attention_map = self.query_one("#tok-attention", AttentionMap)
        note = self.query_one("#tok-attention-note", Static)
        encoder = self.encoder
        box.display = encoder is not None or self.encoder_possible  # only for an encoder (or while finding out)
        attention_map.display = encoder is not None
        note.display = encoder is None
        if encoder is None:
            note.update(self.encoder_note)
            box.border_subtitle = ""
            return
        n_layers, n_heads = encoder.attention.shape[:2]
        self.shown_layer = min(self.shown_layer, n_layers - 1)
        if self.shown_head is not None and self.shown_head >= n_heads:
            self.shown_head = None
        layer = encoder.attention[self.shown_layer]  # [H, T, T]
        grid = layer.mean(axis=0) if self.shown_head is None else layer[self.shown_head]  # [T, T]
        attention_map.show(np.asarray(grid, dtype=np.float32), encoder.tokens, None, self.app.shade)
        cut = " · sentence cut to the model's length" if encoder.truncated else ""
        box.border_subtitle = f"{encoder.model_type} · {block_head_text(self.shown_layer, self.shown_head)}{cut}"

    # ---- keys ----------------------------------------------------------------------------------
    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#tok-table", DataTable).focus()
        else:
            self.app.pop_screen()

    def action_example(self, number: int) -> None:
        self.example = number - 1
        self.query_one("#sentence", Input).value = EXAMPLES[self.example].text
        self.retokenize()

    def action_next_example(self) -> None:
        self.action_example((self.example + 1) % len(EXAMPLES) + 1)

    def action_edit_sentence(self) -> None:
        self.query_one("#sentence", EditLine).edit()

    def action_edit_source(self) -> None:
        self.query_one("#source", EditLine).edit()

    def layer_head_counts(self) -> tuple[int, int] | None:
        """The encoder's layers and heads (attention [L, H, T, T]); None without an encoder."""
        return None if self.encoder is None else self.encoder.attention.shape[:2]

    def redraw(self) -> None:
        self.draw_attention()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#tok-table", DataTable).focus()  # the keys act again
        if event.input.id == "sentence":
            self.retokenize()
            return
        name = event.value.strip()
        if name:
            self.set_status(f"loading tokenizer {name}…")
            self.load_source(name)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.set_status(f"The {event.worker.group} thread stopped: {type(error).__name__}: {error}")
