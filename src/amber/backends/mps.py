"""``am.backends.mps``: Apple's Metal backend, which amber does not have."""

from __future__ import annotations


def is_available() -> bool:
    """False: amber has no MPS backend."""
    return False


def is_built() -> bool:
    """False: amber is not built with MPS."""
    return False
