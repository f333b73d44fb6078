"""`tfund-tui`: parse and check the flags, then start the app. Bad flags exit 2 with one line, before the UI."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from engine.args import OneLineParser, add_engine_args, add_model_args, add_sampling_args, port_arg, sampling_config
from engine.runtime.engines import engine_device_problem
from engine.views.trace import TraceError, TraceWriter
from tui.app import DEFAULT_EXPORT_DIR, DEFAULT_PROMPT, make_app
from tui.serve import serve, served_args  # light: textual-serve is imported only to serve


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="tfund-tui",
        description="Step through GPT-2 generation one token at a time: attention, candidates, layers, block lab.",
        allow_abbrev=False,  # --serve strips its own flags by their full names
    )
    add_model_args(parser)
    parser.set_defaults(model=None)  # None: "toy", or with --replay the model the trace names
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="text to continue (default %(default)r)")
    add_sampling_args(parser)
    add_engine_args(parser)
    parser.add_argument("--trace", metavar="FILE.jsonl", help="append one JSON line per token event (and per undo)")
    parser.add_argument("--replay", metavar="FILE.jsonl", help="step through a recorded trace instead of generating (n, backspace, g, r)")
    parser.add_argument("--export-dir", default=DEFAULT_EXPORT_DIR, metavar="DIR", help="where e saves the figures (default ./%(default)s)")
    parser.add_argument("--serve", action="store_true", help="serve the app to a web browser on localhost (textual-serve)")
    parser.add_argument("--port", type=port_arg, help="the port for --serve (default 8000)")
    return parser


def recorded_model(path: str, parser: OneLineParser) -> str | None:
    """Check the trace before the UI starts; the model its header names, if any."""
    from engine.views.replay import ReplayError, read_trace

    try:
        recording = read_trace(path)
    except ReplayError as error:
        parser.error(f"argument --replay: {error}")
    if recording.n_steps == 0:
        parser.error(f"argument --replay: '{path}' holds no token steps to replay (record some with --trace and n or g)")
    return recording.model


ENGINE_SWITCH_INTERVAL_S = 0.0005  # the interpreter's thread switch interval (Python's default: 5 ms)


def main(argv: Sequence[str] | None = None) -> int:
    # the engine thread releases the interpreter inside NumPy many times per token; while the UI thread
    # draws, each time it waited up to the 5 ms default to get it back (a run reached ~0.3× headless speed)
    sys.setswitchinterval(ENGINE_SWITCH_INTERVAL_S)
    if argv is None:
        served = served_args()  # a browser tab's process runs with the server's flags
        argv = served if served is not None else sys.argv[1:]
    argv = list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    config = sampling_config(args)
    try:
        config.validate()
    except ValueError as error:
        parser.error(str(error))
    if problem := engine_device_problem(args.engine, args.device):
        parser.error(f"argument --device: {problem}")
    if args.replay and args.trace:
        parser.error("argument --replay: a replay records nothing; leave out --trace")
    if args.port is not None and not args.serve:
        parser.error("argument --port: only with --serve")
    model = args.model
    if args.replay:
        recorded = recorded_model(args.replay, parser)  # checked even when --model names the model
        model = model or recorded
    if args.serve:
        return serve(argv, args.port or 8000)
    try:
        trace = TraceWriter(args.trace) if args.trace else None
    except TraceError as error:
        parser.error(f"argument --trace: {error}")
    app = make_app(
        model=model or "toy",
        prompt=args.prompt,
        config=config,
        device=args.device,
        engine=args.engine,
        threads=args.threads,
        trace=trace,
        allow_pickle=args.allow_pickle,
        replay=args.replay,
        export_dir=args.export_dir,
    )
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
