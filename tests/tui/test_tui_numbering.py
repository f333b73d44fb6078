"""One layer numbering on screen: the residual stream is the embeddings, then after block 1…L; blocks and
heads count from 1 on screen and from 0 in the engine, the trace and on the command line."""

import pytest

from engine.events import SamplingConfig
from engine.model.blocklab import BlockLabConfig
from engine.model.interventions import Ablation, parse_ablation
from tests.tui.conftest import settle
from tui.app import make_app
from tui.numbering import ablation_label
from tui.screens.block_lab import lab_lines
from tui.widgets.parameters import ParametersView


def test_on_screen_labels_count_blocks_and_heads_from_1_and_the_trace_from_0():
    assert ablation_label(Ablation(1, "head", 2)) == "B2.H3" and parse_ablation("1.2").label == "L1.H2"
    assert ablation_label(Ablation(0, "attn")) == "B1.attn" and ablation_label(Ablation(0, "mlp")) == "B1.mlp"
    assert lab_lines(BlockLabConfig(n_layers=2), 1, 2)[-1] == ("block", "2 head 3")  # the block lab's engine layer 1, head 2


@pytest.mark.anyio
async def test_the_toys_blocks_read_1_to_l_in_the_lens_the_chart_attention_and_parameters(toy):
    app = make_app(model=toy, config=SamplingConfig(temperature=0.0, seed=0), device="cpu", palette="color", deterministic=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("n", "n", "n")
        await settle(pilot)
        main = app.main_screen
        blocks = [str(block) for block in range(1, toy.info.n_layer + 1)]
        lens = [line.text for line in main.query_one("#lens").draw(16, toy.info.n_layer + 1)]
        assert lens[0].startswith("lens→next") and [row.split()[0] for row in lens[1:]] == blocks
        chart = main.query_one("#layer-plot").draw(40, 12)
        assert chart[-2].text.split() == ["emb", *blocks] and chart[-1].text.strip().startswith("after block")
        assert main.query_one("#attention-pane").border_subtitle == "block 1 · mean of heads · log scale"
        assert "block 1 head mean" in main.query_one(ParametersView).render().plain
        await pilot.press("right_square_bracket", "right_curly_bracket", "x")  # block 2, its first head: knocked out
        await settle(pilot)
        assert main.query_one("#attention-pane").border_subtitle == "block 2 · head 1 · log scale"
        assert main.session.ablations == (Ablation(1, "head", 0),) and "ablated B2.H1" in main.query_one(ParametersView).render().plain
