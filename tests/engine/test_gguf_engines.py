"""`--model file.gguf` on both engines: logits against the transformers model the file was written from
(F32) and against transformers' own reading of the file (quantized), on prompts of 20 tokens; the
sampler's steps agree across engines; bad files are one sentence through load_model and the CLI."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

import engine.runtime.conversions as conversions
import engine.store.cache as cache
from engine.events import SamplingConfig
from engine.formats.gguf import open_gguf
from engine.runtime.errors import ModelLoadError, ModelUnavailableError
from engine.runtime.loading import load_model
from engine.runtime.sampler import Sampler
from engine.tools.gguf_factory import SAMPLE_TEXTS, make_case, write_gguf

FAMILIES = ["gpt2", "llama", "llama3", "smollm", "qwen2", "llama2"]


@pytest.fixture(autouse=True)
def tfund_cache(tmp_path_factory, monkeypatch):
    """Conversions go to a cache of the test session, never the user's."""
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path_factory.getbasetemp() / "tfund-cache"))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    made = {}

    def get(family, file_type="F32"):
        if (family, file_type) not in made:
            folder = tmp_path_factory.mktemp(f"{family}-{file_type}")
            made[family, file_type] = make_case(family, folder, file_type)
        return made[family, file_type]

    return get


def prompt_ids(case, n=20):
    ids = case.tokenizer.encode(SAMPLE_TEXTS["english"] + " " + SAMPLE_TEXTS["russian"]).ids[:n]
    assert len(ids) == n
    return ids


def torch_logits(hf_model, ids):  # -> [T, V]
    with torch.no_grad():
        return hf_model(torch.tensor([ids])).logits[0].numpy()


def numpy_logits(loaded, ids):  # -> [T, V]
    return loaded.numpy_model().forward(ids, capture=False)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_f32_file_equals_the_hf_model_on_both_engines(cases, family):
    case = cases(family)
    ids = prompt_ids(case)
    expected = torch_logits(case.model, ids)
    on_numpy = load_model(str(case.path), device="cpu", engine="numpy")
    assert on_numpy.engine == "numpy" and not on_numpy.torch_loaded
    np.testing.assert_allclose(numpy_logits(on_numpy, ids), expected, atol=1e-4, rtol=0)
    on_torch = load_model(str(case.path), device="cpu", engine="torch")
    np.testing.assert_allclose(torch_logits(on_torch.hf_model, ids), expected, atol=1e-4, rtol=0)
    assert on_numpy.tokenizer.encode(SAMPLE_TEXTS["code"]) == on_torch.tokenizer.encode(SAMPLE_TEXTS["code"])
    assert on_numpy.tokenizer.eos_token_id == case.model.config.eos_token_id


@pytest.mark.parametrize("file_type", ["Q8_0", "Q4_1"])
@pytest.mark.parametrize("family", FAMILIES)
def test_quantized_file_equals_transformers_reading_it(cases, family, file_type):
    """The reference: transformers' GGUF loader (gguf_file=); for llama3, which it runs without the file's
    RoPE scaling, the HF model the file was written from, given the file's dequantized weights."""
    case = cases(family, file_type)
    if family == "llama3":
        reference = AutoModelForCausalLM.from_config(case.model.config).eval()
        reference.load_state_dict({name: torch.from_numpy(value) for name, value in open_gguf(case.path).state_dict().items()})
    else:
        reference = AutoModelForCausalLM.from_pretrained(str(case.path.parent), gguf_file=case.path.name, dtype=torch.float32).eval()
    ids = prompt_ids(case)
    expected = torch_logits(reference, ids)
    on_numpy = load_model(str(case.path), device="cpu", engine="numpy")
    np.testing.assert_allclose(numpy_logits(on_numpy, ids), expected, atol=1e-4, rtol=0)
    on_torch = load_model(str(case.path.parent), device="cpu", engine="torch")  # the folder holding the one file
    np.testing.assert_allclose(torch_logits(on_torch.hf_model, ids), expected, atol=1e-4, rtol=0)


def test_torch_engine_on_a_model_too_big_to_keep_uses_transformers_loader(cases, monkeypatch):
    case = cases("llama3", "Q8_0")
    monkeypatch.setattr(cache, "CONVERSION_LIMIT_BYTES", 1000)
    monkeypatch.setenv("TFUND_CACHE", str(case.path.parent / "empty-cache"))
    loaded = load_model(str(case.path), device="cpu", engine="torch")
    assert not (case.path.parent / "empty-cache").exists()
    assert loaded.hf_model.config.rope_parameters["rope_type"] == "llama3"  # tfund's config, not transformers' reading of the file
    on_numpy = load_model(str(case.path), device="cpu", engine="numpy")
    ids = prompt_ids(case)
    np.testing.assert_allclose(torch_logits(loaded.hf_model, ids), numpy_logits(on_numpy, ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["smollm", "llama2"])
def test_the_sampler_steps_alike_on_both_engines(cases, family):
    case = cases(family, "Q8_0")
    steps = {}
    for engine in ("numpy", "torch"):
        sampler = Sampler(load_model(str(case.path), device="cpu", engine=engine), SamplingConfig(temperature=0.0))
        sampler.set_prompt(SAMPLE_TEXTS["english"])
        steps[engine] = [sampler.step() for _ in range(6)]
        assert len(sampler.tokens) >= 16
    assert [e.token_id for e in steps["numpy"]] == [e.token_id for e in steps["torch"]]
    for a, b in zip(steps["numpy"], steps["torch"]):
        np.testing.assert_allclose(a.attention, b.attention, atol=1e-4)


def test_numpy_engine_on_a_gguf_imports_neither_torch_nor_transformers(cases, tmp_path):
    path = cases("llama", "Q4_1").path
    code = (
        "import sys; from engine.runtime.loading import load_model; m = load_model(sys.argv[1], device='cpu', engine='numpy'); "
        "m.numpy_model().forward(m.tokenizer.encode('hello there'), capture=False); "
        "print(sorted(k for k in ('torch', 'transformers') if k in sys.modules))"
    )
    for _ in range(2):  # converting, then from the kept conversion
        result = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env={"TFUND_CACHE": str(tmp_path), "PATH": ""}
        )
        assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_bad_files_are_one_sentence_through_load_model(cases, tmp_path, monkeypatch):
    not_gguf = tmp_path / "notes.txt"
    not_gguf.write_text("hello")
    with pytest.raises(ModelLoadError, match="is not a GGUF file"):
        load_model(str(not_gguf), device="cpu", engine="numpy")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(cases("llama", "Q8_0").path.read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="is truncated or damaged"):
        load_model(str(truncated), device="cpu", engine="torch")
    monkeypatch.setattr(conversions, "available_memory", lambda: 10_000)
    monkeypatch.setattr("engine.formats.gguf.available_memory", lambda: 10_000)
    for engine in ("numpy", "torch"):
        with pytest.raises(ModelUnavailableError, match=r"needs about 0\.0 GB of memory once dequantized"):
            load_model(str(cases("qwen2", "Q4_1").path), device="cpu", engine=engine)


def test_a_folder_of_several_models_names_them(cases, tmp_path):
    for file_type in ("Q8_0", "Q4_1"):
        (tmp_path / f"m-{file_type}.gguf").write_bytes(cases("llama", file_type).path.read_bytes())
    with pytest.raises(ModelLoadError, match=r"holds 2 GGUF models \(m-Q4_1.gguf, m-Q8_0.gguf\); pass the one to load"):
        load_model(str(tmp_path), device="cpu", engine="numpy")


def test_rope_scaling_the_numpy_engine_does_not_compute_runs_on_torch(cases, tmp_path):
    case = cases("llama")
    path = write_gguf(
        case.model,
        case.tokenizer,
        tmp_path / "linear.gguf",
        case.dialect,
        extra={"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 2.0},
    )
    with pytest.raises(ModelLoadError, match="rope scaling 'linear' is not one tfund computes"):
        load_model(str(path), device="cpu", engine="numpy")
    loaded = load_model(str(path), device="cpu", engine="auto")
    assert loaded.engine == "torch" and loaded.hf_model.config.rope_parameters["rope_type"] == "linear"
