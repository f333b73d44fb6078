"""Snapshots of tfund-tui with the toy model and a fixed seed, at 100×30 and at 80×24.

The app runs with deterministic=True (no timings on screen; parity shown against its tolerance
rather than as a machine-dependent figure) and palette="color", so the pictures do not depend on
the terminal the tests run in. Update with `pytest tests/tui/test_tui_snapshots.py --snapshot-update`
only after reading the report.
"""

import time

import pytest

from engine.events import SamplingConfig
from tests.conftest import sampler_of
from tui.app import make_app
from tui.screens.block_lab import BlockLabScreen

SIZES = [(100, 30), (80, 24)]
SETTLE_TIMEOUT_S = 60  # a guard against hangs, not a timing assertion


def toy_app(toy):
    return make_app(model=toy, config=SamplingConfig(temperature=0.0, seed=0), device="cpu", palette="color", deterministic=True)


async def wait_until(pilot, condition) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, "the app did not settle"
        await pilot.pause(0.01)
    await pilot.pause()


async def settle(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: sampler_of(app) is not None and app.main_screen.engine.idle)


async def three_greedy_tokens(pilot) -> None:
    await settle(pilot)
    await pilot.press("n", "n", "n")
    await settle(pilot)
    await pilot.press("right_square_bracket")  # the heatmap shows the second layer
    await pilot.pause()


async def block_lab_with_parity(pilot) -> None:
    await settle(pilot)
    await pilot.press("b")
    await pilot.pause()
    lab = pilot.app.screen
    assert isinstance(lab, BlockLabScreen)
    await wait_until(pilot, lambda: lab.result is not None and pilot.app.main_screen.parity != (None, None))
    await settle(pilot)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_main_screen_after_three_greedy_tokens(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=three_greedy_tokens, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_block_lab(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=block_lab_with_parity, terminal_size=size)
