"""`tfund-tui`: parse and check the flags, then start the app. Bad flags exit 2 with one line, before the UI."""

from __future__ import annotations

import sys
from typing import Sequence

from engine.cli import OneLineParser, add_model_args, add_sampling_args, sampling_config
from engine.trace import TraceError, TraceWriter
from tui.app import DEFAULT_PROMPT, make_app


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="tfund-tui",
        description="Step through GPT-2 generation one token at a time: attention, candidates, layers, block lab.",
    )
    add_model_args(parser)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="text to continue (default %(default)r)")
    add_sampling_args(parser)
    parser.add_argument("--engine", choices=["torch", "numpy"], default="torch", help="transformers or the from-scratch NumPy GPT-2")
    parser.add_argument("--trace", metavar="FILE.jsonl", help="append one JSON line per token event (and per undo)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = sampling_config(args)
    try:
        config.validate()
    except ValueError as error:
        parser.error(str(error))
    if args.engine == "numpy" and args.device not in ("auto", "cpu"):
        parser.error(f"argument --device: the NumPy engine runs on the CPU only; use --device cpu or auto (got {args.device})")
    try:
        trace = TraceWriter(args.trace) if args.trace else None
    except TraceError as error:
        parser.error(f"argument --trace: {error}")
    app = make_app(
        model=args.model,
        prompt=args.prompt,
        config=config,
        device=args.device,
        engine=args.engine,
        trace=trace,
        allow_pickle=args.allow_pickle,
    )
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
