"""Handing freed heap memory back to the operating system between the phases of a long job."""

from __future__ import annotations

import ctypes

__all__ = ["release_freed_memory"]


def release_freed_memory() -> bool:
    """Return the free pages of the C heap to the operating system (glibc's ``malloc_trim(0)``).

    CPython hands objects over 512 bytes (long strings: rendered examples, exemplar blocks) to
    ``malloc``, whose heap keeps the pages they freed resident until it is trimmed, so a phase that
    needs little memory would otherwise sit on the high-water mark of the phase before it. True
    when it ran; elsewhere than glibc (macOS, musl) there is no such call and nothing is done.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # no such library call (TypeError: Windows)
        return False
    trim(0)
    return True
