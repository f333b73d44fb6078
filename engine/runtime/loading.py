"""Load a model for an engine: its weights (NumPy straight from safetensors, or transformers' model) and tokenizer.

Where the files come from is engine.runtime.sources'; which engine and device, engine.runtime.engines and
devices'. Every failure becomes a ModelLoadError carrying one clear sentence. Safetensors only unless the
caller opts into pickle; never trust_remote_code.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.events import ModelInfo
from engine.formats.gguf import GGUFError, GGUFMemoryError
from engine.model.families import FAMILY_OF, SIZE_KEYS, architecture_from_config, config_problem
from engine.model.transformer import NumpyLM
from engine.runtime.conversions import GGUFModelFile
from engine.runtime.devices import blas_threads, set_blas_threads, set_torch_threads
from engine.runtime.engines import choose_engine
from engine.runtime.errors import ModelLoadError, ModelUnavailableError, QuantizationRefused
from engine.runtime.sources import check_model_dir, light_loadable, locate_model, read_config
from engine.runtime.tokenizer import TextTokenizer, first_id, read_json


@dataclass
class LoadedModel:
    """A model ready for the Sampler. On the NumPy path `net` holds the weights and `tokenizer` is a
    TextTokenizer: neither torch nor transformers is imported until something asks for `hf_model`."""

    name: str  # what the user asked for ("toy", a path, a hub name)
    path: str  # the directory (or hub id) the files came from
    engine: str  # "numpy" or "torch": the engine a Sampler runs unless told otherwise
    device: str  # "cpu", "cuda", "mps"
    tokenizer: Any  # TextTokenizer, or transformers' PreTrainedTokenizerFast on the torch path
    info: ModelInfo
    net: NumpyLM | None = None  # the NumPy weights, once read or converted
    threads: int | None = None  # the engine's CPU threads, torch's intra-op or NumPy's BLAS (--threads), None: thread_policy
    allow_pickle: bool = False
    bos_id: int | None = None  # the tokenizer's start token, if it has one
    eos_ids: tuple[int, ...] = ()  # every id that ends a generation (tokenizer, config.json, generation_config.json)
    _hf_model: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def start_id(self) -> int:
        """What an empty prompt starts from: the start token (BOS) where the tokenizer has one, else the
        end-of-text token (GPT-2 was trained with <|endoftext|> between documents)."""
        return self.bos_id if self.bos_id is not None else self.eos_ids[0]

    @property
    def torch_loaded(self) -> bool:
        return self._hf_model is not None

    @property
    def hf_model(self) -> Any:
        """transformers' *ForCausalLM (eval mode, eager attention), loaded on first use: seconds."""
        with self._lock:
            if self._hf_model is None:
                self._hf_model = load_hf_model(self.name, self.path, self.device, self.allow_pickle, self.threads)
            return self._hf_model

    @property
    def torch_threads(self) -> int | None:
        """torch's intra-op CPU threads in force; None while torch is not loaded."""
        return sys.modules["torch"].get_num_threads() if self.torch_loaded else None

    @property
    def engine_threads(self) -> int | None:
        """The CPU threads computing this model's steps: torch's (once loaded), or NumPy's BLAS threads."""
        return self.torch_threads if self.engine == "torch" else blas_threads()

    def net_for(self, engine: str) -> Any:
        """The model as engine.views.representations reads it, computed on `engine`: the NumpyLM, or, on
        torch, transformers' model itself behind backends.torch_eager.TorchNet (no NumPy copy of the weights)."""
        if engine == "numpy":
            return self.numpy_model()
        from engine.runtime.backends.torch_eager import TorchNet

        return TorchNet(self.hf_model)

    def numpy_model(self) -> NumpyLM:
        """The from-scratch NumPy engine on these weights (read once, shared by every sampler)."""
        if self.net is None:
            self.net = NumpyLM.from_hf(self.hf_model)
            set_blas_threads(self.net.n_params, self.threads)
        return self.net


def quiet_transformers() -> None:
    """No progress bars or load reports from transformers and the hub: they would print over a UI.

    Libraries not imported yet read the environment variables when they are (importing them here would
    cost seconds); libraries already imported are switched off directly.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "huggingface_hub" in sys.modules:  # its package imports submodules lazily: `.utils` may not be an attribute yet
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        hf_logging = sys.modules["transformers"].utils.logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def is_out_of_memory(error: BaseException) -> bool:
    """torch's out-of-memory error (checked without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


def out_of_memory_sentence(device: str) -> str:
    return (
        f"{device} ran out of memory at this context length; undo or reset to shorten the context, "
        "or restart with --device cpu or a smaller model"
    )


def release_memory() -> None:
    """Hand the memory of a model just let go back to the system. Freed NumPy arrays below glibc's mmap threshold
    stay in the heap, which glibc keeps: SmolLM2 -> toy -> SmolLM2 -> toy left 955 MiB resident without this,
    87 MiB with it (the toy alone: 84). A no-op where the C library is not glibc."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to trim
        pass


def model_info(name: str, config: dict, engine: str, device: str, n_params: int) -> ModelInfo:
    n_layer, n_head, d_model, n_positions = (config[key] for key in SIZE_KEYS[FAMILY_OF[config["model_type"]]])
    n_kv_heads = config.get("num_key_value_heads") or n_head  # GPT-2 has no such key: one KV head per query head
    return ModelInfo(
        name=name,
        device=device,
        engine=engine,
        n_layer=n_layer,
        n_head=n_head,
        d_model=d_model,
        n_positions=n_positions,
        vocab_size=config["vocab_size"],
        n_params=n_params,
        n_kv_heads=n_kv_heads if n_kv_heads < n_head else None,
    )


def load_hf_model(
    name: str,
    location: str,
    device: str,
    allow_pickle: bool,
    threads: int | None,
    dtype: Any = None,
    device_map: str | None = None,
    max_memory: dict | None = None,
) -> Any:
    """transformers' *ForCausalLM from `location` (a directory, hub id or GGUF file) on `device` (or spread by
    `device_map`, capped by `max_memory`: engine.runtime.placement), eval mode, eager attention."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.runtime.placement import placement_kwargs

    quiet_transformers()
    if os.path.isfile(location):
        return load_gguf_hf_model(name, location, device, threads, dtype)
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(
            location,
            attn_implementation="eager",  # sdpa returns no attention weights
            use_safetensors=None if allow_pickle else True,
            dtype=dtype or torch.float32,
            local_files_only=os.path.isdir(location),
            trust_remote_code=False,
            **placement_kwargs(device_map, max_memory),
        )
    except Exception as error:  # transformers raises many types; the user gets one sentence
        raise ModelLoadError(f"could not load model '{name}': {first_line(error)}") from None
    if device == "cpu":
        set_torch_threads(torch, hf_model.num_parameters(), threads)
    if device_map is not None:  # accelerate placed it already
        return hf_model.eval()
    try:
        hf_model.to(device)
    except torch.OutOfMemoryError:
        raise ModelUnavailableError(f"not enough memory on {device} for '{name}'; use --device cpu or a smaller model") from None
    return hf_model.eval()


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def load_model(
    name_or_path: str = "toy",
    device: str = "auto",
    dtype: Any = None,
    allow_pickle: bool = False,
    engine: str = "auto",
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    device_map: str | None = None,
    max_memory: dict | None = None,
) -> LoadedModel:
    """Load model + tokenizer for `engine` (auto, numpy, torch) on `device`. Raises ModelLoadError.

    `device_map="auto"` (torch engine only) spreads the model over the GPUs, the CPU and the disk,
    each capped by `max_memory` ({device: bytes}); `device` is then where the inputs go.

    The NumPy engine on a directory with model.safetensors and tokenizer.json imports neither torch nor
    transformers: the weights go straight into NumPy, the tokenizer through `tokenizers`.
    `progress(text)` hears what is being done (the slow step is importing torch and transformers).
    """
    location, is_local = (source := locate_model(name_or_path, progress)).path, source.is_local  # no progress: pip's own bar
    progress = progress or (lambda text: None)
    if source.kind == "gguf":
        return load_gguf_model(name_or_path, location, source.origin, device, dtype, engine, threads, progress)
    if is_local:
        check_model_dir(location, allow_pickle)
    config = read_config(location, is_local)
    if device_map is not None:
        if engine == "numpy":
            raise ModelLoadError(
                "--device-map spreads a model for the torch engine; the NumPy engine holds it all in RAM (use --engine torch)"
            )
        engine = "torch"
    engine, device = choose_engine(engine, device, config)  # a hub id not downloaded yet has no config: torch
    common = dict(name=name_or_path, path=location, engine=engine, device=device, threads=threads, allow_pickle=allow_pickle)
    if engine == "numpy" and light_loadable(location, is_local) and dtype is None:
        progress(f"reading {name_or_path} into NumPy")
        try:
            net = NumpyLM.from_dir(location)
            tokenizer = TextTokenizer.from_dir(location)
        except Exception as error:  # a damaged file: one sentence
            raise ModelLoadError(f"could not load model '{name_or_path}': {first_line(error)}") from None
        n_params = net.n_params
        set_blas_threads(n_params, threads)
        info = model_info(name_or_path, config, engine, device, n_params)
        return LoadedModel(tokenizer=tokenizer, info=info, net=net, **special_ids_of(config, location, tokenizer), **common)
    progress("importing torch and transformers")
    hf_model = load_hf_model(name_or_path, location, device, allow_pickle, threads, dtype, device_map, max_memory)
    if device_map is not None:
        from engine.runtime.placement import input_device, placement_label

        common["device"], device = str(input_device(hf_model)), placement_label(hf_model)
    if problem := config_problem(hf_model.config.to_dict(), "torch", name=f"'{name_or_path}'"):  # a hub model, read only now
        raise ModelLoadError(problem)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=is_local, trust_remote_code=False)
    except Exception as error:
        raise ModelLoadError(f"could not load the tokenizer of '{name_or_path}': {first_line(error)}") from None
    info = model_info(name_or_path, hf_model.config.to_dict(), engine, device, hf_model.num_parameters())
    special = special_ids_of(hf_model.config.to_dict(), location if is_local else None, tokenizer)
    return LoadedModel(tokenizer=tokenizer, info=info, _hf_model=hf_model, **special, **common)


def special_ids_of(config: dict, location: str | None, tokenizer: Any) -> dict:
    """{"bos_id", "eos_ids"}: the tokenizer's start token, and every end-of-text id that the tokenizer,
    config.json and generation_config.json name (an instruction model often has two or three)."""
    generation = read_json(Path(location) / "generation_config.json") if location else {}
    eos_ids = [getattr(tokenizer, "eos_token_id", None)]
    for value in (config.get("eos_token_id"), generation.get("eos_token_id")):
        eos_ids.extend(value if isinstance(value, list) else [value])
    return {"bos_id": getattr(tokenizer, "bos_token_id", None), "eos_ids": tuple(dict.fromkeys(i for i in eos_ids if isinstance(i, int)))}


# ---- GGUF files: the NumPy engine reads them with engine.formats.gguf, through the conversion tfund keeps ----


def gguf_model_file(name: str, path: str) -> GGUFModelFile:
    try:
        return GGUFModelFile(path)
    except GGUFError as error:
        raise ModelLoadError(str(error)) from None


def load_gguf_model(
    name: str, path: str, origin: str | None, device: str, dtype: Any, engine: str, threads: int | None, progress: Callable[[str], None]
) -> LoadedModel:
    """A GGUF model (a file, or a folder holding one model) for `engine`; its tokenizer is rebuilt from the
    file's metadata on both engines. Its ModelInfo names `origin` (engine.runtime.sources.ModelSource) and
    the file's type. GGUFError becomes ModelLoadError, GGUFMemoryError ModelUnavailableError."""
    from tokenizers import Tokenizer

    model_file = gguf_model_file(name, path)
    try:
        config = model_file.config()  # the kept conversion's config.json, else the file's header (seconds)
        engine, device = choose_engine(engine, device, config)
        common = dict(name=name, path=str(model_file.path), engine=engine, device=device, threads=threads)
        if engine == "numpy" and dtype is None:
            if problem := config_problem(config, "numpy", name=f"'{model_file.path.name}'"):
                raise ModelLoadError(problem)
            arch = architecture_from_config(config)
            net = NumpyLM(arch, model_file.numpy_params(arch, progress))
            tokenizer = TextTokenizer(
                Tokenizer.from_str(model_file.tokenizer_json()), first_id(config.get("eos_token_id")), config.get("bos_token_id")
            )
            set_blas_threads(net.n_params, threads)
            info = replace(model_info(name, config, engine, device, net.n_params), source=origin, file_type=model_file.file_type)
            return LoadedModel(tokenizer=tokenizer, info=info, net=net, **special_ids_of(config, None, tokenizer), **common)
        progress("importing torch and transformers")
        hf_model = load_gguf_hf_model(name, str(model_file.path), device, threads, dtype)
        tokenizer = TextTokenizer(
            Tokenizer.from_str(model_file.tokenizer_json()), first_id(config.get("eos_token_id")), config.get("bos_token_id")
        )
        file_type = model_file.file_type
    except GGUFMemoryError as error:
        raise ModelUnavailableError(str(error)) from None
    except GGUFError as error:
        raise ModelLoadError(str(error)) from None
    info = replace(model_info(name, config, engine, device, hf_model.num_parameters()), source=origin, file_type=file_type)
    return LoadedModel(tokenizer=tokenizer, info=info, _hf_model=hf_model, **special_ids_of(config, None, tokenizer), **common)


def load_gguf_hf_model(name: str, path: str, device: str, threads: int | None, dtype: Any = None) -> Any:
    """transformers' model of a GGUF: from the conversion tfund keeps (made now if missing), or, for a model
    too big to keep, transformers' own GGUF loader (gguf_file=) given the config tfund read from the file
    (transformers ignores a llama file's rope_freqs)."""
    model_file = gguf_model_file(name, path)
    try:
        model_file.check_memory()
        if (directory := model_file.keep()) is not None:
            return load_hf_model(name, str(directory), device, False, threads, dtype)
        if len(model_file.shards) > 1:
            raise GGUFError(
                f"'{model_file.path.name}' is split into {len(model_file.shards)} files, which transformers' GGUF loader "
                "does not read; merge them with `llama-gguf-split --merge` or run it on the NumPy engine"
            )
        config = model_file.config()
    except GGUFMemoryError as error:
        raise ModelUnavailableError(str(error)) from None
    except GGUFError as error:
        raise ModelLoadError(str(error)) from None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        hf_model = AutoModelForCausalLM.from_pretrained(
            str(model_file.path.parent),
            gguf_file=model_file.path.name,
            config=AutoConfig.for_model(**config),
            attn_implementation="eager",
            dtype=dtype or torch.float32,
            local_files_only=True,
        )
    except Exception as error:  # transformers raises many types; the user gets one sentence
        raise ModelLoadError(f"could not load model '{name}': {first_line(error)}") from None
    if device == "cpu":
        set_torch_threads(torch, hf_model.num_parameters(), threads)
    try:
        hf_model.to(device)
    except torch.OutOfMemoryError:
        raise ModelUnavailableError(f"not enough memory on {device} for '{name}'; use --device cpu or a smaller model") from None
    return hf_model.eval()


def loaded_from_hf(hf_model: Any, tokenizer: Any = None, name: str = "in memory", engine: str = "numpy") -> LoadedModel:
    """A LoadedModel around an in-memory transformers model (tests, benchmarks); its NumPy copy is made on first use."""
    device = str(next(hf_model.parameters()).device)
    config = hf_model.config.to_dict()
    info = model_info(name, config, engine, device, hf_model.num_parameters())
    special = special_ids_of(config, None, tokenizer)
    return LoadedModel(name=name, path="", engine=engine, device=device, tokenizer=tokenizer, info=info, _hf_model=hf_model, **special)


def quantized_model(model: LoadedModel, qtype: str) -> tuple[LoadedModel, Any]:
    """`model` with its matrices rounded through `qtype` (engine.model.quantization), on the NumPy engine, and
    the QuantizationReport. Its name says so ("toy at Q4_0"); the original is left as it was. QuantizationRefused
    (one sentence) for the type its weights are already stored in, or a type not offered."""
    from engine.model.quantization import quantized

    source_type = model.info.file_type or "F32"  # a transformers directory is read as float32
    try:
        net, report = quantized(model.numpy_model(), qtype, source_type, f"'{model.name}'")
    except ValueError as error:
        raise QuantizationRefused(str(error)) from None
    name = f"{model.name} at {report.type}"
    info = replace(model.info, name=name, engine="numpy", file_type=report.type)
    copy = replace(model, name=name, engine="numpy", info=info, net=net, _hf_model=None, _lock=threading.Lock())
    return copy, report
