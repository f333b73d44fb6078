"""`tfund inspect`: text and --json, ablations, both engines, bad input; run in-process (engine.cli.main)."""

import json

import pytest

from engine.cli import main
from engine.runtime.sources import TOY_MODEL_DIR

PROMPT = "In a small village,"
TOY = json.loads((TOY_MODEL_DIR / "config.json").read_text())
N_LAYER, N_HEAD = TOY["n_layer"], TOY["n_head"]


def inspect(capsys, *args):
    try:
        code = main(["inspect", "--model", "toy", "--prompt", PROMPT, *args])
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def inspect_json(capsys, *args):
    code, out, err = inspect(capsys, "--json", *args)
    assert code == 0 and err == "", err
    return json.loads(out)


def layer_sum(attribution):
    parts = attribution["components"]
    return parts["embed"] + sum(v for k, v in parts.items() if k.endswith((".attn", ".mlp"))) + attribution["bias"]


def test_json_without_ablation_has_the_contract_shape_kl_0_and_a_complete_attribution(capsys):
    report = inspect_json(capsys, "--engine", "numpy")
    assert {"top", "ablated_top", "kl", "flipped", "attribution"} <= report.keys()
    assert report["kl"] == 0.0 and report["flipped"] is False and report["ablated_top"] == report["top"]
    assert all(entry.keys() == {"id", "text", "p"} for entry in report["top"]) and len(report["top"]) == 5
    assert report["top"][0]["p"] >= report["top"][1]["p"]
    attribution = report["attribution"]
    assert attribution["token_id"] == report["top"][0]["id"] and attribution["token"] == report["top"][0]["text"]
    parts = ["attn", *[f"H{head}" for head in range(N_HEAD)], "mlp"]
    expected = ["embed"] + [f"L{layer}.{part}" for layer in range(N_LAYER) for part in parts]
    assert list(attribution["components"]) == expected
    assert layer_sum(attribution) == pytest.approx(attribution["logit"], abs=1e-4)


def test_ablations_change_the_distribution_and_both_engines_agree(capsys):
    args = ["--ablate", "0.1", "--ablate", "1.mlp"]
    numpy_report = inspect_json(capsys, "--engine", "numpy", *args)
    torch_report = inspect_json(capsys, "--engine", "torch", *args)
    assert numpy_report["ablations"] == ["0.1", "1.mlp"] and numpy_report["kl"] > 1e-3
    assert numpy_report["flipped"] == (numpy_report["top"][0]["id"] != numpy_report["ablated_top"][0]["id"])
    for key in ("top", "ablated_top"):
        assert [e["id"] for e in numpy_report[key]] == [e["id"] for e in torch_report[key]]
        assert [e["p"] for e in numpy_report[key]] == pytest.approx([e["p"] for e in torch_report[key]], abs=1e-5)
    assert numpy_report["kl"] == pytest.approx(torch_report["kl"], abs=1e-4)
    for key in ("attribution", "ablated_attribution"):
        a, b = numpy_report[key]["components"], torch_report[key]["components"]
        assert list(a.values()) == pytest.approx(list(b.values()), abs=1e-4)
    ablated = numpy_report["ablated_attribution"]
    assert ablated["components"]["L0.H1"] == 0.0  # the knocked-out head contributes nothing directly
    assert layer_sum(ablated) == pytest.approx(ablated["logit"], abs=1e-4)


def test_mean_ablation_and_every_head_equals_the_layer(capsys):
    heads = [arg for h in range(N_HEAD) for arg in ("--ablate", f"0.{h}")]
    for mode in ("zero", "mean"):
        by_heads = inspect_json(capsys, "--ablate-mode", mode, *heads)
        by_layer = inspect_json(capsys, "--ablate-mode", mode, "--ablate", "0.attn")
        assert by_heads["kl"] == pytest.approx(by_layer["kl"], abs=1e-6) and by_heads["kl"] > 0
        assert [e["p"] for e in by_heads["ablated_top"]] == pytest.approx([e["p"] for e in by_layer["ablated_top"]], abs=1e-6)


def test_mean_over_a_reference_text_is_reported_and_the_prompt_as_its_own_reference_is_the_context_mean(capsys):
    mean = ("--ablate-mode", "mean", "--ablate", "1.mlp")  # one component: nothing upstream of it is ablated
    over_context = inspect_json(capsys, *mean)
    assert over_context["mean_over"] == "context"
    over_prompt = inspect_json(capsys, *mean, "--mean-over", PROMPT)
    assert over_prompt["mean_over"] == {"text": PROMPT, "tokens": over_context["prompt_tokens"]}
    assert over_prompt["kl"] == pytest.approx(over_context["kl"], abs=1e-6) and over_context["kl"] > 0
    story = "Once upon a time there was a little girl who loved to play outside."
    for engine in ("numpy", "torch"):
        over_story = inspect_json(capsys, *mean, "--mean-over", story, "--engine", engine)
        assert over_story["mean_over"]["text"] == story and over_story["mean_over"]["tokens"] > over_context["prompt_tokens"]
        assert abs(over_story["kl"] - over_context["kl"]) > 1e-3
    assert "mean_over" not in inspect_json(capsys, "--ablate", "0.1")  # a zero ablation takes no mean
    code, out, _ = inspect(capsys, *mean, "--mean-over", story)
    assert code == 0 and f"ablated (mean over a {over_story['mean_over']['tokens']}-token reference text): 1.mlp" in out


def test_text_report(capsys):
    code, out, err = inspect(capsys, "--ablate", "L0.attn")
    assert code == 0 and err == ""
    assert "ablated (zero): 0.attn" in out and "KL(intact‖ablated)" in out and "top token flips:" in out
    assert "direct logit attribution of" in out and "L1.H3" in out and "ln_f bias" in out and "sum" in out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--ablate", "x.1"], "argument --ablate: expected L.H (a head), L.attn or L.mlp"),
        (["--ablate", "0."], "argument --ablate: expected"),
        (["--ablate", "0.attn.2"], "argument --ablate: expected"),
        ([f"--ablate={N_LAYER}.mlp"], f"argument --ablate: layer {N_LAYER} is out of range: this model has layers 0-{N_LAYER - 1}"),
        (
            ["--ablate", "0.1", f"--ablate=0.{N_HEAD}"],
            f"argument --ablate: head {N_HEAD} is out of range: this model has heads 0-{N_HEAD - 1}",
        ),
        (["--ablate-mode", "resample"], "argument --ablate-mode: invalid choice"),
        (["--engine", "jax"], "argument --engine: invalid choice"),
        (["--top", "0"], "argument --top: must be an integer in [1, 100000]"),
        (["--model", "/no/such/model"], "argument --model: no model directory at '/no/such/model'"),
        (["--ablate", "0.1", "--mean-over", "a text"], "argument --mean-over: needs --ablate-mode mean"),
        (["--ablate", "0.1", "--ablate-mode", "mean", "--mean-over", ""], "argument --mean-over: the reference text is empty"),
        (
            ["--ablate", "0.1", "--ablate-mode", "mean", "--mean-over", " the" * 300],
            "argument --mean-over: the reference text is 300 tokens; this model reads at most 256",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_argument(capsys, args, words):
    code, out, err = inspect(capsys, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
