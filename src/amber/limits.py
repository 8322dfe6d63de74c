"""The default limits of a run, shared by the reference interpreter and libamber
(``amber_options_init`` sets the same values; docs/c-api.md, "Options"). They are chosen
so that an untrusted file cannot take down an ordinary host: a session holds at most
two arenas of ``MEMORY_LIMIT`` bytes."""

from __future__ import annotations

MEMORY_LIMIT = 1 << 31
"""Bytes the values of one run may hold (libamber: each of a session's two arenas)."""
MAX_CALL_DEPTH = 256
"""Nesting of function executions (``call`` and the functions of ``cond``, ``while``,
``scan``)."""
MAX_LOOP_ITERATIONS = 1_000_000
"""Iterations of one ``while`` loop; the length of one ``scan``."""
MAX_RUN_ITERATIONS = 100_000_000
"""Loop iterations of one run, all loops together (nested loops multiply)."""
MAX_RUN_CALLS = 1_000_000
"""Executions of ``call`` and ``cond`` nodes in one run, at every depth."""


def bound_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """The bytes a tensor of ``shape`` would take if each zero size were 1: what the
    sizes it binds to symbols could make a program allocate per element of the type."""
    n = itemsize
    for d in shape:
        n *= max(int(d), 1)
    return n
