"""``flanlab doctor``: what is installed, what hardware and network there is, what data is local."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flanlab.core.paths import DATA_DIR_ENV, cache_dir

__all__ = ["hub_reachable", "inspect_data_dir", "run_doctor"]

PACKAGES = ["flanlab", "torch", "transformers", "datasets", "tokenizers", "peft", "accelerate", "gguf",
            "vllm", "lm_eval", "trl", "matplotlib"]
# What each benchmark looks like in a local data dir (the layout of ../shared/data).
DATA_MARKERS = {
    "mmlu": "mmlu/test",
    "bbh": "bbh/tasks",
    "bbh-cot-prompts": "bbh/cot-prompts",
    "gsm8k": "gsm8k/test.jsonl",
    "mgsm": "mgsm",
    "tydiqa": "tydiqa",
    "flan_cot": "flan_cot",
}


def _version(name: str) -> str:
    try:
        return md.version(name.replace("_", "-"))
    except md.PackageNotFoundError:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "-"


def hub_reachable(timeout: float = 3.0) -> str:
    """'yes', 'no (...)' or 'offline mode': a TCP connect to the hub with a hard timeout."""
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "TRUE") or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        return "offline mode (HF_HUB_OFFLINE set)"
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]

    def probe() -> str:
        with socket.create_connection((host, 443), timeout=timeout):
            return "yes"

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(probe).result(timeout=timeout + 0.5)
    except FutureTimeout:
        return f"no ({host}: timed out after {timeout:.0f}s)"
    except OSError as e:
        return f"no ({host}: {e.strerror or e})"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def inspect_data_dir(path: Path | None) -> list[tuple[str, str]]:
    """(benchmark, what is there) for every known benchmark layout in the data dir."""
    if path is None:
        return [("-", f"not set (--data-dir or ${DATA_DIR_ENV}); benchmarks load from the hub")]
    if not path.is_dir():
        return [("-", f"{path} does not exist")]
    rows = []
    for name, rel in DATA_MARKERS.items():
        p = path / rel
        if p.is_dir():
            rows.append((name, f"{sum(1 for _ in p.iterdir())} files in {rel}/"))
        elif p.is_file():
            rows.append((name, f"{rel}"))
        else:
            rows.append((name, "missing"))
    return rows


def _gpu() -> str:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"{torch.cuda.device_count()} CUDA device(s): {', '.join(sorted(names))}"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple MPS"
    return f"none (CPU only, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def run_doctor(data_dir: str | None = None, timeout: float = 3.0) -> int:
    """Print the report; always exits 0 (it diagnoses, it does not judge)."""
    out = Console()
    table = Table(title="flanlab doctor", show_header=True)
    table.add_column("check")
    table.add_column("result")
    table.add_row("python", f"{platform.python_version()} ({sys.executable})")
    for pkg in PACKAGES:
        table.add_row(pkg, _version(pkg))
    table.add_row("GPU", _gpu())
    table.add_row("hub reachable", hub_reachable(timeout))
    from flanlab.core import paths

    ddir = paths.data_dir(data_dir)
    table.add_row("data dir", str(ddir) if ddir else "not set")
    for name, what in inspect_data_dir(ddir):
        table.add_row(f"  {name}", what)
    table.add_row("flanlab cache", str(cache_dir()))
    table.add_row("HF cache", os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface"))
    out.print(table)
    return 0
