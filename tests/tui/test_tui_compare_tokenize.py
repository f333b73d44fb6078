"""Pilot tests of the compare screen (two samplers side by side) and the tokenize screen."""

import numpy as np
import pytest
from textual.widgets import DataTable, Input, Static

from engine.events import SamplingConfig
from engine.runtime.backends.base import greedy_tokens
from engine.runtime.backends.torch_eager import TorchBackend
from engine.runtime.loading import load_model
from engine.views.compare import CompareStep
from engine.views.tokenization import EXAMPLES, TRANSLATIONS, tokenize
from tests.conftest import random_gpt2_dir, sampler_of
from tests.tui.conftest import notifications, wait_until
from tui.app import DEFAULT_PROMPT, make_app
from tui.references import kl_word
from tui.screens.compare import B_COOL, B_HOT, CompareScreen, default_b_temperature, summary_line
from tui.screens.error import ErrorScreen
from tui.screens.tokenize import TokenizeScreen, summary_text

SIZE = (100, 30)


@pytest.fixture(scope="module")
def other_vocab_dir(local_bpe, tmp_path_factory):
    """A random GPT-2 on its own byte-level BPE: another vocabulary than the toy's."""
    return random_gpt2_dir(tmp_path_factory.mktemp("other_vocab"), local_bpe, seed=1)


# ---- compare -----------------------------------------------------------------------------------
async def open_compare(pilot, toy, temperature_b=None, **settings) -> CompareScreen:
    config = SamplingConfig(**{"temperature": 0.0, "seed": 0, **settings})
    screen = CompareScreen(toy, DEFAULT_PROMPT, config, shade=False, temperature_b=temperature_b)
    await pilot.app.push_screen(screen)
    await settle_compare(pilot, screen)
    return screen


async def settle_compare(pilot, screen) -> None:
    """Wait until the screen's samplers are built and no job runs or waits."""
    await wait_until(pilot, lambda: screen.side_a is not None and screen.engine.idle, "the compare jobs")
    await pilot.pause()


def toy_app(toy):
    return make_app(model=toy, config=SamplingConfig(temperature=0.0), device="cpu", palette="color", deterministic=True)


def status(screen) -> str:
    return str(screen.query_one("#cmp-status", Static).render())


def test_b_starts_at_another_temperature():
    assert default_b_temperature(0.0) == B_HOT and default_b_temperature(0.8) == B_HOT
    assert default_b_temperature(B_HOT) == B_COOL and default_b_temperature(3.0) == B_COOL


@pytest.mark.anyio
async def test_greedy_a_is_the_greedy_continuation_and_each_step_gives_one_kl(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy)
        assert screen.side_a.model_name == screen.side_b.model_name == "toy"
        assert screen.side_b.config.temperature == B_HOT
        for _ in range(3):
            await pilot.press("n")
        await settle_compare(pilot, screen)
        assert len(screen.steps) == 3
        prompt_ids = toy.tokenizer.encode(DEFAULT_PROMPT, add_special_tokens=False)
        greedy = greedy_tokens(TorchBackend(toy.hf_model), prompt_ids, 3)
        assert screen.side_a.token_ids == prompt_ids + greedy
        assert screen.side_b.token_ids == screen.side_a.token_ids  # shared context: B takes A's tokens
        assert all(st.kl > 0 for st in screen.steps)  # greedy A against B at T = 1.5
        assert "3 steps" in str(screen.query_one("#cmp-summary", Static).render())
        assert "ready · 3 steps" in status(screen)
        assert isinstance(app.screen, CompareScreen)


@pytest.mark.anyio
async def test_equal_settings_give_zero_kl_and_full_agreement(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy, temperature=0.8, temperature_b=0.8)
        for _ in range(4):
            await pilot.press("n")
        await settle_compare(pilot, screen)
        assert [st.kl for st in screen.steps] == pytest.approx([0.0] * 4, abs=1e-9)
        assert all(st.top1_agree for st in screen.steps)
        assert "top-1 agreement 4/4 (100%)" in str(screen.query_one("#cmp-summary", Static).render())


@pytest.mark.anyio
async def test_temperature_keys_change_each_side_and_the_kl(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy, temperature=1.0, temperature_b=1.0)
        await pilot.press("n")
        await settle_compare(pilot, screen)
        assert screen.steps[-1].kl == pytest.approx(0.0, abs=1e-9)
        await pilot.press("Y", "Y", "t")  # B 1.2, A 0.9
        await settle_compare(pilot, screen)
        assert (screen.settings.a.temperature, screen.settings.b.temperature) == (0.9, 1.2)
        assert screen.side_a.config.temperature == 0.9 and screen.side_b.config.temperature == 1.2  # candidates recomputed
        assert screen.side_a.candidates[0].p > screen.side_b.candidates[0].p  # the cooler side is sharper
        assert "temp 1.20" in str(screen.query_one("#settings-b", Static).render())
        await pilot.press("n")
        await settle_compare(pilot, screen)
        assert screen.steps[-1].kl > 0
        await pilot.press("y", "y", "y", "y", "y", "y", "y", "y", "y", "y", "y", "y", "y")
        await settle_compare(pilot, screen)
        assert screen.settings.b.temperature == 0.0  # floored: greedy


@pytest.mark.anyio
async def test_layer_and_head_keys_change_the_heatmap_subtitles(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy)
        side_a, side_b = screen.query_one("#side-a"), screen.query_one("#side-b")
        assert "block 1 · mean of heads" in str(side_a.border_subtitle)
        await pilot.press("right_square_bracket", "right_curly_bracket")
        await pilot.pause()
        assert "block 2 · head 1" in str(side_a.border_subtitle) and "block 2 · head 1" in str(side_b.border_subtitle)
        await pilot.press("left_square_bracket")  # back to the first block
        await pilot.press("left_curly_bracket")  # the first head -> mean
        await pilot.pause()
        assert "block 1 · mean of heads" in str(side_a.border_subtitle)


@pytest.mark.anyio
async def test_a_bad_model_b_gives_one_sentence_and_the_screen_stays(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy)
        await pilot.press("i")
        assert isinstance(screen.focused, Input)
        await pilot.press(*"/no/such/model", "enter")
        await settle_compare(pilot, screen)
        assert status(screen) == "Model B unchanged: no model directory at '/no/such/model'."
        assert app.screen is screen and not any(isinstance(s, ErrorScreen) for s in app.screen_stack)
        assert screen.focused is None  # enter left the input: the keys act again
        await pilot.press("n")
        await settle_compare(pilot, screen)
        assert len(screen.steps) == 1 and screen.side_b.model_name == "toy"


@pytest.mark.anyio
async def test_a_model_with_another_vocabulary_loads_and_is_compared_on_text(toy, other_vocab_dir):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy)
        await pilot.press("n")
        await settle_compare(pilot, screen)
        await pilot.press("i")
        screen.query_one("#model-b", Input).value = other_vocab_dir
        await pilot.press("enter")
        await settle_compare(pilot, screen)
        assert screen.side_b.model_name == other_vocab_dir and screen.mode == "text"
        assert screen.engine.handler.model_b.threads == toy.engine_threads  # the process's CPU threads: A's, not B's policy
        assert screen.steps == []  # a new B starts over from the prompt
        assert "another vocabulary" in status(screen)
        assert str(screen.query_one("#side-b").border_title) == f"B · {other_vocab_dir}"
        for _ in range(3):
            await pilot.press("n")
        await settle_compare(pilot, screen)
        assert len(screen.steps) == 3 and all(np.isfinite(st.kl) and st.kl >= 0 for st in screen.steps)
        assert screen.side_b.generated == screen.side_a.generated  # B read A's text, tokenized its own way
        assert "compared on candidate text" in str(screen.query_one("#cmp-strip").border_subtitle)


@pytest.mark.anyio
async def test_run_goes_max_new_tokens_further_each_time_as_on_the_main_screen(toy):
    """Defect 21: g meant "64 more" on the main screen but "up to 64 in all" here."""
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy, max_new_tokens=6)
        await pilot.press("g")
        await settle_compare(pilot, screen)
        assert len(screen.steps) == 6 and [st.index for st in screen.steps] == list(range(6))
        assert status(screen) == "ready · 6 steps"
        await pilot.press("g")  # six more, as the main screen's g
        await settle_compare(pilot, screen)
        assert len(screen.steps) == 12 and [st.index for st in screen.steps] == list(range(12))
        await pilot.press("r")
        await settle_compare(pilot, screen)
        assert screen.steps == [] and screen.side_a.generated == ""


@pytest.mark.anyio
async def test_run_pauses_and_refuses_steps_meanwhile(toy, other_vocab_dir):
    random_model = load_model(other_vocab_dir, device="cpu")  # greedy on random weights: no end-of-text soon
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(
            pilot, random_model, temperature_b=0.0, max_new_tokens=100_000
        )  # both greedy: no end-of-text soon; a run longer than the test
        said = []  # every notification as it is posted: one shown for 3 s can expire before a slow poll sees it
        notify = app.notify
        app.notify = lambda message, *args, **kwargs: (said.append(str(message)), notify(message, *args, **kwargs))[1]
        await pilot.press("g")
        await wait_until(pilot, lambda: len(screen.steps) >= 3, "a few steps")
        await pilot.press("r")
        assert screen.steps and screen.engine.running  # not reset
        await wait_until(pilot, lambda: "Running — press g to pause first." in said, "the refusal")
        await pilot.press("g")
        await settle_compare(pilot, screen)
        paused_at = len(screen.steps)
        assert 3 <= paused_at < 100_000 and status(screen) == f"ready · {paused_at} steps"
        await pilot.pause(0.05)
        assert len(screen.steps) == paused_at and not screen.engine.running


@pytest.mark.anyio
async def test_independent_texts_and_escape_goes_back(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy, temperature=0.0, temperature_b=2.0, seed=3)
        await pilot.press("f")
        await settle_compare(pilot, screen)
        assert screen.follow is None and "independent" in str(screen.query_one("#cmp-strip").border_subtitle)
        for _ in range(6):
            await pilot.press("n")
        await settle_compare(pilot, screen)
        assert screen.side_a.generated != screen.side_b.generated  # greedy A, hot B: the texts part
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen


# ---- tokenize ----------------------------------------------------------------------------------
async def open_tokenize(pilot, toy) -> TokenizeScreen:
    screen = TokenizeScreen(toy.tokenizer, "toy", toy.path)
    await pilot.app.push_screen(screen)
    await settle_tokenize(pilot)
    return screen


async def settle_tokenize(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def table_bytes(screen) -> bytes:
    table = screen.query_one("#tok-table", DataTable)
    return b"".join(bytes.fromhex(hex_bytes) for hex_bytes in table.get_column_at(4))


def example_number(label: str) -> int:
    return next(i for i, e in enumerate(EXAMPLES, start=1) if e.label.startswith(label))


@pytest.mark.anyio
@pytest.mark.parametrize("label", ["Russian", "Chinese", "Emoji"])
async def test_example_keys_load_examples_and_the_toy_table_round_trips(toy, label):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tokenize(pilot, toy)
        number = example_number(label)
        await pilot.press(str(number))
        await settle_tokenize(pilot)
        text = EXAMPLES[number - 1].text
        assert screen.query_one("#sentence", Input).value == text
        assert table_bytes(screen).decode("utf-8") == text
        table = screen.query_one("#tok-table", DataTable)
        assert table.row_count == len(toy.tokenizer.encode(text)) == screen.tokenization.n_tokens
        assert [int(i) for i in table.get_column_at(1)] == toy.tokenizer.encode(text)
        summary = str(screen.query_one("#tok-summary", Static).render())
        assert "round trip exact" in summary and f"tokens {screen.tokenization.n_tokens}" in summary


@pytest.mark.anyio
async def test_digits_go_into_a_focused_input_and_ctrl_n_cycles(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tokenize(pilot, toy)
        sentence = screen.query_one("#sentence", Input)
        assert sentence.value == EXAMPLES[0].text
        await pilot.press("i", "end", "2")
        assert sentence.value == EXAMPLES[0].text + "2"  # typed, not example 2
        assert screen.tokenization.text == EXAMPLES[0].text  # not tokenized before enter
        await pilot.press("enter")
        assert screen.tokenization.text == EXAMPLES[0].text + "2" and not isinstance(screen.focused, Input)
        await pilot.press("i", "ctrl+n")  # works while typing
        assert sentence.value == EXAMPLES[1].text == screen.tokenization.text and screen.focused is sentence
        await pilot.press("escape", "3")  # escape leaves the input: digits load examples again
        assert sentence.value == EXAMPLES[2].text == screen.tokenization.text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen


@pytest.mark.anyio
async def test_the_toy_is_no_encoder_and_a_bad_source_gives_one_sentence(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tokenize(pilot, toy)
        note = str(screen.query_one("#tok-attention-note", Static).render())
        assert note.startswith("No encoder attention:") and "'gpt2' model" in note
        await pilot.press("s", *"/no/such/tokenizer", "enter")
        await settle_tokenize(pilot)
        assert str(screen.query_one("#tok-status", Static).render()) == "Tokenizer unchanged: no model directory at '/no/such/tokenizer'."
        assert app.screen is screen and not any(isinstance(s, ErrorScreen) for s in app.screen_stack)
        assert screen.source_name == "toy" and screen.tokenizer is toy.tokenizer


@pytest.mark.anyio
async def test_a_bert_directory_shows_wordpiece_tokens_and_encoder_attention(toy, bert_dir):  # noqa: F811
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tokenize(pilot, toy)
        await pilot.press("s")
        screen.query_one("#source", Input).value = str(bert_dir)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.source_name == str(bert_dir), "the BERT tokenizer")
        await settle_tokenize(pilot)
        await pilot.press(str(example_number("Russian")))
        await settle_tokenize(pilot)
        assert str(screen.query_one("#tok-inputs").border_title) == f"Tokenize · {bert_dir}"
        assert not screen.tokenization.byte_level and any(piece.startswith("##") for piece in screen.tokenization.pieces)
        encoder = screen.encoder
        assert encoder is not None and encoder.model_type == "bert"
        assert encoder.tokens[0] == "[CLS]" and encoder.tokens[-1] == "[SEP]"
        assert screen.query_one("#tok-attention").display and not screen.query_one("#tok-attention-note").display
        pane = screen.query_one("#tok-attention-pane")
        assert "bert · block 1 · mean of heads" in str(pane.border_subtitle)
        await pilot.press("right_square_bracket", "right_curly_bracket", "right_curly_bracket")
        assert "block 2 · head 2" in str(pane.border_subtitle)
        assert np.allclose(screen.query_one("#tok-attention").matrix, encoder.attention[1, 1])


# ---- reached from the main screen, the help screen and the palette ---------------------------------
@pytest.mark.anyio
async def test_c_and_w_open_the_screens_with_the_current_model_and_help_lists_their_keys(toy):
    app = make_app(model=toy, config=SamplingConfig(temperature=0.0), deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: sampler_of(app) is not None and app.session.engine.idle, "the model")
        await pilot.press("c")
        assert isinstance(app.screen, CompareScreen)
        await settle_compare(pilot, app.screen)
        await pilot.press("n")
        await settle_compare(pilot, app.screen)
        assert len(app.screen.engine.handler.session.steps) == 1
        await pilot.press("escape")
        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.screen, TokenizeScreen)
        await pilot.press("escape", "question_mark")
        await pilot.pause()
        text = " ".join(" ".join(str(static.render()).split()) for static in app.screen.query(".help-section"))  # wrapped lines joined
        assert "Compare (c)" in text and "Tokenization (w)" in text
        for binding in [*CompareScreen.BINDINGS, *TokenizeScreen.BINDINGS]:
            assert (binding.tooltip or binding.description) in text or binding.key in "2345678"  # shown as 1-8
        titles = [command.title for command in app.get_system_commands(app.main_screen)]
        assert {"Compare", "Tokenization"} <= set(titles)


@pytest.mark.anyio
async def test_without_a_model_c_and_w_say_so(toy, tmp_path):
    app = make_app(model=str(tmp_path / "no-model"), deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the load error")
        await pilot.press("escape", "c", "w")
        await pilot.pause()
        assert app.screen is app.main_screen
        assert sum("needs the model" in n for n in notifications(app)) == 1  # said once, not per key


def test_an_encoder_heatmap_draws_the_upper_triangle_a_decoder_masks_it():
    from tui.heatmap import fit_axis, pool

    matrix = np.full((6, 6), 1 / 6, np.float32)  # [T, T] every token attends to every token
    axis = fit_axis(6, 6, max_scale=1, even=False)
    pooled, causal_mask = pool(matrix, axis, axis)
    assert causal_mask.sum() == 15 and not causal_mask[np.tril_indices(6)].any()  # the 15 cells above the diagonal
    pooled_both_ways, no_mask = pool(matrix, axis, axis, causal=False)
    assert not no_mask.any() and np.array_equal(pooled, pooled_both_ways)


# ---- reference values: tokens relative to English, a scale for KL ---------------------------------
def test_the_summary_gives_a_translations_tokens_relative_to_the_english_sentence_and_nothing_for_other_text(toy):
    english = tokenize(toy.tokenizer, EXAMPLES[0].text).n_tokens
    for example in EXAMPLES[1:3]:
        view = tokenize(toy.tokenizer, example.text)
        assert example.text in TRANSLATIONS
        assert f"× English {view.n_tokens / english:.1f} (the same sentence)" in summary_text(view, english).plain
    assert EXAMPLES[-1].text not in TRANSLATIONS  # emoji and code: not the same sentence
    assert "× English" not in summary_text(tokenize(toy.tokenizer, EXAMPLES[-1].text)).plain


def test_the_compare_summary_puts_the_mean_kl_on_a_scale():
    assert [kl_word(kl) for kl in (0.0, 0.009, 0.01, 0.5, 1.0, 23.0)] == [
        "negligible",
        "negligible",
        "noticeable",
        "noticeable",
        "very different",
        "very different",
    ]
    steps = [CompareStep(1, None, None, kl, kl, kl < 0.3, " a", " b", [], []) for kl in (0.2, 0.4)]
    assert "mean KL(A‖B) 0.3000 nats (noticeable)" in summary_line(steps)


@pytest.mark.anyio
async def test_u_quantizes_b_through_each_type_and_back_to_full_precision(toy):
    app = toy_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, toy, temperature_b=0.0)
        await pilot.press("u")
        await settle_compare(pilot, screen)
        assert screen.side_b.model_name == "toy at Q8_0" and screen.mode == "vocab"
        assert status(screen) == "model B is toy at Q8_0 · same vocabulary"
        assert str(screen.query_one("#side-b").border_title) == "B · toy at Q8_0"
        for _ in range(4):
            await pilot.press("u")
            await settle_compare(pilot, screen)
        assert screen.side_b.model_name == "toy at Q4_0" and screen.quantize_b == "q4_0"
        for _ in range(4):
            await pilot.press("n")
        await settle_compare(pilot, screen)
        assert len(screen.steps) == 4 and all(st.kl_raw > 0 for st in screen.steps)  # rounded weights move every distribution
        assert screen.figures()["data"]["compare"]["quantize_b"] == "q4_0"
        await pilot.press("u")
        await settle_compare(pilot, screen)
        assert screen.side_b.model_name == "toy" and screen.quantize_b is None and screen.steps == []


@pytest.mark.anyio
async def test_quantizing_a_q4_1_gguf_to_its_own_type_is_refused_in_one_sentence(tmp_path):
    from engine.tools.gguf_factory import make_case

    model = load_model(str(make_case("smollm", tmp_path, "Q4_1").path), device="cpu", engine="numpy")
    app = toy_app(model)
    async with app.run_test(size=SIZE) as pilot:
        config = SamplingConfig(temperature=0.0)
        screen = CompareScreen(model, "The cat", config, shade=False, temperature_b=0.0, quantize_b="q4_1")
        await app.push_screen(screen)
        await settle_compare(pilot, screen)
        assert status(screen).startswith("Model B unchanged: ") and "is already Q4_1; re-quantizing Q4_1 to Q4_1" in status(screen)
        await pilot.press("u")  # on to Q4_0: re-quantized from Q4_1
        await settle_compare(pilot, screen)
        assert screen.side_b.model_name.endswith("at Q4_0") and "re-quantized from Q4_1" in status(screen)


@pytest.mark.anyio
async def test_tokenizers_side_by_side_the_toys_the_models_and_each_one_loaded(toy, other_vocab_dir):
    other_vocab_dir, third = str(other_vocab_dir), str(toy.path)  # the toy's folder, picked by its path
    model = load_model(other_vocab_dir, device="cpu")
    app = make_app(model=model, config=SamplingConfig(temperature=0.0), device="cpu", palette="color", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.session.model is not None and app.session.engine.idle, "the model")
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, TokenizeScreen) and app.screen.tokenization is not None, "the screen")
        screen = app.screen
        assert list(screen.compared) == ["toy", other_vocab_dir]  # the toy's beside the loaded model's
        await pilot.press(str(example_number("Russian")))
        await settle_tokenize(pilot)
        rows = screen.lesson_facts()["side_by_side"]
        russian = EXAMPLES[example_number("Russian") - 1].text
        assert [row.n_tokens for row in rows] == [
            len(toy.tokenizer.encode(russian)),
            len(model.tokenizer.encode(russian, add_special_tokens=False)),
        ]
        side = str(screen.query_one("#tok-side", Static).render()).splitlines()
        assert len(side) == 2 and side[0].startswith("toy") and f"×{rows[0].per_english:.1f}" in side[0]
        await pilot.press("s")
        screen.query_one("#source", Input).value = third
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.source_name == third, "the third tokenizer")
        await settle_tokenize(pilot)
        assert list(screen.compared) == ["toy", other_vocab_dir, third]
        assert len(str(screen.query_one("#tok-side", Static).render()).splitlines()) == 3
        assert [row["tokenizer"] for row in screen.figures()["data"]["tokens"]["side_by_side"]] == ["toy", other_vocab_dir, third]
