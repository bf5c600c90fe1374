"""``flanlab mix``: build a mixture, show its composition, check it for contamination.

    flanlab mix CONFIG [key=value ...] --out DIR [--workers N] [--examples N]
    flanlab mix stats DIR
    flanlab mix check-contamination DIR --data-dir D [--n 13]
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]

USAGE = """flanlab mix CONFIG [key=value ...] --out DIR [--workers N] [--examples N] [--tokenizer T]
       flanlab mix stats DIR
       flanlab mix check-contamination DIR --data-dir D [--n 13]"""


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flanlab mix", description="stream a mixture config into shards")
    p.add_argument("config", help="a mixture config (kind: mixture)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. seed=3")
    p.add_argument("--out", required=True, help="output folder (shards + manifest.json)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output is the same for any N)")
    p.add_argument("--examples", type=int, default=None, help="total examples (default: the config's)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id for token-length statistics")
    p.add_argument("--overwrite", action="store_true", help="rebuild even if --out holds another mixture")
    p.add_argument("--data-dir", default=None, help="task data (default: $FLANLAB_DATA_DIR)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _stats_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flanlab mix stats", description="composition table and bar chart")
    p.add_argument("dir", help="a finished mixture folder")
    p.add_argument("--top", type=int, default=40, help="rows printed (all are written to stats.md)")
    p.add_argument("--out", default=None, help="folder for stats.md / stats.json / shares.png (default: DIR)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _contamination_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flanlab mix check-contamination",
                                description="n-gram overlap of a mixture with the evaluation sets")
    p.add_argument("dir", help="a finished mixture folder")
    p.add_argument("--data-dir", default=None, help="evaluation data (default: $FLANLAB_DATA_DIR)")
    p.add_argument("--n", type=int, default=13, help="n-gram length in normalized words (default 13)")
    p.add_argument("--benchmarks", nargs="*", default=None, help="only these (mmlu bbh gsm8k mgsm tydiqa)")
    p.add_argument("--out", default=None, help="folder for contamination.json / .md (default: DIR)")
    p.add_argument("--fail-on-overlap", action="store_true", help="exit 1 when any overlap is found")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _run_build(a: argparse.Namespace) -> int:
    from flanlab.core.config import load_config
    from flanlab.core.errors import UserError
    from flanlab.core.log import console, setup_logging
    from flanlab.mixture.build import build_mixture
    from flanlab.mixture.config import MixtureConfig
    from flanlab.mixture.stats import composition_rows, markdown_table

    setup_logging(a.verbose)
    if a.workers < 1:
        raise UserError(f"--workers: expected an integer >= 1, got {a.workers}")
    if a.examples is not None and a.examples < 1:
        raise UserError(f"--examples: expected an integer >= 1, got {a.examples}")
    config = load_config(a.config, a.overrides, schema=MixtureConfig)
    result = build_mixture(config, a.out, config_path=a.config, workers=a.workers, examples=a.examples,
                           tokenizer=a.tokenizer, overwrite=a.overwrite, data_dir=a.data_dir)
    m = result.manifest
    state = "already complete" if result.already_complete else (
        f"resumed ({result.resumed_streams} streams, {result.resumed_shards} shards reused)"
        if result.resumed_streams or result.resumed_shards else "built")
    console.print(f"{a.out}: {state}: {m['examples']:,} examples, {len(m['tasks'])} tasks, "
                  f"{len(m['shards'])} shard(s)")
    sys.stdout.write(markdown_table(composition_rows(m), limit=20))
    return 0


def _run_stats(a: argparse.Namespace) -> int:
    from pathlib import Path

    from flanlab.core.io import atomic_write_json, atomic_write_text
    from flanlab.mixture.shards import read_manifest
    from flanlab.mixture.stats import composition_rows, markdown_table, plot_shares

    manifest = read_manifest(a.dir)
    out = Path(a.out or a.dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = composition_rows(manifest)
    subs = [{"submixture": k, "tasks": v["tasks"], "examples": v["examples"], "share": v["share"],
             "target_share": v["target_share"]} for k, v in manifest["submixtures"].items()]
    text = (f"# {manifest['name']}: {manifest['examples']:,} examples\n\n## Submixtures\n\n"
            f"{markdown_table(subs)}\n## Tasks\n\n{markdown_table(rows)}")
    atomic_write_text(out / "stats.md", text)
    atomic_write_json(out / "stats.json", {"submixtures": subs, "tasks": rows, "lengths": manifest["lengths"]})
    png = plot_shares(manifest, out / "shares.png")
    sys.stdout.write(markdown_table(subs) + "\n" + markdown_table(rows, limit=a.top))
    print(f"wrote {out / 'stats.md'}, {out / 'stats.json'}, {png}")
    return 0


def _run_contamination(a: argparse.Namespace) -> int:
    from pathlib import Path

    from flanlab.core.io import atomic_write_json, atomic_write_text
    from flanlab.core.log import progress
    from flanlab.core.paths import require_data_dir
    from flanlab.mixture.contamination import EvalIndex, read_eval_sets, scan_mixture
    from flanlab.mixture.shards import iter_mixture, read_manifest

    if a.n < 1:
        from flanlab.core.errors import UserError

        raise UserError(f"--n: expected an integer >= 1, got {a.n}")
    manifest = read_manifest(a.dir)
    index = EvalIndex(read_eval_sets(require_data_dir(a.data_dir), a.benchmarks), n=a.n)

    def rows():
        with progress() as bar:
            task = bar.add_task("scan", total=manifest["examples"])
            for row in iter_mixture(a.dir):
                yield row
                bar.advance(task)

    report = {"mixture": manifest["name"], **scan_mixture(rows(), index)}
    out = Path(a.out or a.dir)
    atomic_write_json(out / "contamination.json", report)
    lines = [f"# Contamination of {manifest['name']}: {a.n}-gram overlap\n",
             "Evaluation sets: " + ", ".join(f"{k} ({v:,}, {index.too_short.get(k, 0)} shorter than n)"
                                             for k, v in report["eval_sets"].items()) + "\n",
             "| task | benchmark | mixture examples | eval examples hit | sample |",
             "| --- | --- | --- | --- | --- |"]
    for o in report["overlaps"]:
        sample = o["samples"][0]
        lines.append(f"| {o['task']} | {o['benchmark']} | {o['examples']} | {o['eval_examples']} | "
                     f"{sample['eval_id']}: “{sample['ngram']}” |")
    if not report["overlaps"]:
        lines.append("| (none) | | 0 | 0 | |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "contamination.md", text)
    sys.stdout.write(text)
    return 1 if a.fail_on_overlap and report["overlaps"] else 0


_SUBCOMMANDS = {"stats": (_stats_parser, _run_stats),
                "check-contamination": (_contamination_parser, _run_contamination)}


def _dispatch(args: argparse.Namespace) -> int:
    # `mix CONFIG ...` and `mix ACTION ...` share one positional slot, so parse the rest here.
    make, run = _SUBCOMMANDS.get(args.target, (_build_parser, _run_build))
    argv = args.rest if args.target in _SUBCOMMANDS else [args.target, *args.rest]
    sub = make().parse_args(argv)
    args.verbose = sub.verbose  # the CLI reads it to decide between one line and a traceback
    return run(sub)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix", help="build mixtures; `mix stats`, `mix check-contamination`", usage=USAGE,
                       description="Stream a mixture into shards, or inspect a finished one. Run "
                                   "`flanlab mix stats -h` or `flanlab mix check-contamination -h` for "
                                   "their options.")
    p.add_argument("target", metavar="CONFIG|stats|check-contamination")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_dispatch)
