"""The intra-op thread count: ``amber.set_num_threads`` / ``amber.get_num_threads``.

One setting for the process, as in PyTorch. It governs the eager kernels (libamber's,
see ``amber.ops.ckernels``: each Python thread's kernel context is re-created with the
new count at its next op) and the sessions of native models opened afterwards without an
explicit ``threads=``. The default is the number of cores this process may run on.
"""

from __future__ import annotations

import os

from .errors import ArgumentError


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


_num_threads = _cores()
_generation = 0


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (>= 1) for the work inside one op (large matmuls and
    convolutions), in eager mode and in native sessions opened from now on."""
    global _num_threads, _generation
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ArgumentError(f"set_num_threads: expected a positive integer, got {n!r}")
    if n != _num_threads:
        _num_threads = n
        _generation += 1


def get_num_threads() -> int:
    """The intra-op thread count (``set_num_threads``; by default the cores)."""
    return _num_threads


def generation() -> int:
    """Bumped by every change of the setting (kernel contexts compare it)."""
    return _generation


__all__ = ["get_num_threads", "set_num_threads"]
