"""``flanlab mix``: build a mixture, show its composition, check it for contamination.

    flanlab mix CONFIG [key=value ...] --out DIR [--workers N] [--examples N]
    flanlab mix stats DIR
    flanlab mix check-contamination DIR --data-dir D [--n 13]
"""

from __future__ import annotations

import argparse
import sys

import flanlab.mixture.config  # noqa: F401  (registers `kind: mixture`, so shipped configs load; pydantic only)
from flanlab.core.paths import data_dir

__all__ = ["register"]

USAGE = """flanlab mix CONFIG [key=value ...] --out DIR [--workers N] [--examples N] [--tokenizer T]
       flanlab mix stats DIR
       flanlab mix check-contamination DIR --data-dir D [--n 13]"""


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flanlab mix", description="stream a mixture config into shards")
    p.add_argument("config", help="a mixture config (kind: mixture)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. seed=3")
    p.add_argument("--out", default=None, help="output folder (shards + manifest.json); required unless --dry-run")
    p.add_argument("--dry-run", action="store_true",
                   help="print the planned composition (tasks, rates, caps, expected shares) without reading data")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output is the same for any N)")
    p.add_argument("--examples", type=int, default=None, help="total examples (default: the config's)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id for token-length statistics")
    p.add_argument("--overwrite", action="store_true", help="rebuild even if --out holds another mixture")
    p.add_argument("--data-dir", default=None, help="task data (default: $FLANLAB_DATA_DIR)")
    p.add_argument("--seed", type=int, default=None, help="the mixture's seed (same as the override seed=N)")
    p.add_argument("--flan-repo", default=None,
                   help="google-research/FLAN checkout: the Flan 2022 collection renders with flan/v2's templates "
                        "and assembly (same as flan_repo=PATH; default: $FLANLAB_FLAN_REPO)")
    p.add_argument("--top", type=int, default=30, help="task rows shown by --dry-run (0: all)")
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
    from pathlib import Path

    from flanlab.core.config import load_config
    from flanlab.core.errors import UserError
    from flanlab.core.log import console, setup_logging
    from flanlab.mixture.build import build_mixture
    from flanlab.mixture.config import MixtureConfig
    from flanlab.mixture.stats import composition_rows, markdown_table

    if a.dry_run:
        setup_logging(a.verbose)
        return _run_dry(a)
    if not a.out:
        raise UserError("--out: an output folder is required (or --dry-run to preview the plan)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    setup_logging(a.verbose, log_file=Path(a.out) / "log.txt")
    if a.workers < 1:
        raise UserError(f"--workers: expected an integer >= 1, got {a.workers}")
    if a.examples is not None and a.examples < 1:
        raise UserError(f"--examples: expected an integer >= 1, got {a.examples}")
    config = _with_flan_repo(load_config(a.config, [*a.overrides, *_seed(a)], schema=MixtureConfig), a)
    result = build_mixture(config, a.out, config_path=a.config, workers=a.workers, examples=a.examples,
                           tokenizer=a.tokenizer, overwrite=a.overwrite, data_dir=data_dir(a.data_dir))
    m = result.manifest
    state = "already complete" if result.already_complete else (
        f"resumed ({result.resumed_streams} streams, {result.resumed_shards} shards reused)"
        if result.resumed_streams or result.resumed_shards else "built")
    console.print(f"{a.out}: {state}: {m['examples']:,} examples, {len(m['tasks'])} tasks, "
                  f"{len(m['shards'])} shard(s)")
    sys.stdout.write(markdown_table(composition_rows(m), limit=20))
    return 0


def _seed(a: argparse.Namespace) -> list[str]:
    return [] if a.seed is None else [f"seed={a.seed}"]


def _data_status(task) -> str:
    """``local``, ``hub`` or ``missing``: the task's tag, else what its source is (files found or not,
    a hub dataset, a source that only says what is missing), without reading any data."""
    tagged = next((t for t in ("local", "hub", "missing") if t in task.tags), None)
    if tagged:
        return tagged
    source = getattr(task.source, "inner", task.source)
    files = getattr(source, "files", None)
    if isinstance(files, dict):
        from pathlib import Path

        return "local" if files and all(Path(p).is_file() for p in files.values()) else "missing"
    if type(source).__name__ == "HFSource":
        return "hub"
    return "missing" if type(source).__name__.startswith("_Missing") else "local"


def _with_flan_repo(config, a: argparse.Namespace):
    """The config with ``--flan-repo`` applied (the flag wins over the config's ``flan_repo``)."""
    return config.model_copy(update={"flan_repo": a.flan_repo}) if a.flan_repo else config


def _run_dry(a: argparse.Namespace) -> int:
    """The plan of a mixture from its config and the catalog alone: which tasks each member names,
    their submixture, the renormalized submixture rates and caps, and the expected shares if every
    task filled its cap (sizes are unknown without data). Nothing is read or written."""
    import fnmatch
    from collections import defaultdict

    from flanlab.core.config import load_config
    from flanlab.core.errors import UserError
    from flanlab.mixture.catalog import default_submixture
    from flanlab.mixture.config import MixtureConfig
    from flanlab.mixture.rates import canonical_submixture, flan2022
    from flanlab.mixture.stats import markdown_table
    from flanlab.tasks.catalog import catalog

    config = _with_flan_repo(load_config(a.config, a.overrides, schema=MixtureConfig), a)
    # Index BIG-bench only when a member can name its tasks (indexing may fetch the sdist).
    bigbench = any(m.task and fnmatch.fnmatchcase("bigbench.x", m.task.split(".")[0] + ".*") for m in config.members)
    reg, consts = catalog(data_dir(a.data_dir), bigbench=bigbench, flan_repo=config.flan_repo), flan2022()
    streams: list[dict] = []
    for i, m in enumerate(config.members):
        where = f"{a.config}: members.{i}"
        if m.task:
            names = [n for n in reg.names() if fnmatch.fnmatchcase(n, m.task)
                     and not any(fnmatch.fnmatchcase(n, x) for x in m.exclude)]
            if not any(c in m.task for c in "*?["):
                names = [reg.get(m.task).name]
            for name in names:
                task = reg.get(name)
                if task.heldout and name not in config.allow_heldout and name != m.task:
                    continue  # a glob skips held-out tasks, as the build does
                if "flan_variant" in task.tags and name != m.task:
                    continue  # a view of templates its task already has, as the build skips it
                fmts = [f for f in (m.formats or config.formats or task.formats()) if f in task.formats()]
                data = _data_status(task)
                streams.append({"task": name, "variant": ":" in name, "submixture": canonical_submixture(m.submixture or default_submixture(task)),
                                "category": m.category or task.category, "formats": len(fmts), "data": data})
            if not names:
                raise UserError(f"{where}.task: {m.task!r} matches no catalog task")
        else:
            kind = "file" if m.file else "mixture"
            streams.append({"task": m.name or getattr(m, kind), "variant": False, "submixture": canonical_submixture(m.submixture or "custom"),
                            "category": m.category or "", "formats": 1, "data": kind})
    by_sub: dict[str, list[dict]] = defaultdict(list)
    for s in streams:
        by_sub[s["submixture"]].append(s)
    rates = config.submixture_rates
    raw = (consts.split_parts({k: consts.rates[k] for k in by_sub if k in consts.rates}, set(by_sub))
           if rates == "flan2022" else {canonical_submixture(k): v for k, v in rates.items()}
           if isinstance(rates, dict) else {k: float(len(v)) for k, v in by_sub.items()})
    total = sum(raw.get(k, 0.0) for k in by_sub) or 1.0
    subs, rows = [], []
    for name, members in by_sub.items():
        share = raw.get(name, 0.0) / total
        cap = config.caps.get(name, consts.caps.get(name, config.default_cap))
        n_var = sum(1 for s in members if s["variant"])
        data = {k: sum(1 for s in members if s["data"] == k) for k in ("local", "hub", "missing")}
        subs.append({"submixture": name, "tasks": len(members) - n_var, "variants": n_var,
                     "data local/hub/missing": "/".join(str(data[k]) for k in ("local", "hub", "missing")),
                     "rate": f"{raw.get(name, 0.0):.4g}", "cap": cap or "-",
                     "expected_share": share})
        for s in members:
            rows.append({**{k: v for k, v in s.items() if k != "variant"}, "expected_share": share / len(members)})
    n_var = sum(1 for s in streams if s["variant"])
    # A task's variants (muffin/NAME:inverted, cot_NAME:inverted) are counted apart from the tasks.
    print(f"# {config.name}: planned composition ({len(streams) - n_var} tasks + {n_var} variants; "
          f"templates: {'flan/v2 from ' + config.flan_repo if config.flan_repo else 'flanlab'}; no data read)\n")
    sys.stdout.write(markdown_table(subs) + "\n")
    sys.stdout.write(markdown_table(sorted(rows, key=lambda r: -r["expected_share"]), limit=a.top or None))
    print("\nexpected_share: the submixture's renormalized rate split evenly over its tasks, as when every "
          "task fills its cap; the build weighs tasks by min(size, cap).")
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
                                   "`flanlab mix CONFIG -h`, `flanlab mix stats -h` or `flanlab mix check-contamination -h` for "
                                   "their options.")
    p.add_argument("target", metavar="CONFIG|stats|check-contamination")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_dispatch)
