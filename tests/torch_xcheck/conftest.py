"""Cross-checks against PyTorch (``torch==2.13.0``, the ``torch`` extra).

Every test here is marked ``torch``; without PyTorch installed the whole directory
is skipped. Deselect with ``-m 'not torch'``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _torch_single_thread() -> Iterator[None]:
    """One intra-op thread and default dtype float32: deterministic reference values."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
