"""Input never lost or misdirected (issue 25, item 4): the prompt line's own editing keys act in the order typed,
tab never lands in a text field, help shows keys as people write them, and below 80×24 the app says so."""

import pytest
from textual import events
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from tests.tui.conftest import settle, wait_until
from tests.tui.test_tui_fit import SMALL, toy_app
from tui.screens.help import HelpScreen
from tui.screens.too_small import TooSmallScreen
from tui.widgets.edit_line import EditLine


def post_keys(app, keys: list[str]) -> None:
    """Keys queued all at once, as a fast typist or a paste over SSH delivers them (tmux send-keys in the trial)."""
    for key in keys:
        character = None if "+" in key else " " if key == "space" else key
        app.post_message(events.Key(key, character))


@pytest.mark.anyio
@pytest.mark.parametrize("editing", [["ctrl+a", "ctrl+k"], ["end", "ctrl+u"], []], ids=["home-kill", "end-kill-left", "replace"])
async def test_editing_keys_right_after_i_act_in_the_order_typed(toy, editing):
    """Defect 8: the field's bindings (ctrl+a, ctrl+k …) ran after the letters queued behind them, wiping them."""
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        post_keys(app, ["i", *editing, *"Once", "space", *"upon"])
        prompt = app.main_screen.query_one("#prompt", EditLine)
        await wait_until(pilot, lambda: prompt.value == "Once upon", f"the typed prompt (now {prompt.value!r})")
        await pilot.pause(0.1)
        assert prompt.value == "Once upon"  # nothing came after and undid it
        shown = [(key.key_display, key.description) for key in app.main_screen.query(FooterKey)]
        assert ("⏎", "Apply") in shown and ("esc", "Cancel") in shown  # the footer says how to leave (trial, defect 31)
        await pilot.press("enter")
        await settle(pilot)
        assert app.session.prompt == "Once upon"


@pytest.mark.anyio
@pytest.mark.parametrize("key, fields", [("w", ("#sentence", "#source")), ("c", ("#model-b",))], ids=["tokenize", "compare"])
async def test_tab_never_lands_in_a_text_field_so_screen_keys_never_type_into_one(toy, key, fields):
    """Defect 15: w, E, tab ×3, E typed an E into the tokenizer field."""
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press(key)
        await pilot.pause()
        values = {field: app.screen.query_one(field, Input).value for field in fields}
        await pilot.press("E")
        for _ in range(8):
            await pilot.press("tab")
            assert not isinstance(app.screen.focused, Input)
        await pilot.press("E", "E", "shift+tab", "E")
        assert {field: app.screen.query_one(field, Input).value for field in fields} == values
        await pilot.press("i")  # the key that edits a field still does
        await pilot.pause()
        assert isinstance(app.screen.focused, EditLine) and f"#{app.screen.focused.id}" == fields[0]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen.focused, Input)


@pytest.mark.anyio
async def test_help_writes_keys_as_typed_and_wrapped_texts_keep_their_column(toy):
    """Defect 19: `left_parenthesisPrevious lesson`, and wrapped lines that restarted at the left edge."""
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.pause()
        sections = [str(section.render()) for section in app.screen.query(".help-section, .help-note")]
        text = "\n".join(sections)
        assert "left_parenthesis" not in text and "question_mark" not in text
        lines = text.splitlines()
        assert any(line.startswith("(             Previous lesson") for line in lines)
        assert any(line.startswith("--replay FILE.jsonl   step through") for line in lines)
        for section in sections:
            rows = section.splitlines()[1:]
            first = 21 if section.startswith("Glossary") else 22 if section.startswith("From the command") else 14
            for line in rows:
                if line and line[0] == " ":  # a wrapped text's later line: under the text column
                    assert line[:first].strip() == "" and line[first] != " ", line
        widths = [s.region.width for s in app.screen.query(".help-section")]
        assert all(len(line) <= max(widths) for line in lines)


@pytest.mark.anyio
@pytest.mark.parametrize("start, small", [((80, 24), (60, 20)), ((60, 20), (79, 24))], ids=["shrinks", "starts-small"])
async def test_below_80x24_the_app_says_the_terminal_is_too_small_and_recovers_when_it_grows(toy, start, small):
    """Defect 28."""
    app = toy_app(toy)
    async with app.run_test(size=start) as pilot:
        await settle(pilot)
        await pilot.resize_terminal(*small)
        await wait_until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the notice")
        await pilot.pause()
        notice = str(app.screen.query_one("#too-small").render())
        assert f"{small[0]}×{small[1]}" in notice and "at least 80×24" in notice
        await pilot.press("n")  # keys wait: nothing happens behind the notice
        await pilot.resize_terminal(100, 30)
        await wait_until(pilot, lambda: app.screen is app.main_screen, "the main screen back")
        await settle(pilot)
        assert app.session.transcript.n_generated == 0
