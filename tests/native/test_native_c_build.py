"""C programs compile and run against the libamber that ``pip install`` put into the
package, with the flags ``amber config`` (or pkg-config) prints; examples/c/classify.c
classifies digits with an exported model and agrees with Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber.cli import config_flags

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "tests" / "golden" / "v1" / "mlp.amber"
AMBER = [sys.executable, "-m", "amber"]

PROGRAM = r"""
#include <amber.h>
#include <stdio.h>

int main(int argc, char **argv) {
    amber_model *model = NULL;
    amber_session *session = NULL;
    size_t n = 0, failed = 0, entries = 0;
    amber_status st = amber_model_open_file(argv[argc - 1], NULL, &model);
    if (st != AMBER_OK) {
        printf("open: %s %s\n", amber_status_name(st), model ? amber_model_error(model) : "");
        amber_model_close(model);
        return 1;
    }
    if ((st = amber_model_entry_count(model, &entries)) == AMBER_OK &&
        (st = amber_session_create(model, &session)) == AMBER_OK)
        st = amber_session_verify(session, &n, &failed);
    printf("amber %s: %s, %zu entry points, %zu/%zu vectors passed\n", amber_version(),
           amber_status_name(st), entries, n - failed, n);
    amber_session_free(session);
    amber_model_close(model);
    return st == AMBER_OK ? 0 : 1;
}
"""


@pytest.fixture(scope="module")
def cc() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    return cc


def _compile_and_run(cc: str, flags_c: list[str], flags_l: list[str], tmp: Path,
                     env: dict[str, str] | None = None) -> str:
    src = tmp / "check.c"
    src.write_text(PROGRAM)
    exe = tmp / "check"
    build = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *flags_c,
                            str(src), *flags_l, "-o", str(exe)], capture_output=True,
                           text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), str(MLP)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_package_holds_the_runtime(lib: N.NativeLibrary) -> None:
    d = N.native_dir()
    assert d is not None
    assert (d / "include" / "amber.h").is_file()
    assert (d / "lib" / "pkgconfig" / "amber.pc").is_file()
    assert (d / "lib" / "libamber.a").is_file()
    assert (d / "bin" / "amber-run").is_file()
    assert lib.path.resolve().parent == (d / "lib").resolve()
    assert lib.version == am.native.library().version
    assert lib.ops  # the op table through amber_op_count / amber_op_name


def test_amber_config_builds_a_c_program(lib: N.NativeLibrary, cc: str, tmp_path: Path
                                        ) -> None:
    res = subprocess.run([*AMBER, "config", "--cflags", "--libs"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    flags = res.stdout.split()
    assert flags == config_flags(True, True)
    cflags = subprocess.run([*AMBER, "config", "--cflags"], capture_output=True,
                            text=True).stdout.split()
    libs = subprocess.run([*AMBER, "config", "--libs"], capture_output=True,
                          text=True).stdout.split()
    # no LD_LIBRARY_PATH: the rpath from --libs finds libamber.so
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = _compile_and_run(cc, cflags, libs, tmp_path, env)
    assert f"amber {lib.version}: AMBER_OK, 2 entry points, 4/4 vectors passed" in out


def test_amber_config_static(lib: N.NativeLibrary, cc: str, tmp_path: Path) -> None:
    libs = config_flags(False, True, static=True)
    out = _compile_and_run(cc, config_flags(True, False), libs, tmp_path)
    assert "AMBER_OK" in out
    nm = shutil.which("ldd")
    if nm:
        deps = subprocess.run([nm, str(tmp_path / "check")], capture_output=True,
                              text=True).stdout
        assert "libamber" not in deps


@pytest.mark.parametrize("route", [["amber"], ["--static", "amber"], ["amber-static"]],
                         ids=["shared", "pkg-config-static", "amber-static"])
def test_pkg_config_file(lib: N.NativeLibrary, cc: str, tmp_path: Path, route: list[str]
                         ) -> None:
    """Every pkg-config route builds a program that runs as built (no LD_LIBRARY_PATH)."""
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if pkg_config is None:
        pytest.skip("pkg-config is not installed")
    pcdir = subprocess.run([*AMBER, "config", "--pkgconfig-path"], capture_output=True,
                           text=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["PKG_CONFIG_PATH"] = pcdir
    res = subprocess.run([pkg_config, "--cflags", "--libs", *route], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0, res.stderr
    flags = res.stdout.split()
    out = _compile_and_run(cc, [f for f in flags if f.startswith("-I")],
                           [f for f in flags if not f.startswith("-I")], tmp_path, env)
    assert "AMBER_OK" in out
    if route == ["amber-static"] and shutil.which("ldd"):
        deps = subprocess.run(["ldd", str(tmp_path / "check")], capture_output=True,
                              text=True).stdout
        assert "libamber" not in deps


def test_amber_run_is_a_command(lib: N.NativeLibrary, tmp_path: Path) -> None:
    """`pip install` puts amber-run on PATH (next to `amber`), as the bundled C tool."""
    exe = Path(sys.executable).parent / "amber-run"
    assert exe.is_file(), "amber-run is not installed next to the interpreter"
    ok = subprocess.run([str(exe), "--verify", str(MLP)], capture_output=True, text=True)
    assert ok.returncode == 0 and "4 test vectors passed" in ok.stdout, ok.stderr
    bad = subprocess.run([str(exe), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 64 and "unknown option --bogus" in bad.stderr
    assert bad.stderr.splitlines()[1].startswith("usage: amber-run ")


def test_amber_config_prefix_and_pkgconfig_path(lib: N.NativeLibrary) -> None:
    d = N.native_dir()
    prefix = subprocess.run([*AMBER, "config", "--prefix"], capture_output=True, text=True)
    assert prefix.returncode == 0 and Path(prefix.stdout.strip()) == d
    pc = subprocess.run([*AMBER, "config", "--pkgconfig-path"], capture_output=True,
                        text=True).stdout.strip()
    assert {p.name for p in Path(pc).glob("*.pc")} == {"amber.pc", "amber-static.pc"}


def test_amber_config_needs_a_flag() -> None:
    res = subprocess.run([*AMBER, "config"], capture_output=True, text=True)
    assert res.returncode == 2 and "--cflags" in res.stderr


def test_classify_example(lib: N.NativeLibrary, cc: str, tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import train_digits
    finally:
        sys.path.remove(str(ROOT / "examples"))
    model_path = tmp_path / "digits.amber"
    train_digits.export_model(train_digits.build_model(seed=1), str(model_path))
    prefix = tmp_path / "test"
    subprocess.run([sys.executable, str(ROOT / "examples" / "c" / "write_test_set.py"),
                    str(prefix), "--limit", "40"], check=True, capture_output=True)
    images = np.load(f"{prefix}_images.npy")
    labels = np.load(f"{prefix}_labels.npy")
    amber_cmd = " ".join([sys.executable, "-m", "amber"])
    for static in ("", "1"):
        build = subprocess.run(["make", "-s", "-B", "-C", str(ROOT / "examples" / "c"),
                                f"BUILD={tmp_path}", f"AMBER={amber_cmd}", f"CC={cc}",
                                f"STATIC={static}"], capture_output=True, text=True)
        assert build.returncode == 0, build.stdout + build.stderr
        res = subprocess.run([str(tmp_path / "classify"), str(model_path),
                              f"{prefix}_images.npy", f"{prefix}_labels.npy"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        predicted = [int(line.split("predicted ")[1].split(",")[0]) for line in lines[:-1]]
        with am.no_grad():
            want = am.load(model_path, backend="reference")(images).numpy().argmax(axis=1)
        assert predicted == want.tolist()
        correct = int((want == labels).sum())
        assert lines[-1].startswith(f"accuracy: {correct}/40")
        # without labels: one prediction per line
        bare = subprocess.run([str(tmp_path / "classify"), str(model_path),
                               f"{prefix}_images.npy"], capture_output=True, text=True)
        assert [int(v) for v in bare.stdout.split()] == want.tolist()
    bad = subprocess.run([str(tmp_path / "classify"), str(tmp_path / "missing.amber"),
                          f"{prefix}_images.npy"], capture_output=True, text=True)
    assert bad.returncode == 1 and "AMBER_ERR_IO" in bad.stderr
