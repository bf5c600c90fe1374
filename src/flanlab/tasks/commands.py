"""``flanlab tasks list``, ``flanlab tasks show`` and ``flanlab tasks check-flan``."""

from __future__ import annotations

import argparse

from flanlab.core.commands import add_common_args
from flanlab.core.paths import data_dir

__all__ = ["register"]

_FLAN_HELP = ("google-research/FLAN checkout: the Flan 2022 collection renders with flan/v2's own templates "
              "and assembly (default: $FLANLAB_FLAN_REPO)")


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from flanlab.tasks.catalog import list_tasks, task_row

    if args.collection:  # the Flan 2022 collection's tasks with their data availability
        from flanlab.tasks.collection.listing import list_collection

        return list_collection(args)
    tasks = list_tasks(data_dir(args.data_dir), source=args.source, tag=args.tag, flan_repo=args.flan_repo)
    rows = [task_row(t) for t in tasks]
    if args.json:
        import json

        print(json.dumps(rows, indent=1))
        return 0
    table = Table(title=f"{len(rows)} tasks", title_justify="left")
    for col in ("name", "source", "type", "#templates", "held-out"):
        table.add_column(col, no_wrap=col != "held-out")
    for r in rows:
        table.add_row(str(r["name"]), str(r["source"]), str(r["type"]), str(r["templates"]), str(r["heldout"]))
    # Wide enough for whole names and types even when stdout is not a terminal (rich assumes 80).
    keys = ("name", "source", "type", "templates", "heldout")
    need = sum(max([len(str(r[k])) for r in rows] + [10]) + 3 for k in keys) + 1
    Console(width=max(need, Console().width), soft_wrap=False).print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    from flanlab.tasks.catalog import get_task
    from flanlab.tasks.task import render

    # With a FLAN checkout the collection renders with flan/v2's templates (read with ast, never run).
    task = get_task(args.name, data_dir(args.data_dir), flan_repo=args.flan_repo)
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, trust_remote_code=False)
    fmt = args.format or task.formats()[0]
    seed = 0 if args.seed is None else args.seed
    print(f"# {task.name}  source={task.source_kind}  type={task.task_type}  format={fmt}  "
          f"split={args.split}  seed={seed}  held-out={', '.join(task.heldout_tags()) or '-'}")
    for r in render(task, fmt, split=args.split, seed=seed, shots=args.shots, tokenizer=tokenizer,
                    option_styles=args.option_styles, limit=args.n):
        print(f"\n=== example {r.index}  template {r.template_id}")
        print("--- inputs")
        print(r.inputs)
        print("--- targets")
        print(r.targets)
    return 0


def _check_flan(args: argparse.Namespace) -> int:
    import json

    from flanlab.core.errors import UserError
    from flanlab.tasks.collection.check_flan import check_flan, summarize
    from flanlab.tasks.collection.collection import flan_repo_default

    flan_repo = flan_repo_default(args.flan_repo)
    if flan_repo is None:
        raise UserError("--flan-repo: a google-research/FLAN checkout is required (or $FLANLAB_FLAN_REPO)")
    rows = check_flan(flan_repo, data_dir(args.data_dir), args.niv2_repo)
    totals = summarize(rows)
    failed = sum(t["load errors"] for t in totals)
    if args.json:
        print(json.dumps({"flan_repo": flan_repo, "totals": totals, "tasks": rows}, indent=1, ensure_ascii=False))
        return 1 if failed else 0
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'name':<{width}}  {'flan/v2 key':<36}  {'renderer':<8}  {'data':<7}  formats (templates)  differences"]
    for r in rows:
        fmts = " ".join(f"{k}:{v}" for k, v in r["formats"].items())
        status = "" if r["status"] == "ok" else "LOAD ERROR: "
        lines.append(f"{r['name']:<{width}}  {r['flan_key'][:36]:<36}  {r['renderer']:<8}  {r['data']:<7}  "
                     f"{fmts:<20} {status}{'; '.join(r['differences'])}")
    print("\n".join(lines))
    print()
    keys = list(totals[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for t in totals:
        print("| " + " | ".join(str(t[k]) for k in keys) + " |")
    print(f"\n{len(rows)} tasks, {failed} load error(s); flan/v2 templates from {flan_repo}")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    tasks = sub.add_parser("tasks", help="list tasks and show them rendered in the Flan formats")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)

    ls = tasks_sub.add_parser("list", help="a table of tasks: name, source, type, #templates, held-out tag")
    ls.add_argument("--source", default=None, help="only this source (flan_cot, gsm8k, bigbench, ...)")
    ls.add_argument("--tag", default=None, help="only tasks with this tag (bbh, gsm8k-test, heldout, cot, ...)")
    ls.add_argument("--json", action="store_true", help="print the rows as JSON")
    ls.add_argument("--collection", default=None, help="list a collection's tasks and where their data is (flan2022)")
    ls.add_argument("--niv2-repo", default=None, help="natural-instructions checkout (for --collection)")
    ls.add_argument("--flan-repo", default=None, help=_FLAN_HELP)
    add_common_args(ls, run=False)
    ls.set_defaults(func=_list)

    show = tasks_sub.add_parser("show", help="print rendered (inputs, targets) pairs of a task")
    show.add_argument("name", help="task name (see `flanlab tasks list`)")
    show.add_argument("--format", default=None,
                      choices=["zs_opt", "zs_noopt", "fs_opt", "fs_noopt", "zs_cot", "fs_cot"],
                      help="default: the task's first format")
    show.add_argument("--n", type=int, default=3, help="how many examples (default 3)")
    show.add_argument("--split", default="train")
    show.add_argument("--shots", type=int, default=3,
                      help="exemplars in few-shot formats (default 3; with --flan-repo flan/v2 decides)")
    show.add_argument("--option-styles", choices=["random", "flan"], default="random",
                      help="randomized Flan option styles, or always 'OPTIONS:\\n- ...'")
    show.add_argument("--tokenizer", default=None, help="prune to the Flan token budgets with this tokenizer")
    show.add_argument("--flan-repo", default=None, help=_FLAN_HELP)
    add_common_args(show, run=False)
    show.set_defaults(func=_show)

    chk = tasks_sub.add_parser("check-flan", help="every Flan 2022 task against a google-research/FLAN checkout: "
                                                  "templates loaded per format, data, differences")
    chk.add_argument("--flan-repo", default=None, help="google-research/FLAN checkout (default: $FLANLAB_FLAN_REPO)")
    chk.add_argument("--niv2-repo", default=None, help="natural-instructions checkout or tasks folder")
    chk.add_argument("--json", action="store_true", help="print totals and rows as JSON")
    add_common_args(chk, run=False)
    chk.set_defaults(func=_check_flan)
