"""Ablation, live: x and X knock out the shown head (or layer's attention) and MLP, 0 restores them."""

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.model.interventions import Ablation, run_numpy
from engine.runtime.interventions import Inspector
from tests.conftest import sampler_of
from tests.tui.conftest import SIZE, settle, wait_until
from tests.tui.test_tui_insight import attribution_ready, open_screen
from tui.app import make_app
from tui.screens.attribution import AttributionScreen
from tui.screens.heads import HeadsScreen
from tui.screens.representations import RepresentationsScreen
from tui.widgets.candidates import CandidatesView
from tui.widgets.layers import LayerChart, LensColumn
from tui.widgets.parameters import ParametersView


def toy_app(toy):
    return make_app(model=toy, config=SamplingConfig(temperature=0.0), device="cpu", palette="color", deterministic=True)


def parameters_text(app) -> str:
    return app.main_screen.query_one(ParametersView).render().plain


@pytest.mark.anyio
async def test_x_shows_the_ablated_distribution_beside_the_intact_one_generation_follows_and_0_clears_it(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.main_screen
        intact = [c.token_id for c in main.session.transcript.candidates]
        await pilot.press("x", "X")  # the mean of heads is shown: layer 0's attention, then its MLP
        await settle(pilot)
        assert main.session.ablations == (Ablation(0, "attn"), Ablation(0, "mlp"))
        assert "ablated B1.attn" in parameters_text(app)  # block 1 on screen; the rest may be cut with "…" in a narrow pane
        view = main.query_one(CandidatesView).ablation
        assert view is not None and view.kl > 0 and "KL" in str(main.query_one("#candidates-pane").border_subtitle)
        sampler = sampler_of(app)
        expected = run_numpy(sampler.backend.net, sampler.tokens, main.session.ablations).logits  # [V]
        assert main.session.transcript.candidates[0].token_id == int(np.argmax(expected))  # the ablated model's candidates
        assert [c.token_id for c in main.session.transcript.candidates] != intact
        await pilot.press("n")
        await settle(pilot)
        event = [line for line in main.session.trace.lines() if isinstance(line, dict) and "id" in line][-1]
        assert event["ablated"] == ["L0.attn", "L0.mlp"] and event["id"] == int(np.argmax(expected))  # greedy, ablated
        assert {"ablations": ["L0.attn", "L0.mlp"], "mode": "zero"} in main.session.trace.lines()
        await pilot.press("0")
        await settle(pilot)
        assert main.session.ablations == () and "ablated" not in parameters_text(app)
        assert main.query_one(CandidatesView).ablation is None
        assert "p before" in str(main.query_one("#candidates-pane").border_subtitle)


@pytest.mark.anyio
async def test_the_ablated_line_fits_the_parameters_pane_at_80x24(toy):
    app = toy_app(toy)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        view = app.main_screen.query_one(ParametersView)
        assert view.lines[-1][0] == "ablated" and len(view.lines) <= view.region.height  # every line on screen


@pytest.mark.anyio
async def test_x_on_a_head_knocks_out_that_head_and_mean_ablation_is_a_palette_switch(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.main_screen
        await pilot.press("right_curly_bracket", "right_curly_bracket", "x")  # head 1 of layer 0: "B1.H2" on screen
        await settle(pilot)
        assert main.session.ablations == (Ablation(0, "head", 1),) and "ablated B1.H2" in parameters_text(app)
        await main.run_action("ablation_mode")  # what the palette entry "Mean ablation on/off" runs
        await settle(pilot)
        assert main.session.ablation_mode == "mean" and "mean-ablated B1.H2" in parameters_text(app)
        assert sampler_of(app).ablation_mode == "mean"
        await pilot.press("x")  # again: restored
        await settle(pilot)
        assert main.session.ablations == () and main.query_one(CandidatesView).ablation is None


@pytest.mark.anyio
async def test_under_ablation_layers_and_attribution_show_the_ablated_model_and_attention_says_it_is_intact(toy):
    """Defects 5 and 6: the Layers pane and the attribution screen follow the ablated model, as Candidates does."""
    app = toy_app(toy)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        main = app.main_screen
        intact_lens = [e.token_id for e in main.session.transcript.lens]
        for key in ["right_square_bracket"] * 4 + ["X", "right_square_bracket", "X"]:  # blocks 5 and 6's MLPs
            await pilot.press(key)
        await settle(pilot)
        assert main.session.ablations == (Ablation(4, "mlp"), Ablation(5, "mlp"))
        sampler = sampler_of(app)
        run = run_numpy(sampler.backend.net, sampler.tokens, main.session.ablations)
        lens = [int(i) for i in sampler.backend.net.lens(run.resid[1:]).argmax(axis=-1)]  # [L] the ablated model's lens
        assert [e.token_id for e in main.query_one(LensColumn).lens] == lens != intact_lens
        assert np.allclose(main.query_one(LayerChart).norms, np.linalg.norm(run.resid, axis=-1), rtol=1e-4)
        assert str(main.query_one("#layers-pane").border_title) == "Layers · ablated B5.mlp, B6.mlp"
        assert str(main.query_one("#attention-pane").border_title) == "Attention · intact model"
        await pilot.press("h")  # all heads: the same intact rows, said so
        await wait_until(pilot, lambda: isinstance(app.screen, HeadsScreen), "all heads")
        await pilot.pause()
        assert str(app.screen.query_one("#heads-pane").border_title).endswith("· intact model")
        await pilot.press("escape", "V")  # representations: the intact model's residual stream, said so
        await wait_until(pilot, lambda: isinstance(app.screen, RepresentationsScreen), "representations")
        await pilot.pause()
        assert str(app.screen.query_one("#repr-pane").border_title).endswith("· intact model")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is main, "the main screen")
        screen = await open_screen(pilot, "a", AttributionScreen)
        await attribution_ready(pilot, screen)
        top = main.session.transcript.candidates[0]
        expected = Inspector(toy, "numpy").attribution(run, top.token_id)
        assert screen.attribution.logit == pytest.approx(float(run.logits[top.token_id]), abs=1e-5)
        assert screen.attribution.mlp[4:] == pytest.approx(expected.mlp[4:], abs=1e-5)  # the knocked-out MLPs add only their bias
        assert "ablated B5.mlp, B6.mlp" in str(screen.query_one("#attr-pane").border_title)
        await pilot.press("escape", "0")
        await settle(pilot)
        assert [e.token_id for e in main.query_one(LensColumn).lens] == intact_lens
        assert str(main.query_one("#layers-pane").border_title) == "Layers"
