"""Explained in place: E explains the focused pane on every screen, tab and clicks move between panes, help
opens at the calling screen's keys and has a glossary of every symbol on screen."""

import math

import numpy as np
import pytest

from engine.events import AblationView, LensEntry, SamplingConfig
from engine.model.blocklab import BlockLabConfig, run_block_lab
from tests.tui.conftest import settle, wait_until
from tui.app import make_app
from tui.heatmap import MASKED_SHADE, ROW_MARKER, render_heatmap
from tui.screens.attribution import AttributionScreen
from tui.screens.block_lab import BlockLabScreen, lab_lines, representations_line
from tui.screens.compare import CANDIDATE_COLUMNS, CompareScreen
from tui.screens.heads import HeadsScreen
from tui.screens.help import GLOSSARY, HelpScreen
from tui.screens.main import LAYERS_LEGEND, MainScreen, candidates_subtitle
from tui.screens.representations import RepresentationsScreen
from tui.screens.tokenize import TokenizeScreen
from tui.widgets.head_tiles import STAT_ABBREVIATIONS
from tui.widgets.layers import chart_strips, lens_strips
from tui.widgets.pane import Explanation, Pane
from tui.widgets.timeline import timeline_strips

SMALL = (80, 24)
MAX_LINES = 8
SCREENS = [
    (None, MainScreen),
    ("b", BlockLabScreen),
    ("c", CompareScreen),
    ("w", TokenizeScreen),
    ("h", HeadsScreen),
    ("a", AttributionScreen),
    ("V", RepresentationsScreen),
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


async def every_screen(pilot):
    """Each of SCREENS opened in turn, as (screen, its class), and closed again after."""
    for key, kind in SCREENS:
        yield await open_screen(pilot, key, kind), kind
        if key is not None:
            pilot.app.pop_screen()
            await pilot.pause()


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
        async for screen, kind in every_screen(pilot):
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


@pytest.mark.anyio
async def test_e_shows_the_focused_panes_explanation_and_e_again_hides_it_on_every_screen(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await three_tokens(pilot)
        async for screen, kind in every_screen(pilot):
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
        await pilot.click("#layers-pane", offset=(30, 5))  # right of the parameters' card, which lies over the pane's left
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
        # NO_COLOR draws underlines for the tints and shades for brightness: the cards say so (trial, defect 27)
        "generation-pane": ("tints", "no colour: underlines", "in colour", "red", "green", "italic", "↵", "□", "ent≤"),
        "attention-pane": ("row", "column", "no colour: denser ░▒▓█", "causal mask", "◀", "max-pooled", "[ ]", "{ }"),
        "layers-pane": ("emb", "after block", "norm", "cos(l, l-1)", "lens→next"),
    }
    for pane_id, symbols in expected.items():
        text = MainScreen.EXPLANATIONS[pane_id]
        assert all(symbol in text for symbol in symbols), (pane_id, [s for s in symbols if s not in text])
    assert "token cos" in BlockLabScreen.EXPLANATIONS["lab-plot-pane"] and "KV cache" in BlockLabScreen.EXPLANATIONS["parity-pane"]


# ---- help at the calling screen, and the glossary ---------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("key, kind", [(None, MainScreen), ("b", BlockLabScreen), ("c", CompareScreen), ("w", TokenizeScreen)])
async def test_help_opens_at_the_keys_of_the_screen_it_was_called_from(toy, key, kind):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await open_screen(pilot, key, kind)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.pause()
        help_screen = app.screen
        box = help_screen.query_one("#help-box")
        first = box.children[0]
        assert first.id == "help-here" and box.scroll_y == 0 and first.region.y <= 3  # on screen at the top
        text = first.render().plain
        assert text.startswith(f"{kind.HELP_TITLE} · this screen")
        others = [str(s.render().plain).split("\n")[0] for s in box.query(".help-section")][1:]
        assert all(kind.HELP_TITLE not in title for title in others)  # listed once
        glossary = help_screen.query_one("#help-glossary")
        assert glossary.render().plain.startswith("Glossary") and glossary in box.query(".help-section")
        assert glossary.size.height == len(GLOSSARY) + 1  # a title, then one line per term at 80 columns


def glossary_names() -> set[str]:
    return {name for term, _ in GLOSSARY for name in term.split(" / ")}


def in_glossary(shown: str) -> bool:
    """A name of a glossary term, or a part of one (terms such as "ent / sink / prev" name several things)."""
    return any(shown == name or shown in name.split() for name in glossary_names())


def test_the_glossary_explains_every_legend_and_label_the_panes_draw():
    legend = render_heatmap(np.ones((40, 40), np.float32) / 40, [f" w{i}" for i in range(40)], 60, 10, 39, False)[-1].text
    layers_chart = "".join(strip.text for strip in chart_strips(np.ones(3), np.ones(2), 40, 12))
    lens = lens_strips([LensEntry(0, 1, " the", 0.5)], 16, 4)[0].text
    timeline = "".join(strip.text for strip in timeline_strips([0.5], [1.2], 20))
    shown = [
        *LAYERS_LEGEND.split(" · "),  # "⠒ norm÷max", "× cos(l, l-1)"
        *candidates_subtitle(None).split(" │ "),  # "p before", "after T·k·p"
        "cut",
        "<.1%",
        *candidates_subtitle(AblationView(("L0.H1",), "zero", 0.1, True, {})).replace(" │ ", " · ").split(" · ")[:2],
        "KL",
        "top flips",
        "same top",
        CANDIDATE_COLUMNS.split(" · ")[1].split(" │ ")[0],  # "p at T=1"
        ROW_MARKER,
        MASKED_SHADE,
        "max-pooled" if "max-pooled" in legend else "",
        "brightest" if "brightest" in legend else "",
        "◀ covers" if "◀ covers" in legend else "",
        "emb" if "emb" in layers_chart else "",
        "after block" if "after block" in layers_chart else "",
        lens.strip(),  # "lens→next"
        "ent≤" if "ent≤" in timeline else "",
        *[name for name, _ in lab_lines(BlockLabConfig(), 0, None) if name in ("T", "d_model", "d_ff")],
        "pre-LN",
        "post-LN",
        "RMSNorm",  # the lab's modern switches and the lines saying what they change
        "RoPE",
        "SwiGLU",
        "KV heads",
        "GQA",
        "token cos",
        "◂",
        "▸",
        "max |Δlogit|",
        "KV cache",
        *STAT_ABBREVIATIONS.values(),
        "embed",
        "attn",
        "mlp",
        "b_O",
        "ln_f bias",
        "KL(A‖B)",
        "nats",
        "tok/s",
        "↵",
        "□",
        "tints",  # the Generation pane's token boundaries, colours and forced tokens
        "red → green",
        "italic",
        "1/V",  # the reference values beside the numbers
        "√d_model",
        "≈ uniform",
        "uniform",
        "Δ vs",
    ]
    assert "" not in shown, "a legend no longer draws what this test expects"
    missing = [text for text in shown if not in_glossary(text)]
    assert not missing, missing


def test_the_lab_shows_its_norm_beside_sqrt_d_model_and_the_token_cosine_as_an_angle():
    result = run_block_lab(BlockLabConfig(pre_ln=False, n_layers=2))  # post-LN: the norm is √d_model itself
    token_cos = float(result.metrics["token_cosine"][-1])
    degrees = round(math.degrees(math.acos(token_cos)))
    layer_cos = float(result.metrics["layer_cosine"][-1])
    assert (
        representations_line(result)
        == f"⠤ norm 5.66, √d_model 5.66\n× cos(l, l-1) {layer_cos:.2f}\n• token cos {token_cos:.2f} = {degrees}°"
    )
