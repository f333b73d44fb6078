"""The representations screen (V): the 2-D plot moving through the layers, playing them, outliers left out and put
back, and the strip of where each generated token was decided; reached by key and palette; snapshots."""

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.runtime.loading import load_model
from engine.views.representations import context_residuals, projection
from tests.e2e.test_project_cli import sink_model  # noqa: F401 (a fixture: the toy with an outlier first token)
from tests.engine.test_representations import expected_decided, lens_top1_by_transformers
from tests.tui.conftest import notifications, settle, wait_until
from tui.app import make_app
from tui.screens.help import HelpScreen
from tui.screens.representations import RepresentationsScreen
from tui.widgets.decided_strip import DecidedStrip
from tui.widgets.projection_plot import POINT, ProjectionPlot

SMALL, LARGE = (80, 24), (200, 50)


def toy_app(model, palette="color", temperature=0.0):
    return make_app(model=model, config=SamplingConfig(temperature=temperature, seed=0), device="cpu", palette=palette, deterministic=True)


async def open_representations(pilot, steps=("n", "n", "n")) -> RepresentationsScreen:
    app = pilot.app
    await settle(pilot)
    for key in steps:
        await pilot.press(key)
        await settle(pilot)
    await pilot.press("V")
    await wait_until(pilot, lambda: isinstance(app.screen, RepresentationsScreen) and app.screen.computed is not None, "the projection")
    await pilot.pause()
    return app.screen


def widget_text(widget) -> list[str]:
    return [widget.render_line(y).text for y in range(widget.size.height)]


@pytest.mark.anyio
async def test_v_shows_every_token_on_the_shared_axes_and_the_layer_keys_move_through_emb_and_the_blocks(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_representations(pilot)
        ids = [p.token_id for p in app.session.transcript.positions]
        n_layer = toy.info.n_layer
        expected = projection(context_residuals(toy.numpy_model(), ids))
        pane = screen.query_one("#repr-pane")
        assert str(pane.border_title) == f"Representations · emb (0/{n_layer})"
        r1, r2 = expected.explained_variance_ratio
        assert str(pane.border_subtitle) == f"PC1 → {r1:.1%} · PC2 ↑ {r2:.1%} of the variance"
        plot = screen.query_one(ProjectionPlot)
        await pilot.press("right_square_bracket", "right_square_bracket")
        await pilot.pause()
        assert screen.shown_layer == 2 and str(pane.border_title) == f"Representations · block 2 (2/{n_layer})"
        np.testing.assert_allclose(plot.points, expected.coords[2]) and np.testing.assert_allclose(plot.before, expected.coords[1])
        text = "\n".join(widget_text(plot))
        assert text.count(POINT) >= 1 and any(label in text for label in ("In", "·a", "·small", "·village"))
        await pilot.press("end")
        assert screen.shown_layer == n_layer
        await pilot.press("right")  # past the last block: stays
        assert screen.shown_layer == n_layer
        await pilot.press("home", "left")
        assert screen.shown_layer == 0 and plot.before is None
        await pilot.press("V")  # the key that opened it closes it
        await pilot.pause()
        assert app.screen is app.main_screen


@pytest.mark.anyio
async def test_space_plays_the_layers_to_the_last_block_and_stops_there(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_representations(pilot)
        await pilot.press("space")
        assert screen.player is not None and "playing" in str(screen.query_one("#repr-pane").border_title)
        await wait_until(pilot, lambda: screen.player is None, "the play to end")
        assert screen.shown_layer == toy.info.n_layer
        await pilot.press("space")  # from the end: starts again at emb
        assert screen.shown_layer == 0 and screen.player is not None
        await pilot.press("space")  # pauses
        assert screen.player is None


@pytest.mark.anyio
async def test_the_strip_marks_each_generated_token_with_the_block_a_lens_computed_here_names(toy):
    app = toy_app(toy, temperature=1.5)
    async with app.run_test(size=LARGE) as pilot:
        screen = await open_representations(pilot, ("n",) * 10 + ("9",))  # sampled at T 1.5, then a 9th candidate forced
        positions = app.session.transcript.positions
        ids = [p.token_id for p in positions]
        first = screen.first_generated
        assert first == sum(1 for p in positions if not p.generated) and len(ids) - first == 11
        expected = [expected_decided(lens_top1_by_transformers(toy.hf_model, ids, t - 1), ids[t]) for t in range(first, len(ids))]
        assert screen.computed.decided == expected and expected[-1] is None
        marks = "".join(widget_text(screen.query_one(DecidedStrip))[0::2])  # the rows of marks, over the rows of text
        assert marks.split() == ["✗" if d is None else str(d + 1) for d in expected]
        title = str(screen.query_one("#decided-pane").border_title)
        assert title.startswith("Where each token was decided · ") and f"✗ {expected.count(None)}" in title


@pytest.mark.anyio
async def test_an_outlier_first_token_is_left_out_named_and_o_puts_it_back(sink_model):  # noqa: F811
    model = load_model(str(sink_model), device="cpu")
    app = toy_app(model)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_representations(pilot)
        line = str(screen.query_one("#repr-excluded").render())
        assert line.startswith("left out: In (position 0, norm") and "o puts it back" in line
        assert 0 not in screen.shown.positions and screen.query_one(ProjectionPlot).points.shape[0] == len(screen.ids) - 1
        await pilot.press("o")
        assert screen.shown.positions == list(range(len(screen.ids))) and screen.shown.explained_variance_ratio[0] > 0.9
        assert str(screen.query_one("#repr-excluded").render()).startswith("outliers shown: In")
        await pilot.press("o")
        assert 0 not in screen.shown.positions


@pytest.mark.anyio
async def test_o_without_outliers_says_every_position_is_projected(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_representations(pilot)
        assert str(screen.query_one("#repr-excluded").render()).startswith("every position projected")
        await pilot.press("o")
        await pilot.pause()
        assert screen.include_outliers is False and any("No outliers here" in n for n in notifications(app))


@pytest.mark.anyio
async def test_the_palette_opens_it_help_lists_its_keys_and_its_figures_hold_the_projection(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        command = next(c for c in app.get_system_commands(app.main_screen) if c.title == "Representations")
        await command.callback()  # main.run_action("representations")
        await wait_until(pilot, lambda: isinstance(app.screen, RepresentationsScreen) and app.screen.computed is not None, "the screen")
        figures = app.screen.figures()["data"]["representations"]
        assert {"tokens", "positions", "excluded", "explained_variance_ratio", "layers", "layer_shown", "decided"} <= figures.keys()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        text = str(app.screen.query_one("#help-here").render())
        assert text.startswith("Representations (V) · this screen") and "Play the layers" in text and "outliers back" in text


# ---- snapshots -------------------------------------------------------------------------------------
async def at_block_3_after_eight_greedy_tokens(pilot) -> None:
    await open_representations(pilot, ("n",) * 8)
    await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
    await pilot.pause()


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=lambda size: f"{size[0]}x{size[1]}")
def test_representations_snapshot(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=at_block_3_after_eight_greedy_tokens, terminal_size=size)


def test_representations_snapshot_in_shade_mode(snap_compare, toy):
    assert snap_compare(toy_app(toy, palette="shade"), run_before=at_block_3_after_eight_greedy_tokens, terminal_size=SMALL)
