"""``amber.utils``: data loading (``amber.utils.data``), as ``torch.utils``."""

from . import data

__all__ = ["data"]
