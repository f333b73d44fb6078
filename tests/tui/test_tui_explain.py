"""Explained in place: E explains the focused pane on every screen; tab and clicks move between panes."""

import pytest

from engine.events import SamplingConfig
from tests.tui.conftest import settle, wait_until
from tui.app import make_app
from tui.screens.attribution import AttributionScreen
from tui.screens.block_lab import BlockLabScreen
from tui.screens.compare import CompareScreen
from tui.screens.heads import HeadsScreen
from tui.screens.main import MainScreen
from tui.screens.tokenize import TokenizeScreen
from tui.widgets.pane import Explanation, Pane

SMALL = (80, 24)
MAX_LINES = 8
SCREENS = [
    (None, MainScreen),
    ("b", BlockLabScreen),
    ("c", CompareScreen),
    ("w", TokenizeScreen),
    ("h", HeadsScreen),
    ("a", AttributionScreen),
]


def toy_app(toy):
    return make_app(model=toy, config=SamplingConfig(temperature=0.0, seed=0), device="cpu", palette="color", deterministic=True)


async def open_screen(pilot, key: str | None, kind: type):
    """The screen `key` opens from the main screen (None: the main screen), once it shows what it computes."""
    app = pilot.app
    if key is not None:
        await pilot.press(key)
        await wait_until(pilot, lambda: isinstance(app.screen, kind), kind.__name__)
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.screen


def explanation(screen) -> Explanation | None:
    cards = screen.query(Explanation)
    return cards.first() if cards else None


async def three_tokens(pilot) -> None:
    await settle(pilot)
    await pilot.press("n", "n", "n")
    await settle(pilot)


# ---- E on every pane of every screen --------------------------------------------------------------
@pytest.mark.anyio
async def test_every_pane_of_every_screen_has_an_explanation_that_shows_whole_at_80x24(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await three_tokens(pilot)
        for key, kind in SCREENS:
            screen = await open_screen(pilot, key, kind)
            panes = list(screen.query(Pane))
            assert {p.id for p in panes} == set(kind.EXPLANATIONS), kind.__name__  # every pane has one, none is stale
            for pane in panes:
                if not pane.display:  # the tokenizer's encoder pane: the toy is a decoder
                    continue
                screen.explain(pane)
                await pilot.pause()
                card = explanation(screen)
                assert card.parent is pane and card.render().plain.startswith(kind.EXPLANATIONS[pane.id])
                region = card.region
                lines = len(card.render().wrap(card.content_region.width))
                assert lines <= MAX_LINES, f"{pane.id}: {lines} lines"
                assert region.height == lines + 2 and region.x >= 0 and region.right <= SMALL[0], f"{pane.id}: {region}"
                assert region.bottom <= SMALL[1] - 1, f"{pane.id} covers the footer: {region}"
            screen.explain(None)
            if key is not None:
                app.pop_screen()
                await pilot.pause()


@pytest.mark.anyio
async def test_e_shows_the_focused_panes_explanation_and_e_again_hides_it_on_every_screen(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await three_tokens(pilot)
        for key, kind in SCREENS:
            screen = await open_screen(pilot, key, kind)
            expected = screen.focused_pane()
            assert explanation(screen) is None
            await pilot.press("E")
            await pilot.pause()
            card = explanation(screen)
            assert card is not None and card.parent is expected, kind.__name__
            assert card.render().plain == kind.EXPLANATIONS[expected.id] and card.border_subtitle == "E hides"
            await pilot.press("E")
            await pilot.pause()
            assert explanation(screen) is None, kind.__name__
            if key is not None:
                app.pop_screen()
                await pilot.pause()


@pytest.mark.anyio
async def test_tab_and_a_click_move_the_focus_between_panes_and_the_explanation_follows(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await three_tokens(pilot)
        main = app.main_screen
        assert main.focused_pane().id == "generation-pane"  # the text has the keys at start
        await pilot.press("E", "tab")
        await pilot.pause()
        assert main.focused_pane().id == "candidates-pane" and explanation(main).parent.id == "candidates-pane"
        assert main.query_one("#candidates-pane").has_pseudo_class("focus-within")  # its border lights up
        await pilot.press("tab")
        await pilot.pause()
        assert explanation(main).parent.id == "attention-pane"
        await pilot.press("shift+tab", "shift+tab", "shift+tab")
        await pilot.pause()
        assert explanation(main).parent.id == "parameters-pane"
        await pilot.click("#layers-pane", offset=(2, 5))
        await pilot.pause()
        assert main.focused_pane().id == "layers-pane" and explanation(main).parent.id == "layers-pane"
        assert len(main.query(Explanation)) == 1
        await pilot.press("E")
        await pilot.pause()
        assert explanation(main) is None
        focus_stops = [widget.id for widget in main.focus_chain]
        assert focus_stops == ["parameters-pane", "generation", "candidates-pane", "attention-pane", "layers-pane"]  # once per pane


@pytest.mark.anyio
async def test_the_card_sits_below_a_top_pane_above_a_bottom_pane_and_follows_a_resize(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await three_tokens(pilot)
        main = app.main_screen
        candidates, attention = main.query_one("#candidates-pane"), main.query_one("#attention-pane")
        main.explain(candidates)
        await pilot.pause()
        assert explanation(main).region.y == candidates.region.bottom  # the candidates stay in sight
        main.explain(attention)
        await pilot.pause()
        assert explanation(main).region.bottom == attention.region.y
        await pilot.resize_terminal(100, 30)
        await wait_until(pilot, lambda: main.size.width == 100 and explanation(main) is not None, "the new size")
        await pilot.pause()
        card = explanation(main)
        assert card.parent is attention and card.region.bottom == attention.region.y and card.region.width == attention.content_region.width


def test_each_explanation_names_the_symbols_its_pane_draws():
    expected = {
        "candidates-pane": ("p before", "after", "cut", "1–9", "ablated │ intact", "KL"),
        "generation-pane": ("tints", "red", "green", "italic", "↵", "□", "ent≤"),
        "attention-pane": ("row", "column", "causal mask", "◀", "max-pooled", "[ ]", "{ }"),
        "layers-pane": ("emb", "after block", "norm", "cos(l, l-1)", "lens→next"),
    }
    for pane_id, symbols in expected.items():
        text = MainScreen.EXPLANATIONS[pane_id]
        assert all(symbol in text for symbol in symbols), (pane_id, [s for s in symbols if s not in text])
    assert "token cos" in BlockLabScreen.EXPLANATIONS["lab-plot-pane"] and "KV cache" in BlockLabScreen.EXPLANATIONS["parity-pane"]
