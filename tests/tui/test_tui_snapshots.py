"""Snapshots of every tfund-tui screen with the toy model and a fixed seed, at 100×30 and at 80×24.

The app runs with deterministic=True (no timings on screen; parity shown against its tolerance
rather than as a machine-dependent figure) and palette="color", so the pictures do not depend on
the terminal the tests run in. Each screen is reached as a user reaches it (make_app's options and
keys), and the picture is taken once what it waits for is on screen (the model, the first results),
never a loading state. Update with `python -m pytest -n 0 tests/tui/test_tui_snapshots.py --snapshot-update`
(one process: the report and the update see every snapshot) only after reading the report.
"""

import dataclasses

import pytest

from engine.events import SamplingConfig
from engine.runtime.sampler import Sampler
from engine.views.trace import TraceWriter
from tests.conftest import replay_of
from tests.tui.conftest import settle, wait_until
from tui.app import DEFAULT_PROMPT, make_app
from tui.lessons import observe_lens
from tui.screens.attribution import AttributionScreen
from tui.screens.block_lab import BlockLabScreen
from tui.screens.compare import CompareScreen
from tui.screens.error import ErrorScreen
from tui.screens.heads import HeadsScreen
from tui.screens.help import HelpScreen
from tui.screens.tokenize import TokenizeScreen

SIZES = [(100, 30), (80, 24)]
sizes = pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
MISSING_MODEL = "/nonexistent/tfund-model"  # a fixed path: the error sentence names it


def toy_app(toy, **options):
    return make_app(model=toy, config=SamplingConfig(temperature=0.0, seed=0), device="cpu", palette="color", deterministic=True, **options)


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
    await wait_until(pilot, lambda: lab.result is not None and pilot.app.session.parity != (None, None), "the block lab and parity")
    await settle(pilot)
    await pilot.pause()


async def settle_compare(pilot, screen) -> None:
    await wait_until(pilot, lambda: screen.side_a is not None and screen.engine.idle, "the compare jobs")
    await pilot.pause()


async def compare_after_three_steps(pilot) -> None:
    await settle(pilot)
    await pilot.press("c")
    screen = pilot.app.screen
    assert isinstance(screen, CompareScreen)
    await settle_compare(pilot, screen)
    await pilot.press("n", "n", "n")
    await wait_until(pilot, lambda: len(screen.steps) == 3, "three compare steps")
    await settle_compare(pilot, screen)


async def tokenization_of_the_first_example(pilot) -> None:
    await settle(pilot)
    await pilot.press("w")
    screen = pilot.app.screen
    assert isinstance(screen, TokenizeScreen)
    await wait_until(
        pilot, lambda: screen.tokenization is not None and "computing" not in screen.encoder_note, "the tokens and the attention note"
    )
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def help_over_the_main_screen(pilot) -> None:
    await settle(pilot)
    await pilot.press("question_mark")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help screen")
    await pilot.pause()


async def the_load_error(pilot) -> None:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ErrorScreen), "the error modal")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def replay_at_step_three(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: replay_of(app) is not None and app.session.engine.idle, "the replay")
    await pilot.press("n", "n", "n")
    await wait_until(pilot, lambda: app.session.transcript.n_generated == 3 and app.session.engine.idle, "three replayed tokens")
    await pilot.pause()


async def time_travelled_to_the_first_generated_token(pilot) -> None:
    await settle(pilot)
    await pilot.press("n", "n", "n", "left", "left", "left")  # the step that chose the first generated token
    await settle(pilot)


async def the_lens_lesson_after_two_tokens(pilot) -> None:
    await settle(pilot)
    await pilot.press("G", *[")"] * 7, "n", "n")  # lesson 7: the logit lens, on the main screen
    await settle(pilot)
    app = pilot.app

    def observed() -> bool:
        boxes = app.screen.query("#lesson")
        return bool(boxes) and "lesson 7/" in str(boxes.first().render()) and observe_lens(app) in str(boxes.first().render())

    await wait_until(pilot, observed, "lesson 7's observation of the newest token")
    await pilot.pause()


async def the_layer_norm_lessons_why_after_its_task(pilot) -> None:
    await settle(pilot)
    await pilot.press("G", *[")"] * 4)  # lesson 4: layer norm, in the block lab
    app = pilot.app
    await wait_until(pilot, lambda: getattr(app.screen, "result", None) is not None and app.lesson_start is not None, "the lab")
    await wait_until(pilot, lambda: app.session.parity != (None, None), "the parity check")
    await pilot.press("N", "W")
    await wait_until(pilot, lambda: bool(app.screen.query("#lesson-card")) and app.screen.query_one("#lesson-card").shown, "the why")
    await wait_until(pilot, lambda: "Done:" in str(app.screen.query_one("#lesson").render()), "the strip's done")
    await pilot.pause()


def write_recording(toy, path) -> str:
    """Five tokens sampled at T=1.3, seed 7, traced as tfund-tui traces them."""
    sampler = Sampler(toy, SamplingConfig(temperature=1.3, seed=7))
    sampler.set_prompt(DEFAULT_PROMPT)
    with TraceWriter(path) as trace:
        trace.write_record({"session": {"model": "toy", "prompt": DEFAULT_PROMPT}})
        for _ in range(5):
            trace.write(sampler.step())
    return str(path)


@pytest.mark.parametrize("size", [*SIZES, (200, 50)], ids=lambda size: f"{size[0]}x{size[1]}")  # and a large terminal
def test_main_screen_after_three_greedy_tokens(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=three_greedy_tokens, terminal_size=size)


@sizes
def test_time_travel_to_an_earlier_token(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=time_travelled_to_the_first_generated_token, terminal_size=size)


@sizes
def test_a_lesson_on_the_main_screen(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=the_lens_lesson_after_two_tokens, terminal_size=size)


@sizes
def test_a_lessons_why_beside_the_pane_it_talks_about(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=the_layer_norm_lessons_why_after_its_task, terminal_size=size)


@sizes
def test_block_lab(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=block_lab_with_parity, terminal_size=size)


@sizes
def test_compare_after_three_steps(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=compare_after_three_steps, terminal_size=size)


@sizes
def test_tokenization(snap_compare, toy, size):
    # the encoder pane names the model's directory: "toy" (as a user names it) instead of this checkout's path
    named = dataclasses.replace(toy, path="toy")
    assert snap_compare(toy_app(named), run_before=tokenization_of_the_first_example, terminal_size=size)


@sizes
def test_help(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=help_over_the_main_screen, terminal_size=size)


@sizes
def test_error_modal_for_a_model_that_fails_to_load(snap_compare, size):
    app = make_app(model=MISSING_MODEL, device="cpu", palette="color", deterministic=True)
    assert snap_compare(app, run_before=the_load_error, terminal_size=size)


@sizes
def test_replay_after_three_steps(snap_compare, toy, size, tmp_path):
    app = toy_app(toy, replay=write_recording(toy, tmp_path / "session.jsonl"))
    assert snap_compare(app, run_before=replay_at_step_three, terminal_size=size)


async def all_heads_after_three_tokens(pilot) -> None:
    await settle(pilot)
    await pilot.press("n", "n", "n")
    await settle(pilot)
    await pilot.press("h")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, HeadsScreen) and pilot.app.screen.stats is not None, "the head statistics")
    await pilot.press("o")  # sorted by entropy
    await pilot.pause()


async def attribution_after_three_tokens(pilot) -> None:
    await settle(pilot)
    await pilot.press("n", "n", "n")
    await settle(pilot)
    await pilot.press("a")
    screen = pilot.app.screen
    await wait_until(pilot, lambda: isinstance(screen, AttributionScreen) and screen.attributions is not None, "the attribution")
    await pilot.press("enter")  # layer 0's heads
    await pilot.pause()


@sizes
def test_all_heads(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=all_heads_after_three_tokens, terminal_size=size)


@sizes
def test_attribution(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=attribution_after_three_tokens, terminal_size=size)


async def candidates_explained(pilot) -> None:
    await three_greedy_tokens(pilot)
    await pilot.press("tab", "E")  # from the generation text to the Candidates pane: its explanation below it
    await pilot.pause()


@sizes
def test_main_screen_explaining_the_candidates(snap_compare, toy, size):
    assert snap_compare(toy_app(toy), run_before=candidates_explained, terminal_size=size)
