"""The screens on a real model's shape, and labels that never lie at any size.

A tiny random Llama built here has SmolLM2's layout in miniature: 30 blocks of 9 query heads sharing 3 KV heads
(grouped-query attention), so 270 heads. Snapshots of the main screen, all heads and attribution at 80×24 and
200×50; Pilot tests for: cut labels end in "…" (and the numbers that matter stay whole at 80 columns), large
terminals give the panes room, KV groups and the colour scales, and moving through 30 blocks.
"""

import dataclasses

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.runtime.loading import load_model
from engine.views.tokenization import load_tokenizer
from tests.conftest import random_llama_dir
from tests.tui.conftest import settle, wait_until
from tests.tui.test_tui_fit import SMALL, open_screen, toy_app
from tui.app import make_app
from tui.goto import KEEP, GoToBlockScreen, parse_block_head
from tui.heatmap import SINK, levels, render_heatmap
from tui.numbering import block_head_text, kv_group
from tui.pieces import cut, first_fit, fit_parts, label_text
from tui.screens.attribution import AttributionScreen
from tui.screens.heads import HeadsScreen
from tui.screens.tokenize import TokenizeScreen
from tui.widgets.candidates import CandidatesView
from tui.widgets.head_tiles import TILE_WIDTH, sort_decimals, stat_text, tile_layout
from tui.widgets.layers import LensColumn

LARGE = (200, 50)
BOTH = pytest.mark.parametrize("size", [SMALL, LARGE], ids=lambda size: f"{size[0]}x{size[1]}")
N_LAYER, N_HEAD, N_KV = 30, 9, 3


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """30 blocks × 9 query heads on 3 KV heads, 72 wide, with the toy's tokenizer; named as a user would see it."""
    path = tmp_path_factory.mktemp("gqa")
    random_llama_dir(
        path,
        load_tokenizer("toy"),
        seed=3,
        num_hidden_layers=N_LAYER,
        num_attention_heads=N_HEAD,
        num_key_value_heads=N_KV,
        hidden_size=72,
        intermediate_size=96,
    )
    model = load_model(str(path), device="cpu", engine="numpy")
    return dataclasses.replace(model, name="tiny-gqa", path="tiny-gqa", info=dataclasses.replace(model.info, name="tiny-gqa"))


def llama_app(llama):
    return make_app(model=llama, config=SamplingConfig(temperature=0.0, seed=0), device="cpu", palette="color", deterministic=True)


async def three_tokens(pilot) -> None:
    await settle(pilot)
    await pilot.press("n", "n", "n")
    await settle(pilot)


# ---- the pure pieces ---------------------------------------------------------------------------
def test_a_cut_label_ends_in_an_ellipsis_and_a_whole_one_does_not():
    assert label_text(" everyone", 6) == "·ever…" and label_text(" every", 6) == "·every"  # the two stay apart
    assert cut("12–14", 4) == "12–…" and cut("12–14", 5) == "12–14"  # a range is never cut into another number
    assert fit_parts(["a", "bb", "ccc"], 6) == "a · bb" and fit_parts(["a", "bb", "ccc"], 7, keep=[0, 2, 1]) == "a · ccc"
    assert first_fit(["long words", "short"], 6) == "short" and first_fit(["long words", "shorter"], 5) == "shor…"


def test_kv_groups_number_query_heads_by_the_kv_head_they_read():
    assert [kv_group(head, 9, 3) for head in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert kv_group(4, 12, None) is None and kv_group(None, 9, 3) is None  # no grouping; the mean of heads
    assert block_head_text(29, 4, kv_group(4, 9, 3)) == "block 30 · head 5 · kv 2"


def test_the_colour_scales():
    pooled = np.array([[1.0, 0.0], [0.9, 0.1]])  # a sink at position 0 takes most of each row
    masked = np.array([[False, True], [False, False]])
    linear, top = levels(pooled, masked, 10, "linear")
    log, _ = levels(pooled, masked, 10, "log")
    sink, sink_top = levels(pooled, masked, 10, "sink excluded", np.array([True, False]))
    assert top == 1.0 and linear[1, 1] == 1 and log[1, 1] == 5  # 0.1 of the top: a tenth linear, half way on two decades
    assert sink_top == pytest.approx(0.1) and sink[1, 1] == 9 and (sink[:, 0] == SINK).all() and sink[0, 1] == -1
    legend = render_heatmap(pooled.astype(np.float32), ["a", "b"], 60, 6, None, True, scale="sink excluded")[-1].text
    assert "brightest 0.10 · position 0 (×) up to 1.00" in legend


def test_go_to_block_reads_a_block_and_an_optional_head_and_says_what_is_wrong():
    assert parse_block_head("27", 30, 9) == (26, KEEP)
    assert parse_block_head(" 27.3 ", 30, 9) == (26, 2) == parse_block_head("27 3", 30, 9)
    assert parse_block_head("3 m", 30, 9) == (2, None)
    with pytest.raises(ValueError, match="block 31 is out of range: this model has blocks 1–30"):
        parse_block_head("31", 30, 9)
    with pytest.raises(ValueError, match="head 10 is out of range"):
        parse_block_head("2.10", 30, 9)
    with pytest.raises(ValueError, match="type a block"):
        parse_block_head("end", 30, 9)


def test_sorted_values_get_the_digits_their_order_needs():
    assert sort_decimals([0.9, 0.5, 0.37, float("nan")]) == 2
    assert sort_decimals([0.374, 0.371, 0.2]) == 3  # 0.37 and 0.37 would read as a tie in a sorted list
    assert sort_decimals([0.3741, 0.3739, 0.3739]) == 4 and stat_text(0.3741, 4) == "0.3741"


def test_tiles_grow_when_every_head_fits_and_page_when_they_do_not():
    few = tile_layout(196, 46, 36)  # the toy's 36 heads at 200×50
    assert few.per_page >= 36 and few.body > 3 and few.width > TILE_WIDTH
    many = tile_layout(76, 20, 270)  # SmolLM2's 270 at 80×24
    assert many.width == TILE_WIDTH and 270 / many.per_page > 1


# ---- 1. labels that never lie --------------------------------------------------------------------
@pytest.mark.anyio
async def test_at_80x24_cut_labels_end_in_an_ellipsis_and_the_kl_and_induction_score_stay_whole(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await three_tokens(pilot)
        main = app.main_screen
        view = main.query_one(CandidatesView)
        for candidate, line in zip(view.candidates, view.text.splitlines()):
            shown = line[2:].split()[0]
            assert shown == label_text(candidate.text, 99) or (
                shown.endswith("…") and label_text(candidate.text, 99).startswith(shown[:-1])
            )
        status = str(main.query_one("#generation-pane").border_subtitle)  # whole parts only: "ready · 3 new"
        assert status.startswith("ready · 3 new") and "…" not in status
        await pilot.press("x")
        await wait_until(pilot, lambda: main.session.transcript.ablation is not None, "the ablated candidates")
        await settle(pilot)
        kl = f"KL {main.session.transcript.ablation.kl:.3f}"
        assert kl in str(main.query_one("#candidates-pane").border_subtitle)
        screen = await open_screen(pilot, "h", HeadsScreen)
        await wait_until(pilot, lambda: screen.stats is not None, "the head statistics")
        await pilot.pause()
        detail = str(screen.query_one("#heads-detail").render())
        assert "ind " in detail and len(detail) <= SMALL[0]


# ---- 2. large terminals --------------------------------------------------------------------------
@pytest.mark.anyio
async def test_at_200x50_the_panes_take_the_room(toy):
    app = toy_app(toy)
    async with app.run_test(size=LARGE) as pilot:
        await three_tokens(pilot)
        main = app.main_screen
        assert main.query_one("#candidates-pane").outer_size.width >= 50 and main.query_one(LensColumn).size.width >= 20
        assert all("…" not in line for line in main.query_one(CandidatesView).text.splitlines())  # whole pieces
        attention = [strip.text for strip in main.query_one("#attention").strips]
        assert any(line.split()[0] == "·village" for line in attention if line.strip())  # a whole label per row
        screen = await open_screen(pilot, "h", HeadsScreen)
        await pilot.pause()
        layout = screen.query_one("#heads").layout()
        assert layout.per_page >= 36 and layout.body > 3 and layout.width > TILE_WIDTH  # every head, larger


# ---- 3. grouped-query heads and the colour scale ------------------------------------------------------
@pytest.mark.anyio
async def test_kv_groups_are_named_and_the_colour_scale_cycles_with_the_subtitle_saying_which(llama):
    app = llama_app(llama)
    async with app.run_test(size=SMALL) as pilot:
        await three_tokens(pilot)
        main = app.main_screen
        pane = main.query_one("#attention-pane")
        await pilot.press(*["right_curly_bracket"] * 5)  # the mean, then heads 1…5
        await pilot.pause()
        assert pane.border_subtitle == "block 1 · head 5 · kv 2 · log scale"
        for scale in ("linear", "sink excluded", "log"):
            await pilot.press("percent_sign")
            await pilot.pause()
            assert pane.border_subtitle.endswith(f"· {scale} scale")
        screen = await open_screen(pilot, "h", HeadsScreen)
        await wait_until(pilot, lambda: screen.stats is not None, "the head statistics")
        await pilot.pause()
        assert screen.order[screen.selected] == (0, 4) and "B1.H5·kv2" in screen.header(0, 4)[0]
        assert str(screen.query_one("#heads-detail").render()).startswith("B1.H5 · kv 2")


# ---- 4. many layers ----------------------------------------------------------------------------
@pytest.mark.anyio
async def test_thirty_blocks_go_to_first_last_all_heads_pages_and_attribution_lists_them(llama):
    app = llama_app(llama)
    async with app.run_test(size=SMALL) as pilot:
        await three_tokens(pilot)
        main = app.main_screen
        await pilot.press("dollar_sign")
        assert main.session.shown_layer == N_LAYER - 1
        await pilot.press("circumflex_accent")
        assert main.session.shown_layer == 0
        await pilot.press("colon")
        await wait_until(pilot, lambda: isinstance(app.screen, GoToBlockScreen), "the go-to input")
        await pilot.press("9", "9", "enter")  # not a block: said, and the input stays
        await pilot.pause()
        assert isinstance(app.screen, GoToBlockScreen) and "out of range" in str(app.screen.query_one("#goto-note").render())
        assert main.session.shown_layer == 0  # nothing moved
        await pilot.press("backspace", "backspace", "2", "7", ".", "3", "enter")
        await wait_until(pilot, lambda: app.screen is main, "the main screen")
        await pilot.pause()
        assert (main.session.shown_layer, main.session.shown_head) == (26, 2)
        assert main.query_one("#attention-pane").border_subtitle.startswith("block 27 · head 3 · kv 1")
        chart = [strip.text for strip in main.query_one("#layer-plot").strips]
        assert chart[-2].split()[0] == "emb" and chart[-2].split()[-1] == "30"  # 31 points, both ends named
        lens = [strip.text for strip in main.query_one(LensColumn).strips]
        assert lens[-1].split()[0].endswith("30")  # the last block's guess is on screen

        screen = await open_screen(pilot, "h", HeadsScreen)
        await wait_until(pilot, lambda: screen.stats is not None, "the head statistics")
        await pilot.pause()
        page, n_pages, per_page = screen.query_one("#heads").page()
        assert len(screen.order) == N_LAYER * N_HEAD and n_pages == -(-N_LAYER * N_HEAD // per_page) and n_pages > 1
        await pilot.press("end")
        await pilot.pause()
        assert screen.order[screen.selected] == (N_LAYER - 1, N_HEAD - 1) and screen.query_one("#heads").page()[0] == n_pages - 1
        await pilot.press("h")
        await wait_until(pilot, lambda: app.screen is main, "the main screen")

        screen = await open_screen(pilot, "a", AttributionScreen)
        await wait_until(pilot, lambda: screen.attribution is not None, "the attribution")
        await pilot.press("dollar_sign", "enter")
        await pilot.pause()
        chart = str(screen.query_one("#attr-chart").render())
        assert "▾B30.attn" in chart and "H9·kv3" in chart and "B30.mlp" in chart
        assert "block 30/30" in str(screen.query_one("#attr-pane").border_subtitle)
        scroll = screen.query_one("#attr-scroll")
        assert scroll.scroll_y > 0  # the last block scrolled into view


# ---- snapshots ---------------------------------------------------------------------------------
async def all_heads(pilot) -> None:
    await three_tokens(pilot)
    screen = await open_screen(pilot, "h", HeadsScreen)
    await wait_until(pilot, lambda: screen.stats is not None, "the head statistics")
    await pilot.pause()


async def attribution(pilot) -> None:
    await three_tokens(pilot)
    screen = await open_screen(pilot, "a", AttributionScreen)
    await wait_until(pilot, lambda: screen.attribution is not None, "the attribution")
    await pilot.press("dollar_sign", "enter")
    await pilot.pause()


async def main_at_a_late_head(pilot) -> None:
    await three_tokens(pilot)
    await pilot.press("dollar_sign", *["right_curly_bracket"] * 5)  # block 30, head 5 (KV head 2)
    await pilot.pause()


@BOTH
def test_main_screen_on_a_grouped_query_llama(snap_compare, llama, size):
    assert snap_compare(llama_app(llama), run_before=main_at_a_late_head, terminal_size=size)


@BOTH
def test_all_heads_on_a_grouped_query_llama(snap_compare, llama, size):
    assert snap_compare(llama_app(llama), run_before=all_heads, terminal_size=size)


@BOTH
def test_attribution_on_a_grouped_query_llama(snap_compare, llama, size):
    assert snap_compare(llama_app(llama), run_before=attribution, terminal_size=size)


@pytest.mark.anyio
async def test_a_long_status_message_wraps_at_80_columns_instead_of_being_cut(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        screen = await open_screen(pilot, "w", TokenizeScreen)
        sentence = "Tokenizer unchanged: model 'gpt2' is not in the Hugging Face cache and the hub is unreachable (offline)."
        screen.query_one("#tok-status").update(sentence)
        await pilot.pause()
        status = screen.query_one("#tok-status")
        assert status.region.height == 2 and status.region.bottom <= SMALL[1] - 1  # two lines, above the footer
