"""Guided lessons: each opens its screen in its starting state, asks its prediction, its observation follows
what the learner does, the pane it talks about stays in sight, and W and C open its why and its check."""

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
from tui.widgets.lesson_box import LessonBox, LessonCard, WayIn

# lesson title -> (the screen it opens, the keys its task asks for)
TASKS = {
    "A tour of the panes": (MainScreen, ["tab"]),
    "The block's anatomy": (BlockLabScreen, ["L"]),
    "Causal masking": (BlockLabScreen, ["u"]),
    "Residual connections": (BlockLabScreen, ["R"]),
    "Layer norm": (BlockLabScreen, ["N"]),
    "Pre-LN vs post-LN": (BlockLabScreen, ["o"]),
    "The feed-forward network": (BlockLabScreen, ["I"]),
    "Stacking layers: the logit lens": (MainScreen, ["n", "n", "n"]),
    "The generation loop and the KV cache": (MainScreen, ["n"]),
    "Temperature, top-k and top-p": (MainScreen, ["T"]),
    "Comparing two temperatures": (CompareScreen, ["n"]),
    "Where did the attention concentrate?": (MainScreen, ["right_curly_bracket"]),
    "Multilingual tokenization": (TokenizeScreen, ["ctrl+n"]),
    "Reflection": (MainScreen, ["e"]),
    "Encoders, decoders, the causal mask": (BlockLabScreen, ["u"]),
    "GPT-2's block vs the modern block": (BlockLabScreen, ["H"]),
    "A real model's heads": (MainScreen, ["n"]),
}
LINE = 76  # the strip's width at 80 columns, its padding and a cell aside
LAST = len(LESSONS) - 1  # lessons count from 0, the tour


def box_text(app) -> str:
    return str(app.screen.query_one(LessonBox).render())


def observation(app) -> str:
    return box_text(app).split("Now: ")[1]


async def lesson_shown(pilot, number: int) -> None:
    await wait_until(pilot, lambda: app_box_says(pilot.app, f"lesson {number}/{LAST} "), f"lesson {number}")


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


def test_every_lesson_has_a_task_here_a_prediction_a_why_and_a_check_that_fit():
    assert len(LESSONS) >= 14
    assert [lesson.title for lesson in LESSONS] == list(TASKS)
    for lesson in LESSONS:
        assert lesson.predict and lesson.why and lesson.check and lesson.answer, lesson.title
        assert len("Predict: " + lesson.predict) <= LINE and len("Try: " + lesson.task) <= LINE, lesson.title
        assert len(lesson.why) <= 600, f"{lesson.title}: the why is {len(lesson.why)} characters"


# every lesson walks on the toy (GPT-2) and on a Llama built here at both sizes, and on the real SmolLM2 at the
# tighter one (its block-lab lessons check its parity with torch: half a minute each)
WALKS = [("toy", SMALL), ("toy", (100, 30)), ("tiny_llama", SMALL), ("tiny_llama", (100, 30)), ("smollm2", SMALL)]


@pytest.mark.anyio
@pytest.mark.parametrize("model_name, size", WALKS, ids=[f"{name}-{w}x{h}" for name, (w, h) in WALKS])
@pytest.mark.parametrize("number", range(len(LESSONS)))
async def test_each_lesson_predicts_observes_explains_and_checks_with_its_pane_in_sight(request, tmp_path, number, model_name, size):
    lesson_model = request.getfixturevalue(model_name)
    lesson = LESSONS[number]
    screen_kind, keys = TASKS[lesson.title]
    app = toy_app(lesson_model, tmp_path)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("G", *[")"] * number)
        await lesson_shown(pilot, number)
        assert isinstance(app.screen, screen_kind)
        if lesson.lab is not None:
            assert app.screen.lab_config == lesson.lab
        await wait_until(pilot, lambda: screen_ready(app.screen), "the lesson's screen")
        await settle(pilot)
        await wait_until(pilot, lambda: app.lesson_start is not None, "the lesson's starting observation")
        before = observation(app)
        assert f"Predict: {lesson.predict}" in box_text(app) and "Done:" not in box_text(app)

        await pilot.press(*keys)
        await wait_until(pilot, lambda: observation(app) != before, f"the observation of '{lesson.title}' to change after {keys}")
        await wait_until(pilot, lambda: "Done: " in box_text(app), "the strip to say the task is done")
        assert lesson.title in box_text(app) and lesson.task in box_text(app)

        screen = app.screen
        pane, box = screen.query_one(f"#{lesson.pane}"), screen.query_one(LessonBox)
        assert pane.content_region.height >= 3 and pane.region.bottom <= box.region.y, (pane.region, box.region)
        assert box.region.bottom <= size[1] - 1  # above the footer

        await pilot.press("W")
        await wait_until(pilot, lambda: bool(screen.query(LessonCard)) and screen.query_one(LessonCard).shown, "the why card")
        await pilot.pause()
        card = screen.query_one(LessonCard)
        assert lesson.why in str(card.render()) and card.border_title.startswith("Why")
        assert not card.region.overlaps(pane.region), (lesson.title, card.region, pane.region)
        await pilot.press("C")
        await wait_until(pilot, lambda: lesson.check in str(screen.query_one(LessonCard).render()), "the check")
        assert lesson.answer not in str(screen.query_one(LessonCard).render())
        await pilot.press("C")
        await wait_until(pilot, lambda: lesson.answer in str(screen.query_one(LessonCard).render()), "the answer")
        await pilot.press("C")
        await wait_until(pilot, lambda: not screen.query(LessonCard), "the card to close")


@pytest.mark.anyio
async def test_the_residual_lessons_numbers_are_the_block_labs_with_the_switch_on_and_off(toy):
    app = toy_app(toy)
    number = next(i for i, lesson in enumerate(LESSONS) if lesson.title == "Residual connections")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("G", *[")"] * number)
        await lesson_shown(pilot, number)
        on = run_block_lab(replace(DEEP_LAB)).metrics["token_cosine"][-1]
        off = run_block_lab(replace(DEEP_LAB, residual=False)).metrics["token_cosine"][-1]
        assert observation(app).startswith(f"token cosine after block 6: {on:.2f} (")
        assert f"— {off:.2f} (" in observation(app)
        await pilot.press("R")
        await wait_until(pilot, lambda: observation(app).startswith(f"token cosine after block 6: {off:.2f}"), "the flipped numbers")


@pytest.mark.anyio
async def test_the_feed_forward_lesson_shows_only_the_flipped_row_changes_without_attention(toy):
    app = toy_app(toy)
    number = next(i for i, lesson in enumerate(LESSONS) if lesson.title == "The feed-forward network")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("G", *[")"] * number)
        await lesson_shown(pilot, number)
        await pilot.press("I")
        await wait_until(pilot, lambda: "output rows changed 4 (attention off)" in observation(app), "row 4 alone")
        await pilot.press("A")
        await wait_until(pilot, lambda: "output rows changed 4–7 (attention on)" in observation(app), "rows 4 to 7")


@pytest.mark.anyio
async def test_g_closes_and_reopens_the_last_lesson_the_palette_opens_them_and_parentheses_stop_at_the_ends(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert app.main_screen.query(WayIn)  # the way in, until a lesson is opened
        await pilot.press("(")  # no lesson open: the first one
        await lesson_shown(pilot, 0)
        assert not app.main_screen.query(WayIn)
        await pilot.press("(")
        await pilot.pause()
        assert app.lesson == 0
        await pilot.press(*[")"] * (len(LESSONS) + 2))
        await lesson_shown(pilot, LAST)
        await pilot.press("W")
        await wait_until(pilot, lambda: bool(app.screen.query(LessonCard)), "the why card")
        await pilot.press("G")
        await pilot.pause()
        assert app.lesson is None and not any(screen.query(LessonBox) or screen.query(LessonCard) for screen in app.screen_stack)
        await pilot.press("G")
        await lesson_shown(pilot, LAST)
        await pilot.press("G")
        await pilot.pause()
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Lessons" in titles
        next(command for command in app.get_system_commands(app.screen) if command.title == "Lessons").callback()
        await lesson_shown(pilot, LAST)


@pytest.mark.anyio
async def test_the_lesson_box_follows_the_learner_to_another_screen(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("G", ")")  # lesson 1: the block lab
        await lesson_shown(pilot, 1)
        await pilot.press("b")  # back to the main screen: the lesson stays, and says where its observation is
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and app_box_says(app, "Open the block lab (b)"), "the box")
        await pilot.press("b")  # and back in the lab (opened anew, on the notebook's block), the observation again
        await wait_until(pilot, lambda: isinstance(app.screen, BlockLabScreen) and app_box_says(app, "1 block: norm"), "the lab's")
