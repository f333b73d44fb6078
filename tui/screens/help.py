"""`?`: every screen's keys, generated from their bindings (the calling screen's first), and the glossary."""

from __future__ import annotations

import textwrap

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import key_to_character
from textual.screen import ModalScreen
from textual.widgets import Static

GLOSSARY = (  # (term, meaning): one line each in the help box at 80 columns; " / " separates names
    ("T / temperature", "divides the logits: <1 sharper, 0 = greedy"),
    ("numpy · 1 thread", "Parameters: the engine, its CPU threads"),
    ("top-k", "keep only the k likeliest tokens (off: all)"),
    ("top-p", "keep the fewest likeliest tokens: Σp ≥ p"),
    ("p before / p at T=1", "the model's own probability (temperature 1)"),
    ("after T·k·p", "p after temperature, top-k and top-p: drawn"),
    ("cut", "removed by T 0, top-k or top-p: cannot be drawn"),
    ("<.1%", "a probability below 0.1%"),
    ("1/V / chance", "p of a uniform guess over the V tokens"),
    ("ablated │ intact", "p with the parts knocked out, and without"),
    ("ablated", "its activations set to 0 (output biases kept)"),
    ("mean-ablated", "activations set to their mean over the context"),
    ("top flips / same top", "an ablation changed the likeliest token / not"),
    ("KL", "how far p moved (nats): <.01 tiny, >1 large"),
    ("KL(A‖B)", "Σ p_A·ln(p_A/p_B); not symmetric"),
    ("nats", "natural-log units of KL and entropy (1.44 bits)"),
    ("entropy / ent≤", "nats; ent≤x/m: the row's top x, m = ln V"),
    ("p (timeline)", "each new token's probability, at temperature 1"),
    ("tints / underlines", "alternate from token to token: where each ends"),
    ("red → green", "a generated token's p at T=1: rare → likely"),
    ("italic", "a token forced with 1–9"),
    ("logit", "a token's score before softmax"),
    ("residual stream", "the vector per token each block reads, adds to"),
    ("emb", "token embedding (+ a learned position: GPT-2)"),
    ("block / after block", "attention + MLP, 1…L; after block 2: its output"),
    ("B2.H3 / .attn / .mlp", "block 2's head 3, all its heads, its MLP"),
    ("L1.H2 / --ablate 1.2", "trace and command line count from 0: B2.H3"),
    ("head", "an attention unit: own queries and pattern"),
    ("mean of heads", "the average of a block's heads' attention"),
    ("query / key", "attention's row: who looks; column: looked at"),
    ("causal mask", "a token sees only itself and the tokens before"),
    ("·", "a space in a label; in shade mode a masked cell"),
    ("∅", "an empty token piece"),
    ("↵ / → / ␣ / ⇥", "a newline, a tab; tokenize: a space, a tab"),
    ("□", "a token ending inside a character"),
    ("◀", "the row that chose (or will choose) the token"),
    ("▸", "time travel: the candidate that was chosen"),
    ("◀ covers / 0–2", "a text row holding several tokens"),
    ("max-pooled", "a cell holds several tokens: their largest"),
    ("brightest", "the largest weight: top colour (no colour: █)"),
    ("log / linear scale", "attention colours: log spans 1/100 of the top"),
    ("sink excluded (×)", "position 0 marked, left out of the colours (%)"),
    ("kv 2 / ·kv2", "grouped-query: the key/value head a head reads"),
    ("…", "a label cut short: the piece goes on"),
    ("⠒ norm÷max", "the residual's norm ÷ its largest (norm max)"),
    ("× cos(l, l-1)", "cos with the step before: 1 = same direction"),
    ("lens→next", "logit lens: ln_f + unembedding after a block"),
    ("ln_f / layer norm", "the final norm / centre, scale, gain, bias"),
    ("RMSNorm", "Llama's norm: scale to unit RMS, then a gain"),
    ("RoPE / positions", "q, k turned by position: scores see distance"),
    ("SwiGLU", "Llama's MLP: down(silu(gate·x) × up·x)"),
    ("KV heads / GQA", "key/value heads shared by query heads"),
    ("pre-LN / post-LN", "LN before each sublayer / after residual add"),
    ("X / T (block lab)", "the lab's random input / its number of tokens"),
    ("d_model / d_ff", "the residual stream's width / the MLP's width"),
    ("token cos", "mean cosine between tokens: 1 = all alike"),
    ("√d_model", "the norm of a layer-normed vector (no gain)"),
    ("◂ / ▸", "the block lab chart's left / right axis"),
    ("max |Δlogit|", "parity: largest NumPy-vs-torch logit gap"),
    ("KV cache", "kept keys, values: a step adds one, reads all"),
    ("greedy n/m", "parity: greedy tokens both engines agree on"),
    ("tok/s / ms", "tokens per second of a run / a step's time"),
    ("top-1 / ✓ ✗", "A's and B's likeliest token agree / differ"),
    ("DLA / attribution", "direct logit attribution: parts of a logit"),
    ("embed / attn / mlp", "what each part writes into the residual"),
    ("b_O / ln_f bias", "attn output bias / ln_f's · W_U (Llama: none)"),
    ("ent / sink / prev", "head statistics: entropy, on token 0, previous"),
    ("dup / ind / –", "stripe scores: on copies, induction; undefined"),
    ("uniform / ≈ uniform", "equal weights on the past / within 0.1 nats"),
    ("Δ vs", "attribution: a candidate minus another (d)"),
    ("▶ / ▸ ▾", "the selected head / a folded, unfolded block"),
    ("round trip", "decoding the ids gives the text back"),
    ("● / ⠂ (2-D plot)", "a token at this layer / the layer before"),
    ("PC1 / PC2", "the two principal axes; % = share of variance"),
    ("left out / outliers", "a norm over 10× the median: o puts it back"),
    ("decided / 1…L", "first block whose lens top-1 stays the token"),
    ("✗ (decided)", "never the lens's top-1, even at the last block"),
    ("\\xNN / ##", "a loose byte / glued to the piece before"),
)

COMMAND_LINE = (  # (flag, what it does): the help's last section
    (
        "--replay FILE.jsonl",
        "step through a recorded session: n forward, backspace back, g plays, r rewinds; record one with "
        "--trace FILE.jsonl, or save one with e",
    ),
    ("--export-dir DIR", "where e saves the figures (default ./tfund-exports)"),
    ("--serve [--port N]", "the same app in a web browser, on http://localhost:8000"),
    ("tfund compare, tokenize, generate", "the same views as plain text or --json"),
)

KEY_WIDTH, GLOSSARY_TERM_WIDTH, FLAG_WIDTH = 14, 21, 22  # the first column of each kind of section
Section = tuple[str, list[Binding]]  # a screen's title and its keys


def key_name(key: str) -> str:
    """A key as people write it: "(" for left_parenthesis, "?" for question_mark; named keys (enter, space, ctrl+n) as they are."""
    character = key_to_character(key)
    return character if character is not None and character.isprintable() and not character.isspace() else key


def key_label(binding: Binding) -> str:
    """The key as typed; a key range (1-9) as displayed."""
    if binding.key_display and "-" in binding.key_display:
        return binding.key_display
    return ", ".join(key_name(k.strip()) for k in binding.key.split(","))


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


def two_columns(title: str, rows: list[tuple[str, str]], first: int, width: int) -> Text:
    """A titled list of (name, text) rows: the names `first` cells wide in bold, each text wrapped to the `width`
    left beside them, its later lines under its first (a name longer than the column gets a line of its own)."""
    text = Text()
    text.append(title, style="bold underline")  # the title's style only: Text(title, style) would style every line
    room = max(20, width - first)
    for name, does in rows:
        lines = textwrap.wrap(does, room) or [""]
        if len(name) >= first:
            text.append(f"\n{name}", style="bold")
            lines = ["", *lines] if len(name) + 1 + len(lines[0]) > width else lines
            text.append(f" {lines[0]}" if lines[0] else "")
        else:
            text.append(f"\n{name:<{first}}", style="bold")
            text.append(lines[0])
        for line in lines[1:]:
            text.append(f"\n{' ' * first}{line}")
    return text


class TwoColumns(Static):
    """A help section drawn by two_columns at its own width (again when that changes, as when a scrollbar appears),
    so that wrapped texts keep their column."""

    def __init__(self, title: str, rows: list[tuple[str, str]], first: int, **kwargs) -> None:
        super().__init__(two_columns(title, rows, first, 76), **kwargs)  # 76: its width at 80 columns, until laid out
        self.title, self.rows, self.first = title, rows, first

    def on_resize(self) -> None:
        self.update(two_columns(self.title, self.rows, self.first, self.content_size.width))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
        Binding("e", "app.export", "Save", show=False),  # a modal hides the app's keys: e says there is nothing to save
    ]

    def __init__(self, here: Section, anywhere: Section, others: list[Section]) -> None:
        """`here`: the keys of the screen ? was pressed on, shown first and marked; then the keys that work
        anywhere, the glossary and the other screens' keys."""
        super().__init__()
        self.here, self.anywhere, self.others = here, anywhere, others

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Keys and symbols"
            box.border_subtitle = "escape to close"
            title, bindings = self.here
            yield TwoColumns(f"{title} · this screen", help_lines(bindings), KEY_WIDTH, id="help-here", classes="help-section")
            yield TwoColumns(self.anywhere[0], help_lines(self.anywhere[1]), KEY_WIDTH, classes="help-section")
            glossary = "Glossary: what the symbols on screen mean"
            yield TwoColumns(glossary, list(GLOSSARY), GLOSSARY_TERM_WIDTH, id="help-glossary", classes="help-section")
            for title, bindings in self.others:
                yield TwoColumns(title, help_lines(bindings), KEY_WIDTH, classes="help-section")
            command_line = "From the command line (tfund-tui --help lists every flag)"
            yield TwoColumns(command_line, list(COMMAND_LINE), FLAG_WIDTH, classes="help-note")
