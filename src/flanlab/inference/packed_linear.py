"""Linear layers on oneDNN-packed weights, for inference on the CPU.

PyTorch's CPU ``nn.Linear`` calls the BLAS it was built with (MKL in the PyPI wheels). On the AMD
EPYC machines we measured, MKL runs float32 matrix products at about half the rate oneDNN reaches
on the same core (oneDNN picks its AVX-512 kernels by the CPU's features, not its vendor): 2.2-2.5x
slower for the shapes of a 135M-parameter model at every batch size, 3x for the LM head of a few
decoding rows (``benchmarks/generation_vs_lm_eval.py`` prints both paths). PyTorch itself ships the
oneDNN path, as the packed linear its CPU compiler uses (``torch.ops.mkldnn``): weights are
reordered once into oneDNN's blocked layout, then each product runs on that copy.

The results are float32 products summed in a different order: they differ from MKL's by rounding
(~1e-6 relative), as two BLAS libraries do; the evaluation benchmarks check that outputs and choices
stay the same as lm-eval's.

Used only under :class:`PackedLinears` ``.using()``, inside inference (no autograd): outside it the
model is untouched, so the same model object still trains and serves other code. The packed copy
costs as much memory as the float32 linear weights; :func:`plan` skips it when that does not fit.
A weight changed in place (an optimizer step between keep-best evaluations) is re-packed at the next
``using()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger

__all__ = ["CpuLinear", "PackedLinears", "plan"]

log = get_logger(__name__)

CpuLinear = Literal["auto", "onednn", "torch"]


def _onednn_works() -> str | None:
    """None when the packed oneDNN linear is present and agrees with ``F.linear``; else why not."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return "this PyTorch build has no oneDNN"
    ops = getattr(torch.ops, "mkldnn", None)
    if ops is None or not hasattr(ops, "_linear_pointwise") or not hasattr(ops, "_reorder_linear_weight"):
        return "this PyTorch build lacks torch.ops.mkldnn's packed linear"
    try:
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(24, 40, generator=gen)
        b = torch.randn(24, generator=gen)
        x = torch.randn(3, 5, 40, generator=gen)
        got = torch.ops.mkldnn._linear_pointwise(x, torch.ops.mkldnn._reorder_linear_weight(w, None), b, "none",
                                                 [], "")
        want = torch.nn.functional.linear(x, w, b)
    except RuntimeError as e:  # an op present but unusable on this CPU
        return f"oneDNN's packed linear failed: {e}"
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
        return "oneDNN's packed linear disagrees with torch.nn.functional.linear"
    return None


def _available_memory() -> int | None:
    """Bytes the system can give without swapping: Linux's MemAvailable (free memory plus the page
    cache it can drop), else the free pages, else None (unknown: not checked)."""
    import os

    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def plan(model: Any, mode: CpuLinear) -> PackedLinears | None:
    """The packed linears to run ``model`` on, or None (the model's own linears) when ``mode`` is
    "torch", the model is not a float32 model on the CPU, or ("auto") oneDNN is unusable or its
    copy of the weights would not fit in half the free memory. "onednn" raises a UserError where
    "auto" logs."""
    import torch

    if mode == "torch":
        return None
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    first = next(iter(model.parameters()), None)
    why = None
    if first is None or first.device.type != "cpu" or any(m.weight.device.type != "cpu" for m in linears):
        why = "the model is not (all) on the CPU"
    elif not linears or any(m.weight.dtype != torch.float32 for m in linears):
        # bfloat16 products already run on oneDNN.
        why = "the model's linear layers are not float32"
    else:
        why = _onednn_works()
    if why is None and mode == "auto":
        need = sum(m.weight.numel() * m.weight.element_size() for m in linears)
        free = _available_memory()
        if free is not None and need > free // 2:
            why = f"packed weights need {need / 2**20:.0f} MiB, over half the free memory ({free / 2**20:.0f} MiB)"
    if why is not None:
        if mode == "onednn":
            raise UserError(f"model.cpu_linear='onednn' (--cpu-linear onednn): {why}; use auto or torch")
        if first is not None and first.device.type == "cpu":
            log.info("linear layers run on PyTorch's own kernels: %s", why)
        return None
    return PackedLinears(linears)


class PackedLinears:
    """oneDNN-packed copies of a model's ``nn.Linear`` weights, swapped in by :meth:`using`."""

    def __init__(self, linears: list[Any]) -> None:
        self.linears = linears
        self._packed: list[Any] = [None] * len(linears)
        self._stamp: list[tuple[int, int] | None] = [None] * len(linears)
        self._depth = 0
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        import torch

        for i, m in enumerate(self.linears):
            w = m.weight
            stamp = (w.data_ptr(), w._version)
            if stamp != self._stamp[i]:
                with torch.no_grad():
                    self._packed[i] = torch.ops.mkldnn._reorder_linear_weight(w.detach(), None)
                self._stamp[i] = stamp

    @contextmanager
    def using(self) -> Iterator[None]:
        """Inside the block (nested blocks too), the model's linear layers run on the packed weights
        whenever autograd is off; with gradients on they run as before."""
        with self._lock:
            if self._depth == 0:
                self._refresh()
                for m, packed in zip(self.linears, self._packed, strict=True):
                    m.forward = _packed_forward(m, packed)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    for m in self.linears:
                        # The instance attribute shadowed the class's forward; removing it restores it.
                        del m.forward


def _packed_forward(module: Any, packed: Any):
    import torch

    own = type(module).forward.__get__(module)
    op = torch.ops.mkldnn._linear_pointwise

    def forward(x):
        if torch.is_grad_enabled() or x.dtype != torch.float32:
            return own(x)
        return op(x, packed, module.bias, "none", [], "")

    return forward
