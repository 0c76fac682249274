"""Hand freed host memory back to the operating system between stages.

A long clip's stages allocate and free many clip-sized temporaries. glibc keeps freed small and
medium blocks in its heap, where they are fragmented between tensors that stay alive (flows,
latents), so a process that already finished with them still reports them in its RSS, and the
next stage's working set lands on top. ``malloc_trim`` returns whatever is free; elsewhere (macOS,
Windows, musl) this is a no-op.
"""
from __future__ import annotations

import ctypes
import functools
import sys


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Return free heap pages to the OS; ``True`` when the C library could do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


__all__ = ["release_freed_memory"]
