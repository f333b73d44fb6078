"""Right at every terminal size and with every kind of input: footers, the prompt line, attention
labels, the Layers chart, compare, tokenization and block-lab screens, and `e` on every screen."""

import json

import numpy as np
import pytest
from textual import events
from textual.widgets import DataTable, Input
from textual.widgets._footer import FooterKey

from engine.events import SamplingConfig, counted
from engine.model.blocklab import BlockLabConfig
from engine.views.compare import format_compare_table
from engine.views.tokenization import EXAMPLES
from tests.conftest import sampler_of
from tests.tui.conftest import notifications, settle, wait_until
from tui.app import make_app
from tui.heatmap import render_heatmap
from tui.screens.attribution import AttributionScreen
from tui.screens.block_lab import BlockLabScreen
from tui.screens.compare import CompareScreen, settings_line, summary_line
from tui.screens.heads import HeadsScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.tokenize import TokenizeScreen

SMALL = (80, 24)


def toy_app(toy, tmp_path=None, **settings):
    config = SamplingConfig(**{"temperature": 0.0, "seed": 0, **settings})
    export_dir = tmp_path or "tfund-exports"
    return make_app(model=toy, config=config, device="cpu", palette="color", deterministic=True, export_dir=export_dir)


def footer_keys(screen) -> list[tuple[str, str, int]]:
    """(key, label, right edge) of every key the footer shows."""
    return [(key.key_display, key.description, key.region.right) for key in screen.query(FooterKey)]


async def open_screen(pilot, key: str, kind: type):
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind), kind.__name__)
    return pilot.app.screen


# ---- 1. footers ---------------------------------------------------------------------------------
FIRST_KEYS = [("q", "Quit"), ("?", "Help"), ("e", "Save"), ("E", "Explain"), ("G", "Lessons")]


@pytest.mark.anyio
async def test_every_screen_footer_fits_80_columns_and_starts_with_quit_help_save_explain_lessons(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("n")  # the all-heads and attribution screens need a context and candidates
        await settle(pilot)
        screens = [("b", BlockLabScreen), ("c", CompareScreen), ("w", TokenizeScreen), ("h", HeadsScreen), ("a", AttributionScreen)]
        for key, kind in [*screens, (None, MainScreen)]:
            screen = app.main_screen if key is None else await open_screen(pilot, key, kind)
            await pilot.pause()
            keys = footer_keys(screen)
            assert [(k, label) for k, label, _ in keys[: len(FIRST_KEYS)]] == FIRST_KEYS, f"{kind.__name__}: {keys}"
            assert all(right <= SMALL[0] for _, _, right in keys), f"{kind.__name__}: {keys}"  # nothing cut off
            assert all(len(label) >= 3 for _, label, _ in keys)  # words, not single letters
            if key is not None:
                app.pop_screen()
                await pilot.pause()
        assert [k for k, _, _ in footer_keys(app.main_screen)][len(FIRST_KEYS) :] == ["n", "g", "t/T", "⌫", "b"]


# ---- 2. the prompt line ---------------------------------------------------------------------------
def post_keys(app, text: str) -> None:
    """Keys as a fast paste or a slow SSH link delivers them: all queued before the app handles one."""
    for char in text:
        app.post_message(events.Key("space" if char == " " else char, char))


@pytest.mark.anyio
async def test_keys_bunched_after_i_all_go_into_the_prompt(toy):
    app = toy_app(toy)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        before = app.session.settings
        post_keys(app, "iThe cat te")  # without the fix: t lowers the temperature, e saves, n steps, c compares
        await wait_until(pilot, lambda: app.main_screen.query_one("#prompt", Input).value.endswith("The cat te"), "the typed prompt")
        assert app.screen is app.main_screen and app.session.settings == before
        assert app.session.transcript.n_generated == 0
        await pilot.press("enter")
        await settle(pilot)
        assert sampler_of(app).prompt.endswith("The cat te")
        assert not app.main_screen.query_one("#prompt-row").display  # closed again: the prompt shows once, in the text


@pytest.mark.anyio
async def test_a_paste_goes_into_the_prompt_and_escape_cancels(toy):
    app = toy_app(toy)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        prompt = app.main_screen.query_one("#prompt", Input)
        assert not app.main_screen.query_one("#prompt-row").display  # hidden until i
        await pilot.press("i")  # the old prompt is selected: what comes next replaces it
        app.post_message(events.Paste("Once upon a time"))
        await wait_until(pilot, lambda: prompt.value == "Once upon a time", "the pasted text")
        assert "prompt" in str(app.main_screen.query_one("#prompt-label").render())
        await pilot.press("escape")
        await pilot.pause()
        assert prompt.value == sampler_of(app).prompt and not app.main_screen.query_one("#prompt-row").display


@pytest.mark.anyio
async def test_an_empty_prompt_is_refused_with_a_sentence(toy):
    app = toy_app(toy)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        old = sampler_of(app).prompt
        await pilot.press("i", "backspace", "enter")
        await wait_until(pilot, lambda: any("prompt is empty" in n for n in notifications(app)), "the refusal")
        await settle(pilot)
        assert sampler_of(app).prompt == old and isinstance(app.focused, Input)  # still editing


# ---- 3. attention labels ------------------------------------------------------------------------
def causal(n: int) -> np.ndarray:
    return np.tril(np.ones((n, n), np.float32)) / np.arange(1, n + 1)[:, None]


def label_column(strips) -> list[str]:
    """Each row's label: the text before the grid (labels hold no spaces: a space in a piece shows as ·)."""
    return [strip.text.split()[0] if strip.text.strip() else "" for strip in strips]


def test_one_token_per_row_labels_every_row():
    pieces = [f" w{i}" for i in range(10)]
    strips = render_heatmap(causal(10), pieces, 60, 14, highlight=9, shade=False)  # 12 text rows: one token each
    labels = [label for label in label_column(strips)[:10]]
    assert labels == [f"·w{i}" for i in range(10)]


def test_rows_holding_two_tokens_name_both():
    pieces = [f" w{i}" for i in range(20)]
    strips = render_heatmap(causal(20), pieces, 60, 12, highlight=19, shade=False)  # 10 text rows, 20 pixel rows
    assert label_column(strips)[:3] == ["·w0/·w1", "·w2/·w3", "·w4/·w5"]
    assert "◀ covers 18–19" in strips[11].text


def test_rows_holding_several_tokens_say_which_and_the_marked_row_too():
    pieces = [f" w{i}" for i in range(30)]
    strips = render_heatmap(causal(30), pieces, 60, 12, highlight=29, shade=False)  # 10 text rows for 30 tokens
    labels = label_column(strips)[:10]
    assert labels[0] == "0–2" and labels[-1] == "27–29"
    assert "◀ covers 27–29" in strips[11].text


def test_column_labels_are_words_or_positions_never_single_letters():
    pieces = [" small", " village", " everyone", " knew"] * 3
    strips = render_heatmap(causal(12), pieces, 40, 14, highlight=None, shade=False)  # 2 columns per token
    columns = strips[12].text.split()
    assert all(label.isdigit() or len(label) >= 3 for label in columns), columns


# ---- 4. the Layers pane at 80×24 ----------------------------------------------------------------
@pytest.mark.anyio
async def test_the_layers_pane_is_on_screen_at_80x24_with_a_legend_that_tells_the_series_apart(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        pane = app.main_screen.query_one("#layers-pane")
        assert pane.region.width >= 20 and pane.region.bottom <= SMALL[1]
        assert "×" in str(pane.border_subtitle) and "norm" in str(pane.border_subtitle)


# ---- 5. compare ---------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_compare_settings_fit_and_the_inputs_and_columns_are_labelled(toy):
    app = toy_app(toy, temperature=0.8)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = await open_screen(pilot, "c", CompareScreen)
        await wait_until(pilot, lambda: screen.side_a is not None and screen.engine.idle, "both samplers")
        for side in ("a", "b"):
            line = screen.query_one(f"#settings-{side}")
            assert len(str(line.render())) <= line.region.width and "seed 0" in str(line.render())
        labels = " ".join(str(w.render()) for w in screen.query(".cmp-label, .cmp-settings"))
        assert "model B ›" in labels and "model A ›" in labels and "p at T=1" in labels
    for width in (46, 36, 26):  # the side panes' room at 100 and 80 columns, and narrower
        line = settings_line(SamplingConfig(temperature=1.25, top_p=0.95, seed=12), width)
        assert len(line) <= width and "1.25" in line and "0.95" in line


def test_compare_help_documents_every_option_and_no_unexplained_raw_kl(capsys):
    from engine.cli import build_parser

    compare = build_parser()._subparsers._group_actions[0].choices["compare"]
    assert all(action.help for action in compare._actions)
    table = format_compare_table(
        {
            "model_a": "toy",
            "model_b": "toy",
            "settings_a": SamplingConfig().as_dict(),
            "settings_b": SamplingConfig().as_dict(),
            "follow": "a",
            "mode": "vocab",
            "steps": [],
            "mean_kl": 0.0,
            "mean_kl_raw": 0.0,
            "text_a": "",
            "text_b": "",
        }
    )
    assert "raw KL" not in table and "T=1" in table


# ---- 6. tokenization ----------------------------------------------------------------------------
@pytest.mark.anyio
async def test_tokenization_stats_fit_scripts_without_spaces_and_the_encoder_pane_needs_an_encoder(toy):
    chinese = next(i for i, example in enumerate(EXAMPLES, start=1) if " " not in example.text.strip())
    app = toy_app(toy)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = await open_screen(pilot, "w", TokenizeScreen)
        assert not screen.query_one("#tok-attention-pane").display  # the toy is a decoder
        await pilot.press(str(chinese))
        await pilot.pause()
        summary = str(screen.query_one("#tok-summary").render())
        assert "characters per token" in summary and "per word" not in summary and "words" not in summary
        table = screen.query_one("#tok-table", DataTable)
        assert table.virtual_size.width <= table.region.width  # every column, bytes included, fits


# ---- 7. block lab -------------------------------------------------------------------------------
def test_block_lab_keys_mean_nothing_else_on_the_main_screen():
    main = {b.key: b.action for b in MainScreen.BINDINGS}
    for binding in BlockLabScreen.BINDINGS:
        if binding.key in main and binding.key != "b":  # b opens the lab and goes back from it
            assert main[binding.key] == binding.action or binding.action.startswith("app.") or binding.key in "sS[]{}", binding.key


@pytest.mark.anyio
async def test_block_lab_explains_parity_pre_post_without_norm_and_rechecks_visibly(toy):
    app = toy_app(toy)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        lab = await open_screen(pilot, "b", BlockLabScreen)
        await wait_until(pilot, lambda: lab.parity != (None, None), "the parity check")
        assert "loaded model" in str(lab.query_one("#parity-pane").border_title)
        assert "loaded model" in str(lab.query_one("#parity").render())
        await pilot.press("N")  # layer norm off
        await pilot.press("o")
        await wait_until(pilot, lambda: any("o changes nothing" in n for n in notifications(app)), "why nothing changes")
        await pilot.press("v")
        await wait_until(pilot, lambda: any("again" in n for n in notifications(app)), "the recheck")
        await wait_until(pilot, lambda: lab.parity != (None, None), "the rechecked parity")


@pytest.mark.anyio
async def test_block_lab_opens_on_the_notebook_preset_and_u_takes_the_causal_mask_off(toy):
    app = toy_app(toy)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        lab = await open_screen(pilot, "b", BlockLabScreen)
        await wait_until(pilot, lambda: lab.result is not None, "the block lab")
        assert lab.result.config == BlockLabConfig()  # the notebook's settings: one block
        await pilot.press("u")
        await wait_until(pilot, lambda: lab.result.config.causal is False, "the lab without the mask")
        assert "attention no mask" in lab.query_one("#lab-config").render().plain
        assert (np.triu(lab.shown_grid(), k=1) > 0).any()  # later tokens are seen now


@pytest.mark.anyio
async def test_the_block_lab_says_computing_while_its_figures_are_behind_its_settings(toy):
    """Trial, defect 18: n_layers 48 on screen while the chart still showed one block, and nothing said so."""
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        screen = await open_screen(pilot, "b", BlockLabScreen)
        await wait_until(pilot, lambda: screen.result is not None, "the first block")
        await pilot.pause()
        subtitle = lambda: str(screen.query_one("#lab-config-pane").border_subtitle)  # noqa: E731
        assert subtitle() == ""
        screen.action_nudge("n_layers", 1)  # the settings change now; the figures come from a thread
        assert subtitle() == "computing…" and screen.result.config != screen.lab_config
        await wait_until(pilot, lambda: screen.result.config == screen.lab_config, "the new figures")
        await pilot.pause()
        assert subtitle() == ""


# ---- 8. e saves the screen it is pressed on -----------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(
    "key, kind, stem",
    [("b", BlockLabScreen, "block-lab"), ("c", CompareScreen, "compare"), ("w", TokenizeScreen, "tokens")],
)
async def test_e_saves_the_figures_of_the_screen_it_is_pressed_on(toy, tmp_path, key, kind, stem):
    app = toy_app(toy, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = await open_screen(pilot, key, kind)
        await pilot.pause(0.5 if kind is CompareScreen else 0)
        if kind is CompareScreen:
            await wait_until(pilot, lambda: screen.side_a is not None and screen.engine.idle, "both samplers")
        await pilot.press("e")
        await wait_until(pilot, lambda: list(tmp_path.glob(f"{stem}-*.json")), f"the {stem} file")
        data = json.loads(next(tmp_path.glob(f"{stem}-*.json")).read_text())
        assert data and list(tmp_path.glob("screen-*.svg"))
        if kind is TokenizeScreen:  # numbers as numbers, as in every other export (trial, defect 31)
            assert [(row["#"], row["id"]) for row in data["rows"]] == list(enumerate(screen.tokenization.ids))


@pytest.mark.anyio
async def test_e_on_help_saves_nothing_and_says_so_and_the_palette_screenshot_saves(toy, tmp_path):
    app = toy_app(toy, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.press("e")
        await wait_until(pilot, lambda: any("Nothing to save here" in n for n in notifications(app)), "the note")
        assert list(tmp_path.iterdir()) == []
        await pilot.press("escape")
        await pilot.pause()
        screenshot = [c for c in app.get_system_commands(app.screen) if c.title == "Screenshot"]
        assert len(screenshot) == 1
        screenshot[0].callback()
        await wait_until(pilot, lambda: list(tmp_path.glob("screen-*.svg")), "the screenshot")


def test_counts_take_the_number_of_their_noun():
    """Trial, defect 31: "1 tokens · brightest 1.00" (block lab at T 1), "1 steps" (compare)."""
    legend = render_heatmap(np.ones((1, 1), np.float32), ["x"], 40, 6, 0, True)[-1].text
    assert legend.startswith("1 token ") and "tokens" not in legend
    assert render_heatmap(np.eye(3, dtype=np.float32), ["a", "b", "c"], 40, 8, 2, True)[-1].text.startswith("3 tokens")
    assert (counted(1, "step"), counted(0, "step"), counted(2, "prompt token")) == ("1 step", "0 steps", "2 prompt tokens")
    assert summary_line([]).startswith("no steps")
