"""What the main screen's lines say: pure functions from session state to text (the lessons use some too)."""

from __future__ import annotations

from engine.events import AblationView, SamplingConfig
from engine.model.interventions import parse_ablation
from engine.runtime.loading import ModelLoadError
from engine.views.replay import ReplayError
from engine.views.trace import TraceError
from tui.numbering import ablation_label
from tui.pieces import first_fit
from tui.transcript import Position


def ablation_lines(ablations: tuple, mode: str) -> list[tuple[str, str]]:
    """The Parameters line naming what is knocked out (none while nothing is)."""
    if not ablations:
        return []
    return [("ablated" if mode == "zero" else "mean-ablated", ", ".join(ablation_label(a) for a in ablations))]


def ablated_text(labels: tuple[str, ...]) -> str:
    """Engine labels ("L4.H5", "L4.mlp") as the screen numbers blocks and heads: "B5.H6, B5.mlp"."""
    return ", ".join(ablation_label(parse_ablation(label)) for label in labels)


def model_title(title: str, labels: tuple[str, ...], ablated: bool) -> str:
    """A pane's title saying which model it shows while components are knocked out (`labels`): the ablated
    one ("Layers · ablated B5.mlp") or the intact one ("Attention · intact model"); plain without ablations."""
    if not labels:
        return title
    return f"{title} · ablated {ablated_text(labels)}" if ablated else f"{title} · intact model"


def candidates_subtitle(ablation: AblationView | None, width: int = 999) -> str:
    """The Candidates pane's column names; with ablations, how far the distribution moved, the KL kept whole in
    `width` (shorter words first, then the flip left out: E explains the columns)."""
    if ablation is None:
        return "p before │ after T·k·p"
    kl = f"KL {ablation.kl:.3f}"
    flip = "top flips" if ablation.flipped else "same top"
    return first_fit([f"ablated │ intact · {kl} · {flip}", f"abl. │ intact · {kl} · {flip}", f"abl. │ intact · {kl}", kl], width)


def settings_phrase(config: SamplingConfig) -> str:
    """How a token was drawn: "T 0.80", with top-k and top-p when they were on."""
    parts = ["greedy (T 0)" if config.temperature == 0 else f"T {config.temperature:.2f}"]
    if config.top_k:
        parts.append(f"top-k {config.top_k}")
    if config.top_p < 1:
        parts.append(f"top-p {config.top_p:.2f}")
    return " · ".join(parts)


def travel_heading(index: int, n_tokens: int, position: Position) -> str:
    """The line over an earlier token's step: "token 17 of 42 · generated at T 0.80" (or "prompt token"),
    and whether the step predates a slide of the window (its context was longer than the attention shown)."""
    where = f"token {index + 1} of {n_tokens}"
    slid = " · drawn before the window slid (a longer context)" if position.before_slide else ""
    if not position.generated:
        return f"{where} · prompt token" + ("" if index else " · the first: nothing before it predicts it") + slid
    if position.step is None or position.step.config is None:
        return f"{where} · generated{slid}"
    how = "forced (picked by hand)" if position.forced else f"generated at {settings_phrase(position.step.config)}"
    knocked = f" · ablated {ablated_text(position.step.ablated)}" if position.step.ablated else ""
    return f"{where} · {how}{knocked}{slid}"


ONE_SENTENCE_ERRORS = (ModelLoadError, TraceError, ReplayError)  # their text is already a sentence for the user


def error_sentence(error: BaseException) -> str:
    return str(error) if isinstance(error, ONE_SENTENCE_ERRORS) else f"{type(error).__name__}: {error}"
