"""The GGUF reader (engine/formats/gguf.py) against the transformers models the test files were written
from, and against transformers' own GGUF loader: weights, config, tokenizer, refusals."""

import dataclasses
import subprocess
import sys

import gguf
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import engine.formats.gguf as reader
from engine.formats.gguf import GGUFError, GGUFMemoryError, check_memory, find_gguf, llama3_rope_scaling, memory_problem, open_gguf
from engine.tools.gguf_factory import (
    FILE_TYPES,
    LLAMA3_ROPE_SCALING,
    SAMPLE_TEXTS,
    llama3_rope_freqs,
    make_case,
    set_first_tensor_type,
    write_gguf,
    write_minimal_gguf,
)

FAMILIES = [
    "gpt2",
    "llama",
    "llama3",
    "smollm",
    "qwen2",
    "llama2",
]  # llama: GQA 4/2, untied; llama3: + RoPE scaling; smollm: tied; llama2: SentencePiece


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """(family, file type) -> GGUFCase, each written once: the same seed gives one model per family."""
    directory = tmp_path_factory.mktemp("gguf")
    made = {}

    def get(family, file_type="F32"):
        if (family, file_type) not in made:
            folder = directory / f"{family}-{file_type}"
            folder.mkdir()
            made[family, file_type] = make_case(family, folder, file_type)
        return made[family, file_type]

    return get


def prompt_ids(case, n=20):  # a >= 16-token prompt: a wrong Q/K row order hides in one token
    ids = case.tokenizer.encode(SAMPLE_TEXTS["english"] + " " + SAMPLE_TEXTS["code"]).ids[:n]
    assert len(ids) == n
    return torch.tensor([ids])


def model_from_reader(gguf_file):
    """A transformers model built from the reader's config dict and state dict alone."""
    config = AutoConfig.for_model(**gguf_file.config())
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config).eval()
    state = {name: torch.from_numpy(value) for name, value in gguf_file.state_dict().items()}
    result = model.load_state_dict(state, strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys == (["lm_head.weight"] if config.tie_word_embeddings else [])
    return model


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.numpy()


def hf_gguf_load(case):
    """transformers' own reading of the same file (gguf_file=), float32."""
    return AutoModelForCausalLM.from_pretrained(str(case.path.parent), gguf_file=case.path.name, dtype=torch.float32).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_f32_state_dict_is_the_hf_models(cases, family):
    case = cases(family)
    state = open_gguf(case.path).state_dict()
    hf_state = case.model.state_dict()
    tied = case.model.config.tie_word_embeddings
    assert set(state) == set(hf_state) - ({"lm_head.weight"} if tied else set())
    for name, value in state.items():
        assert value.dtype == np.float32 and value.shape == tuple(hf_state[name].shape), name
        np.testing.assert_array_equal(value, hf_state[name].numpy(), err_msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_f32_config_and_weights_rebuild_the_hf_model(cases, family):
    case = cases(family)
    rebuilt = model_from_reader(open_gguf(case.path))
    ids = prompt_ids(case)
    np.testing.assert_allclose(logits(rebuilt, ids), logits(case.model, ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize("file_type", ["Q8_0", "Q4_1"])
@pytest.mark.parametrize("family", ["gpt2", "llama", "smollm", "qwen2", "llama2"])
def test_quantized_file_equals_transformers_own_load(cases, family, file_type):
    case = cases(family, file_type)
    gguf_file = open_gguf(case.path)
    assert gguf_file.file_type == file_type
    theirs = hf_gguf_load(case)
    their_state = theirs.state_dict()
    for name, value in gguf_file.state_dict().items():
        np.testing.assert_allclose(value, their_state[name].numpy(), atol=1e-6, rtol=0, err_msg=name)
    ids = prompt_ids(case)
    np.testing.assert_allclose(logits(model_from_reader(gguf_file), ids), logits(theirs, ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize("file_type", FILE_TYPES)
def test_llama3_rope_scaling_is_applied(cases, file_type):
    """transformers' GGUF loader ignores rope_freqs for llama; the reader turns it back into rope_scaling.
    Reference: the HF model the file was written from, with the file's own (dequantized) weights."""
    case = cases("llama3", file_type)
    gguf_file = open_gguf(case.path)
    config = gguf_file.config()
    assert config["rope_scaling"] == LLAMA3_ROPE_SCALING
    reference = AutoModelForCausalLM.from_config(case.model.config).eval()
    reference.load_state_dict({name: torch.from_numpy(value) for name, value in gguf_file.state_dict().items()})
    ids = prompt_ids(case)
    ours = logits(model_from_reader(gguf_file), ids)
    np.testing.assert_allclose(ours, logits(reference, ids), atol=1e-4, rtol=0)
    unscaled = model_from_reader(gguf_file)  # the same weights without the scaling: what a reader ignoring it runs
    unscaled.config.rope_parameters = {"rope_type": "default", "rope_theta": config["rope_theta"]}
    unscaled.model.rotary_emb.__init__(unscaled.config)
    assert np.abs(logits(unscaled, ids) - ours).max() > 1e-2  # the scaling matters in this model


def test_llama_rows_are_unpermuted(cases, monkeypatch):
    """Reading Q and K in llama.cpp's row order shows on a 20-token prompt (the test can fail)."""
    case = cases("llama")
    ids = prompt_ids(case)
    monkeypatch.setattr(reader, "unpermute_rope_rows", lambda weight, n_head: weight)
    wrong = logits(model_from_reader(open_gguf(case.path)), ids)
    assert np.abs(wrong - logits(case.model, ids)).max() > 1e-3


@pytest.mark.parametrize(
    "theta, head_dim, scaling",
    [
        (
            500000.0,
            128,
            {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        ),  # Llama 3.1
        (
            500000.0,
            64,
            {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        ),  # Llama 3.2 1B
        (
            10000.0,
            16,
            {"factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 2.0, "original_max_position_embeddings": 64},
        ),  # one blended
        (
            10000.0,
            16,
            {"factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 2.0, "original_max_position_embeddings": 40},
        ),  # none blended
    ],
)
def test_llama3_rope_scaling_is_recovered_from_rope_freqs(theta, head_dim, scaling):
    scaling = {"rope_type": "llama3", **scaling}
    divisors = llama3_rope_freqs(scaling, theta, head_dim).astype(np.float64)
    recovered = llama3_rope_scaling(divisors, theta, head_dim)
    assert recovered is not None
    np.testing.assert_allclose(reader.llama3_rope_frequency_divisors(recovered, theta, head_dim), divisors, rtol=1e-5)
    if (divisors > 1).sum() - (divisors == scaling["factor"]).sum() >= 2:  # a blended band pins the values down
        assert recovered == scaling


@pytest.mark.parametrize(
    "changes, refusal",
    [
        ({"llama.rope.scaling.type": "yarn"}, "uses 'yarn' RoPE scaling, which tfund does not implement"),
        ({"llama.rope.dimension_count": 8}, "rotates 8 of each head's 16 dimensions"),
    ],
)
def test_rope_tfund_does_not_compute_is_refused(cases, changes, refusal):
    gguf_file = open_gguf(cases("llama").path)
    changed = dataclasses.replace(gguf_file, metadata={**gguf_file.metadata, **changes})
    assert refusal in changed.refusal()
    with pytest.raises(GGUFError):
        changed.state_dict()


def test_end_of_turn_ids_join_the_end_of_text_id(cases):
    gguf_file = open_gguf(cases("llama").path)
    eos = gguf_file.config()["eos_token_id"]
    assert isinstance(eos, int)
    with_eot = dataclasses.replace(gguf_file, metadata={**gguf_file.metadata, "tokenizer.ggml.eot_token_id": 7})
    assert with_eot.config()["eos_token_id"] == [eos, 7]


def test_linear_rope_scaling_is_passed_on(cases):
    gguf_file = open_gguf(cases("llama").path)
    linear = {"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 4.0}
    config = dataclasses.replace(gguf_file, metadata={**gguf_file.metadata, **linear}).config()
    assert config["rope_scaling"] == {"rope_type": "linear", "factor": 4.0}


def test_rope_freqs_off_the_llama3_rule_are_refused():
    divisors = np.linspace(1.0, 3.0, 8) ** 2  # smooth, but not Llama 3's curve
    assert llama3_rope_scaling(divisors, 10000.0, 16) is None


@pytest.mark.parametrize("family", ["gpt2", "smollm", "llama", "qwen2", "llama2"])
def test_tokenizer_ids_equal_the_source_and_transformers(cases, family):
    case = cases(family)
    ours = Tokenizer.from_str(open_gguf(case.path).tokenizer_json())
    theirs = AutoTokenizer.from_pretrained(str(case.path.parent), gguf_file=case.path.name)
    for kind, text in SAMPLE_TEXTS.items():
        ids = ours.encode(text).ids
        assert ids == case.tokenizer.encode(text).ids, (case.dialect, kind)
        assert ids == theirs(text)["input_ids"], (case.dialect, kind)
        assert ours.decode(ids, skip_special_tokens=False) == theirs.decode(ids), (case.dialect, kind)
    special = {"llama": "<|begin_of_text|>", "llama2": "</s>"}.get(family, "<|endoftext|>")
    assert ours.encode(f"a{special}b", add_special_tokens=False).ids[1] == case.tokenizer.token_to_id(special)


def hand_made_vocabulary(pre):
    """Metadata for an eight-token vocabulary whose merges make "12" and "bc" but not "abc"."""
    tokens = ["1", "2", "12", "a", "b", "c", "bc", "abc"]
    return {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": ["1 2", "b c"], "tokenizer.ggml.pre": pre}


@pytest.mark.parametrize(
    "pre, digits, word", [("gpt-2", ["12"], ["a", "bc"]), ("smollm", ["1", "2"], ["a", "bc"]), ("llama-bpe", ["12"], ["abc"])]
)
def test_dialects_split_digits_and_words_as_their_models_do(pre, digits, word):
    """SmolLM puts every digit alone before BPE; Llama 3 takes a word that is in the vocabulary whole."""
    tokenizer = reader.build_tokenizer(hand_made_vocabulary(pre))
    assert tokenizer.encode("12").tokens == digits
    assert tokenizer.encode("abc").tokens == word


def test_llama3_adds_bos(cases):
    llama = cases("llama")
    ids = Tokenizer.from_str(open_gguf(llama.path).tokenizer_json()).encode("hi").ids
    assert ids[0] == llama.tokenizer.token_to_id("<|begin_of_text|>") and len(ids) >= 2


def test_config_fields(cases):
    llama = open_gguf(cases("llama").path)
    config = llama.config()
    assert (config["model_type"], config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == ("llama", 4, 2, 16)
    assert (config["tie_word_embeddings"], config["rms_norm_eps"], config["rope_theta"], config["rope_scaling"]) == (
        False,
        1e-5,
        10000.0,
        None,
    )
    assert llama.architecture == "llama" and llama.file_type == "F32" and llama.n_params == cases("llama").model.num_parameters()
    assert llama.memory_needed == 4 * llama.n_params
    gpt2 = open_gguf(cases("gpt2").path).config()
    assert (gpt2["model_type"], gpt2["n_positions"], gpt2["n_inner"], gpt2["tie_word_embeddings"]) == ("gpt2", 1024, None, True)
    qwen2 = open_gguf(cases("qwen2").path).config()
    assert (qwen2["model_type"], qwen2["tie_word_embeddings"]) == ("qwen2", True)


def test_split_file_reads_as_one(cases, tmp_path):
    case = cases("llama")
    write_gguf(case.model, case.tokenizer, tmp_path / "m.gguf", case.dialect, split_max_tensors=8)
    parts = sorted(p.name for p in tmp_path.iterdir())
    assert len(parts) > 1 and parts[0] == f"m-00001-of-{len(parts):05d}.gguf"
    first = find_gguf(tmp_path)
    assert first.name == parts[0]
    state = open_gguf(first).state_dict()
    whole = open_gguf(case.path).state_dict()
    assert set(state) == set(whole) and all(np.array_equal(state[k], whole[k]) for k in whole)
    with pytest.raises(GGUFError, match="pass the first"):
        open_gguf(tmp_path / parts[1])
    (tmp_path / parts[-1]).unlink()
    with pytest.raises(GGUFError, match=f"{parts[-1]} is missing"):
        open_gguf(first)


def test_reader_imports_neither_torch_nor_transformers(cases):
    path = cases("llama", "Q4_1").path
    code = (
        "import sys; from engine.formats.gguf import open_gguf, check_memory; g = open_gguf(sys.argv[1]); check_memory(g); "
        "g.config(); g.state_dict(); g.tokenizer_json(); print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- refusals: one sentence each ----


def one_sentence(error):
    text = str(error.value)
    assert "\n" not in text and text.count(". ") == 0 and not text.endswith("."), text
    return text


def test_wrong_magic(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 a zip file, not a model")
    with pytest.raises(GGUFError) as error:
        open_gguf(path)
    assert "is not a GGUF file" in one_sentence(error)


@pytest.mark.parametrize("keep", [2, 20, 300, 0.5, 0.99], ids=["in-magic", "in-counts", "in-metadata", "half", "last-bytes"])
def test_truncated_file(cases, tmp_path, keep):
    data = cases("llama", "Q8_0").path.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(GGUFError) as error:
        open_gguf(path)
    assert "truncated" in one_sentence(error) or "not a GGUF file" in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(GGUFError) as error:
        open_gguf(tmp_path / "nothing.gguf")
    assert "cannot read" in one_sentence(error)


def test_unknown_architecture(tmp_path):
    gguf_file = open_gguf(write_minimal_gguf(tmp_path / "g.gguf", arch="gemma2"))
    assert "'gemma2' model" in gguf_file.refusal()
    with pytest.raises(GGUFError) as error:
        gguf_file.config()
    one_sentence(error)


def test_unknown_quantization_type_number(tmp_path):
    path = write_minimal_gguf(tmp_path / "q.gguf")
    assert gguf.GGUFReader(path).tensors[0].tensor_type == gguf.GGMLQuantizationType.F32
    set_first_tensor_type(path, 99)
    with pytest.raises(GGUFError) as error:
        open_gguf(path)
    assert "type number 99" in one_sentence(error)


def test_quantization_the_package_cannot_dequantize(tmp_path):
    q8_k = gguf.GGMLQuantizationType.Q8_K  # known to gguf, but it only quantizes activations: no dequantizer
    block_size, type_size = gguf.GGML_QUANT_SIZES[q8_k]
    tensors = {"token_embd.weight": (np.zeros((4, type_size), np.uint8), q8_k), "output_norm.weight": np.ones(block_size, np.float32)}
    gguf_file = open_gguf(write_minimal_gguf(tmp_path / "k.gguf", tensors=tensors))
    assert "as Q8_K, which the gguf package cannot dequantize" in gguf_file.refusal()


@pytest.mark.parametrize(
    "model, pre, refusal",
    [("t5", "default", "has a 't5' tokenizer; tfund builds BPE tokenizers only"), ("gpt2", "martian", "pre-tokenizer 'martian'")],
)
def test_tokenizers_tfund_cannot_build_are_refused(tmp_path, model, pre, refusal):
    path = tmp_path / "t.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model(model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(["a", "b"])
    writer.add_tensor("token_embd.weight", np.zeros((2, 32), np.float32))
    writer.add_tensor("output_norm.weight", np.ones(32, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    gguf_file = open_gguf(path)
    assert refusal in gguf_file.refusal()
    with pytest.raises(GGUFError) as error:
        gguf_file.tokenizer_json()
    one_sentence(error)


def test_model_that_does_not_fit_in_memory(cases):
    gguf_file = open_gguf(cases("llama", "Q4_1").path)
    problem = memory_problem(gguf_file.path.name, gguf_file.memory_needed, gguf_file.n_params, available=gguf_file.memory_needed - 1)
    assert f"needs about {gguf_file.memory_needed / 1e9:.1f} GB" in problem and "available here" in problem
    assert memory_problem(gguf_file.path.name, gguf_file.memory_needed, gguf_file.n_params, available=gguf_file.memory_needed) is None
    with pytest.raises(GGUFMemoryError):
        check_memory(gguf_file, available=1000)
    check_memory(gguf_file)  # this machine has room for a tiny model


def test_find_gguf_in_directories(cases, tmp_path):
    with pytest.raises(GGUFError, match="holds no .gguf model file"):
        find_gguf(tmp_path)
    one = write_minimal_gguf(tmp_path / "a-Q4_1.gguf")
    (tmp_path / "mmproj-a.gguf").write_bytes(one.read_bytes())  # a vision projector is not a model
    assert find_gguf(tmp_path) == one and find_gguf(one) == one
    write_minimal_gguf(tmp_path / "a-Q8_0.gguf")
    with pytest.raises(GGUFError) as error:
        find_gguf(tmp_path)
    assert "2 GGUF models (a-Q4_1.gguf, a-Q8_0.gguf); pass the one to load" in one_sentence(error)
    with pytest.raises(GGUFError, match="no GGUF file or directory"):
        find_gguf(tmp_path / "absent")
