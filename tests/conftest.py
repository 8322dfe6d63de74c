"""Shared fixtures. ``tests/`` is on sys.path, so tests import ``helpers``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def runtime_build() -> Path:
    """The C runtime built from runtime/ with CMake (gcc by default; ``AMBER_RUNTIME_CC``
    selects another compiler) into build/runtime, once per test session."""
    from helpers.cbuild import ROOT, build_runtime

    return build_runtime(ROOT / "build" / "runtime")


@pytest.fixture(scope="session")
def sanitize_build() -> Path:
    """The same with ``AMBER_SANITIZE=ON`` (AddressSanitizer + UndefinedBehaviorSanitizer)
    into build/runtime-sanitize."""
    from helpers.cbuild import ROOT, build_runtime

    return build_runtime(ROOT / "build" / "runtime-sanitize", sanitize=True)
