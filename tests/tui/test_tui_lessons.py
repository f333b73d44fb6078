"""Guided lessons: each opens its screen in its starting state, and its observation follows what the learner does."""

from dataclasses import replace

import pytest

from engine.model.blocklab import run_block_lab
from tests.tui.conftest import settle, wait_until
from tests.tui.test_tui_fit import SMALL, toy_app
from tui.lessons import DEEP_LAB, LESSONS
from tui.screens.block_lab import BlockLabScreen
from tui.screens.compare import CompareScreen
from tui.screens.main import MainScreen
from tui.screens.tokenize import TokenizeScreen
from tui.widgets.lesson_box import LessonBox

# lesson title -> (the screen it opens, the keys its task asks for)
TASKS = {
    "The block's anatomy": (BlockLabScreen, ["L"]),
    "Causal masking": (BlockLabScreen, ["u"]),
    "Residual connections": (BlockLabScreen, ["R"]),
    "Layer norm": (BlockLabScreen, ["N"]),
    "Pre-LN vs post-LN": (BlockLabScreen, ["o"]),
    "Stacking layers: the logit lens": (MainScreen, ["n", "n", "n"]),
    "The generation loop and the KV cache": (MainScreen, ["n"]),
    "Temperature, top-k and top-p": (MainScreen, ["T"]),
    "Comparing two temperatures": (CompareScreen, ["n"]),
    "Multilingual tokenization": (TokenizeScreen, ["ctrl+n"]),
    "Reflection": (MainScreen, ["e"]),
}


def box_text(app) -> str:
    return str(app.screen.query_one(LessonBox).render())


def observation(app) -> str:
    return box_text(app).split("Now: ")[1]


async def lesson_shown(pilot, number: int) -> None:
    await wait_until(pilot, lambda: app_box_says(pilot.app, f"lesson {number} of {len(LESSONS)}"), f"lesson {number}")


def app_box_says(app, text: str) -> bool:
    boxes = app.screen.query(LessonBox)
    return bool(boxes) and text in str(boxes.first().render())


def screen_ready(screen) -> bool:
    """Its engine (the session's, compare's) has nothing left to do, its block or sentence is computed."""
    engine = screen.session.engine if isinstance(screen, MainScreen) else getattr(screen, "engine", None)
    return (
        (engine is None or engine.idle)
        and getattr(screen, "result", True) is not None
        and getattr(screen, "tokenization", True) is not None
    )


def test_every_lesson_has_a_task_here_and_there_are_at_least_eight():
    assert len(LESSONS) >= 8
    assert [lesson.title for lesson in LESSONS] == list(TASKS)


@pytest.mark.anyio
@pytest.mark.parametrize("number", range(1, len(LESSONS) + 1))
async def test_each_lesson_sets_up_its_screen_and_its_observation_follows_the_task(toy, tmp_path, number):
    lesson = LESSONS[number - 1]
    screen_kind, keys = TASKS[lesson.title]
    app = toy_app(toy, tmp_path)
    async with app.run_test(size=SMALL) as pilot:  # every lesson works at 80×24
        await settle(pilot)
        await pilot.press("G", *[")"] * (number - 1))
        await lesson_shown(pilot, number)
        assert isinstance(app.screen, screen_kind)
        if lesson.lab is not None:
            assert app.screen.lab_config == lesson.lab
        await wait_until(pilot, lambda: screen_ready(app.screen), "the lesson's screen")
        await settle(pilot)
        before = observation(app)
        await pilot.press(*keys)
        await wait_until(pilot, lambda: observation(app) != before, f"the observation of '{lesson.title}' to change after {keys}")
        assert lesson.title in box_text(app) and lesson.task in box_text(app)


@pytest.mark.anyio
async def test_the_residual_lessons_numbers_are_the_block_labs_with_the_switch_on_and_off(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("G", ")", ")")
        await lesson_shown(pilot, 3)
        on = run_block_lab(replace(DEEP_LAB)).metrics["token_cosine"][-1]
        off = run_block_lab(replace(DEEP_LAB, residual=False)).metrics["token_cosine"][-1]
        assert observation(app) == f"token cosine after block 6: {on:.2f} with residual on (now) — {off:.2f} with residual off"
        await pilot.press("R")
        await wait_until(pilot, lambda: observation(app).startswith(f"token cosine after block 6: {off:.2f}"), "the flipped numbers")


@pytest.mark.anyio
async def test_g_closes_and_reopens_the_last_lesson_the_palette_opens_them_and_parentheses_stop_at_the_ends(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("(")  # no lesson open: the first one
        await lesson_shown(pilot, 1)
        await pilot.press("(")
        await pilot.pause()
        assert app.lesson == 0
        await pilot.press(*[")"] * (len(LESSONS) + 2))
        await lesson_shown(pilot, len(LESSONS))
        await pilot.press("G")
        await pilot.pause()
        assert app.lesson is None and not any(screen.query(LessonBox) for screen in app.screen_stack)
        await pilot.press("G")
        await lesson_shown(pilot, len(LESSONS))
        await pilot.press("G")
        await pilot.pause()
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Lessons" in titles
        next(command for command in app.get_system_commands(app.screen) if command.title == "Lessons").callback()
        await lesson_shown(pilot, len(LESSONS))


@pytest.mark.anyio
async def test_the_lesson_box_follows_the_learner_to_another_screen(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("G")  # lesson 1: the block lab
        await lesson_shown(pilot, 1)
        await pilot.press("b")  # back to the main screen: the lesson stays, and says where its observation is
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and app_box_says(app, "Open the block lab (b)"), "the box")
        await pilot.press("b")  # and back in the lab (opened anew, on the notebook's block), the observation again
        await wait_until(pilot, lambda: isinstance(app.screen, BlockLabScreen) and app_box_says(app, "1 block: residual norm"), "the lab's")
