"""The insight views: every head at a glance (h), direct logit attribution (a), the p/entropy timeline."""

import json
import math

import numpy as np
import pytest

from engine.model.head_stats import NEAR_UNIFORM_NATS, STATISTICS, attention_matrix, head_stats, uniform_stats
from engine.model.interventions import direct_logit_attribution
from engine.runtime.interventions import Inspector
from engine.views.pieces import visible
from tests.tui.conftest import settle, wait_until
from tests.tui.test_tui_fit import SMALL, footer_keys, open_screen, toy_app
from tui.screens.attribution import AttributionScreen
from tui.screens.heads import HeadsScreen, detail_line
from tui.widgets.head_tiles import stat_text
from tui.widgets.timeline import LABEL_WIDTH, Timeline, timeline_strips


def synthetic_rows(n_layer: int, n_head: int, n_tokens: int, seed: int = 0) -> list[np.ndarray]:  # T x [L, H, i + 1]
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_tokens):
        weights = rng.random((n_layer, n_head, i + 1)).astype(np.float32) ** 4
        rows.append(weights / weights.sum(axis=-1, keepdims=True))
    return rows


def gpt2_small_context(n_tokens: int = 40):
    ids = [int(i) for i in np.random.default_rng(1).integers(0, 30, n_tokens)]  # repeats: duplicate/induction defined
    return synthetic_rows(12, 12, n_tokens), [f" t{i}" for i in ids], ids


async def stats_ready(pilot, screen) -> None:
    await wait_until(pilot, lambda: screen.stats is not None, "the head statistics")
    await pilot.pause()


def assert_quit_help_save_shown(screen, width: int) -> None:
    shown = {(k, label) for k, label, right in footer_keys(screen) if right <= width}
    assert {("q", "Quit"), ("?", "Help"), ("e", "Save")} <= shown, footer_keys(screen)


# ---- every head at a glance ----------------------------------------------------------------------
@pytest.mark.anyio
async def test_all_heads_opens_at_80x24_with_the_toy_model_and_matches_head_stats(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("n", "n", "n")
        await settle(pilot)
        screen = await open_screen(pilot, "h", HeadsScreen)
        await stats_ready(pilot, screen)
        main = app.main_screen
        expected = head_stats(attention_matrix(main.session.transcript.rows), [p.token_id for p in main.session.transcript.positions])
        for name in STATISTICS:
            np.testing.assert_allclose(screen.stats[name], expected[name], atol=1e-9, equal_nan=True)
        assert len(screen.order) == toy.info.n_layer * toy.info.n_head
        assert_quit_help_save_shown(screen, SMALL[0])
        detail = str(screen.query_one("#heads-detail").render())
        layer, head = screen.order[screen.selected]
        assert f"B{layer + 1}.H{head + 1}" in detail and stat_text(float(expected["sink"][layer, head])) in detail


@pytest.mark.anyio
@pytest.mark.parametrize("size", [SMALL, (100, 30)], ids=["80x24", "100x30"])
async def test_all_heads_with_the_gpt2_small_shape_pages_sorts_and_opens_a_head(toy, size):
    rows, pieces, ids = gpt2_small_context()
    app = toy_app(toy)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        opened = []

        class Session:  # the app's session is the toy's: this context's heads are not in it
            def show_head(self, layer, head):
                opened.append((layer, head))

        screen = HeadsScreen(rows, pieces, ids, session=Session())
        app.push_screen(screen)
        await stats_ready(pilot, screen)
        expected = head_stats(attention_matrix(rows), ids)
        for name in STATISTICS:
            np.testing.assert_allclose(screen.stats[name], expected[name], atol=1e-9, equal_nan=True)
        assert_quit_help_save_shown(screen, size[0])
        page, n_pages, per_page = screen.query_one("#heads").page()
        assert (page, n_pages) == (0, math.ceil(144 / per_page)) and n_pages > 1
        assert f"page 1/{n_pages}" in screen.query_one("#heads-pane").border_subtitle
        await pilot.press("pagedown")
        await pilot.pause()
        assert screen.selected == per_page and screen.query_one("#heads").page()[0] == 1
        picked = screen.order[screen.selected]
        for name in STATISTICS:  # o cycles: layer order → entropy → sink → …
            await pilot.press("o")
            await pilot.pause()
            assert screen.sort_by == name and screen.order[screen.selected] == picked  # sorting keeps the selected head
            values = [expected[name][layer, head] for layer, head in screen.order]
            defined = [v for v in values if not np.isnan(v)]
            assert defined == sorted(defined, reverse=True) and all(np.isnan(v) for v in values[len(defined) :])
            assert name.split("_")[0] in screen.query_one("#heads-pane").border_subtitle.replace("-", "_")
        before = screen.selected
        await pilot.press("right", "down")
        await pilot.pause()
        columns = screen.query_one("#heads").layout().columns
        assert screen.selected == before + 1 + columns
        chosen = screen.order[screen.selected]
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is app.main_screen, "the main screen")
        assert opened == [chosen]


@pytest.mark.anyio
async def test_enter_on_all_heads_shows_the_head_in_the_attention_pane(toy):
    app = toy_app(toy)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = await open_screen(pilot, "h", HeadsScreen)
        await stats_ready(pilot, screen)
        await pilot.press("o", "o", "o", "o", "o", "o", "right", "right", "enter")  # back to layer order: the third head, L0.H2
        await wait_until(pilot, lambda: app.screen is app.main_screen, "the main screen")
        await pilot.pause()
        main = app.main_screen
        assert (main.shown_layer, main.shown_head) == screen.order[screen.selected] == (0, 2)
        assert main.query_one("#attention-pane").border_subtitle == "block 1 · head 3 · log scale"  # counted from 1 on screen


# ---- the timeline --------------------------------------------------------------------------------
def timeline_rows(app) -> list[str]:
    timeline = app.main_screen.query_one(Timeline)
    return [strip.text for strip in timeline_strips(timeline.probabilities, timeline.entropies, timeline.size.width, timeline.max_entropy)]


@pytest.mark.anyio
async def test_the_timeline_shows_one_point_per_generated_token_and_follows_undo(toy):
    app = toy_app(toy, temperature=1.0)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        main = app.main_screen
        assert main.query_one(Timeline).probabilities == []
        for _ in range(4):
            await pilot.press("n")
            await settle(pilot)
        await pilot.pause()
        timeline = main.query_one(Timeline)
        generated = [p for p in main.session.transcript.positions if p.generated]
        assert timeline.probabilities == [p.p_raw for p in generated] and len(generated) == 4
        assert all(e is not None and e > 0 for e in timeline.entropies)  # sampled at T=1: entropy of what it was drawn from
        p_row, entropy_row = timeline_rows(app)
        assert p_row.startswith("p ") and entropy_row.startswith("ent≤")
        assert len(p_row[LABEL_WIDTH:].rstrip()) == 4 and len(entropy_row[LABEL_WIDTH:].rstrip()) == 4
        await pilot.press("backspace")
        await settle(pilot)
        await pilot.pause()
        assert len(timeline.probabilities) == 3 and len(timeline_rows(app)[0][LABEL_WIDTH:].rstrip()) == 3


def test_timeline_rows_keep_the_newest_tokens_that_fit_and_scale_entropy_to_its_maximum():
    p_row, entropy_row = (s.text for s in timeline_strips([0.0, 0.5, 1.0, None], [0.0, 1.0, 2.0, 2.0], LABEL_WIDTH + 3))
    assert p_row == "p".ljust(LABEL_WIDTH) + "▅█ "
    assert entropy_row == "ent≤2.0".ljust(LABEL_WIDTH) + "▅██"
    with_vocabulary = timeline_strips([0.5], [1.0], LABEL_WIDTH + 1, max_entropy=math.log(1453))[1].text
    assert with_vocabulary == "ent≤1.0/7.3".ljust(LABEL_WIDTH) + "█"  # ln V beside the row's top


@pytest.mark.anyio
async def test_the_main_screen_shows_chance_and_ln_v_for_the_loaded_vocabulary(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        vocabulary = toy.info.vocab_size
        assert app.main_screen.query_one("#candidates-pane").border_title == f"Candidates · 1/V {100 / vocabulary:.2g}%"
        assert timeline_rows(app)[1].startswith("ent≤") and f"/{math.log(vocabulary):.1f}" in timeline_rows(app)[1][:LABEL_WIDTH]


def test_a_heads_detail_line_says_uniform_when_its_entropy_is_within_noise_of_uniform_attentions():
    ids = [1, 2, 3, 4, 5, 6]
    uniform = uniform_stats(ids)
    close = {name: np.full((1, 1), value) for name, value in uniform.items()}
    close["entropy"] = np.full((1, 1), uniform["entropy"] - NEAR_UNIFORM_NATS / 2)
    focused = {**close, "entropy": np.full((1, 1), uniform["entropy"] - 3 * NEAR_UNIFORM_NATS)}
    assert detail_line(close, 0, 0, uniform).startswith("B1.H1 ≈ uniform · ")
    assert detail_line(focused, 0, 0, uniform).startswith("B1.H1 · entropy ")


# ---- direct logit attribution --------------------------------------------------------------------
async def attribution_ready(pilot, screen) -> None:
    await wait_until(pilot, lambda: screen.attributions is not None, "the attribution")
    await pilot.pause()


@pytest.mark.anyio
@pytest.mark.parametrize("size", [SMALL, (100, 30)], ids=["80x24", "100x30"])
async def test_attribution_bars_sum_to_the_logit_and_match_direct_logit_attribution(toy, size):
    app = toy_app(toy)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("n", "n")
        await settle(pilot)
        main = app.main_screen
        ids = [p.token_id for p in main.session.transcript.positions]
        candidates = main.session.transcript.candidates
        screen = await open_screen(pilot, "a", AttributionScreen)
        await attribution_ready(pilot, screen)
        assert_quit_help_save_shown(screen, size[0])
        inspector = Inspector(toy, "numpy")
        run = inspector.run(ids)
        for chosen in range(3):
            if chosen:
                await pilot.press("down")
                await wait_until(pilot, lambda c=chosen: screen.attribution.token_id == candidates[c].token_id, "the next candidate's bars")
                await pilot.pause()
            expected = direct_logit_attribution(run, inspector.net, candidates[chosen].token_id)
            shown = screen.attribution
            assert shown.token_id == candidates[chosen].token_id
            assert shown.components() == pytest.approx(expected.components(), abs=1e-6)
            assert abs(shown.total() - shown.logit) <= 1e-4 and shown.logit == pytest.approx(float(run.logits[shown.token_id]), abs=1e-6)
            chart = str(screen.query_one("#attr-chart").render())
            for label, value in [
                ("embed", shown.embed),
                *((f"B{i + 1}.mlp", v) for i, v in enumerate(shown.mlp)),
                ("ln_f bias", shown.bias),
            ]:
                line = next(row for row in chart.splitlines() if row.lstrip(" ▸▾").startswith(label))
                assert "│" in line and line.rstrip().endswith(f"{value:+.3f}")
            summed = str(screen.query_one("#attr-sum").render())
            assert f"{shown.total():.4f}" in summed and f"logit {shown.logit:.4f}" in summed and "sum ok" in summed
            assert repr(candidates[chosen].text) in str(screen.query_one("#attr-candidate").render())
        assert "H0" not in chart
        await pilot.press("right_square_bracket", "enter")  # layer 1's heads
        await pilot.pause()
        chart = str(screen.query_one("#attr-chart").render())
        heads = [row for row in chart.splitlines() if row.strip().startswith("H")]
        assert len(heads) == toy.info.n_head and "▾B2.attn" in chart
        for head, row in enumerate(heads):
            assert row.rstrip().endswith(f"{shown.heads[1, head]:+.3f}")


@pytest.mark.anyio
async def test_d_shows_the_logit_difference_from_the_likeliest_other_candidate(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        main = app.main_screen
        ids, candidates = [p.token_id for p in main.session.transcript.positions], main.session.transcript.candidates
        screen = await open_screen(pilot, "a", AttributionScreen)
        await attribution_ready(pilot, screen)
        inspector = Inspector(toy)
        run = inspector.run(ids)
        own = [direct_logit_attribution(run, inspector.net, c.token_id) for c in candidates[:2]]
        await pilot.press("d")
        await wait_until(pilot, lambda: "Δ vs" in str(screen.query_one("#attr-candidate").render()), "the difference")
        shown = screen.attribution  # the top candidate minus the runner-up
        assert shown.logit == pytest.approx(own[0].logit - own[1].logit, abs=1e-6)
        for name, value in shown.components().items():
            assert value == pytest.approx(own[0].components()[name] - own[1].components()[name], abs=1e-9), name
        assert abs(shown.total() - shown.logit) <= 1e-4
        summed = str(screen.query_one("#attr-sum").render())
        assert f"Δ logit vs {visible(candidates[1].text)!r} {shown.logit:.4f}" in summed and "sum ok" in summed
        await pilot.press("down")  # the second candidate: against the likeliest
        await wait_until(pilot, lambda: screen.chosen == 1, "the second candidate")
        assert screen.attribution.logit == pytest.approx(own[1].logit - own[0].logit, abs=1e-6)
        await pilot.press("d")
        await wait_until(pilot, lambda: "Δ vs" not in str(screen.query_one("#attr-candidate").render()), "one logit again")
        assert screen.attribution.logit == pytest.approx(own[1].logit, abs=1e-6)


@pytest.mark.anyio
@pytest.mark.parametrize("key, kind, stem", [("h", HeadsScreen, "heads"), ("a", AttributionScreen, "attribution")])
async def test_e_saves_the_insight_screens_figures(toy, tmp_path, key, kind, stem):
    app = toy_app(toy, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = await open_screen(pilot, key, kind)
        await wait_until(
            pilot, lambda: getattr(screen, "stats", None) is not None or getattr(screen, "attributions", None) is not None, "results"
        )
        await pilot.press("e")
        await wait_until(pilot, lambda: list(tmp_path.glob(f"{stem}-*.json")), f"the {stem} file")
        data = json.loads(next(tmp_path.glob(f"{stem}-*.json")).read_text())
        if kind is HeadsScreen:
            assert set(data["stats"]) == set(STATISTICS) and len(data["order"]) == toy.info.n_layer * toy.info.n_head
        else:
            parts = data["components"]
            layers = toy.info.n_layer
            total = parts["embed"] + sum(parts[f"L{i}.attn"] + parts[f"L{i}.mlp"] for i in range(layers)) + data["bias"]
            assert total == pytest.approx(data["logit"], abs=1e-4)
