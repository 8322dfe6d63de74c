"""``am.backends``: which accelerator backends exist (none: amber runs on the CPU).
``am.backends.mps.is_available()`` is False; ``am.backends.cudnn``'s flags may be set,
as PyTorch scripts do for determinism, and change nothing."""

from . import cudnn, mps

__all__ = ["cudnn", "mps"]
