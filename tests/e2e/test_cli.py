"""The headless `tfund` command: contracts from DESIGN.md, run as a user would (subprocesses)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runtime.devices import cpu_cores

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


def test_default_engine_is_numpy_on_the_cpu_and_both_engines_run_one_thread_with_the_same_tokens():
    default, torch = generate_json("--temperature", "0"), generate_json("--temperature", "0", "--engine", "torch")
    assert (default["engine"], default["device"], default["threads"]) == ("numpy", "cpu", 1)  # NumPy's BLAS threads
    assert (torch["engine"], torch["threads"]) == ("torch", 1)
    assert [t["id"] for t in default["tokens"]] == [t["id"] for t in torch["tokens"]]
    assert generate_json("--engine", "torch", "--threads", "2")["threads"] == 2
    assert generate_json("--threads", "2")["threads"] == min(2, cpu_cores())  # OpenBLAS: at most one thread per core


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
        (["train-toy", "--threads", "0"], "--threads"),
        (["generate", "--engine", "numpy", "--device", "cuda"], "--device"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, names):
    result = tfund(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("n", ["256", "100000"])
def test_parity_greedy_tokens_that_leave_no_room_for_the_prompt_exit_2_naming_the_limit(n):
    result = tfund("parity", "--model", "toy", "--greedy-tokens", n)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--greedy-tokens" in lines[0] and "at most 255" in lines[0], result.stderr


def test_a_prompt_longer_than_the_window_says_its_oldest_tokens_were_dropped():
    long_prompt = PROMPT + " the" * 300  # 5 + 300 tokens; the toy's window is 256
    result = tfund("parity", "--model", "toy", "--prompt", long_prompt, "--greedy-tokens", "20", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dropped_prompt_tokens"] == 305 - 236 and report["n_prompt_tokens"] == 236
    assert result.stderr.count("\n") == 1 and "the oldest 69 were dropped" in result.stderr
    out = generate_json("--prompt", long_prompt, "--max-new-tokens", "1")
    assert out["dropped_prompt_tokens"] == 305 - 255
    assert generate_json()["dropped_prompt_tokens"] == 0
    text = tfund("generate", "--model", "toy", "--prompt", long_prompt, "--max-new-tokens", "1")
    assert text.returncode == 0 and "the oldest 50 were dropped" in text.stderr


def test_bench_lens_without_training_metrics_is_one_line_exit_2(tmp_path):
    import shutil

    from engine.runtime.sources import TOY_MODEL_DIR

    model = tmp_path / "model"
    shutil.copytree(TOY_MODEL_DIR, model, ignore=shutil.ignore_patterns("training_metrics.json"))
    result = tfund("bench", "lens", "--model", str(model))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "made by tfund train-toy" in result.stderr


def test_missing_model_dir_is_one_line_exit_2(tmp_path):
    result = tfund("parity", "--model", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no model directory" in result.stderr


def test_uncached_hub_model_offline_fails_fast_with_one_sentence(tmp_path):
    result = tfund("generate", "--model", "gpt2", env_extra={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 1
    assert "not in the Hugging Face cache" in result.stderr and result.stderr.strip().count("\n") == 0


# ---- errors before any work: in-process, as a user's shell sees them -----------------------------
def run_cli(capsys, *args) -> tuple[int, str, str]:
    from engine.cli import main

    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_exit_2(code, out, err, *names) -> None:
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, flag",
    [
        (["generate", "--model", "{missing}"], "argument --model:"),
        (["parity", "--model", "{missing}"], "argument --model:"),
        (["tokenize", "--model", "{missing}", "hello"], "argument --model:"),
        (["compare", "--model-b", "{missing}"], "argument --model-b:"),
        (["bench", "decode", "--model", "{missing}"], "argument --model:"),
    ],
)
def test_a_missing_model_directory_names_the_argument(capsys, tmp_path, args, flag):
    missing = str(tmp_path / "no-such-model")
    code, out, err = run_cli(capsys, *[a.format(missing=missing) for a in args])
    assert_one_line_exit_2(code, out, err, flag, "no model directory", missing)


def test_the_numpy_engine_on_cuda_says_it_runs_on_the_cpu(capsys):
    code, out, err = run_cli(capsys, "generate", "--engine", "numpy", "--device", "cuda", "--max-new-tokens", "1")
    assert_one_line_exit_2(code, out, err, "argument --device", "NumPy engine runs on the CPU")


@pytest.fixture
def fake_training(monkeypatch):
    """train_toy replaced by a recorder: these tests are about where it writes, not the two minutes of training."""
    calls = []

    def train_toy(out_dir, seed=0, progress=None, **options):
        calls.append(Path(out_dir))
        return {"heldout_loss": 1.0, "unigram_loss": 2.0, "seconds": 0.0}

    monkeypatch.setattr("engine.toy.train.train_toy", train_toy)
    return calls


@pytest.mark.parametrize("where", ["existing file", "under a file"])
def test_train_toy_out_that_cannot_be_a_folder_is_one_line_exit_2(capsys, tmp_path, fake_training, where):
    plain = tmp_path / "plain-file"
    plain.write_text("keep me")
    out_arg = str(plain if where == "existing file" else plain / "model")
    code, out, err = run_cli(capsys, "train-toy", "--out", out_arg)
    assert_one_line_exit_2(code, out, err, "argument --out", out_arg)
    assert fake_training == [] and plain.read_text() == "keep me"  # refused before any training


@pytest.mark.parametrize("out_arg", ["", "  "])
def test_train_toy_out_that_names_no_folder_is_refused_before_writing_anything(capsys, tmp_path, monkeypatch, fake_training, out_arg):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train-toy", "--out", out_arg, "--steps", "1")
    assert_one_line_exit_2(code, out, err, "argument --out", "must name a folder")
    assert fake_training == [] and list(tmp_path.iterdir()) == []  # nothing written into the working directory


def test_train_toy_writes_a_new_folder_in_the_working_directory_not_the_package(capsys, tmp_path, monkeypatch, fake_training):
    from engine.runtime.sources import TOY_MODEL_DIR

    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train-toy", "--steps", "1")
    assert code == 0, err
    assert [path.resolve() for path in fake_training] == [(tmp_path / "tfund-toy-model").resolve()]
    assert (tmp_path / "tfund-toy-model").is_dir() and "--model tfund-toy-model" in out
    code, out, err = run_cli(capsys, "train-toy", "--out", str(TOY_MODEL_DIR))  # only when --out names it
    assert code == 0 and fake_training[-1] == TOY_MODEL_DIR
    code, out, err = run_cli(capsys, "train-toy", "--help")
    assert code == 0 and "working directory" in " ".join(out.split()) and "tfund-toy-model" in "".join(out.split())


def test_train_toy_failing_to_save_is_one_line_exit_1(capsys, tmp_path, monkeypatch):
    import errno

    def disk_full(out_dir, **options):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("engine.toy.train.train_toy", disk_full)
    code, out, err = run_cli(capsys, "train-toy", "--out", str(tmp_path / "model"))
    assert code == 1 and out == "" and err.strip().count("\n") == 0 and "No space left on device" in err, err


def test_every_usage_error_has_the_same_prefix_and_names_no_internal_variable(capsys):
    for args in (["inspect", "--ablate", "x"], ["bench"], ["generate", "--top-k", "two"]):
        code, out, err = run_cli(capsys, *args)
        assert code == 2 and err.startswith("tfund: error: "), err
        assert "bench_command" not in err
    code, out, err = run_cli(capsys, "train-toy", "--help")
    assert "training steps" in out and "seeds the corpus" in out
