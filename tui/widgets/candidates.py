"""The Candidates pane: the next token's top candidates, before and after temperature/top-k/top-p.

Time travel: an earlier token's candidates as they were, under a heading, the token chosen marked ▸.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.events import AblationView, Candidate
from tui.pieces import label_text

EIGHTHS = " ▏▎▍▌▋▊▉"
PICKABLE = 9  # digits 1–9 force one of the first nine


def bar(fraction: float, width: int) -> str:
    """A left-aligned bar `width` cells wide filled to `fraction`, with eighth-cell resolution."""
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, rest = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(width)


def percent(p: float) -> str:
    return f"{p * 100:5.1f}%" if p >= 0.001 or p == 0 else "  <.1%"


class CandidatesView(Widget):
    """One line per candidate: digit, token, p before warping, a bar and p after warping.

    The pane's subtitle names the two columns; a candidate that top-k/top-p removed reads "cut". With
    ablations the candidates are the ablated model's, and the last column is the intact model's p.
    """

    candidates: reactive[list[Candidate]] = reactive(list)  # a new list that differs repaints the pane
    ablation: reactive[AblationView | None] = reactive(None)
    chosen: reactive[tuple[int, str] | None] = reactive(None)  # time travel: (id, text) of the token this step chose
    heading: reactive[str] = reactive("")  # time travel: which token's step this is

    def show(
        self, candidates: list[Candidate], ablation: AblationView | None = None, chosen: tuple[int, str] | None = None, heading: str = ""
    ) -> None:
        self.candidates = candidates
        self.ablation = ablation
        self.chosen = chosen
        self.heading = heading

    def render(self) -> Text | Group:
        lines = self.candidate_lines()
        if not self.heading:
            return lines
        return Group(Text(self.heading, style="bold"), lines)

    def candidate_lines(self) -> Text:
        width = max(self.size.width, 20)
        token_w = max(6, min(12, width - 24))
        bar_w = max(3, width - token_w - 18)
        chosen_id = self.chosen[0] if self.chosen else None
        text = Text(no_wrap=True, overflow="crop")
        for i, candidate in enumerate(self.candidates[:PICKABLE], start=1):
            cut = candidate.p == 0
            if i > 1:
                text.append("\n")
            text.append(f"{i}" + ("▸" if candidate.token_id == chosen_id else " "), style="bold")
            label_style = "reverse" if candidate.token_id == chosen_id else "dim strike" if cut else ""
            text.append(f"{label_text(candidate.text, token_w):<{token_w}} ", style=label_style)
            if self.ablation is not None:  # ablated │ intact, at temperature 1
                intact = self.ablation.intact.get(candidate.token_id, 0.0)
                text.append(f"{percent(candidate.p_raw)} ", style="bold")
                text.append(bar(candidate.p_raw, bar_w), style="yellow")
                text.append(" " + percent(intact), style="dim")
                continue
            text.append(f"{percent(candidate.p_raw)} ", style="dim")
            text.append(bar(candidate.p, bar_w), style="dim" if cut else "green")
            text.append(" " + ("   cut" if cut else percent(candidate.p)), style="dim" if cut else "bold")
        if self.chosen and all(c.token_id != chosen_id for c in self.candidates[:PICKABLE]):
            text.append(f"\n ▸{label_text(self.chosen[1], token_w)} chosen, below these", style="bold")
        return text
