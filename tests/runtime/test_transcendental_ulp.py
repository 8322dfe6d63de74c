"""The float32 exp, sigmoid, tanh and erf of runtime/src/k_transcendental.inc against libm's
double functions on a sample of every 65537th float bit pattern (ulp_transcendental.c;
with no argument it checks all 2^32 inputs, about ten minutes): within opset.md's 4 ULP,
special values exact, the same bits from every instruction set and from gcc and clang."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.cbuild import ROOT

SOURCE = ROOT / "tests" / "runtime" / "ulp_transcendental.c"


def _run(cc: str, tmp_path: Path) -> str:
    exe = tmp_path / f"ulp_{cc}"
    build = subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror",
                            f"-I{ROOT / 'runtime' / 'src'}", str(SOURCE), "-lm", "-o", str(exe)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    res = subprocess.run([str(exe), "65537"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_transcendentals_within_4_ulp_and_equal_across_compilers(tmp_path: Path) -> None:
    compilers = [cc for cc in ("gcc", "clang") if shutil.which(cc)]
    if not compilers:
        pytest.skip("no C compiler (gcc or clang) is installed")
    outputs = [_run(cc, tmp_path) for cc in compilers]
    assert all(out == outputs[0] for out in outputs), outputs
    for name in ("exp", "sigmoid", "tanh", "erf"):
        assert f"\n{name} " in "\n" + outputs[0]
