"""``am.cuda``: amber runs on the CPU, so ``am.cuda.is_available()`` is False and
PyTorch's ``device = "cuda" if torch.cuda.is_available() else "cpu"`` picks the CPU."""

from __future__ import annotations


def is_available() -> bool:
    """False: amber has no CUDA backend."""
    return False


def device_count() -> int:
    """0: no CUDA devices."""
    return 0


def manual_seed(seed: int) -> None:
    """Seeds the generators of the CUDA devices, of which there are none (PyTorch's
    behaviour without CUDA, so seeding helpers that call it keep working)."""


def manual_seed_all(seed: int) -> None:
    """As :func:`manual_seed`, for all (zero) CUDA devices."""


__all__ = ["device_count", "is_available", "manual_seed", "manual_seed_all"]
