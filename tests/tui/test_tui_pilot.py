"""Pilot tests: every key of tfund-tui does what it says, against the real toy model."""

import json

import numpy as np
import pytest
from textual import events
from textual.command import CommandPalette

from engine.events import SamplingConfig
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.torch_eager import TorchBackend
from engine.views.pieces import visible
from tests.conftest import sampler_of
from tests.tui.conftest import SIZE, endless, settle, wait_until
from tui.app import DEFAULT_PROMPT, make_app
from tui.controls import TOP_K_LADDER, cycle_head, ladder_step, nudge_temperature, nudge_top_p
from tui.heatmap import fit_axis, head_grid, pool, render_heatmap
from tui.pieces import label_text
from tui.screens.block_lab import BlockLabScreen
from tui.screens.error import ErrorScreen
from tui.screens.help import HelpScreen
from tui.widgets.candidates import CandidatesView
from tui.widgets.parameters import ParametersView


def toy_app(toy, trace=None, **settings):
    config = SamplingConfig(**{"temperature": 0.0, "seed": 0, **settings})
    return make_app(model=toy, config=config, device="cpu", trace=trace, palette="color", deterministic=True)


def parameters_text(app) -> str:
    return app.main_screen.query_one(ParametersView).render().plain


def generated_ids(app) -> list[int]:
    return [p.token_id for p in app.session.transcript.positions if p.generated]


def prompt_ids(toy) -> list[int]:
    return toy.tokenizer.encode(DEFAULT_PROMPT, add_special_tokens=False)


@pytest.mark.anyio
async def test_all_panes_and_parameters_are_shown(toy):
    app = toy_app(toy, temperature=0.8, top_k=0, top_p=1.0, max_new_tokens=64, seed=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {str(pane.border_title).split(" · ")[0] for pane in app.main_screen.query(".pane")}  # "Generation · i edits the prompt"
        assert titles == {"Parameters", "Generation", "Candidates", "Attention", "Layers"}
        for pane in app.main_screen.query(".pane"):
            region = pane.region
            assert region.width >= 20 and region.height >= 8 and region.right <= SIZE[0] and region.bottom <= SIZE[1]
        text = parameters_text(app)
        for line in (
            "model toy",
            "device cpu",
            "temperature 0.80",
            "top-k 0",
            "top-p 1.00",
            "max new tokens 64",
            "seed 0",
            "block 1 head mean",
        ):
            assert line in text
        threads = toy.engine_threads
        assert app.main_screen.query_one("#parameters-pane").border_subtitle == f"{toy.engine} · {threads} thread{'s' * (threads > 1)}"
        assert len(app.session.transcript.positions) == len(prompt_ids(toy))
        assert len(app.session.transcript.candidates) == 10


@pytest.mark.anyio
async def test_panes_fit_at_80x24(toy):
    app = toy_app(toy)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for pane in app.main_screen.query(".pane"):
            region = pane.region
            assert region.right <= 80 and region.bottom <= 23, pane.border_title  # above the footer
            assert region.width >= 20 and region.height >= 8, pane.border_title
        assert "head mean" in parameters_text(app)  # the last parameter line is not cut off


@pytest.mark.anyio
async def test_three_steps_are_the_greedy_tokens(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(3):
            await pilot.press("n")
        await settle(pilot)
        assert generated_ids(app) == greedy_tokens(TorchBackend(toy.hf_model), prompt_ids(toy), 3)
        assert sampler_of(app).n_generated == 3
        assert "ready · 3 new" in str(app.main_screen.query_one("#generation-pane").border_subtitle)


@pytest.mark.anyio
async def test_space_also_steps(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert len(generated_ids(app)) == 1


@pytest.mark.anyio
async def test_temperature_keys_change_the_value_and_the_next_token_probabilities(toy):
    app = toy_app(toy, temperature=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = app.session.transcript.candidates
        assert all(c.p == pytest.approx(c.p_raw, abs=1e-6) for c in before)  # T = 1 leaves the distribution as is
        await pilot.press("t")
        await settle(pilot)
        assert "temperature 0.90" in parameters_text(app)
        after = app.session.transcript.candidates
        assert app.session.transcript.candidates_config.temperature == 0.9
        assert [c.token_id for c in after] == [c.token_id for c in before]
        assert after[0].p > before[0].p  # a lower temperature sharpens the distribution
        assert f"{after[0].p * 100:5.1f}%" in app.main_screen.query_one(CandidatesView).text
        await pilot.press("T", "T")
        await settle(pilot)
        assert "temperature 1.10" in parameters_text(app)
        assert app.session.transcript.candidates[0].p < before[0].p
        await pilot.press("n")
        await settle(pilot)
        assert sampler_of(app).config.temperature == 1.1  # the next token used the new setting


@pytest.mark.anyio
async def test_temperature_floors_at_zero_which_is_greedy(toy):
    app = toy_app(toy, temperature=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t", "t")
        await settle(pilot)
        assert "temperature 0.00" in parameters_text(app)
        candidates = app.session.transcript.candidates
        assert candidates[0].p == 1.0 and all(c.p == 0 for c in candidates[1:])


@pytest.mark.anyio
async def test_top_k_and_top_p_keys(toy):
    app = toy_app(toy, temperature=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("K")
        await settle(pilot)
        assert "top-k 1" in parameters_text(app)
        assert [c.p > 0 for c in app.session.transcript.candidates].count(True) == 1
        await pilot.press("K", "K")
        await settle(pilot)
        assert "top-k 3" in parameters_text(app)
        assert [c.p > 0 for c in app.session.transcript.candidates].count(True) == 3
        await pilot.press("k", "k", "k")
        await settle(pilot)
        assert "top-k 0" in parameters_text(app)
        await pilot.press("p")
        await settle(pilot)
        assert "top-p 0.95" in parameters_text(app)
        assert app.session.transcript.candidates_config.top_p == 0.95
        await pilot.press("P", "P")
        await settle(pilot)
        assert "top-p 1.00" in parameters_text(app)


@pytest.mark.anyio
async def test_undo_removes_the_last_token(toy, tmp_path):
    trace = tmp_path / "trace.jsonl"
    app = toy_app(toy, trace=str(trace))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", "n")
        await settle(pilot)
        await pilot.press("backspace")
        await settle(pilot)
        greedy = greedy_tokens(TorchBackend(toy.hf_model), prompt_ids(toy), 2)
        assert generated_ids(app) == greedy[:1]
        assert sampler_of(app).n_generated == 1
        await pilot.press("n")
        await settle(pilot)
        assert generated_ids(app) == greedy  # greedy again after the undo
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert "session" in records[0]  # the header names the model and prompt, for replay
    lines = [r for r in records if "session" not in r]
    assert [line.get("id") for line in lines[:2]] == greedy
    assert lines[2] == {"undo": len(prompt_ids(toy)) + 1}
    assert lines[3]["id"] == greedy[1] and lines[3]["settings"]["temperature"] == 0.0


@pytest.mark.anyio
async def test_digit_forces_that_candidate(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        second = app.session.transcript.candidates[1]
        await pilot.press("2")
        await settle(pilot)
        last = app.session.transcript.positions[-1]
        assert last.generated and last.forced and last.token_id == second.token_id
        assert generated_ids(app) == [second.token_id]
        assert second.token_id != greedy_tokens(TorchBackend(toy.hf_model), prompt_ids(toy), 1)[0]


async def press_while_generating(pilot, key: str) -> None:
    """A key press as the terminal driver delivers it. pilot.press waits for the process to go idle,
    which it never does while a run computes tokens (that wait alone takes seconds per key)."""
    pilot.app.post_message(events.Key(key, key if len(key) == 1 else None))
    await pilot.pause(0.02)


@pytest.mark.anyio
async def test_run_then_pause(toy, tmp_path):
    trace = tmp_path / "trace.jsonl"
    endless_toy = endless(toy)
    app = toy_app(endless_toy, trace=str(trace), max_new_tokens=100_000, temperature=0.8)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press_while_generating(pilot, "g")
        await wait_until(pilot, lambda: app.session.transcript.n_generated >= 3, "a few tokens")
        assert app.session.engine.running
        await press_while_generating(pilot, "n")  # refused while running: never two sampler calls at once
        await press_while_generating(pilot, "T")  # a setting changed mid-run applies to the next token
        await wait_until(pilot, lambda: "temperature 0.90" in parameters_text(app), "the new temperature")
        changed_at = app.session.transcript.n_generated
        await wait_until(pilot, lambda: app.session.transcript.n_generated >= changed_at + 3, "tokens after the change")
        await press_while_generating(pilot, "g")
        await settle(pilot)
        assert not app.session.engine.running
        stopped_at = sampler_of(app).n_generated
        assert app.session.transcript.n_generated == stopped_at < 100_000
        await pilot.pause(0.2)
        assert sampler_of(app).n_generated == stopped_at  # paused: nothing more arrives
        assert "ready" in str(app.main_screen.query_one("#generation-pane").border_subtitle)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert "session" in records[0]  # the header names the model and prompt, for replay
    lines = [r for r in records if "session" not in r]
    assert len(lines) == stopped_at
    assert lines[0]["settings"]["temperature"] == 0.8
    assert lines[-1]["settings"]["temperature"] == 0.9


@pytest.mark.anyio
async def test_reset_goes_back_to_the_prompt(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", "n", "r")
        await settle(pilot)
        assert generated_ids(app) == [] and sampler_of(app).n_generated == 0
        assert [p.token_id for p in app.session.transcript.positions] == prompt_ids(toy)


@pytest.mark.anyio
async def test_editing_the_prompt_sets_it_and_resets(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", "i", "ctrl+a")
        await pilot.press(*"Once", "enter")
        await settle(pilot)
        ids = toy.tokenizer.encode(f"Once{DEFAULT_PROMPT}", add_special_tokens=False)
        assert [p.token_id for p in app.session.transcript.positions] == ids
        assert sampler_of(app).n_generated == 0
        assert app.focused is app.main_screen.query_one("#generation")  # keys drive generation again
        await pilot.press("n")
        await settle(pilot)
        assert len(generated_ids(app)) == 1


@pytest.mark.anyio
async def test_layer_and_head_keys(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        n_layer, n_head = app.session.model_info.n_layer, app.session.model_info.n_head
        await pilot.press("right_square_bracket")  # blocks and heads count from 1 on screen
        assert f"block {1 % n_layer + 1}" in parameters_text(app)
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert f"block {n_layer}" in parameters_text(app)
        await pilot.press("right_curly_bracket")
        assert "head 1" in parameters_text(app)
        assert "head 1" in str(app.main_screen.query_one("#attention-pane").border_subtitle)
        await pilot.press("left_curly_bracket", "left_curly_bracket")
        assert f"head {n_head}" in parameters_text(app)
        await pilot.press("right_curly_bracket")
        assert "head mean" in parameters_text(app)


@pytest.mark.anyio
async def test_selecting_a_token_moves_the_heatmap_highlight(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        newest = len(app.session.transcript.positions) - 1
        assert app.session.highlighted_token() == newest
        await pilot.press("left", "left")
        assert app.session.highlighted_token() == newest - 2
        attention = app.main_screen.query_one("#attention")
        assert attention.highlight == newest - 2
        await pilot.press("end")
        assert app.session.highlighted_token() == newest


@pytest.mark.anyio
async def test_help_lists_every_key(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = "\n".join(str(static.render()) for static in app.screen.query(".help-section"))
        text = " ".join(shown.split())  # a text wrapped over lines, joined
        for binding in [*app.main_screen.BINDINGS, *BlockLabScreen.BINDINGS, *app.BINDINGS]:
            assert " ".join((binding.tooltip or binding.description).split()) in text or binding.key in "23456789"
        for key in ("n", "g", "t", "T", "k", "K", "p", "P", "[", "]", "{", "}", "1-9", "backspace", "r", "b", "?", "q", "ctrl+p", "(", ")"):
            assert f"\n{key} " in shown
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen


@pytest.mark.anyio
async def test_command_palette_opens_and_lists_the_engine_commands(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Step one token", "Run / pause", "Undo", "Reset", "Block lab", "Keys"} <= set(titles)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Step one", "enter")
        await settle(pilot)
        assert len(generated_ids(app)) == 1


@pytest.mark.anyio
async def test_block_lab_opens_and_a_switch_changes_its_metrics(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await pilot.pause()
        lab = app.screen
        assert isinstance(lab, BlockLabScreen)
        await wait_until(pilot, lambda: lab.result is not None, "the block lab")
        norms_with_residual = lab.result.metrics["resid_norm"].copy()
        assert lab.result.config.residual
        await pilot.press("R")
        await wait_until(pilot, lambda: not lab.result.config.residual, "the block lab without residual")
        assert "residual off" in lab.query_one("#lab-config").render().plain
        assert not (lab.result.metrics["resid_norm"] == norms_with_residual).all()
        await pilot.press("L")
        await wait_until(pilot, lambda: lab.result.config.n_layers == 2, "a second layer")
        assert lab.result.attention.shape[0] == 2
        await wait_until(pilot, lambda: app.session.parity != (None, None), "the parity check")
        report, error = app.session.parity
        assert error is None and report["ok"]
        assert "ok" in str(lab.query_one("#parity").render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen


@pytest.mark.anyio
async def test_no_color_draws_shade_characters(toy, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(model=toy, config=SamplingConfig(temperature=0.0), device="cpu", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert app.shade
        heatmap = "".join(strip.text for strip in app.main_screen.query_one("#attention").strips)
        assert "▀" not in heatmap and "·" in heatmap and any(shade in heatmap for shade in "░▒▓█")
        svg = app.export_screenshot()  # goes through the same NO_COLOR line filter as a terminal
        assert "Attention" in svg


@pytest.mark.anyio
async def test_a_missing_model_shows_an_error_modal_and_the_app_stays_up(tmp_path):
    app = make_app(model=str(tmp_path / "no-such-model"), device="cpu", palette="color")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error modal")
        await pilot.pause()  # let the modal compose
        assert "no model directory" in str(app.screen.query_one("#error-message").render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen
        await pilot.press("n")  # no model: a notification, not a crash
        await pilot.pause()
        assert app.is_running and sampler_of(app) is None


# ---- the pure pieces the panes are drawn with ------------------------------------------------
def causal_attention(n_tokens: int, seed: int = 0) -> np.ndarray:  # -> [T, T] rows summing to 1
    weights = np.tril(np.random.default_rng(seed).random((n_tokens, n_tokens)) + 0.01)
    return weights / weights.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n_tokens", [1, 5, 12, 40, 300])
@pytest.mark.parametrize("shade", [False, True])
def test_heatmap_fills_exactly_its_size_at_any_context_length(n_tokens, shade):
    strips = render_heatmap(causal_attention(n_tokens), [f"t{i}" for i in range(n_tokens)], 48, 14, n_tokens - 1, shade)
    assert len(strips) == 14
    assert all(strip.cell_length == 48 for strip in strips)


def test_heatmap_shows_the_causal_triangle_and_marks_the_highlighted_row():
    strips = render_heatmap(causal_attention(6), ["a", "b", "c", "d", "e", "f"], 40, 10, 2, shade=True)
    rows = [strip.text for strip in strips[:6]]  # shade mode, 6 tokens: one text row per token
    for i, row in enumerate(rows):
        grid = row[row.index(" ", 3) + 1 :]
        assert grid.count("·") > 0 if i < 5 else "·" not in grid  # masked cells after the diagonal
        assert grid[: (i + 1) * 2].count("·") == 0  # the token and its past are attended
    assert [("◀" in row) for row in rows] == [False, False, True, False, False, False]


def test_heatmap_pools_a_long_context_instead_of_dumping_it():
    strips = render_heatmap(causal_attention(300), ["x"] * 300, 60, 20, 299, shade=False)
    grid_rows = [strip for strip in strips if "▀" in strip.text]
    assert len(grid_rows) <= 18 and max(strip.text.count("▀") for strip in grid_rows) <= 60
    assert "max-pooled" in strips[-1].text or any("max-pooled" in strip.text for strip in strips)


def test_pooling_takes_the_maximum_of_each_bin():
    matrix = np.zeros((4, 4), np.float32)
    matrix[3, 0] = 0.9
    pooled, masked = pool(matrix, fit_axis(4, 2, 1, even=False), fit_axis(4, 2, 1, even=False))
    assert pooled.tolist() == [[0.0, 0.0], [pytest.approx(0.9), 0.0]]
    assert masked.tolist() == [[False, True], [False, False]]


def test_head_grid_builds_the_matrix_from_rows_and_averages_heads():
    rows = [np.array([[[1.0], [0.0]]]), np.array([[[0.5, 0.5], [1.0, 0.0]]])]  # T=2 x [L=1, H=2, i+1]
    assert head_grid(rows, 0, None).tolist() == [[0.5, 0.0], [0.75, 0.25]]
    assert head_grid(rows, 0, 1).tolist() == [[0.0, 0.0], [1.0, 0.0]]


def test_pieces_never_reach_the_terminal_as_control_characters():
    assert visible("a\x00b\x1b[1m\r") == "a␀b␛[1m␍"
    assert visible("x\ny", newlines=True) == "x↵\ny"
    assert label_text(" the", 4) == "·the" and label_text("", 4) == "∅"
    assert label_text(" everyone", 6) == "·ever…"  # a cut label ends in "…": "·every" is another token


def test_setting_steps():
    assert nudge_temperature(0.05, -1) == 0.0 and nudge_temperature(0.8, 1) == 0.9
    assert ladder_step(0, TOP_K_LADDER, 1) == 1 and ladder_step(7, TOP_K_LADDER, -1) == 5
    assert ladder_step(0, TOP_K_LADDER, -1) == 0
    assert nudge_top_p(1.0, 1) == 1.0 and nudge_top_p(0.05, -1) == 0.05
    assert [cycle_head(h, 3, 1) for h in (None, 0, 1, 2)] == [0, 1, 2, None]


@pytest.mark.anyio
async def test_a_step_draws_its_token_in_a_frame_of_its_own_then_the_other_panes(toy):
    """The token is on screen one frame before the candidates, status and heatmap (each frame costs time)."""
    app = toy_app(toy)
    frames = []  # per frame the app composed: (tokens in the text, the candidates shown, the status)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.main_screen
        hook = app.post_display_hook

        def record_frame():
            hook()
            status = str(main.query_one("#generation-pane").border_subtitle)
            frames.append((len(main.query_one("#tokens").pieces), main.query_one(CandidatesView).text, status))

        app.post_display_hook = record_frame
        n_before, candidates_before = len(main.session.transcript.positions), main.query_one(CandidatesView).text
        await pilot.press("n")
        await settle(pilot)
    with_token = [frame for frame in frames if frame[0] == n_before + 1]
    assert with_token, "no frame showed the new token"
    first, last = with_token[0], with_token[-1]
    assert first[1] == candidates_before and "1 new" not in first[2]  # the token alone
    assert last[1] != candidates_before and "ready · 1 new" in last[2]  # then the next token's candidates and the count
    assert all(frame[1] == candidates_before for frame in frames[: frames.index(first)])  # no pane was drawn ahead of it


@pytest.mark.anyio
async def test_a_run_is_drawn_once_per_batch_of_tokens_not_per_token(toy, monkeypatch):
    from tui.screens.main import MainScreen

    app = toy_app(toy, temperature=0.8, max_new_tokens=60)
    counts = {"batches": 0, "tokens": 0, "redraws": 0}
    on_tokens, redraw = MainScreen.on_tokens_generated, MainScreen.redraw

    def count_batch(screen, message):
        counts["batches"] += 1
        counts["tokens"] += len(message.events)
        on_tokens(screen, message)

    def count_redraw(screen):
        counts["redraws"] += screen.session.engine.running
        redraw(screen)

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        monkeypatch.setattr(MainScreen, "on_tokens_generated", count_batch)
        monkeypatch.setattr(MainScreen, "redraw", count_redraw)
        await pilot.press("g")
        await settle(pilot)
    assert counts["tokens"] == app.session.transcript.n_generated > 0
    assert counts["batches"] < counts["tokens"]  # the engine posts its tokens in batches (~60 each here)
    assert counts["redraws"] <= counts["batches"]  # the status and panes follow the batches, never each token


@pytest.mark.anyio
async def test_the_text_follows_the_newest_token_and_scrolls_back_with_the_keys(toy):
    from tui.widgets.generation import TokenLines

    app = toy_app(endless(toy), max_new_tokens=100_000)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        lines = app.main_screen.query_one(TokenLines)
        while len(lines.runs) <= lines.size.height + 2:  # more lines than the pane shows
            await pilot.press(*["n"] * 5)
            await settle(pilot)
        newest = len(lines.runs) - 1
        assert lines.first_line() == newest - lines.size.height + 1  # the newest line is the last row
        rows = [lines.render_line(y).text for y in range(lines.size.height)]
        assert rows[-1][:-1].rstrip() == "".join(text for text, _ in lines.runs[newest]).rstrip()
        assert rows[-1][-1] == "┃" and rows[0][-1] == "│"  # the scrollbar's thumb is at the bottom
        await pilot.press("up", "up")
        assert lines.first_line() == newest - lines.size.height - 1
        assert lines.render_line(lines.size.height - 1).text[-1] == "│"  # scrolled back: the thumb moved up
        first_token = lines.token_at(0, 0)  # a click maps to the line shown there, not to the first line of the text
        assert lines.starts[first_token] <= lines.line_spans(lines.wrap_width)[lines.first_line()][0] < lines.starts[first_token + 1]
        await pilot.press("n")
        await settle(pilot)
        assert lines.first_line() == len(lines.runs) - lines.size.height  # a new token: following again
