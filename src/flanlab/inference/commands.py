"""Inference subcommands: ``flanlab serve`` and ``flanlab models``. Cheap to import: torch and
transformers load inside the command functions."""

from __future__ import annotations

import argparse
import sys

from flanlab.core.commands import add_common_args

__all__ = ["register"]


def _spec_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="hub name, folder, .gguf file or embedded name (smollm2-135m)")
    parser.add_argument("--kind", choices=["auto", "causal", "seq2seq"], default="auto")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--batch-size", default="auto", help="rows per forward pass, or auto")
    parser.add_argument("--max-length", type=int, default=None, help="context length (default: the model's)")
    parser.add_argument("--trust-remote-code", action="store_true", help="run code shipped with the model")
    parser.add_argument("--allow-pickle", action="store_true", help="allow pickled (.bin) weights")
    parser.add_argument("--cpu-linear", choices=["auto", "onednn", "torch"], default="auto",
                        help="float32 linear layers on the CPU: oneDNN-packed weights (auto: when available and "
                             "they fit in memory) or PyTorch's own kernels")


def _spec(args: argparse.Namespace):
    from flanlab.core.errors import UserError
    from flanlab.inference.spec import ModelSpec

    batch = args.batch_size
    if batch != "auto":
        try:
            batch = int(batch)
        except ValueError:
            raise UserError(f"--batch-size: expected an integer or 'auto', got {batch!r}") from None
    return ModelSpec(
        name=args.model, kind=args.kind, dtype=args.dtype, device=args.device, batch_size=batch,
        max_length=args.max_length, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle,
        cpu_linear=args.cpu_linear,
    )


def _serve(args: argparse.Namespace) -> int:
    import importlib.util

    from flanlab.core.errors import UserError
    from flanlab.core.log import setup_logging
    from flanlab.core.seed import seed_everything

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"flanlab serve needs {' and '.join(missing)}: pip install -e \".[serve]\"")
    if args.batch_window_ms < 0:
        raise UserError(f"--batch-window-ms: expected a number >= 0, got {args.batch_window_ms}")
    from flanlab.inference.hf import HFLM
    from flanlab.inference.serve import serve

    setup_logging(args.verbose)
    if args.seed is not None:
        seed_everything(args.seed)
    lm = HFLM.from_spec(_spec(args), show_progress=False)
    try:
        serve(lm, host=args.host, port=args.port, model_name=args.served_name, api_key_env=args.api_key_env,
              batch_window_ms=args.batch_window_ms, continuous=not args.no_continuous)
    except KeyboardInterrupt:
        return 0
    return 0


def _models(args: argparse.Namespace) -> int:
    from flanlab.inference.embedded import embedded_models

    table = embedded_models()
    if args.fetch:
        from flanlab.inference.embedded import embedded_gguf
        from flanlab.inference.loading import convert_gguf

        for name in args.fetch:
            if name not in table:
                from flanlab.core.errors import UserError

                raise UserError(f"--fetch {name}: not an embedded model; known: {', '.join(sorted(table))}")
            folder = convert_gguf(embedded_gguf(name), name=name)
            print(f"{name}\t{folder}")
        return 0
    print("| name | model |\n| --- | --- |")
    for name, entry in sorted(table.items()):
        print(f"| `{name}` | {entry.description} |")
    sys.stdout.flush()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="OpenAI-compatible HTTP server over a local model")
    _spec_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-name", default=None, help="model id reported by /v1/models (default: --model)")
    serve.add_argument("--api-key-env", default=None, help="require 'Bearer $VAR' from clients (VAR names an env var)")
    serve.add_argument("--batch-window-ms", type=float, default=20.0,
                       help="when idle, collect requests into one batch until none arrives for this long (default 20)")
    serve.add_argument("--no-continuous", action="store_true",
                       help="generation requests never join a running batch; they wait for the next collected one")
    add_common_args(serve, run=False)
    serve.set_defaults(func=_serve)

    models = sub.add_parser("models", help="list embedded models (or fetch and convert them for offline use)")
    models.add_argument("--fetch", nargs="+", metavar="NAME", default=None, help="download and convert these now")
    models.add_argument("-v", "--verbose", action="store_true")
    models.set_defaults(func=_models)
