"""One seed for python, numpy and torch."""

from __future__ import annotations

import random

__all__ = ["seed_everything"]


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed python's ``random``, numpy and torch (if installed); optionally ask torch for
    deterministic kernels."""
    # No PYTHONHASHSEED: it only takes effect when an interpreter starts, so setting it here
    # changed nothing in this process and leaked into child processes.
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
