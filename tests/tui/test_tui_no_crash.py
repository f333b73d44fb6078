"""No crash, ever: every block-lab key stays within the lab's limits, and figures that overflow are shown
as "overflow" (the chart stops there) instead of reaching plotext as inf/NaN."""

import random
from dataclasses import replace

import numpy as np
import pytest

from engine.model.blocklab import BlockLabConfig, first_overflow, lab_number, run_block_lab
from tests.tui.conftest import SIZE, settle, wait_until
from tests.tui.test_tui_pilot import toy_app
from tui.controls import nudge_lab, toggle_lab
from tui.lessons import observe_anatomy, observe_layer_norm, observe_residual
from tui.screens.block_lab import BlockLabScreen
from tui.screens.error import ErrorScreen

LAB_FIELDS = ["T", "d_model", "n_heads", "d_ff", "n_layers", "seed", "weight_scale"]
OVERFLOWING = BlockLabConfig(layer_norm=False, weight_scale=2.0, n_layers=48)  # the trial's N, Z ×8, L ×47


def test_every_sequence_of_lab_keys_keeps_a_valid_config():
    """A random walk of 3000 key presses (nudges and switches): each config validates (trial 2: J past 64 heads)."""
    rng = random.Random(0)
    config = BlockLabConfig()
    for _ in range(3000):
        if rng.random() < 0.1:
            config = toggle_lab(
                config, rng.choice(["residual", "layer_norm", "pre_ln", "causal", "activation", "norm_kind", "positions", "n_kv_heads"])
            )
        else:
            field = rng.choice(LAB_FIELDS)
            for _ in range(rng.randint(1, 12)):  # runs of one key, as a learner holds it down
                config = nudge_lab(config, field, rng.choice([-1, 1, 1]))
        config.validate()


def test_more_heads_stops_at_the_labs_maximum():
    config = replace(BlockLabConfig(), d_model=1024)
    for _ in range(10):
        config = nudge_lab(config, "n_heads", 1)
    assert config.n_heads == 64
    config.validate()


def test_an_overflowing_stack_is_named_not_printed_as_a_long_number_or_nan():
    metrics = run_block_lab(OVERFLOWING).metrics
    overflow = first_overflow(metrics)
    assert overflow is not None and np.isfinite(metrics["resid_norm"][:overflow]).all()
    assert lab_number(float("inf")) == lab_number(float("nan")) == "overflow"
    assert lab_number(8.556e67) == "8.56e+67" and lab_number(5.478) == "5.48"
    assert first_overflow(run_block_lab(BlockLabConfig()).metrics) is None


@pytest.mark.anyio
async def test_the_block_lab_shows_overflow_and_the_app_stays_up(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockLabScreen) and app.screen.result is not None, "the block lab")
        lab = app.screen
        await pilot.press("D", "D", "D", "D", "D", "J", "J", "J", "J", "J", "L")  # trial 2: J past the limit
        await pilot.pause()
        assert not isinstance(app.screen, ErrorScreen) and (lab.lab_config.n_heads, lab.lab_config.n_layers) == (64, 2)
        await wait_until(pilot, lambda: lab.result.config == lab.lab_config, "the lab at 64 heads")
        for n_layers in (16, 48):  # huge but finite (drawn as log10), then inf/NaN
            lab.apply(replace(OVERFLOWING, n_layers=n_layers))
            await wait_until(pilot, lambda n=n_layers: lab.result.config.n_layers == n, f"{n_layers} blocks")
            await pilot.pause()
            subtitle = str(lab.query_one("#lab-plot-pane").border_subtitle)
            assert "log₁₀ norm" in subtitle
            assert ("overflow after block" in subtitle) == (n_layers == 48), subtitle
            observed = observe_anatomy(app)
            assert ("e+" in observed) if n_layers == 16 else ("→ overflow" in observed), observed
            assert not any("nan" in observe(app).lower() for observe in (observe_layer_norm, observe_residual))
        await pilot.press("l")  # the chart redraws from an overflowed stack without raising
        await wait_until(pilot, lambda: lab.result.config.n_layers == 47, "47 blocks")
        await pilot.pause()
        assert app.is_running and app.screen is lab
