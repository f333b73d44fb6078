"""The window and its slides, said on screen: a too-long prompt's dropped start, each slide, and time
travel to a step taken before a slide (audit D2: its context was longer than the attention shown)."""

import pytest

from engine.events import SamplingConfig
from engine.runtime.sampler import Sampler
from tests.tui.conftest import SIZE, notifications, settle, wait_until
from tui.app import make_app
from tui.messages import ContextReady
from tui.screens.main import travel_heading
from tui.transcript import Transcript


def test_steps_taken_before_a_slide_say_so_and_later_ones_do_not(short_context_toy):
    sampler = Sampler(short_context_toy, SamplingConfig(temperature=0.0))
    sampler.set_prompt("In a small village,")
    transcript = Transcript()
    transcript.reset_to(ContextReady.of_sampler(sampler))
    the = short_context_toy.tokenizer.encode(" the")[0]
    while True:
        event = sampler.force(the)
        transcript.append(event)
        if event.slid:
            transcript.replace_rows([view.attention for view in sampler.views])  # as on_tokens_generated does
            break
    after = sampler.force(the)
    transcript.append(after)
    positions = transcript.positions
    assert all(p.before_slide for p in positions[:-1]) and not positions[-1].before_slide
    assert "drawn before the window slid" in travel_heading(len(positions) - 2, len(positions), positions[-2])
    assert "slid" not in travel_heading(len(positions) - 1, len(positions), positions[-1])
    assert transcript.remember_step(1, positions[1].token_id, sampler.prediction_before(1))
    assert not positions[1].before_slide  # recalled over the window as it is now


@pytest.mark.anyio
async def test_the_app_says_when_the_prompt_was_cut_and_when_the_window_slides(short_context_toy):
    long_prompt = "In a small village," + " the" * 30  # the 24-position window holds 23 of its 35 tokens
    app = make_app(model=short_context_toy, prompt=long_prompt, config=SamplingConfig(temperature=0.0), deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "The prompt is 35 tokens and the window holds 23 of them: the oldest 12 were dropped." in notifications(app)
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("n")  # the window is full: this step slides it
        await wait_until(pilot, lambda: any(n.startswith("The window is full") for n in notifications(app)), "the slide notice")
        said = next(n for n in notifications(app) if n.startswith("The window is full"))
        assert f"the model now sees the last {len(app.session.transcript.positions)}" in said
