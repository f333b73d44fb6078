"""Bad tfund-tui flags: exit 2 with one line on stderr naming the flag and what is allowed, before any UI."""

import subprocess
import sys

import pytest


def run_tui(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui", *flags], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "flags, names",
    [
        (["--temperature", "-1"], ["--temperature", ">= 0"]),
        (["--temperature", "nan"], ["--temperature", "finite"]),
        (["--top-k", "-3"], ["--top-k", ">= 0"]),
        (["--top-p", "0"], ["--top-p", "(0, 1]"]),
        (["--top-p", "1.5"], ["--top-p", "(0, 1]"]),
        (["--seed", "-1"], ["--seed", "[0, 2^63)"]),
        (["--max-new-tokens", "many"], ["--max-new-tokens", "integer"]),
        (["--device", "tpu"], ["--device", "auto", "cpu", "cuda", "mps"]),
        (["--engine", "jax"], ["--engine", "auto", "torch", "numpy"]),
        (["--threads", "0"], ["--threads", "[1, 1024]"]),
        (["--threads", "-2"], ["--threads", "[1, 1024]"]),
        (["--engine", "numpy", "--device", "cuda"], ["--device", "CPU only; use --device cpu or --engine torch"]),  # tfund's sentence
        (["--model", " "], ["--model", "toy"]),
        (["--model", "/nope"], ["argument --model:", "no model directory at '/nope'"]),
        (["--serve", "--model", "./no-such-model"], ["argument --model:", "no model directory"]),
        (["--no-such-flag"], ["--no-such-flag"]),
    ],
)
def test_bad_flag_exits_2_with_one_line(flags, names):
    result = run_tui(*flags)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tfund-tui: error: ")
    for name in names:
        assert name in lines[0]
    assert "Traceback" not in result.stderr


def test_unwritable_trace_file_exits_2_before_the_ui(tmp_path):
    not_a_directory = tmp_path / "plain-file"
    not_a_directory.write_text("")
    result = run_tui("--trace", str(not_a_directory / "trace.jsonl"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--trace" in lines[0] and "trace.jsonl" in lines[0]
    assert not (tmp_path / "plain-file" / "trace.jsonl").exists()


def test_help_lists_every_flag():
    result = run_tui("--help")
    assert result.returncode == 0
    for flag in (
        "--model",
        "--prompt",
        "--temperature",
        "--top-k",
        "--top-p",
        "--seed",
        "--max-new-tokens",
        "--device",
        "--engine",
        "--trace",
    ):
        assert flag in result.stdout
