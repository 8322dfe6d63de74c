"""Configure and build the C runtime with CMake (used by conftest.py and tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"


def build_runtime(build_dir: Path, *, sanitize: bool = False, portable: bool = False) -> Path:
    """Configure and build the runtime; returns the build directory. Skips (with the
    reason) when cmake or a C compiler is missing, fails on a build error. ``portable``
    builds only the portable kernels (``AMBER_PORTABLE``: no x86 dispatch)."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    cc = os.environ.get("AMBER_RUNTIME_CC", "gcc" if shutil.which("gcc") else "cc")
    if shutil.which(cc) is None:
        pytest.skip(f"C compiler {cc!r} is not installed")
    configure = [
        "cmake", "-S", str(RUNTIME), "-B", str(build_dir),
        f"-DCMAKE_C_COMPILER={cc}",
        "-DCMAKE_BUILD_TYPE=" + ("Debug" if sanitize else "Release"),
        "-DAMBER_SANITIZE=" + ("ON" if sanitize else "OFF"),
        "-DAMBER_PORTABLE=" + ("ON" if portable else "OFF"),
    ]
    for cmd in (configure, ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2)]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            pytest.fail(f"runtime build failed: {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return build_dir
