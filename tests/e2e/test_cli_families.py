"""`tfund generate | parity | inspect | compare | tokenize | bench decode` take a Llama or Qwen2 directory."""

import json

from engine.cli import main as tfund_main


def run(capsys, *argv) -> dict:
    assert tfund_main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_generate_on_both_engines_gives_the_same_tokens(llama_dir, capsys):
    args = ["generate", "--model", llama_dir, "--prompt", "In a small village, there lived", "--temperature", "0", "--max-new-tokens", "8"]
    numpy_run, torch_run = run(capsys, *args, "--engine", "numpy"), run(capsys, *args, "--engine", "torch")
    assert (numpy_run["engine"], torch_run["engine"]) == ("numpy", "torch")
    assert numpy_run["tokens"] == torch_run["tokens"] and len(numpy_run["tokens"]) == 8


def test_parity_passes(llama_dir, capsys):
    report = run(
        capsys, "parity", "--model", llama_dir, "--prompt", "In a small village, there lived an old man who had a cat and a small dog"
    )
    assert report["ok"] and report["n_prompt_tokens"] >= 16 and report["max_abs_diff"] <= 1e-4


def test_inspect_agrees_across_engines(llama_dir, capsys):
    args = ["inspect", "--model", llama_dir, "--ablate", "1.3", "--ablate", "0.mlp"]
    a, b = run(capsys, *args, "--engine", "numpy"), run(capsys, *args, "--engine", "torch")
    assert (a["engine"], b["engine"]) == ("numpy", "torch") and a["ablations"] == ["1.3", "0.mlp"]
    assert [t["id"] for t in a["ablated_top"]] == [t["id"] for t in b["ablated_top"]]
    assert abs(a["kl"] - b["kl"]) <= 1e-4 and a["kl"] > 0
    total = sum(v for k, v in a["attribution"]["components"].items() if ".H" not in k) + a["attribution"]["bias"]
    assert abs(total - a["attribution"]["logit"]) <= 1e-3


def test_compare_and_tokenize(llama_dir, capsys):
    result = run(capsys, "compare", "--model-a", llama_dir, "--model-b", llama_dir, "--max-new-tokens", "3", "--temperature-b", "0.5")
    assert len(result["steps"]) == 3
    view = run(capsys, "tokenize", "--model", llama_dir, "hello world")
    assert view["tokens"]


def test_bench_decode(llama_dir, capsys):
    result = run(capsys, "bench", "decode", "--model", llama_dir, "--tokens", "3", "--prompt-tokens", "4", "--repeats", "1")
    assert result["same_tokens"] and result["numpy_run_tok_s"] > 0 and result["generate_tok_s"] > 0


def test_bench_ablated_times_both_ways_and_refuses_a_context_too_long(capsys):
    for engine, mode in (("numpy", "zero"), ("torch", "zero"), ("numpy", "mean")):
        flags = ("--lengths", "8", "16", "--steps", "2", "--engine", engine, "--mode", mode, "--ablate", "1.mlp")
        result = run(capsys, "bench", "ablated", "--config", "tiny", *flags)
        assert [row["tokens"] for row in result["rows"]] == [8, 16] and all(
            row["before_ms"] > 0 and row["after_ms"] > 0 for row in result["rows"]
        )
        assert (result["engine"], result["mode"], result["ablation"]) == (engine, mode, "1.mlp")
    result = run(capsys, "bench", "ablated", "--config", "tiny", "--lengths", "8", "--steps", "1", "--mode", "mean", "--ablate", "0.1")
    assert result["rows"][0]["after_ms"] is None  # a mean from block 0 up keeps nothing: the whole context again
    assert tfund_main(["bench", "ablated", "--config", "tiny", "--ablate", "9.1"]) == 2
    assert "layer 9 is out of range: this model has layers 0-1" in capsys.readouterr().err
    assert tfund_main(["bench", "ablated", "--config", "tiny", "--lengths", "100"]) == 2
    assert "must fit in 64 positions" in capsys.readouterr().err


def test_a_config_the_numpy_engine_does_not_compute_is_said_in_one_sentence_and_runs_on_torch(llama_dir, tmp_path, capsys):
    import shutil

    path = tmp_path / "yarn"
    shutil.copytree(llama_dir, path)
    config = json.loads((path / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "yarn", "factor": 2.0, "rope_theta": 100000.0, "original_max_position_embeddings": 64}
    (path / "config.json").write_text(json.dumps(config))
    args = ["generate", "--model", str(path), "--max-new-tokens", "2", "--temperature", "0"]
    assert tfund_main([*args, "--engine", "numpy"]) == 2
    err = capsys.readouterr().err.strip()
    assert "rope scaling 'yarn' is not one tfund computes" in err and len(err.splitlines()) == 1
    assert run(capsys, *args)["engine"] == "torch"  # auto: transformers runs it
