"""Builds and programs around the C runtime: the documented example compiles (strict
warnings) against the public header and links against the static library with only
libm and pthreads; the shared library exports only the amber_ API; clang builds it with
-Werror too; one model shared by 8 threads gives bit-identical results; the stripped
shared library stays under 500 KB."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.cbuild import build_runtime

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = sorted((ROOT / "tests" / "golden").glob("v*/*.amber"))


def doc_example() -> str:
    text = (ROOT / "docs" / "c-api.md").read_text()
    section = text[text.index("## Example"):]
    return re.search(r"```c[^\n]*\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_documented_example_compiles_and_runs(runtime_build: Path, tmp_path: Path,
                                              cc: str) -> None:
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    src = tmp_path / "example.c"
    src.write_text(doc_example())
    exe = tmp_path / "example"
    cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
           f"-I{ROOT / 'runtime' / 'include'}", str(src), str(runtime_build / "libamber.a"),
           "-lm", "-lpthread", "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    mlp = ROOT / "tests" / "golden" / "v1" / "mlp.amber"
    res = subprocess.run([str(exe), str(mlp)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "entry point: forward" in res.stdout
    assert re.search(r"\w+: float32\[2, \d+\]", res.stdout), res.stdout
    res = subprocess.run([str(exe), str(tmp_path / "missing.amber")], capture_output=True,
                         text=True)
    assert res.returncode == 1 and "AMBER_ERR_IO" in res.stderr


LIBRARY_LIMIT = 500_000  # bytes of the stripped Release libamber.so


def test_stripped_library_stays_small(runtime_build: Path, tmp_path: Path) -> None:
    """The dependency-free runtime is meant to be embedded: its Release build, stripped of
    everything a loader does not need, stays under 500 KB (the kernels' optimisation
    flags and vector specialisations are what grows it; see runtime/CMakeLists.txt)."""
    if shutil.which("strip") is None:
        pytest.skip("strip is not installed")
    out = tmp_path / "libamber.stripped.so"
    subprocess.run(["strip", "--strip-unneeded", "-o", str(out),
                    str(runtime_build / "libamber.so")], check=True)
    size = out.stat().st_size
    assert size < LIBRARY_LIMIT, (
        f"stripped libamber.so is {size:,} bytes, over the {LIBRARY_LIMIT:,} byte budget: "
        "find what grew with `nm --size-sort -S` and `size` on the objects")


def test_shared_library_exports_only_the_api(runtime_build: Path) -> None:
    if shutil.which("nm") is None:
        pytest.skip("nm is not installed")
    res = subprocess.run(["nm", "-D", "--defined-only", str(runtime_build / "libamber.so")],
                         capture_output=True, text=True, check=True)
    names = [line.split()[-1] for line in res.stdout.splitlines() if line.strip()]
    exported = [n for n in names if not n.startswith("_")]
    assert exported and all(n.startswith("amber_") for n in exported), exported
    header = (ROOT / "runtime" / "include" / "amber.h").read_text()
    for n in exported:
        assert re.search(rf"\b{n}\(", header), f"{n} is exported but not declared in amber.h"


def test_clang_build_with_werror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (apt-get install clang)")
    monkeypatch.setenv("AMBER_RUNTIME_CC", "clang")
    build = build_runtime(ROOT / "build" / "runtime-clang")
    res = subprocess.run(["ctest", "--output-on-failure"], cwd=build, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_portable_build_passes_the_core_tests() -> None:
    """Without the x86 kernels (as on every other CPU) the library builds with -Werror
    and the portable kernels pass the core checks (ULP bounds, special values, GEMM)."""
    build = build_runtime(ROOT / "build" / "runtime-portable", portable=True)
    res = subprocess.run(["ctest", "--output-on-failure"], cwd=build, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_threads_share_one_model(runtime_build: Path, path: Path) -> None:
    res = subprocess.run([str(runtime_build / "amber-thread-test"), str(path), "8", "1000"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 mismatches" in res.stdout


def test_models_side_by_side_in_one_c_program(runtime_build: Path) -> None:
    """Every golden model open at once in one process, threads alternating between them,
    each thread with its own session: results equal each model's single-threaded run."""
    first, *rest = (str(p) for p in GOLDEN)
    res = subprocess.run([str(runtime_build / "amber-thread-test"), first, "8", "200", *rest],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(GOLDEN)} models, 8 threads x 200 runs: 0 mismatches" in res.stdout


def test_amber_run_cli(runtime_build: Path, tmp_path: Path) -> None:
    import numpy as np

    exe = str(runtime_build / "amber-run")
    mlp = str(ROOT / "tests" / "golden" / "v1" / "mlp.amber")
    res = subprocess.run([exe, mlp], capture_output=True, text=True)
    assert res.returncode == 0 and "entry forward(" in res.stdout
    res = subprocess.run([exe, mlp, "--verify"], capture_output=True, text=True)
    assert res.returncode == 0 and "passed" in res.stdout
    name = re.search(r"entry forward\((\w+):", subprocess.run(
        [exe, mlp], capture_output=True, text=True).stdout).group(1)
    x = tmp_path / "x.npy"
    res = subprocess.run([exe, mlp, "--tensor", f"test_vectors/0/inputs/{name}", str(x)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([exe, mlp, "--entry", "forward", "--input", f"{name}={x}",
                          "--output", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    outs = list(tmp_path.glob("*.npy"))
    assert len(outs) == 2 and all(np.load(o).size for o in outs)
    res = subprocess.run([exe, mlp, "--entry", "forward", "--output", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "takes 1 inputs, 0 given" in res.stderr
    assert subprocess.run([exe], capture_output=True).returncode == 64


@pytest.mark.parametrize("route", [["amber"], ["--static", "amber"], ["amber-static"]],
                         ids=["shared", "pkg-config-static", "amber-static"])
def test_install_and_pkg_config(runtime_build: Path, tmp_path: Path, route: list[str]) -> None:
    """An installed runtime compiles a C program from `pkg-config --cflags --libs amber`
    (also with --static, and from the amber-static package), which then runs with no
    LD_LIBRARY_PATH: the shared routes carry an rpath, amber-static links libamber.a."""
    if shutil.which("pkg-config") is None or shutil.which("gcc") is None:
        pytest.skip("pkg-config or gcc is not installed")
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(runtime_build), "--prefix", str(prefix)],
                   check=True, capture_output=True)
    env = {**os.environ, "PKG_CONFIG_PATH": str(prefix / "lib" / "pkgconfig")}
    env.pop("LD_LIBRARY_PATH", None)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *route], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    src = tmp_path / "example.c"
    src.write_text(doc_example())
    exe = tmp_path / "example"
    res = subprocess.run(["gcc", "-std=c11", str(src), "-o", str(exe), *flags], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(exe), str(ROOT / "tests" / "golden" / "v1" / "mlp.amber")], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0 and "entry point: forward" in res.stdout, res.stderr
    assert (prefix / "bin" / "amber-run").exists() and (prefix / "include" / "amber.h").exists()
    if route == ["amber-static"] and shutil.which("ldd"):
        deps = subprocess.run(["ldd", str(exe)], capture_output=True, text=True).stdout
        assert "libamber" not in deps


def test_c_classifier_example(runtime_build: Path, tmp_path: Path) -> None:
    """examples/c/classify.c predicts the same classes as the reference interpreter."""
    import numpy as np

    import amber as am
    import amber.nn as nn

    exe = tmp_path / "classify"
    res = subprocess.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
                          f"-I{ROOT / 'runtime' / 'include'}",
                          str(ROOT / "examples" / "c" / "classify.c"),
                          str(runtime_build / "libamber.a"), "-lm", "-lpthread", "-o", str(exe)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    model_path = tmp_path / "digits.amber"
    am.export(net, am.spec("batch", 1, 8, 8)).save(str(model_path))
    images = np.random.default_rng(0).random((7, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    res = subprocess.run([str(exe), str(model_path), str(tmp_path / "images.npy")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    got = [int(line) for line in res.stdout.split()]
    scores = am.load(str(model_path), backend="reference")(images)
    scores = np.asarray(scores.numpy() if hasattr(scores, "numpy") else scores)
    assert got == list(scores.argmax(axis=1))
