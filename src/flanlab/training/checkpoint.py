"""Checkpoints in safetensors: trainable weights, optimizer state, RNG states, loop state.

Layout of ``checkpoints/step-000100/``::

    weights.safetensors    trainable parameters (all of them, or only the LoRA adapters)
    optimizer.safetensors  optimizer tensors, flattened as ``state.<param>.<key>``
    optimizer.json         optimizer scalars and param groups
    rng.safetensors        torch CPU (and CUDA) generator states
    state.json             step, data position, python/numpy RNG, best held-out loss, ...

Under FSDP or DeepSpeed the weights and optimizer state are sharded across processes: there a
checkpoint is ``accelerate/`` (every process's shard and RNG states, written by
``accelerator.save_state``) beside ``state.json``; see :func:`save_sharded_checkpoint`.

A checkpoint folder is written under a temporary name and renamed when complete, so a crash
never leaves a half checkpoint that resume would pick up.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.io import OutputError, atomic_write_json

__all__ = ["latest_checkpoint", "load_checkpoint", "load_sharded_checkpoint", "prune_checkpoints", "save_checkpoint",
           "save_sharded_checkpoint", "writing_folder"]

_STEP = re.compile(r"^step-(\d+)$")


def _trainable(model: Any) -> dict[str, Any]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


@contextlib.contextmanager
def writing_folder(tmp: Path, target: Path) -> Iterator[None]:
    """Around writing ``tmp`` (later renamed to ``target``): on a failed write (disk full, read-only
    folder; safetensors raises its own error type) remove ``tmp`` and raise a clear
    :class:`OutputError`; what was saved before stays as it was."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OutputError):
            raise
        raise OutputError(f"cannot write {target}: {e}; earlier checkpoints and outputs are kept") from None


def save_checkpoint(folder: Path, *, model: Any, optimizer: Any, state: dict[str, Any]) -> Path:
    """Write a complete checkpoint to ``folder`` (atomically, via a temporary sibling)."""
    tmp = folder.with_name(folder.name + ".tmp")
    with writing_folder(tmp, folder):
        _save_checkpoint(tmp, folder, model=model, optimizer=optimizer, state=state)
    return folder


def _save_checkpoint(tmp: Path, folder: Path, *, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_trainable(model), str(tmp / "weights.safetensors"))
    tensors, meta = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    atomic_write_json(tmp / "optimizer.json", meta)
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda.{i}"] = s
    save_file(rng, str(tmp / "rng.safetensors"))
    np_state = np.random.get_state()
    full = {
        **state,
        "python_rng": _jsonable(random.getstate()),
        "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    atomic_write_json(tmp / "state.json", full)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, tuple | list):
        return [_jsonable(x) for x in obj]
    return obj


def _tupled(obj: Any) -> Any:
    if isinstance(obj, list):
        return tuple(_tupled(x) for x in obj)
    return obj


def load_checkpoint(folder: Path, *, model: Any, optimizer: Any) -> dict[str, Any]:
    """Restore weights, optimizer and RNG states from ``folder``; returns its loop state."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    if (folder / "accelerate").is_dir():
        raise UserError(f"{folder}: a sharded checkpoint (written under FSDP or DeepSpeed); resume it with the "
                        "launcher config that wrote it")
    for name in ("weights.safetensors", "optimizer.safetensors", "optimizer.json", "rng.safetensors", "state.json"):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: incomplete checkpoint, {name} is missing")
    weights = load_file(str(folder / "weights.safetensors"))
    params = dict(model.named_parameters())
    unknown = sorted(set(weights) - set(params))
    if unknown:
        raise UserError(f"{folder}/weights.safetensors: parameters not in this model: {unknown[:3]} "
                        "(was the checkpoint made with another model or LoRA setting?)")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    meta = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(folder / "optimizer.safetensors")), meta))
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    random.setstate(_tupled(state.pop("python_rng")))
    np_state = state.pop("numpy_rng")
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    return state


def save_sharded_checkpoint(folder: Path, *, accelerator: Any, state: dict[str, Any]) -> Path:
    """FSDP / DeepSpeed: every process writes its shard of the weights and optimizer state (and its
    RNG states) through ``accelerator.save_state`` into ``folder/accelerate``; the main process adds
    ``state.json`` and renames the folder once all are done. Call it on every process."""
    tmp = folder.with_name(folder.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / "accelerate"))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with writing_folder(tmp, folder):
            atomic_write_json(tmp / "state.json", state)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
    accelerator.wait_for_everyone()
    return folder


def load_sharded_checkpoint(folder: Path, *, accelerator: Any) -> dict[str, Any]:
    """Restore a :func:`save_sharded_checkpoint` folder on every process; returns its loop state."""
    if not (folder / "accelerate").is_dir() or not (folder / "state.json").is_file():
        raise UserError(f"{folder}: not a sharded checkpoint (no accelerate/ or state.json); it was written "
                        "without FSDP / DeepSpeed, so resume it with the launcher that wrote it")
    accelerator.load_state(str(folder / "accelerate"))
    return json.loads((folder / "state.json").read_text(encoding="utf-8"))


def latest_checkpoint(root: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``root``, or None."""
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()]
    return max(found)[1] if found else None


def prune_checkpoints(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints."""
    found = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)))
    for _, path in found[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
