"""The seed's block-stacking experiment: config, determinism, shapes and what the metrics measure."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main as tfund
from engine.model.blocklab import BlockLabConfig, kv_cache_bytes, modern_facts, position_table, query_key, rope_scores, run_block_lab
from engine.model.head_stats import head_stats

# The notebook's own block, run once as written (its seed, helpers and cell): the input X and output z,
# every float64 digit. The figures live in the repository; the notebook stays outside it.
NOTEBOOK_BLOCK = Path(__file__).resolve().parent / "data" / "notebook06-block.json"


def test_defaults_are_the_notebooks():
    cfg = BlockLabConfig()
    assert (cfg.T, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.activation, cfg.seed) == (8, 32, 4, 64, "relu", 42)
    assert (cfg.n_layers, cfg.residual, cfg.layer_norm, cfg.pre_ln, cfg.causal, cfg.weight_scale) == (1, True, True, True, True, 0.1)
    cfg.validate()


def test_the_notebook_preset_equals_the_notebooks_own_block_output_bit_for_bit():
    notebook = json.loads(NOTEBOOK_BLOCK.read_text(encoding="utf-8"))
    X, z = np.array(notebook["X"]), np.array(notebook["z"])  # [8, 32] each
    lab = run_block_lab(BlockLabConfig())
    assert lab.resid[-1].dtype == z.dtype and np.array_equal(lab.resid[-1], z)
    assert np.array_equal(lab.resid[0], X)


def test_without_the_causal_mask_every_token_sees_every_token():
    causal, encoder = run_block_lab(BlockLabConfig()), run_block_lab(BlockLabConfig(causal=False))
    upper = np.triu(np.ones((8, 8), bool), k=1)
    assert (causal.attention[:, :, upper] == 0).all()  # masked: the future gets exactly 0
    assert (encoder.attention[:, :, upper] > 0).all()
    assert np.allclose(encoder.attention.sum(axis=-1), 1.0)


def test_tfund_blocklab_prints_the_output_and_per_layer_metrics(capsys):
    assert tfund(["blocklab", "--n-layers", "3", "--residual", "off", "--layer-norm", "post", "--activation", "gelu"]) == 0
    out = capsys.readouterr().out
    assert "layers 3" in out and "residual off" in out and "post-LN" in out and "gelu" in out
    assert [line.split()[0] for line in out.splitlines()[-4:]] == ["input", "after", "after", "after"]


def test_tfund_blocklab_json_has_the_output_matrix_and_the_metrics(capsys):
    assert tfund(["blocklab", "--preset", "notebook", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert np.array_equal(np.array(data["output"]), run_block_lab(BlockLabConfig()).resid[-1])
    assert [layer["layer"] for layer in data["layers"]] == [0, 1] and data["settings"]["n_layers"] == 1


@pytest.mark.parametrize(
    "flags",
    [
        ["--n-layers", "0"],
        ["--n-layers", "49"],
        ["--residual", "maybe"],
        ["--layer-norm", "pre"],
        ["--preset", "bert"],
        ["--seed", "4294967296"],
    ],
)
def test_tfund_blocklab_bad_flags_exit_2_with_one_line(capsys, flags):
    with pytest.raises(SystemExit) as exit_info:
        tfund(["blocklab", *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and flags[0] in err


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"d_model": 30}, "d_model"),  # 30 is not divisible by 4 heads
        ({"T": 0}, "T"),
        ({"T": 257}, "T"),
        ({"d_model": 2048, "n_heads": 8}, "d_model"),
        ({"n_layers": 49}, "n_layers"),
        ({"n_heads": 0}, "n_heads"),
        ({"d_ff": 2.5}, "d_ff"),
        ({"activation": "swish"}, "activation"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),  # the legacy generator takes no larger seed
        ({"weight_scale": 0.0}, "weight_scale"),
        ({"changed_token": 8}, "changed_token"),  # T is 8: rows 0…7
        ({"changed_token": -1}, "changed_token"),
    ],
)
def test_validate_names_the_bad_field(changes, field):
    with pytest.raises(ValueError, match=rf"^{field} "):
        BlockLabConfig(**changes).validate()
    with pytest.raises(ValueError):
        run_block_lab(BlockLabConfig(**changes))


def test_shapes_and_capture_names():
    cfg = BlockLabConfig(T=6, d_model=16, n_heads=2, d_ff=24, n_layers=3)
    result = run_block_lab(cfg)
    assert result.resid.shape == (4, 6, 16)
    assert result.attention.shape == (3, 2, 6, 6)
    assert result.captures["blocks.2.mlp.hook_post"].shape == (6, 24)
    assert {name: m.shape for name, m in result.metrics.items()} == {
        "resid_norm": (4,),
        "layer_cosine": (3,),
        "token_cosine": (4,),
        "attn_entropy": (3, 2),
    }
    np.testing.assert_array_equal(result.resid[0], result.captures["blocks.0.hook_resid_pre"])
    np.testing.assert_array_equal(result.resid[3], result.captures["blocks.2.hook_resid_post"])


def test_deterministic_by_seed():
    a, b, c = run_block_lab(BlockLabConfig()), run_block_lab(BlockLabConfig()), run_block_lab(BlockLabConfig(seed=7))
    np.testing.assert_array_equal(a.resid, b.resid)
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
    assert not np.allclose(a.resid, c.resid)


def test_metrics_match_their_definitions():
    result = run_block_lab(BlockLabConfig(T=5, d_model=16, n_heads=2, d_ff=32, n_layers=2, activation="gelu"))
    resid, metrics = result.resid, result.metrics
    np.testing.assert_allclose(metrics["resid_norm"][0], np.mean([np.linalg.norm(row) for row in resid[0]]))
    a, b = resid[2], resid[1]
    cosines = [np.dot(a[t], b[t]) / (np.linalg.norm(a[t]) * np.linalg.norm(b[t])) for t in range(5)]
    np.testing.assert_allclose(metrics["layer_cosine"][1], np.mean(cosines), atol=1e-9)
    x = resid[1]
    pairs = [np.dot(x[i], x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])) for i in range(5) for j in range(5) if i != j]
    np.testing.assert_allclose(metrics["token_cosine"][1], np.mean(pairs), atol=1e-9)
    p = result.attention[0, 1]  # [T, T] layer 0, head 1
    entropy = np.mean([-sum(w * math.log(w) for w in row if w > 0) for row in p[1:]])  # rows 1..T-1, as head_stats
    np.testing.assert_allclose(metrics["attn_entropy"][0, 1], entropy, atol=1e-9)
    np.testing.assert_allclose(metrics["attn_entropy"], head_stats(result.attention, list(range(5)))["entropy"], atol=1e-12)
    # causal rows: token t spreads over at most t + 1 keys, so the mean entropy is below mean(log(t + 1))
    assert (metrics["attn_entropy"] <= np.mean(np.log(np.arange(2, 6))) + 1e-12).all()


def test_post_ln_keeps_every_layer_at_norm_sqrt_d():
    """Post-LN ends each block with a LayerNorm (no affine): every token's stream has length sqrt(d)."""
    result = run_block_lab(BlockLabConfig(pre_ln=False, n_layers=3))
    np.testing.assert_allclose(result.metrics["resid_norm"][1:], math.sqrt(32), rtol=1e-3)


def test_switches_change_the_run():
    base = run_block_lab(BlockLabConfig())
    for changes in ({"residual": False}, {"layer_norm": False}, {"pre_ln": False}, {"activation": "gelu"}):
        assert not np.allclose(run_block_lab(BlockLabConfig(**changes)).resid[-1], base.resid[-1]), changes


def test_without_residual_or_norm_the_signal_shrinks_layer_by_layer():
    """With weights of scale 0.1 and no skip path, each block multiplies the stream by a small matrix."""
    result = run_block_lab(BlockLabConfig(residual=False, layer_norm=False, n_layers=4))
    assert (np.diff(result.metrics["resid_norm"]) < 0).all()


def test_single_token_runs():
    result = run_block_lab(BlockLabConfig(T=1, n_layers=2))
    np.testing.assert_array_equal(result.metrics["token_cosine"], 1.0)
    np.testing.assert_allclose(result.attention, 1.0)  # one token attends only to itself
    np.testing.assert_allclose(result.metrics["attn_entropy"], 0.0, atol=1e-9)


def changed_output_rows(config: BlockLabConfig) -> list[int]:
    """The output rows that differ from the same stack with X unchanged."""
    changed, original = (
        run_block_lab(config).resid[-1],
        run_block_lab(BlockLabConfig(**{**config.__dict__, "changed_token": None})).resid[-1],
    )
    return np.flatnonzero(np.abs(changed - original).max(axis=-1) > 1e-12).tolist()


def test_the_feed_forward_network_is_position_wise_attention_mixes_positions():
    """Flip row 4 of X: with attention off only output row 4 changes, at any depth; with causal attention, rows 4…7."""
    assert changed_output_rows(BlockLabConfig(attention=False, changed_token=4)) == [4]
    assert changed_output_rows(BlockLabConfig(attention=False, changed_token=4, n_layers=6, causal=False)) == [4]
    assert changed_output_rows(BlockLabConfig(changed_token=4)) == [4, 5, 6, 7]
    assert changed_output_rows(BlockLabConfig(changed_token=4, causal=False)) == list(range(8))


def test_flipping_a_row_changes_x_alone_and_attention_off_adds_nothing():
    base, flipped = run_block_lab(BlockLabConfig()), run_block_lab(BlockLabConfig(changed_token=2))
    np.testing.assert_array_equal(flipped.resid[0][2], -base.resid[0][2])  # the weights are drawn as before
    np.testing.assert_array_equal(np.delete(flipped.resid[0], 2, axis=0), np.delete(base.resid[0], 2, axis=0))
    off = run_block_lab(BlockLabConfig(attention=False))
    np.testing.assert_array_equal(off.captures["blocks.0.hook_attn_out"], 0.0)
    np.testing.assert_array_equal(off.captures["blocks.0.hook_resid_mid"], off.resid[0])  # x + 0


# ---- the modern block's switches -----------------------------------------------------------------
MODERN = [{"norm_kind": "rms"}, {"positions": "learned"}, {"positions": "rope"}, {"activation": "swiglu"}, {"n_kv_heads": 2}]


def weights(result) -> dict[str, np.ndarray]:
    """Every notebook weight by name (block i, role), with W_K and W_V split per head, as drawn."""
    cfg, named = result.config, {}
    d, d_head = cfg.d_model, cfg.d_model // cfg.n_heads
    for i, params in enumerate(result.blocks):
        qkv = params["attn"]["qkv"]["w"]  # [d, (H + 2 H_kv) d_head]
        named[f"{i}.q"] = qkv[:, :d]
        for name, start in (("k", d), ("v", d + cfg.kv_heads * d_head)):
            for g in range(cfg.kv_heads):
                named[f"{i}.{name}{g}"] = qkv[:, start + g * d_head : start + (g + 1) * d_head]
        named[f"{i}.o"], named[f"{i}.up"], named[f"{i}.down"] = (
            params["attn"]["o"]["w"],
            params["mlp"]["up"]["w"],
            params["mlp"]["down"]["w"],
        )
    return named


@pytest.mark.parametrize("switch", MODERN, ids=lambda s: "-".join(map(str, s.values())))
def test_a_modern_switch_changes_the_output_and_redraws_no_other_weight(switch):
    base, modern = run_block_lab(BlockLabConfig(n_layers=2)), run_block_lab(BlockLabConfig(n_layers=2, **switch))
    assert not np.allclose(modern.resid[-1], base.resid[-1])
    before, after = weights(base), weights(modern)
    if "n_kv_heads" in switch:  # two groups of two query heads: each keeps its first head's keys and values
        assert {name for name in after if name[2] in "kv"} == {"0.k0", "0.k1", "0.v0", "0.v1", "1.k0", "1.k1", "1.v0", "1.v1"}
        assert np.array_equal(after["0.k1"], before["0.k2"]) and np.array_equal(after["1.v1"], before["1.v2"])
        before = {name: w for name, w in before.items() if name[2] not in "kv" or name[3] == "0"}  # the others: no longer used
    assert before.keys() <= after.keys() and all(np.array_equal(after[name], w) for name, w in before.items())
    x = base.resid[0] + (position_table(modern.config) if switch.get("positions") == "learned" else 0)
    np.testing.assert_array_equal(modern.resid[0], x)  # the notebook's X (plus the position table)


def test_new_weights_come_from_their_own_streams_and_grow_without_redrawing():
    gates = [run_block_lab(BlockLabConfig(activation="swiglu", n_layers=n)).blocks for n in (1, 3)]
    assert np.array_equal(gates[0][0]["mlp"]["gate"]["w"], gates[1][0]["mlp"]["gate"]["w"])  # one block more: block 1's gate stays
    assert not np.array_equal(gates[1][0]["mlp"]["gate"]["w"], gates[1][1]["mlp"]["gate"]["w"])
    short, long = position_table(BlockLabConfig(T=4)), position_table(BlockLabConfig(T=9))
    np.testing.assert_array_equal(long[:4], short)  # more tokens: the earlier positions keep their vectors
    assert not np.array_equal(position_table(BlockLabConfig(seed=7)), position_table(BlockLabConfig()))


def test_grouped_query_attention_keeps_each_groups_first_head_and_halves_the_kv_cache():
    mha, gqa = run_block_lab(BlockLabConfig()), run_block_lab(BlockLabConfig(n_kv_heads=2))
    np.testing.assert_array_equal(gqa.attention[0, [0, 2]], mha.attention[0, [0, 2]])  # heads 1 and 3 read their own keys
    assert not np.allclose(gqa.attention[0, [1, 3]], mha.attention[0, [1, 3]])  # heads 2 and 4 now read heads 1's and 3's
    cfg = BlockLabConfig(n_layers=3, n_kv_heads=1)
    assert kv_cache_bytes(cfg) == 2 * 3 * 1 * 8 * 8 and kv_cache_bytes(cfg, 4) == 4 * kv_cache_bytes(cfg)  # K and V, float64


def test_rope_makes_a_query_key_score_depend_only_on_their_distance():
    result = run_block_lab(BlockLabConfig(positions="rope"))
    scores = rope_scores(result, starts=(0, 7, 40), distances=range(6))  # [starts, distances]
    np.testing.assert_allclose(scores, np.broadcast_to(scores[0], scores.shape), atol=1e-6)  # float32 angles
    assert np.ptp(scores[0]) > 0.05  # but the distance matters
    q, k = query_key(result)
    np.testing.assert_allclose(scores[0, 0], q[-1] @ k[0] / np.sqrt(8), atol=1e-6)  # distance 0: the unrotated score
    no_rope, rope_run = run_block_lab(BlockLabConfig()), result
    np.testing.assert_array_equal(no_rope.attention[..., 0, 0], rope_run.attention[..., 0, 0])  # row 0 sees itself alone
    assert not np.allclose(no_rope.attention, rope_run.attention)


def test_each_modern_switch_states_what_it_changes():
    assert modern_facts(run_block_lab(BlockLabConfig())) == []
    facts = modern_facts(run_block_lab(BlockLabConfig(norm_kind="rms", positions="rope", activation="swiglu", n_kv_heads=1)))
    assert [line.split(":")[0] for line in facts] == ["RMSNorm", "RoPE", "SwiGLU", "GQA"]
    assert "KV cache 128 B/token in float64 (4 heads: 512), −75%" in facts[3] and "6,144 MLP weights" in facts[2]
    assert all(len(line) <= 78 for line in facts)  # one line each at 80 columns


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"norm_kind": "batch"}, "norm_kind"),
        ({"positions": "sinusoidal"}, "positions"),
        ({"activation": "geglu"}, "activation"),
        ({"n_kv_heads": 3}, "n_kv_heads"),  # 4 query heads
        ({"n_kv_heads": 0}, "n_kv_heads"),
        ({"d_model": 4, "n_heads": 4, "positions": "rope"}, "positions"),  # d_head 1 has no pair to rotate
    ],
)
def test_validate_names_the_bad_modern_field(changes, field):
    with pytest.raises(ValueError, match=rf"^{field} "):
        BlockLabConfig(**changes).validate()


def test_tfund_blocklab_json_with_the_modern_switches_differs_from_the_default(capsys):
    assert tfund(["blocklab", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    flags = ["--norm-kind", "rms", "--positions", "rope", "--activation", "swiglu", "--kv-heads", "2"]
    assert tfund(["blocklab", *flags, "--json"]) == 0
    modern = json.loads(capsys.readouterr().out)
    assert modern["output"] != default["output"]
    settings = modern["settings"]
    assert (settings["norm_kind"], settings["positions"], settings["activation"], settings["n_kv_heads"]) == ("rms", "rope", "swiglu", 2)
    expected = run_block_lab(BlockLabConfig(norm_kind="rms", positions="rope", activation="swiglu", n_kv_heads=2)).resid[-1]
    assert np.array_equal(np.array(modern["output"]), expected)
    assert tfund(["blocklab", *flags]) == 0
    assert "GQA: 2 KV heads: KV cache 256 B/token in float64 (4 heads: 512), −50%" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--layer-norm", "off", "--norm-kind", "rms"], "--norm-kind"),
        (["--layer-norm", "off", "--norm-kind", "layer"], "--norm-kind"),
        (["--kv-heads", "3"], "--kv-heads"),
        (["--kv-heads", "8"], "--kv-heads"),
        (["--kv-heads", "0"], "--kv-heads"),
        (["--positions", "sinusoidal"], "--positions"),
        (["--activation", "geglu"], "--activation"),
    ],
)
def test_tfund_blocklab_contradictory_or_bad_modern_flags_exit_2_with_one_sentence(capsys, flags, named):
    try:
        code = tfund(["blocklab", *flags])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"argument {named}" in err and "Traceback" not in err


@pytest.mark.parametrize("switches", [{}, {"norm_kind": "rms", "n_kv_heads": 2}])
def test_the_query_and_key_the_rope_line_reads_are_block_ones(switches):
    """Without rotation, block 1's queries and keys as query_key gives them make its attention pattern exactly."""
    result = run_block_lab(BlockLabConfig(**switches))
    for head in range(4):
        q, k = query_key(result, head)  # [T, d_head] each
        scores = q @ k.T / np.sqrt(8) + np.triu(np.full((8, 8), -1e10), k=1)  # [T, T] the causal mask
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        np.testing.assert_allclose(weights / weights.sum(axis=-1, keepdims=True), result.attention[0, head], atol=1e-12)
