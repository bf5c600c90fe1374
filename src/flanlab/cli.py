"""The ``flanlab`` command. Thin: each stage adds its own subcommands from its ``commands`` module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from flanlab import __version__
from flanlab.core.errors import UserError
from flanlab.core.io import OutputError

# Each module has ``register(subparsers)``; they must stay cheap to import (no torch at import time).
COMMAND_MODULES = [
    "flanlab.core.commands",
    "flanlab.evaluation.commands",
    "flanlab.experiments.commands",
    "flanlab.inference.commands",
    "flanlab.mixture.commands",
    "flanlab.reports.commands",
    "flanlab.tasks.commands",
    "flanlab.training.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flanlab",
        description="Flan instruction tuning end to end: tasks, mixtures, finetuning, evaluation, experiments.",
    )
    parser.add_argument("--version", action="version", version=f"flanlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except (UserError, OutputError, FileNotFoundError) as e:
        if getattr(args, "verbose", False):
            raise
        print(f"flanlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"flanlab {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
