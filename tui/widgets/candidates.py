"""The Candidates pane: the next token's top candidates, before and after temperature/top-k/top-p.

Time travel: an earlier token's candidates as they were, under a heading, the token chosen marked ▸.
Drawn as strips (tui.widgets.attention_map.StripsWidget): only the lines that changed are repainted.
"""

from __future__ import annotations

import textwrap

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from engine.events import AblationView, Candidate
from tui.pieces import label_text
from tui.widgets.attention_map import StripsWidget

EIGHTHS = " ▏▎▍▌▋▊▉"
PICKABLE = 9  # digits 1–9 force one of the first nine
MAX_TOKEN_WIDTH = 20
PLAIN, BOLD, DIM = Style(), Style(bold=True), Style(dim=True)
CUT, CHOSEN = Style(dim=True, strike=True), Style(reverse=True)
BAR, CUT_BAR, ABLATED_BAR = Style(color="green"), Style(dim=True, color="green"), Style(color="yellow")


def bar(fraction: float, width: int) -> str:
    """A left-aligned bar `width` cells wide filled to `fraction`, with eighth-cell resolution."""
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, rest = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(width)


def percent(p: float) -> str:
    return f"{p * 100:5.1f}%" if p >= 0.001 or p == 0 else "  <.1%"


def candidate_segments(rank: int, candidate: Candidate, width: int, ablation: AblationView | None, chosen_id: int | None) -> list[Segment]:
    """One candidate's line: digit (▸ when chosen), token, p before, a bar, p after (or the intact p with ablations)."""
    token_w = max(6, min(MAX_TOKEN_WIDTH, width - 24))  # a wide pane gives whole pieces room before the bar grows
    bar_w = max(3, width - token_w - 18)
    cut = candidate.p == 0
    is_chosen = candidate.token_id == chosen_id
    label = f"{label_text(candidate.text, token_w):<{token_w}} "
    head = [Segment(f"{rank}" + ("▸" if is_chosen else " "), BOLD), Segment(label, CHOSEN if is_chosen else CUT if cut else PLAIN)]
    if ablation is not None:  # ablated │ intact, at temperature 1
        intact = ablation.intact.get(candidate.token_id, 0.0)
        return [
            *head,
            Segment(f"{percent(candidate.p_raw)} ", BOLD),
            Segment(bar(candidate.p_raw, bar_w), ABLATED_BAR),
            Segment(" " + percent(intact), DIM),
        ]
    after = Segment(" " + ("   cut" if cut else percent(candidate.p)), DIM if cut else BOLD)
    return [*head, Segment(f"{percent(candidate.p_raw)} ", DIM), Segment(bar(candidate.p, bar_w), CUT_BAR if cut else BAR), after]


def candidates_strips(
    candidates: list[Candidate], width: int, ablation: AblationView | None, chosen: tuple[int, str] | None, heading: str
) -> list[Strip]:
    """The heading (wrapped), then one line per candidate; a chosen token below the nine shown gets a line of its own."""
    width = max(width, 20)
    lines = [[Segment(line, BOLD)] for line in textwrap.wrap(heading, width)]
    chosen_id = chosen[0] if chosen else None
    shown = candidates[:PICKABLE]
    lines += [candidate_segments(rank, c, width, ablation, chosen_id) for rank, c in enumerate(shown, start=1)]
    if chosen and all(c.token_id != chosen_id for c in shown):
        lines.append([Segment(f" ▸{label_text(chosen[1], 12)} chosen, below these", BOLD)])
    return [Strip(segments).crop(0, width) for segments in lines]


class CandidatesView(StripsWidget):
    """One line per candidate: digit, token, p before warping, a bar and p after warping.

    The pane's subtitle names the two columns; a candidate that top-k/top-p removed reads "cut". With
    ablations the candidates are the ablated model's, and the last column is the intact model's p.
    """

    DEFAULT_CSS = """
    CandidatesView { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.candidates: list[Candidate] = []
        self.ablation: AblationView | None = None
        self.chosen: tuple[int, str] | None = None  # time travel: (id, text) of the token this step chose
        self.heading = ""  # time travel: which token's step this is

    def show(
        self, candidates: list[Candidate], ablation: AblationView | None = None, chosen: tuple[int, str] | None = None, heading: str = ""
    ) -> None:
        if (candidates, ablation, chosen, heading) == (self.candidates, self.ablation, self.chosen, self.heading):
            return
        self.candidates, self.ablation, self.chosen, self.heading = candidates, ablation, chosen, heading
        self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        base = self.rich_style
        lines = candidates_strips(self.candidates, width, self.ablation, self.chosen, self.heading)[:height]
        return [strip.adjust_cell_length(width, base).apply_style(base) for strip in lines]

    @property
    def text(self) -> str:
        """What the pane shows, as plain text (for tests and the reader of a screen dump)."""
        return "\n".join(
            strip.text for strip in candidates_strips(self.candidates, self.size.width, self.ablation, self.chosen, self.heading)
        )
