"""Inputs the fuzzer once found harmful (runtime/fuzz/regressions/) and the fuzzer's seed
corpus go through the fuzz harness's own code path (open, introspect, run every entry
point, verify; also with the header digest recomputed) in the sanitizer build, with any
C compiler: runtime/fuzz/replay.c drives the harness without libFuzzer. Each must pass
without an AddressSanitizer, UndefinedBehaviorSanitizer or LeakSanitizer report, and
without the library printing anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers.cbuild import ROOT

FUZZ = ROOT / "runtime" / "fuzz"
REGRESSIONS = sorted((FUZZ / "regressions").glob("*.amber"))
OPEN_BUGS = sorted((FUZZ / "crashes").glob("*.amber"))
SEEDS = sorted([*(ROOT / "tests" / "golden").glob("v*/*.amber"),
                *(ROOT / "tests" / "format").glob("*/*.amber")])
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98"}
pytestmark = pytest.mark.sanitize


@pytest.fixture(scope="module")
def replay(sanitize_build: Path) -> Path:
    """The harness linked against the sanitizer build's static library."""
    cc = os.environ.get("AMBER_RUNTIME_CC", "gcc")
    exe = sanitize_build / "amber-fuzz-replay"
    cmd = [cc, "-std=c11", "-g", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-fno-omit-frame-pointer", f"-I{ROOT / 'runtime' / 'include'}",
           f"-I{ROOT / 'runtime' / 'src'}", str(FUZZ / "fuzz_loader.c"), str(FUZZ / "replay.c"),
           str(sanitize_build / "libamber.a"), "-lm", "-lpthread", "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


def _replay(exe: Path, files: list[Path], timeout: float = 600) -> None:
    res = subprocess.run([str(exe), *map(str, files)], capture_output=True, text=True,
                         env={**os.environ, **SAN_ENV}, timeout=timeout)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout[-2000:]}{res.stderr[-6000:]}"
    # The library never prints: the driver's own lines are the only output.
    assert res.stdout.splitlines() == [f"ok {f}" for f in files]
    assert res.stderr == ""


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.name)
def test_regression(replay: Path, path: Path) -> None:
    _replay(replay, [path])


def test_seed_corpus(replay: Path) -> None:
    assert SEEDS
    _replay(replay, SEEDS)


@pytest.mark.xfail(strict=True, reason="open bug (runtime/fuzz/crashes/README.md); once it "
                   "passes, move the file to runtime/fuzz/regressions/")
@pytest.mark.parametrize("path", OPEN_BUGS, ids=lambda p: p.name)
def test_open_bug(replay: Path, path: Path) -> None:
    try:
        _replay(replay, [path], timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name} still runs after 10 s")


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.name)
def test_regression_cli(sanitize_build: Path, path: Path) -> None:
    """amber-run rejects or runs the file with exit status 0 or 1, never a crash."""
    for args in ([str(path), "--verify"], ["--skip-hashes", str(path), "--verify"]):
        res = subprocess.run([str(sanitize_build / "amber-run"), *args], capture_output=True,
                             text=True, env={**os.environ, **SAN_ENV}, timeout=600)
        assert res.returncode in (0, 1), f"exit {res.returncode}\n{res.stderr[-6000:]}"
