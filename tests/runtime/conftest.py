"""Builds the C runtime once per test session (CMake, gcc by default) into build/runtime.

``AMBER_RUNTIME_CC`` selects another C compiler; the ``sanitize_build`` fixture builds
with ``AMBER_SANITIZE=ON`` (AddressSanitizer + UndefinedBehaviorSanitizer) into
build/runtime-sanitize."""

from __future__ import annotations

from pathlib import Path

import pytest
from cbuild import ROOT, build_runtime


@pytest.fixture(scope="session")
def runtime_build() -> Path:
    return build_runtime(ROOT / "build" / "runtime")


@pytest.fixture(scope="session")
def sanitize_build() -> Path:
    return build_runtime(ROOT / "build" / "runtime-sanitize", sanitize=True)
