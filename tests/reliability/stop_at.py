"""``python -m tests.reliability.stop_at SPEC ARGS...``: the flanlab CLI with ARGS, freezing itself
(SIGSTOP) right after the first file write (an ``os.replace`` or ``os.fsync``) after which SPEC holds
on disk. The test then SIGKILLs a process stopped at a known point: the kill lands at the same place
on every run, however loaded the machine (polling from outside and killing could land anywhere
later, even after the run finished).

SPEC is JSON: ``{"glob": FOLDER, "pattern": P, "count": N}`` (at least N files matching P, not
counting ``*.tmp``) or ``{"lines": FILE, "count": N}`` (at least N complete lines)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def holds(spec: dict[str, Any]) -> bool:
    """Whether the SPEC's condition holds on disk now."""
    if "glob" in spec:
        found = [p for p in Path(spec["glob"]).glob(spec["pattern"]) if not p.name.endswith(".tmp")]
        return len(found) >= spec["count"]
    try:
        return Path(spec["lines"]).read_bytes().count(b"\n") >= spec["count"]
    except FileNotFoundError:
        return False


def main() -> int:
    spec, args = json.loads(sys.argv[1]), sys.argv[2:]
    real_replace, real_fsync = os.replace, os.fsync
    done = False

    def check() -> None:
        nonlocal done
        if not done and holds(spec):
            done = True
            os.kill(os.getpid(), signal.SIGSTOP)  # every thread stops here until the test kills us

    def replace(*a: Any, **kw: Any) -> None:
        real_replace(*a, **kw)
        check()

    def fsync(fd: int) -> None:
        real_fsync(fd)
        check()

    os.replace, os.fsync = replace, fsync
    from flanlab.cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
