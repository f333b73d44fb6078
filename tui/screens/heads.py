"""Every head at a glance: a small heatmap of every layer × head over the current context, with its statistics.

The screen takes plain data (the context's attention rows, pieces and token ids), so it needs no
model. The statistics (engine.model.head_stats) are computed on a thread worker, a layer at a time
(144 heads × 256 tokens take about half a second). `o` sorts the heads by a statistic (highest first,
undefined last); the arrows move the selection, page keys a page; enter opens the selected head in
the main screen's Attention pane.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from engine.model.head_stats import STATISTICS, attention_matrix, head_stats, near_uniform, uniform_stats
from tui.captions import model_title
from tui.heatmap import SCALES, head_grid
from tui.keys import QUIT_HELP_SAVE, back_keys, key_pair
from tui.messages import HeadStatsComputed
from tui.numbering import head_label, kv_group
from tui.pieces import first_fit, fit_parts
from tui.screens.error import ShowsWorkerErrors
from tui.widgets.head_tiles import STAT_ABBREVIATIONS, HeadTiles, sort_decimals, stat_text
from tui.widgets.pane import ExplainsPanes, pane

STAT_NAMES = {"entropy": "entropy", "sink": "sink", "prev_token": "prev-token", "duplicate": "duplicate", "induction": "induction"}
SORTS = (None, *STATISTICS)  # None: layer by layer, head by head


def context_head_stats(rows: list[np.ndarray], ids: list[int]) -> dict[str, np.ndarray]:  # -> {name: [L, H]}
    """head_stats over the context, a layer at a time (a whole [L, H, T, T] would be large for long contexts)."""
    per_layer = [head_stats(attention_matrix([row[layer : layer + 1] for row in rows]), ids) for layer in range(rows[0].shape[0])]
    return {name: np.concatenate([stats[name] for stats in per_layer]) for name in STATISTICS}


def sorted_heads(stats: dict[str, np.ndarray] | None, n_layer: int, n_head: int, by: str | None) -> list[tuple[int, int]]:
    """(layer, head) in layer order, or by `by` highest first (undefined last, ties in layer order)."""
    heads = [(layer, head) for layer in range(n_layer) for head in range(n_head)]
    if by is None or stats is None:
        return heads
    values = stats[by].reshape(-1)  # [L * H] in layer order
    key = np.where(np.isnan(values), np.inf, -values)
    return [heads[i] for i in np.argsort(key, kind="stable")]


def detail_line(
    stats: dict[str, np.ndarray] | None, layer: int, head: int, uniform: dict[str, float], group: int | None = None, width: int = 999
) -> str:
    """The selected head's statistics, "≈ uniform" first when its entropy is within noise of uniform attention's;
    the statistics' short names (as the tiles and the sort use them) when the long ones do not fit `width`."""
    name = head_label(layer, head) if group is None else f"{head_label(layer, head)} · kv {group + 1}"
    if stats is None:
        return f"{name} · computing the statistics…"
    values = {stat: stat_text(float(stats[stat][layer, head])) for stat in STATISTICS}
    close = " ≈ uniform" if near_uniform(float(stats["entropy"][layer, head]), uniform["entropy"]) else ""
    long = " · ".join(f"{STAT_NAMES[stat]} {value}" for stat, value in values.items()) + " (entropy in nats)"
    short = " · ".join(f"{STAT_ABBREVIATIONS[stat]} {value}" for stat, value in values.items())
    return first_fit([f"{name}{close} · {long}", f"{name}{close} · {short}", f"{name} · {short}"], width)


def uniform_text(uniform: dict[str, float]) -> str:
    """The baseline on this context, as the pane's subtitle shows it: "uniform ent 1.88 sink 0.18 prev 0.18"."""
    return "uniform " + " ".join(f"{STAT_ABBREVIATIONS[name]} {stat_text(uniform[name])}" for name in ("entropy", "sink", "prev_token"))


class HeadsScreen(ExplainsPanes, ShowsWorkerErrors, Screen):
    WORKER_ERROR_TITLE = "All heads: the statistics failed"
    HELP_TITLE = "All heads (h)"
    EXPLANATIONS = {
        "heads-pane": (
            "Every head of every block over the context, one small heatmap each (rows attend to columns). B2.H3: block "
            "2, head 3. o sorts, highest first: ent entropy (nats; low = focused), sink weight on the first token, prev on "
            "the previous token, dup on earlier copies, ind on the token after an earlier copy (induction: try a repeated "
            "sequence; dup, ind: Olsson et al.'s stripe score); – undefined. uniform: the same on this context with even "
            "weights; ≈ uniform: within 0.1 nats."
        ),
    }
    BINDINGS = [
        *QUIT_HELP_SAVE,
        *back_keys("h"),
        Binding("o", "sort", "Sort", tooltip="Sort by the next statistic: entropy, sink, prev-token, duplicate, induction, layer order"),
        Binding("enter", "open", "Open", key_display="⏎", tooltip="Show the selected head in the main screen's Attention pane"),
        *key_pair("pageup", "pagedown", "move('page', {})", "Previous page of heads", "Next page of heads", "Page", "PgUp/PgDn"),
        *key_pair("left", "right", "move('tile', {})", "Select the previous head", "Select the next head"),
        *key_pair("up", "down", "move('row', {})", "Select the head above", "Select the head below"),
        *key_pair("home", "end", "move('end', {})", "Select the first head", "Select the last head"),
        Binding(
            "percent_sign",
            "colour_scale",
            "Colour scale: log → linear → sink excluded (position 0 left out, marked)",
            key_display="%",
            show=False,
        ),
    ]

    def __init__(
        self,
        rows: list[np.ndarray],  # T x [L, H, i + 1] each context token's attention row
        pieces: list[str],
        ids: list[int],
        shade: bool = False,
        session: Any = None,
        selected: tuple[int, int] = (0, 0),
    ) -> None:
        """Enter asks `session` (tui.session.Session) to show the selected head on the main screen, and closes."""
        super().__init__()
        self.rows, self.pieces, self.ids = list(rows), list(pieces), list(ids)
        self.n_layer, self.n_head = (rows[0].shape[0], rows[0].shape[1]) if rows else (0, 0)
        self.shade = shade
        self.session = session
        self.stats: dict[str, np.ndarray] | None = None
        self.sort_by: str | None = None
        self.decimals = 2  # of the sorted statistic in the tiles' headers (tui.widgets.head_tiles.sort_decimals)
        self.order = sorted_heads(None, self.n_layer, self.n_head, None)
        self.selected = self.order.index(selected) if selected in self.order else 0
        self.grids: dict[tuple[int, int], np.ndarray] = {}  # (layer, head) -> [T, T], built when first shown
        self.key = (len(self.rows), tuple(self.ids))
        self.uniform = uniform_stats(self.ids) if self.ids else {}  # the statistics of even attention on this context
        info = getattr(session, "model_info", None)
        self.n_kv_heads = info.n_kv_heads if info is not None else None  # grouped-query attention: tiles name the KV head

    @property
    def scale(self) -> str:
        """The colour scale (tui.heatmap.SCALES): the session's, which the main screen's l changes too."""
        return getattr(self.session, "colour_scale", "log")

    def group(self, head: int) -> int | None:
        return kv_group(head, self.n_head, self.n_kv_heads)

    def compose(self) -> ComposeResult:
        knocked = tuple(a.label for a in getattr(self.session, "ablations", ()))  # the rows are the intact model's: said so
        with pane(model_title(f"All heads · {len(self.rows)} tokens", knocked, ablated=False), "heads-pane"):
            yield HeadTiles(id="heads")
        yield Static(id="heads-detail")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        if self.rows:
            self.compute(self.rows, self.ids, self.key)
        self.redraw()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)  # the page size follows the grid's new size

    @work(thread=True, exclusive=True, exit_on_error=False, group="heads")
    def compute(self, rows: list[np.ndarray], ids: list[int], key: tuple) -> None:
        stats = context_head_stats(rows, ids)
        if not get_current_worker().is_cancelled:
            self.post_message(HeadStatsComputed(key, stats))

    def on_head_stats_computed(self, message: HeadStatsComputed) -> None:
        if message.key == self.key:
            self.stats = message.stats
            self.apply_sort(self.sort_by)

    # ---- drawing -----------------------------------------------------------------------------
    def grid(self, layer: int, head: int) -> np.ndarray:  # [T, T]
        if (layer, head) not in self.grids:
            self.grids[(layer, head)] = head_grid(self.rows, layer, head)
        return self.grids[(layer, head)]

    def header(self, layer: int, head: int) -> tuple[str, ...]:
        """A tile's header, variants longest first: the head, its KV head, the sort's statistic (entropy in layer order)."""
        label, grouped = head_label(layer, head), head_label(layer, head, self.group(head))
        if self.stats is None:
            return grouped, label
        by = self.sort_by or "entropy"
        value = stat_text(float(self.stats[by][layer, head]), self.decimals if self.sort_by else 2)
        return f"{grouped} {STAT_ABBREVIATIONS[by]} {value}", f"{grouped} {value}", f"{label} {value}", label

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        tiles = self.query_one(HeadTiles)
        if not self.order:
            self.query_one("#heads-detail", Static).update("No context yet: nothing to show.")
            return
        order = self.order
        tiles.show(
            (self.key, self.sort_by, self.stats is not None),
            lambda i: self.grid(*order[i]),
            [self.header(*head) for head in order],
            self.selected,
            self.shade,
            self.scale,
        )
        page, n_pages, _ = tiles.page()
        sort = "layer order" if self.sort_by is None else f"sorted by {STAT_NAMES[self.sort_by]} ↓"
        parts = [f"page {page + 1}/{n_pages}", sort, f"{self.scale} scale", uniform_text(self.uniform)]
        self.query_one("#heads-pane").border_subtitle = fit_parts(parts, self.size.width - 6)
        layer, head = order[self.selected]
        detail = detail_line(self.stats, layer, head, self.uniform, self.group(head), self.size.width - 2)
        self.query_one("#heads-detail", Static).update(detail)

    def figures(self) -> dict:
        """What `e` saves here: every head's statistics (null where undefined), the order shown, the selected head's map."""
        stats = None
        if self.stats is not None:
            stats = {name: [[None if np.isnan(v) else float(v) for v in row] for row in values] for name, values in self.stats.items()}
        heads = {
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "tokens": self.pieces,
            "token_ids": self.ids,
            "sort": self.sort_by,
            "order": [f"L{layer}.H{head}" for layer, head in self.order],
            "stats": stats,
        }
        figures: dict = {"data": {"heads": heads}}
        if self.order:
            layer, head = self.order[self.selected]
            figures.update(attention=self.grid(layer, head), tokens=self.pieces, layer=layer, head=head)
        return figures

    # ---- keys --------------------------------------------------------------------------------
    def apply_sort(self, by: str | None) -> None:
        current = self.order[self.selected] if self.order else None
        self.sort_by = by
        self.order = sorted_heads(self.stats, self.n_layer, self.n_head, by)
        if by is not None and self.stats is not None:  # enough digits to see the order
            self.decimals = sort_decimals([float(self.stats[by][layer, head]) for layer, head in self.order])
        self.selected = self.order.index(current) if current in self.order else 0
        self.redraw()

    def action_sort(self) -> None:
        if self.stats is None:
            self.notify("The statistics are still being computed.", timeout=3)
            return
        self.apply_sort(SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)])  # the selected head stays selected

    def action_colour_scale(self) -> None:
        if self.session is None:
            return
        self.session.colour_scale = SCALES[(SCALES.index(self.scale) + 1) % len(SCALES)]
        self.redraw()

    def action_move(self, unit: str, direction: int) -> None:
        if not self.order:
            return
        layout = self.query_one(HeadTiles).layout()
        step = {"tile": 1, "row": layout.columns, "page": layout.per_page, "end": len(self.order)}[unit]
        self.selected = max(0, min(len(self.order) - 1, self.selected + direction * step))
        self.redraw()

    def action_open(self) -> None:
        if not self.order:
            return
        layer, head = self.order[self.selected]
        if self.session is not None:
            self.session.show_head(layer, head)
        self.app.pop_screen()
