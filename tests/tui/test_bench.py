"""The benchmark commands' deterministic parts: tables, JSON, argument parsing, the harnesses, and
that the widgets' line-level repaints show what a fresh render shows. Nothing here is timed."""

import json
import sys

import numpy as np
import pytest
import torch
from rich.segment import Segment
from textual.app import App
from textual.geometry import Region
from textual.widgets import Static

import engine.tools.bench_decode
from engine.cli import main as tfund_main
from engine.events import LensEntry
from engine.tools.bench_decode import format_decode_table, format_fast_table
from engine.views.tokenization import load_tokenizer
from tui.heatmap import COLOUR_LEVELS, HALF_BLOCK, NO_PIXEL, grid_rows, half_block_style
from tui.tools.bench import (
    PtyApp,
    contexts_arg,
    format_render,
    format_startup,
    prompt_of_length,
    size_arg,
    strip_ansi,
)
from tui.tools.minimal_app import READY_TEXT, MinimalApp
from tui.widgets.attention_map import AttentionMap
from tui.widgets.layers import LayerChart, LensColumn, chart_strips, lens_strips

DECODE_RESULT = {
    "prompt_tokens": 16,
    "n_tokens": 32,
    "repeats": 5,
    "numpy_run_tok_s": 50.0,
    "numpy_tok_s": 40.2,
    "torch_tok_s": 22.9,
    "generate_tok_s": 25.0,
    "ratio": 1.755,
    "run_vs_generate": 2.0,
    "weight_bytes_per_token": 500_000_000,
    "copy_bandwidth": 10e9,
    "bandwidth_floor_fraction": 2.5,
    "same_tokens": True,
    "torch_threads": 2,
}
FAST_RESULT = {
    "device": "cuda:0",
    "device_name": "NVIDIA H100",
    "dtype": "float32",
    "prompt_tokens": 16,
    "n_tokens": 128,
    "repeats": 5,
    "fast_tok_s": 900.0,
    "eager_tok_s": 60.0,
    "generate_tok_s": 120.0,
    "fast_vs_generate": 7.5,
    "fast_vs_eager": 15.0,
    "same_tokens_fast_eager": True,
    "same_tokens_fast_generate": True,
    "graphed": True,
    "graph_error": None,
    "torch_threads": 2,
    "seconds": {"fast": [0.1], "eager": [1.0], "generate": [1.0]},
}


# ---- tfund bench decode ----------------------------------------------------------------------
def test_decode_table_names_both_engines_and_the_ratio():
    lines = format_decode_table(DECODE_RESULT, "random gpt2").splitlines()
    assert lines[0].startswith("decode benchmark: random gpt2, cpu, 16 prompt + 32 new tokens, median of 5")
    rows = {line[:48].strip(): line[48:].strip() for line in lines[2:6]}
    assert rows == {
        "numpy, what a run draws (no lens)": "50.0",
        "numpy, full capture (lens too)": "40.2",
        "transformers, full capture": "22.9",
        "transformers generate, no capture": "25.0",
    }
    assert lines[6] == "numpy run/generate 2.00x; full capture numpy/transformers 1.75x; same tokens: yes"
    assert lines[7] == "bandwidth floor: 500 MB of weights per token at 10.0 GB/s copy = 20.0 tok/s; the numpy run reaches 250%"


def test_fast_table_compares_the_step_loop_with_generate():
    table = format_fast_table(FAST_RESULT, "random gpt2-xl")
    assert "cuda:0 (NVIDIA H100), float32, 16 prompt + 128 new tokens, median of 5" in table
    rows = {line[:48].strip(): line[48:].strip() for line in table.splitlines()[2:5]}
    assert rows == {
        "tfund step loop, full capture (static cache)": "900.0",
        "tfund eager TorchBackend, full capture": "60.0",
        "transformers generate, no capture": "120.0",
    }
    assert "ratio step loop/generate 7.50x, step loop/eager 15.00x; CUDA graphs: yes" in table
    fell_back = format_fast_table({**FAST_RESULT, "graphed": False, "graph_error": "RuntimeError: x"}, "toy")
    assert "CUDA graphs: no (RuntimeError: x)" in fell_back


def test_bench_decode_json_on_cpu(capsys):
    assert tfund_main(["bench", "decode", "--config", "tiny", "--tokens", "3", "--prompt-tokens", "2", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "random tiny" and result["n_tokens"] == 3 and result["prompt_tokens"] == 2
    assert result["same_tokens"] is True
    assert result["ratio"] == pytest.approx(result["numpy_tok_s"] / result["torch_tok_s"])
    assert result["run_vs_generate"] == pytest.approx(result["numpy_run_tok_s"] / result["generate_tok_s"])
    assert 0 < result["bandwidth_floor_fraction"] and result["weight_bytes_per_token"] > 4 * 64 * 256  # at least the unembedding


def test_bench_decode_cuda_without_cuda_exits_1_with_one_sentence(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tfund_main(["bench", "decode", "--config", "tiny", "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda" in err and "Traceback" not in err


def test_bench_decode_cuda_runs_the_fast_benchmark_in_the_asked_dtype(monkeypatch, capsys):
    calls = []

    def fake_bench_fast(hf_model, prompt_ids, n_tokens, device=None, repeats=5):
        calls.append((next(hf_model.parameters()).dtype, len(prompt_ids), n_tokens, device, repeats))
        return FAST_RESULT

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(engine.tools.bench_decode, "bench_fast", fake_bench_fast)
    argv = [
        "bench",
        "decode",
        "--config",
        "tiny",
        "--device",
        "cuda",
        "--dtype",
        "bfloat16",
        "--tokens",
        "8",
        "--prompt-tokens",
        "4",
        "--repeats",
        "3",
    ]
    assert tfund_main(argv) == 0
    assert calls == [(torch.bfloat16, 4, 8, "cuda", 3)]
    assert "transformers generate, no capture" in capsys.readouterr().out


def test_bench_decode_refuses_half_precision_on_the_cpu(capsys):
    assert tfund_main(["bench", "decode", "--config", "tiny", "--dtype", "float16"]) == 2
    assert "--dtype" in capsys.readouterr().err


def test_bench_startup_bad_repeats_exit_2_with_one_line(capfd):
    assert tfund_main(["bench", "startup", "--repeats", "0"]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "--repeats" in err


# ---- tfund bench startup / render: parsing and tables ------------------------------------------
def test_contexts_and_size_arguments():
    assert contexts_arg("32,128,256") == [32, 128, 256]
    assert size_arg("100x30") == (100, 30)
    for bad in ("", "32,x", "1,128"):
        with pytest.raises(Exception, match="comma-separated"):
            contexts_arg(bad)
    with pytest.raises(Exception, match="WIDTHxHEIGHT"):
        size_arg("100*30")


def test_strip_ansi_keeps_only_the_printable_text():
    raw = "\x1b[?1049h\x1b[38;5;208;48;5;17mready\x1b[0m \x1b]0;title\x07· 3 new\x1b[2;5H!"
    assert strip_ansi(raw) == "ready · 3 new!"


@pytest.mark.parametrize("n_tokens", [1, 31, 127, 255])
def test_prompt_of_length_has_exactly_that_many_tokens(n_tokens):
    tokenizer = load_tokenizer("toy")
    prompt = prompt_of_length(tokenizer, n_tokens)
    assert len(tokenizer.encode(prompt, add_special_tokens=False)) == n_tokens


def test_startup_table_prints_the_medians_and_the_ratio():
    result = {
        "model": "toy",
        "repeats": 5,
        "terminal": "tmux 100x30",
        "tfund_first_frame_ms": 540.0,
        "tfund_model_ready_ms": 5900.0,
        "minimal_first_frame_ms": 300.0,
        "ratio_first_frame": 1.8,
    }
    table = format_startup(result)
    assert "median of 5 launches" in table
    assert table.splitlines()[2].split() == ["minimal", "Textual", "app", "300", "ms", "-"]
    assert table.splitlines()[3].split()[-4:] == ["540", "ms", "5900", "ms"]
    assert "1.80x (goal <= 2x: met; first frame <= 1000 ms: met)" in table


def test_render_table_prints_a_row_per_context_and_the_budget():
    result = {
        "model": "toy",
        "n_layer": 2,
        "n_head": 4,
        "size": "100x30",
        "tokens": 20,
        "byte_tokens": 5,
        "contexts": {
            32: {"ui_ms": 9.5, "engine_ms": 3.1, "bytes": 12345.0, "encoded_bytes": 9000.0},
            128: {"ui_ms": 17.25, "engine_ms": 3.4, "bytes": 23456.0, "encoded_bytes": 11000.5},
        },
    }
    lines = format_render(result).splitlines()
    assert "(2 layers x 4 heads), 100x30" in lines[0]
    assert lines[2].split() == ["32", "9.5", "3.1", "12,345", "9,000"]
    assert lines[3].split() == ["128", "17.2", "3.4", "23,456", "11,000"]
    assert lines[5] == "budget: UI update <= 16 ms/token at 128 tokens: NOT met (17.2 ms)"


# ---- the baseline app and the pseudo-terminal harness -----------------------------------------
@pytest.mark.anyio
async def test_the_minimal_app_shows_its_text_and_quits_on_q():
    app = MinimalApp()
    async with app.run_test(size=(100, 30)) as pilot:
        assert str(app.query_one(Static).render()) == READY_TEXT
        await pilot.press("q")
    assert app.return_code == 0


def test_frames_are_cut_at_each_synchronized_output_end_even_one_split_across_reads():
    app = PtyApp.__new__(PtyApp)  # the output bookkeeping alone, no process
    app.output, app.frames = bytearray(), []
    chunks = [b"\x1b[?2026$p\x1b[?2026hAB\x1b[?2026l", b"\x1b[?2026hCD\x1b[?20", b"26l\x1b[?2026hEF", b"\x1b[?2026l"]
    asked = [app.add_output(chunk, float(arrived)) for arrived, chunk in enumerate(chunks)]
    assert asked[0] and not any(asked[1:])  # the query is answered once
    assert [(at, strip_ansi(bytes(app.output[a:b]).decode())) for at, a, b in app.frames] == [(0.0, "AB"), (2.0, "CD"), (3.0, "EF")]


def test_the_minimal_app_runs_in_a_pseudo_terminal_and_its_output_is_counted():
    app = PtyApp([sys.executable, "-m", "tui.tools.minimal_app"], (100, 30))
    try:
        app.wait_until(lambda: READY_TEXT in app.text(), 60, "show its text")
        assert app.n_bytes > len(READY_TEXT)
        # the harness answered the synchronized-output query, so the app delimits its frames
        app.wait_until(lambda: any(READY_TEXT in text for _, text in app.frames_after(0.0)), 60, "frame its text")
    finally:
        app.close()
    assert app.process.returncode == 0  # q quit it


# ---- drawing: merged runs, the chart, and line-level repaints ----------------------------------
def test_grid_rows_merge_runs_and_keep_every_cell():
    level_map = np.random.default_rng(0).integers(-1, COLOUR_LEVELS, size=(7, 23))  # odd: the last row has no lower pixel
    level_map[:, 10:16] = -1  # a masked run
    rows = grid_rows(level_map, shade=False)
    assert len(rows) == 4
    for r, segments in enumerate(rows):
        cells = [(char, segment.style) for segment in segments for char in segment.text]
        lower = level_map[2 * r + 1] if 2 * r + 1 < 7 else np.full(23, NO_PIXEL)
        assert cells == [(HALF_BLOCK, half_block_style(int(u), int(d))) for u, d in zip(level_map[2 * r], lower)]
        assert all(a.style is not b.style for a, b in zip(segments, segments[1:]))  # neighbours differ: runs merged
    assert half_block_style(3, NO_PIXEL).bgcolor is None


@pytest.mark.parametrize("width, height", [(38, 17), (21, 10), (12, 6), (8, 3)])
def test_chart_fills_exactly_its_size(width, height):
    strips = chart_strips(np.array([2.0, 8.0, 16.5]), np.array([0.9, -0.07]), width, height)
    assert len(strips) == height and all(strip.cell_length == width for strip in strips)


def test_chart_draws_the_norm_as_a_line_the_cosines_as_marks_and_nothing_over_the_data():
    wide = [strip.text for strip in chart_strips(np.array([2.0, 8.0, 16.5]), np.array([0.9, -0.07]), 24, 17)]
    assert wide[0].strip().startswith("┌") and wide[-3].strip().startswith("└")
    assert wide[1].startswith(" 1.00┤") and any(line.startswith("-0.07┤") for line in wide)
    plot = [line[6:-1] for line in wide[1:-3]]  # inside the frame
    assert sum(line.count("×") for line in plot) == 2  # one mark per cosine: distinct from the norm without colour
    assert any(0x2800 < ord(char) < 0x2900 for line in plot for char in line)  # the norm's braille line
    assert not any(char.isalnum() for line in plot for char in line)  # no legend text covers the data
    assert wide[-2].split() == ["emb", "1", "2"] and wide[-1].strip() == "after block"  # the norm's scale needs more room
    wider = [strip.text for strip in chart_strips(np.array([2.0, 8.0, 16.5]), np.array([0.9, -0.07]), 32, 17)]
    assert wider[-1].strip() == "after block · norm max 16.5"


def test_lens_keeps_the_last_layers_that_fit():
    lens = [LensEntry(layer, layer, f"w{layer}", 0.5) for layer in range(12)]  # the engine's layers 0…11: after blocks 1…12
    lines = [strip.text for strip in lens_strips(lens, 15, 5)]
    assert lines[0].startswith("lens→next") and [line.split()[0] for line in lines[1:]] == ["9", "10", "11", "12"]
    assert all(len(line) == 15 for line in lines)
    assert lens_strips(lens, 20, 5)[0].text.strip() == "lens→next (last 4)"  # said where it fits


def test_lens_lets_blocks_that_guess_alike_share_a_line_when_they_do_not_all_fit():
    ids = [3] * 12 + [5] * 14 + [7] * 4  # 30 blocks, three runs of the same guess
    lens = [LensEntry(layer, token_id, f" w{token_id}", 0.4) for layer, token_id in enumerate(ids)]
    lines = [strip.text for strip in lens_strips(lens, 16, 9)]
    assert [line.split()[:2] for line in lines[1:4]] == [["1–12", "·w3"], ["13–26", "·w5"], ["27", "·w7"]]
    assert [line.split()[0] for line in lines[4:7]] == ["28", "29", "30"]  # the latest run has room for a line a block
    assert lines[0].strip() == "lens→next" and not "".join(lines[7:]).strip()
    every = [strip.text for strip in lens_strips(lens, 16, 31)]  # room for every block: one line each
    assert [line.split()[0] for line in every[1:]] == [str(block) for block in range(1, 31)]


class TwinApp(App):
    """A widget fed a sequence of inputs, and `add_fresh` mounts a copy drawn only from the last: they must look alike."""

    CSS = "Screen { layout: vertical; } .twin { height: 14; width: 60; }"

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make

    def compose(self):
        yield self.make(classes="twin", id="stepped")

    async def add_fresh(self, show):
        fresh = self.make(classes="twin", id="fresh")
        show(fresh)  # before it is mounted: its first render draws every line from these inputs
        await self.mount(fresh)
        return fresh


def rendered(widget) -> list[list[Segment]]:
    width, height = widget.size
    return [list(strip) for strip in widget.render_lines(Region(0, 0, width, height))]


def causal(n_tokens: int, seed: int) -> np.ndarray:  # -> [T, T] rows summing to 1
    weights = np.tril(np.random.default_rng(seed).random((n_tokens, n_tokens)) + 0.01)
    return weights / weights.sum(axis=1, keepdims=True)


@pytest.mark.anyio
@pytest.mark.parametrize("shade", [False, True])
async def test_heatmap_repainted_line_by_line_equals_a_fresh_render(shade):
    app = TwinApp(AttentionMap)
    async with app.run_test(size=(60, 30)) as pilot:
        stepped = app.query_one("#stepped")
        for n_tokens in [3, 4, 9, 10, 40, 41, 41, 12]:  # magnified, pooled, the same inputs again, shorter
            pieces = [f"t{i}" for i in range(n_tokens)]
            stepped.show(causal(n_tokens, n_tokens), pieces, n_tokens - 1, shade)
            await pilot.pause()
        fresh = await app.add_fresh(lambda widget: widget.show(causal(12, 12), [f"t{i}" for i in range(12)], 11, shade))
        await pilot.pause()
        assert rendered(stepped) == rendered(fresh)


@pytest.mark.anyio
async def test_layers_chart_and_lens_repainted_line_by_line_equal_a_fresh_render():
    rng = np.random.default_rng(0)
    series = [(rng.random(n + 1) * 20, rng.random(n) * 2 - 1) for n in (2, 2, 12, 12, 4)]
    for make, show in [
        (LayerChart, lambda widget, norms, cosines: widget.show(norms, cosines)),
        (LensColumn, lambda widget, norms, cosines: widget.show([LensEntry(i, i, f"p{v:.2f}", v / 20) for i, v in enumerate(norms)])),
    ]:
        app = TwinApp(make)
        async with app.run_test(size=(60, 30)) as pilot:
            stepped = app.query_one("#stepped")
            for norms, cosines in series:
                show(stepped, norms, cosines)
                await pilot.pause()
            fresh = await app.add_fresh(lambda widget, show=show: show(widget, *series[-1]))
            await pilot.pause()
            assert rendered(stepped) == rendered(fresh)


def test_tui_figures_are_formatted_with_their_goals():
    from tui.tools.bench import format_tui

    result = {
        "model": "toy",
        "engine": "default",
        "repeats": 3,
        "startup": {"tfund_model_ready_ms": 687.0, "minimal_first_frame_ms": 285.0},
        "under_load": {
            "torch_quiet": 380.0,
            "torch_loaded": 152.0,
            "torch_ratio": 0.4,
            "torch_threads": 1,
            "default_quiet": 1215.0,
            "default_loaded": 415.0,
            "default_ratio": 0.34,
        },
        "run_mode": {"tui_tokens_per_second": 536.0, "headless_tokens_per_second": 1955.0, "ratio": 0.27, "n": 7},
        "key_to_screen_ms": {"p50": 26.9, "p95": 45.7, "repaint_p50": 40.2, "repaint_p95": 52.0, "n": 20},
    }
    lines = format_tui(result).splitlines()
    assert "687 ms" in lines[1] and "<= 1000 ms: met" in lines[1] and "<= 4x: met" in lines[1]
    assert "1 thread" in lines[2] and "ratio 0.40 (goal >= 0.3: met)" in lines[2]
    assert "ratio 0.27 (goal >= 0.6: NOT met; medians of 7 runs each)" in lines[4]
    assert "p50 26.9 ms  p95 45.7 ms" in lines[5] and "NOT met" in lines[5] and "whole repaint p50 40.2 ms  p95 52.0 ms" in lines[5]


def test_model_figures_are_formatted_and_the_memory_is_read_from_proc():
    import os

    from tui.tools.bench import all_heads_ms, format_model, rss_mib

    memory = rss_mib(os.getpid())
    assert 0 < memory["rss"] <= memory["peak"]
    heads = all_heads_ms("toy", "numpy", 32, 1)
    assert heads["tokens"] == 32 and heads["heads"] == 36 and heads["ms"] > 0
    result = {
        "model": "smollm2",
        "engine": "numpy",
        "key_to_screen_ms": {"p50": 9.1, "p95": 15.0, "repaint_p50": 80.2, "repaint_p95": 120.0, "n": 20},
        "run_mode": {"tui_tokens_per_second": 20.0, "headless_tokens_per_second": 25.0, "ratio": 0.8, "n": 3},
        "all_heads": heads,
        "memory": {"ready_mib": 700.0, "after_mib": 900.0, "peak_mib": 950.0, "tokens": 1024},
    }
    lines = format_model(result).splitlines()
    assert "p50 9.1 ms  p95 15.0 ms" in lines[1] and "whole repaint  p50 80.2 ms  p95 120.0 ms" in lines[1]
    assert "ratio 0.80" in lines[2] and "32 tokens x 36 heads" in lines[3] and "900 MiB after 1024 tokens (peak 950 MiB)" in lines[4]


@pytest.mark.parametrize("n_points, width, named", [(7, 30, 7), (31, 40, 7), (31, 80, 16)])
def test_the_x_axis_names_every_block_it_can_and_always_emb_and_the_last(n_points, width, named):
    lines = [strip.text for strip in chart_strips(np.linspace(1, 5, n_points), np.linspace(0.5, 1, n_points - 1), width, 10)]
    labels = lines[-2].split()
    assert labels[0] == "emb" and labels[-1] == str(n_points - 1) and len(labels) == named
    assert lines[-3].count("┬") == named  # a tick under each name
