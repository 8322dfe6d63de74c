"""Eager mode's allocator settings (``amber._malloc``): applied on glibc when the eager
kernels load, left alone with ``AMBER_MALLOC_TUNING=0``."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

import amber  # noqa: F401  (loads the eager kernels, which apply the settings)
from amber import _malloc

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_applied_on_glibc() -> None:
    if os.environ.get("AMBER_MALLOC_TUNING") == "0":
        pytest.skip("disabled in this environment")
    assert _malloc.tune() is True


def test_opt_out_leaves_the_allocator_alone() -> None:
    code = "import amber, amber._malloc as m; print(m.tune())"
    env = {**os.environ, "AMBER_MALLOC_TUNING": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
