"""Replay mode: a recorded trace, not the sampler, decides the tokens; the main screen's panes show it.

`tfund-tui --replay FILE.jsonl` steps through the recorded tokens (n forward, backspace back, g plays,
r rewinds). With the model (and the trace's prompt) every pane shows what the model computes for the
recorded tokens, attention included; without it, what was recorded: text, candidates, logit lens, norms.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from engine.events import SamplingConfig
from engine.runtime.loading import ModelLoadError
from engine.views.replay import RecordedSession, ReplayError, ReplaySession, ReplayStep
from tui.messages import ContextReady
from tui.transcript import Position

REPLAY_STEPS_PER_SECOND = 10  # g plays the recording at a pace a learner can follow
REPLAY_JOBS = ("step", "undo", "reset", "run")  # what a replay can do; the rest is refused with a note


def start_replay(recorded: RecordedSession, load: Any, engine: str) -> tuple[ReplaySession, Any, str | None]:
    """(session, loaded model or None, why the replay shows recorded data only, or None).

    `load()` returns the LoadedModel or raises ModelLoadError (ModelUnavailableError included).
    """
    if recorded.prompt is None:
        return ReplaySession(recorded.steps), None, "the trace has no prompt header, so attention cannot be recomputed"
    try:
        loaded = load()
        return ReplaySession(recorded.steps, model=loaded, prompt=recorded.prompt, engine=engine), loaded, None
    except (ModelLoadError, ReplayError) as error:
        return ReplaySession(recorded.steps, prompt=recorded.prompt), None, str(error)


def replay_context(replay: ReplaySession) -> ContextReady:
    """Every pane's data at the replay's position (called in the engine thread)."""
    applied = replay.steps[: replay.position]
    upcoming = replay.steps[replay.position] if replay.position < len(replay.steps) else None
    if replay.recomputes:
        sampler = replay.sampler
        if upcoming is not None:
            sampler.set_config(**upcoming.settings.as_dict())  # the next token's candidates under its own settings
        return ContextReady.of_sampler(sampler, recorded=applied)
    return recorded_context(replay.prompt, applied, upcoming)


def recorded_context(prompt: str | None, applied: list[ReplayStep], upcoming: ReplayStep | None) -> ContextReady:
    """Without a model: the prompt as one untokenized block, the recorded pieces, no attention."""
    pieces = ([prompt] if prompt else []) + [step.text for step in applied]
    no_attention = [np.zeros((0, 0, i + 1), np.float32) for i in range(len(pieces))]  # T x [0, 0, i + 1]
    last = applied[-1] if applied else None
    settings = upcoming.settings if upcoming else last.settings if last else SamplingConfig()
    return ContextReady(
        token_ids=([-1] if prompt else []) + [step.token_id for step in applied],
        pieces=pieces,
        rows=no_attention,
        prompt_len=1 if prompt else 0,
        lens=last.lens if last else [],
        norms=last.norms if last else np.zeros(0, np.float32),
        cosines=np.zeros(0, np.float32),
        candidates=upcoming.candidates if upcoming else [],
        config=replace(settings),
        recorded=applied,
    )


def mark_recorded(positions: list[Position], applied: list[ReplayStep]) -> None:
    """Give the generated positions the recorded probability and forced flag (newest positions last)."""
    generated = [position for position in positions if position.generated]
    for position, step in zip(reversed(generated), reversed(applied)):
        chosen = next((c.p_raw for c in step.candidates if c.token_id == step.token_id), None)
        position.p_raw = step.p_raw if step.p_raw is not None else chosen
        position.forced = step.forced


def replay_status(position: int, total: int, recomputes: bool) -> str:
    source = "recomputed" if recomputes else "as recorded"
    return f"replay {position}/{total} · {source}"
