"""Core subcommands (``config show``, ``doctor``) and the flags every command shares."""

from __future__ import annotations

import argparse
import sys

from flanlab.core.paths import DATA_DIR_ENV

__all__ = ["add_common_args", "register"]


def add_common_args(parser: argparse.ArgumentParser, *, run: bool = True) -> None:
    """Flags shared by commands: --seed, --data-dir, -v and, for commands that make a run folder,
    --run-name and --runs-dir."""
    parser.add_argument("--seed", type=int, default=None, help="seed python, numpy and torch")
    parser.add_argument(
        "--data-dir", default=None, help=f"local benchmark/task data folder (default: ${DATA_DIR_ENV})"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    if run:
        parser.add_argument("--run-name", default=None, help="run folder name (or path); default: generated")
        parser.add_argument("--runs-dir", default="runs", help="parent of run folders (default: runs/)")


def _config_show(args: argparse.Namespace) -> int:
    from flanlab.core.config import dump_config, load_config

    config = load_config(args.config, args.overrides)
    sys.stdout.write(dump_config(config))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from flanlab.core.doctor import run_doctor

    return run_doctor(data_dir=args.data_dir, timeout=args.timeout)


def register(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", help="inspect configs")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_sub.add_parser("show", help="print a config resolved with key=value overrides")
    show.add_argument("config", help="a YAML config file")
    show.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.lr=1e-4")
    show.add_argument("-v", "--verbose", action="store_true")
    show.set_defaults(func=_config_show)

    doctor = sub.add_parser("doctor", help="check the installation, GPU, hub, data dir and caches")
    doctor.add_argument("--data-dir", default=None, help=f"data folder to inspect (default: ${DATA_DIR_ENV})")
    doctor.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the hub")
    doctor.add_argument("-v", "--verbose", action="store_true")
    doctor.set_defaults(func=_doctor)
