"""``am.backends.cudnn``: flags PyTorch scripts set (``deterministic``, ``benchmark``,
``enabled``); amber has no cuDNN, so they are stored and change nothing (amber's CPU
results are deterministic already)."""

from __future__ import annotations

enabled: bool = True
deterministic: bool = False
benchmark: bool = False


def is_available() -> bool:
    """False: amber has no cuDNN."""
    return False
