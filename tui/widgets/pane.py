"""The bordered pane of every screen, and E: a plain-language explanation of the focused pane beside it."""

from __future__ import annotations

from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Footer, Static


class Pane(Vertical, can_focus=True):
    """A tab stop (tab, shift+tab or a click moves between panes; the focused one's border lights up).

    A pane whose content takes the focus itself (the generation text, an input, a table) is not a stop of
    its own: its content is, so that tab lands in each pane once.
    """

    def allow_focus(self) -> bool:
        return not any(widget.can_focus for widget in self.query("*"))


def pane(title: str, id: str, subtitle: str = "", classes: str = "pane") -> Pane:
    """Use as `with pane("Attention", "attention-pane"):` in compose; tests find panes by these ids."""
    box = Pane(id=id, classes=classes)
    box.border_title = title
    if subtitle:
        box.border_subtitle = subtitle
    return box


class Explanation(Static):
    """E's card: a pane's explanation, beside the pane (card_geometry); an overlay, so it moves nothing (app.tcss)."""


CARD_WIDTHS = (44, 72)  # an explanation card's width, border included: the pane's, at least and at most this


def card_geometry(pane: Region, content: Region, text: str, footer: int) -> tuple[int, int]:
    """(width, y offset) of `text`'s card for a pane at `pane` (its `content` region inside the border), the
    footer's line at `footer`: below the pane when it fits above the footer, else above the pane, else over its
    top. Without an offset the card, the pane's first child, sits at the top of the content."""
    width = min(max(content.width, CARD_WIDTHS[0]), CARD_WIDTHS[1])
    height = len(Content(text).wrap(width - 4)) + 2  # a border and a cell of padding each side
    if pane.bottom + height <= footer:
        return width, pane.bottom - content.y
    if height <= pane.y:
        return width, pane.y - height - content.y
    return width, 0


class ExplainsPanes:
    """A screen whose panes E explains: EXPLANATIONS[pane id] on a card beside the focused pane (Explanation).

    While an explanation shows it follows the focus (tab, shift+tab, a click); E again hides it.
    """

    EXPLANATIONS: dict[str, str] = {}  # pane id -> what the pane shows, for a learner: at most 8 lines at 80×24
    explained: Pane | None = None  # the pane showing its explanation

    def focused_pane(self) -> Pane:
        """The pane holding the focused widget; the screen's first pane when nothing is focused."""
        focused: Widget | None = self.focused
        panes = [node for node in focused.ancestors_with_self if isinstance(node, Pane)] if focused else []
        return panes[0] if panes else self.query(Pane).first()

    def toggle_explanation(self) -> None:
        if self.explained is None:
            self.explain(self.focused_pane())
        else:
            self.explain(None)

    def explain(self, pane: Pane | None) -> None:
        """Show `pane`'s explanation (None: hide it)."""
        if self.explained is not None:
            self.explained.query(Explanation).remove()
        self.explained = pane
        if pane is not None:
            text = self.EXPLANATIONS[pane.id]
            card = Explanation(text, classes="explanation")
            card.border_title = f"{str(pane.border_title).split(' · ')[0]}, explained"
            card.border_subtitle = "E hides"
            width, offset = card_geometry(pane.region, pane.content_region, text, self.query_one(Footer).region.y)
            card.styles.width, card.styles.offset = width, (0, offset)
            pane.mount(card, before=0)

    def on_resize(self) -> None:
        """The panes move with the terminal's size: so does the card beside them, once they are laid out."""
        if self.explained is not None:
            self.call_after_refresh(self.explain, self.explained)

    def on_descendant_focus(self) -> None:
        if self.explained is not None and self.focused_pane() is not self.explained:
            self.explain(self.focused_pane())
