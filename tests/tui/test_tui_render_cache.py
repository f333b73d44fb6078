"""The Generation pane draws from cached, incrementally updated lines: what it paints must equal a fresh
full render of the same tokens (after appends, undo, a window slide, selection and shade changes, a
resize), and its lines must wrap as Textual wraps the same text."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App
from textual.containers import Horizontal
from textual.content import Content
from textual.geometry import Region

from tui.transcript import Position
from tui.widgets.generation import GenerationView, TokenLines, paragraph_lines, wrap_offsets

PIECES = ["In", " a", " small", " village", ",", "\n", "Once", " upon", " a", " time", "", " 世界", " antidisestablishmentarianism",
          " the", " dog", "   ", " ran", ".", "\n\n", " It", " was", " happy", "\t", " end"]  # fmt: skip


def positions_of(pieces: list[str], n_prompt: int = 5) -> list[Position]:
    return [
        Position(i, piece, np.zeros((1, 1, i + 1)), generated=i >= n_prompt, p_raw=None if i < n_prompt else 0.9**i, forced=i % 7 == 3)
        for i, piece in enumerate(pieces)
    ]


class TwoViews(App):
    """The view under test beside one that is rebuilt from scratch for every comparison."""

    CSS = "GenerationView { width: 1fr; height: 1fr; }"

    def compose(self):
        with Horizontal():
            yield GenerationView(id="incremental")
            yield GenerationView(id="fresh")


async def painted(view: GenerationView) -> list:
    """The lines the compositor would paint for the view's text (its cached lines included), as (text, style) cells."""
    tokens = view.query_one(TokenLines)
    lines = tokens.render_lines(Region(0, 0, tokens.size.width, tokens.size.height))
    return [[(segment.text, segment.style) for segment in line.simplify()] for line in lines]


async def same_as_fresh(pilot, positions, selected=None, shade=False) -> None:
    app = pilot.app
    app.query_one("#incremental", GenerationView).show(positions, selected, shade, follow=False)
    old = app.query_one("#fresh", GenerationView)
    await old.remove()
    fresh = GenerationView(id="fresh")
    await app.query_one(Horizontal).mount(fresh)
    fresh.show(positions, selected, shade, follow=False)
    await pilot.pause()
    incremental = app.query_one("#incremental", GenerationView)
    assert incremental.size == fresh.size
    assert incremental.query_one(TokenLines).plain == fresh.query_one(TokenLines).plain
    assert await painted(incremental) == await painted(fresh)


@pytest.mark.anyio
async def test_incremental_render_equals_a_fresh_one_through_appends_undo_slide_selection_and_resize():
    app = TwoViews()
    pieces = PIECES * 3
    async with app.run_test(size=(60, 40)) as pilot:
        for n in range(6, len(pieces) + 1):  # one token at a time, the prompt first
            await same_as_fresh(pilot, positions_of(pieces[:n]))
        for n in range(len(pieces) - 1, len(pieces) - 4, -1):  # undo
            await same_as_fresh(pilot, positions_of(pieces[:n]))
        slid = positions_of(pieces)[3:]  # the window slid by an odd number: every tint flips
        await same_as_fresh(pilot, slid)
        for selected in (0, 7, 8, len(slid) - 1, None):
            await same_as_fresh(pilot, slid, selected=selected)
        await same_as_fresh(pilot, slid, selected=4, shade=True)
        await same_as_fresh(pilot, slid, shade=False)
        await pilot.resize_terminal(44, 40)
        await pilot.pause()
        await same_as_fresh(pilot, slid)
        await same_as_fresh(pilot, slid + positions_of(pieces[:2]))


@pytest.mark.anyio
async def test_the_text_on_screen_is_every_piece_with_newlines_and_incomplete_characters_visible():
    app = TwoViews()
    async with app.run_test(size=(60, 20)) as pilot:
        app.query_one("#incremental", GenerationView).show(positions_of(["a", "\n", "", "b\tc"]), None, False, follow=True)
        await pilot.pause()
        assert app.query_one("#incremental TokenLines", TokenLines).plain == "a↵\n□b→c"


def wrapped_text(text: str, width: int) -> list[str]:
    lines = []
    for paragraph in text.split("\n"):
        lines += [paragraph[a:b] for a, b in paragraph_lines(paragraph, wrap_offsets(paragraph, width), width)]
    return lines


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=" ab界\n.-", max_size=80), st.integers(2, 12))  # a double-width character needs 2 cells
def test_lines_wrap_as_textual_wraps_the_same_text(text, width):
    assert wrapped_text(text, width) == [line.plain for line in Content(text).wrap(width)]
