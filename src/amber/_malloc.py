"""The C allocator's settings for eager mode's array buffers (glibc on Linux).

Eager mode allocates a fresh NumPy buffer for each op's result. glibc serves blocks from
128 KiB up (its starting threshold) with ``mmap`` and returns them with ``munmap`` (and
trims a heap top past its trim threshold), so each such result is paid again in page
faults when first written: on a virtual machine an LSTM training step spent more time
faulting pages in than computing. Raising both thresholds keeps freed buffers in the heap
for the next op, as PyTorch's caching allocator does. ``AMBER_MALLOC_TUNING=0`` (set
before amber is imported) leaves the allocator alone."""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20
"""Blocks below this come from the heap (glibc's maximum on 64-bit systems)."""
TRIM_THRESHOLD = 128 << 20
"""Free memory at the heap's top kept for reuse rather than returned to the system."""

_applied: bool | None = None


def tune() -> bool:
    """Apply the settings once per process; whether they are in effect (False off glibc,
    or with ``AMBER_MALLOC_TUNING=0``)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("AMBER_MALLOC_TUNING") == "0" or not sys.platform.startswith("linux"):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
