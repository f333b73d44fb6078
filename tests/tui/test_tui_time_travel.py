"""Time travel: selecting an earlier token shows the step that chose it, as it happened."""

import numpy as np
import pytest

from engine.model.sampling import raw_probs
from tests.conftest import sampler_of
from tests.tui.conftest import SIZE, notifications, settle, wait_until
from tests.tui.test_tui_fit import SMALL, toy_app
from tui.widgets.candidates import CandidatesView
from tui.widgets.generation import TokenLines
from tui.widgets.layers import LensColumn


def shown(app) -> CandidatesView:
    return app.main_screen.query_one(CandidatesView)


async def sampled_tokens(pilot, n: int) -> None:
    await settle(pilot)
    for _ in range(n):
        await pilot.press("n")
        await settle(pilot)


@pytest.mark.anyio
async def test_an_earlier_generated_token_shows_its_recorded_candidates_lens_and_attention_row(toy):
    app = toy_app(toy, temperature=0.8, top_k=20)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.main_screen
        prompt_len = len(main.session.transcript.positions)
        live_lens_before_first = list(main.query_one(LensColumn).lens)  # the view the first token was drawn in
        await sampled_tokens(pilot, 4)
        tokens = [line for line in main.session.trace.lines() if isinstance(line, dict) and "candidates" in line]
        n_tokens = len(main.session.transcript.positions)

        await pilot.press("left", "left", "left", "left")  # the first generated token
        await pilot.pause()
        first = prompt_len
        assert main.session.selected_token == first
        view = shown(app)
        recorded = tokens[0]
        assert [c.token_id for c in view.candidates[:5]] == [c["id"] for c in recorded["candidates"]]
        assert [round(c.p, 6) for c in view.candidates[:5]] == [c["p"] for c in recorded["candidates"]]
        assert view.chosen[0] == recorded["id"] == main.session.transcript.positions[first].token_id
        assert view.heading == f"token {first + 1} of {n_tokens} · generated at T 0.80 · top-k 20"
        assert main.query_one(LensColumn).lens == live_lens_before_first  # the layers' guesses of the chosen token
        assert main.session.highlighted_token() == first - 1  # the row of the position that chose it

        await pilot.press("right")  # the second generated token: its own step
        await pilot.pause()
        assert [c.token_id for c in shown(app).candidates[:5]] == [c["id"] for c in tokens[1]["candidates"]]
        assert main.query_one(LensColumn).lens == main.session.transcript.positions[first + 1].step.lens


@pytest.mark.anyio
async def test_a_prompt_token_gets_the_models_prediction_from_the_tokens_before_it(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.main_screen
        ids = [p.token_id for p in main.session.transcript.positions]
        assert len(ids) >= 3
        await pilot.press(*["left"] * (len(ids) - 1))  # the second prompt token
        await wait_until(pilot, lambda: main.session.transcript.positions[1].step is not None, "the recalled step")
        await pilot.pause()
        net = sampler_of(app).backend.net
        p = raw_probs(net.forward(ids[:1])[0][-1])  # [V] the model reading only the first token
        view = shown(app)
        assert view.candidates[0].token_id == int(np.argmax(p))
        assert view.candidates[0].p_raw == pytest.approx(float(p.max()), abs=1e-5)
        assert view.chosen[0] == ids[1]
        assert view.heading == f"token 2 of {len(ids)} · prompt token"
        assert len(main.query_one(LensColumn).lens) == toy.info.n_layer

        await pilot.press("left")  # the first token: nothing predicts it
        await pilot.pause()
        assert shown(app).candidates == []
        assert "nothing before it predicts it" in shown(app).heading


@pytest.mark.anyio
async def test_stepping_or_end_returns_to_the_live_next_token_and_digits_wait_for_it(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await sampled_tokens(pilot, 2)
        main = app.main_screen
        live = list(main.session.transcript.candidates)
        await pilot.press("left")
        await pilot.pause()
        assert shown(app).heading and shown(app).candidates != live
        n_before = len(main.session.transcript.positions)
        await pilot.press("end")
        await pilot.pause()
        assert main.session.selected_token is None and shown(app).heading == "" and shown(app).candidates == live

        await pilot.press("left", "left")
        await pilot.press("n")
        await settle(pilot)
        assert main.session.selected_token is None and shown(app).heading == ""
        assert len(main.session.transcript.positions) == n_before + 1


@pytest.mark.anyio
async def test_clicking_a_token_selects_it(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await sampled_tokens(pilot, 2)
        main = app.main_screen
        lines = main.query_one(TokenLines)
        assert lines.token_at(0, 0) == 0
        x_second = len(main.session.transcript.positions[0].piece)  # the first cell of the second token (ASCII prompt)
        assert lines.token_at(x_second, 0) == 1
        await pilot.click(TokenLines, offset=(x_second, 0))
        await pilot.pause()
        assert main.session.selected_token == 1
        assert shown(app).heading.startswith(f"token 2 of {len(main.session.transcript.positions)}")


@pytest.mark.anyio
async def test_a_digit_at_an_earlier_step_branches_there_taking_that_candidate_instead(toy):
    app = toy_app(toy, temperature=0.8, top_k=20)
    async with app.run_test(size=SMALL) as pilot:
        await sampled_tokens(pilot, 4)
        main = app.main_screen
        ids = [p.token_id for p in main.session.transcript.positions]
        branch_at = len(ids) - 3  # the second generated token
        await pilot.press("left", "left", "left")
        await pilot.pause()
        assert main.session.selected_token == branch_at
        instead = shown(app).candidates[2]  # candidate 3 of that step
        await pilot.press("3")
        await settle(pilot)
        after = [p.token_id for p in main.session.transcript.positions]
        assert after == ids[:branch_at] + [instead.token_id]
        assert main.session.selected_token is None and sampler_of(app).tokens == after  # back to live, the sampler agrees
        assert main.session.transcript.positions[-1].forced
        lines = main.session.trace.lines()
        assert [line["undo"] for line in lines if isinstance(line, dict) and "undo" in line] == [len(ids) - 1, len(ids) - 2, len(ids) - 3]

        await pilot.press(*["left"] * len(after))  # the first token: a prompt token cannot be branched
        await pilot.press("2")
        await pilot.pause()
        assert [p.token_id for p in main.session.transcript.positions] == after
        assert any("prompt token" in text for text in notifications(app))
