"""Shared fixtures. ``tests/`` is on sys.path, so tests import ``helpers``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("amber", deadline=None, derandomize=True)
settings.load_profile("amber")


@pytest.fixture
def rng() -> np.random.Generator:
    """A NumPy generator with a fixed seed (tests are reproducible)."""
    return np.random.default_rng(1234)


@pytest.fixture
def check_infer() -> Iterator[object]:
    """Check every primitive bound in the test against its infer rule."""
    from helpers import infer_checked

    with infer_checked() as log:
        yield log
