"""Freed tensor memory stays with the process (glibc's malloc).

Eager mode allocates a new array for every op's result and frees it soon after. glibc
returns blocks of 128 KiB and more to the system on free (``mmap`` / heap trimming), so
the next allocation of that size page-faults its memory back in, zero-filled by the
kernel: in a training step of a small transformer (activations of 512 KiB) that was a
third of the step's CPU time. At import amber raises the two thresholds, so blocks under
32 MiB come from the heap and up to 256 MiB of free heap is kept for reuse.

Skipped on other C libraries, when the process sets any ``MALLOC_*_`` variable itself
(its choice stands), and with ``AMBER_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 256 << 20


def tune() -> bool:
    """Set the thresholds (once, at import); True if they were set."""
    if os.environ.get("AMBER_MALLOC_TUNING") == "0" or not _glibc():
        return False
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


TUNED = tune()
