"""The headless `tfund` command: contracts from DESIGN.md, run as a user would (subprocesses)."""

import json
import os
import subprocess
import sys

import pytest

PROMPT = "In a small village,"


def tfund(*args, env_extra=None, timeout=120):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)


def generate_json(*extra):
    result = tfund("generate", "--model", "toy", "--prompt", PROMPT, "--max-new-tokens", "12", "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_generate_streams_text_offline():
    result = tfund("generate", "--model", "toy", "--prompt", PROMPT, "--seed", "0", "--max-new-tokens", "10")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(PROMPT) and len(result.stdout) > len(PROMPT) + 5
    assert result.stderr == ""


def test_generate_json_is_deterministic_by_seed_and_greedy_agrees_across_engines():
    a, b = generate_json("--seed", "7", "--temperature", "1.0"), generate_json("--seed", "7", "--temperature", "1.0")
    assert a["tokens"] == b["tokens"] and a["tokens_per_second"] > 0
    assert a["text"] == PROMPT + "".join(t["text"] for t in a["tokens"])
    torch_greedy = generate_json("--temperature", "0", "--engine", "torch")
    numpy_greedy = generate_json("--temperature", "0", "--engine", "numpy")
    assert [t["id"] for t in torch_greedy["tokens"]] == [t["id"] for t in numpy_greedy["tokens"]]


def test_generate_trace_has_one_line_per_token(tmp_path):
    trace = tmp_path / "run.jsonl"
    out = generate_json("--trace", str(trace), "--seed", "1")
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert "session" in records[0]  # the header names the model and prompt, for replay
    lines = [r for r in records if "session" not in r]
    assert [line["id"] for line in lines] == [t["id"] for t in out["tokens"]]
    assert all(line["settings"]["seed"] == 1 and line["candidates"] for line in lines)


def test_default_engine_is_numpy_on_the_cpu_and_torch_runs_one_thread_with_the_same_tokens():
    default, torch = generate_json("--temperature", "0"), generate_json("--temperature", "0", "--engine", "torch")
    assert (default["engine"], default["device"], default["threads"]) == ("numpy", "cpu", None)
    assert (torch["engine"], torch["threads"]) == ("torch", 1)
    assert [t["id"] for t in default["tokens"]] == [t["id"] for t in torch["tokens"]]
    assert generate_json("--engine", "torch", "--threads", "2")["threads"] == 2


def test_parity_on_the_toy_model_passes():
    result = tfund("parity", "--model", "toy", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["max_abs_diff"] <= 1e-4 and report["greedy_match"]


@pytest.mark.parametrize(
    "args, names",
    [
        (["generate", "--temperature", "-1"], "--temperature"),
        (["generate", "--temperature", "nan"], "--temperature"),
        (["generate", "--temperature", "inf"], "--temperature"),
        (["generate", "--top-p", "0"], "--top-p"),
        (["generate", "--top-p", "1.5"], "--top-p"),
        (["generate", "--top-k", "-1"], "--top-k"),
        (["generate", "--top-k", "two"], "--top-k"),
        (["generate", "--max-new-tokens", "-3"], "--max-new-tokens"),
        (["generate", "--seed", "-1"], "--seed"),
        (["generate", "--model", ""], "--model"),
        (["generate", "--engine", "jax"], "--engine"),
        (["generate", "--bogus"], "--bogus"),
        (["bench", "decode", "--tokens", "0"], "--tokens"),
        (["generate", "--threads", "0"], "--threads"),
        (["generate", "--threads", "many"], "--threads"),
        (["generate", "--engine", "numpy", "--device", "cuda"], "--device"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, names):
    result = tfund(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_missing_model_dir_is_one_line_exit_2(tmp_path):
    result = tfund("parity", "--model", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no model directory" in result.stderr


def test_uncached_hub_model_offline_fails_fast_with_one_sentence(tmp_path):
    result = tfund("generate", "--model", "gpt2", env_extra={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 1
    assert "not in the Hugging Face cache" in result.stderr and result.stderr.strip().count("\n") == 0
