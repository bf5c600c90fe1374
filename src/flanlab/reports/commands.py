"""``flanlab report RUN_DIR ...``: markdown + self-contained HTML report of finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["make_report", "register"]


def make_report(run_dirs: list[str | Path], out_dir: str | Path, title: str | None = None) -> dict[str, Path]:
    """Read ``run_dirs`` and write ``report.md``, ``report.html`` and ``plots/`` into ``out_dir``."""
    from flanlab.reports.build import build_report, write_report
    from flanlab.reports.collect import load_runs
    from flanlab.reports.paper import load_paper_rows

    runs = load_runs(list(run_dirs))
    default = f"flanlab report: {runs[0].name}" if len(runs) == 1 else f"flanlab report: {len(runs)} runs"
    doc = build_report(runs, load_paper_rows(), title=title or default)
    return write_report(doc, out_dir)


def _report(args: argparse.Namespace) -> int:
    from flanlab.core.errors import UserError
    from flanlab.core.log import get_logger, setup_logging

    setup_logging(args.verbose)
    if args.out is None and len(args.run_dirs) > 1:
        raise UserError("report: several run folders need --out DIR (where report.md/html go)")
    out = Path(args.out or args.run_dirs[0])
    paths = make_report(args.run_dirs, out, args.title)
    get_logger("reports").info("wrote %s and %s", paths["markdown"], paths["html"])
    print(paths["html"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="markdown + self-contained HTML report of run folders")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (eval, train or pipeline runs)")
    p.add_argument("--out", default=None, help="output folder (default: the run folder, when there is one)")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("-v", "--verbose", action="store_true", help="full tracebacks")
    p.set_defaults(func=_report)
