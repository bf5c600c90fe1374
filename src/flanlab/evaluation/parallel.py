"""Data-parallel evaluation: under ``accelerate launch`` or ``torchrun`` every process loads the model,
evaluates every ``world``-th pending request and appends its records to ``examples.rankR.jsonl``;
the main process then merges them into ``examples.jsonl`` (in request order) and writes the results.

Rank files are records like ``examples.jsonl``'s, so an interrupted parallel run resumes like a
single-process one: whatever world size the rerun has, the main process first moves every rank
file's records into ``examples.jsonl``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.io import append_jsonl, read_jsonl

__all__ = ["Processes", "merge_rank_files", "processes", "rank_file"]


@dataclass(frozen=True)
class Processes:
    """This process's place among the evaluating processes (rank 0 of 1 when not launched)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for in a single process)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def device(self, device: str) -> str:
        """The device of this process: its own GPU when ``device`` is ``auto`` and there are GPUs."""
        if self.world == 1 or device != "auto":
            return device
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"


def processes() -> Processes:
    """The processes a launcher started (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, as torchrun and
    accelerate set them), joined in a gloo process group (barriers only; records go through files)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def rank_file(folder: Path, rank: int) -> Path:
    return folder / f"examples.rank{rank}.jsonl"


def merge_rank_files(folder: Path, examples: Path, order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Append the records of every ``examples.rankR.jsonl`` in ``folder`` to ``examples`` (those of
    keys in ``order`` first, in that order), then delete the rank files; returns the records moved."""
    files = sorted(folder.glob("examples.rank*.jsonl"))
    records: dict[str, dict[str, Any]] = {}
    for path in files:
        for r in read_jsonl(path):
            records[f"{r['benchmark']}/{r['subtask']}/{r['index']}/{r['strategy']}"] = r
    if records:
        position = {key: i for i, key in enumerate(order)}
        moved = sorted(records.items(), key=lambda kv: (position.get(kv[0], len(position)), kv[0]))
        append_jsonl(examples, [r for _, r in moved])
    for path in files:
        path.unlink()
    return list(records.values())
