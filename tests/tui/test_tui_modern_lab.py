"""The modern block in the lab: O, U, y and H flip RMSNorm, the positions, the MLP and the KV heads one at a time,
each says what it changes under the panes, and the chart tells its three series apart without colour."""

import re
from dataclasses import replace

import pytest

from engine.model.blocklab import BlockLabConfig, modern_facts, run_block_lab
from tests.tui.conftest import settle, wait_until
from tests.tui.test_tui_fit import SMALL, open_screen, toy_app
from tui.controls import toggle_lab
from tui.screens.block_lab import SERIES_MARKERS, BlockLabScreen, plot_representations

# key -> (the one field it changes, its values press by press, the line it adds under the panes)
SWITCHES = {
    "O": ("norm_kind", ["rms", "layer"], "RMSNorm:"),
    "U": ("positions", ["learned", "rope", "none"], None),  # learned positions, then RoPE: each its own line
    "y": ("activation", ["gelu", "swiglu", "relu"], None),
    "H": ("n_kv_heads", [2, 1, None], "GQA:"),
}


def test_each_switch_cycles_its_own_field_and_keeps_the_config_valid():
    for key, (field, values, _) in SWITCHES.items():
        config = BlockLabConfig()
        for value in values:
            changed = toggle_lab(config, field)
            assert getattr(changed, field) == value, key
            assert replace(changed, **{field: getattr(config, field)}) == config  # nothing else moved
            changed.validate()
            config = changed
    tiny = BlockLabConfig(d_model=4, n_heads=4, n_kv_heads=2)  # d_head 1: RoPE takes fewer, wider heads
    rope = toggle_lab(toggle_lab(tiny, "positions"), "positions")
    assert (rope.positions, rope.n_heads, rope.n_kv_heads) == ("rope", 2, 2)
    rope.validate()


def modern_text(lab) -> str:
    widget = lab.query_one("#lab-modern")
    return str(widget.render()) if widget.display else ""


@pytest.mark.anyio
@pytest.mark.parametrize("size", [SMALL, (200, 50)], ids=["80x24", "200x50"])
async def test_the_switches_one_at_a_time_each_say_what_they_change(toy, size):
    app = toy_app(toy)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        lab = await open_screen(pilot, "b", BlockLabScreen)
        await wait_until(pilot, lambda: lab.result is not None, "the notebook's block")
        assert modern_text(lab) == ""  # the notebook's block: no modern line
        for key, expected in [("O", "RMSNorm:"), ("O", ""), ("U", "learned positions:"), ("U", "RoPE:"), ("U", ""),
                              ("y", ""), ("y", "SwiGLU:"), ("y", ""), ("H", "GQA: 2 KV heads"), ("H", "GQA: 1 KV head:"), ("H", "")]:  # fmt: skip
            before = lab.lab_config
            await pilot.press(key)
            await wait_until(pilot, lambda b=before: lab.result is not None and lab.result.config == lab.lab_config != b, key)
            await pilot.pause()
            text = modern_text(lab)
            assert (expected in text) if expected else text == "", (key, text)
            assert text.split("\n") == (modern_facts(lab.result) or [""])
        await pilot.press("H", "U", "U")  # GQA and RoPE together: two lines, above the parity pane, whole
        await wait_until(pilot, lambda: lab.result.config == BlockLabConfig(n_kv_heads=2, positions="rope"), "both")
        await pilot.pause()
        modern, parity = lab.query_one("#lab-modern"), lab.query_one("#parity-pane")
        assert modern.region.height == 2 and modern.region.bottom <= parity.region.y
        assert "KV 2" in lab.query_one("#lab-config").render().plain and "RoPE" in lab.query_one("#lab-config").render().plain


def test_the_chart_tells_its_series_apart_without_colour_and_cosines_keep_their_range():
    """Trial 26: with one block, norm and token cosine were each scaled to their own axis and drawn on top of each other."""
    import plotext

    result = run_block_lab(BlockLabConfig())
    plotext.plotsize(40, 14)
    plot_representations(plotext, result.metrics)
    plotext.plotsize(40, 14)
    plotext.theme("clear")
    drawn = re.sub(r"\x1b\[[0-9;]*m", "", plotext.build())  # the text without its colours
    assert SERIES_MARKERS["layer_cosine"] in drawn and SERIES_MARKERS["token_cosine"] in drawn
    assert any("\u2801" <= ch <= "\u28ff" for ch in drawn)  # the norm's braille line
    rows = drawn.splitlines()
    top = next(row for row in rows if row.rstrip().endswith("1.00") and not row.rstrip().endswith("-1.00"))
    assert any(row.rstrip().endswith("-1.00") for row in rows)  # the cosine axis spans -1…1
    # the norm ends at the top (its largest value); token cos (-0.02 → 0.50) ends three quarters up, not there
    assert any("\u2801" <= ch <= "\u28ff" for ch in top) and SERIES_MARKERS["token_cosine"] not in top, top
    assert result.metrics["token_cosine"][-1] < 0.75


def test_a_row_holding_several_positions_is_never_labelled_with_a_cut_number():
    """Trial 7: the lab's rows for 12–14 read "12–1" in a 4-cell label."""
    from tui.heatmap import range_label

    assert [range_label(12, 14, w) for w in (5, 4, 3, 2)] == ["12–14", "12–…", "12…", "…"]
    assert range_label(100, 120, 4) == "100…" and range_label(3, 5, 3) == "3–5"
