"""Helpers shared by the control-flow examples: opening an exported file in amber's
native runtime (building ``libamber`` with CMake when it is not installed), and
comparing results of the three runners (eager, reference interpreter, native).

The native runtime is looked for as :mod:`amber.native` does (``$AMBER_LIBRARY``, else the
copy installed into the package). When neither exists, :func:`ensure_native_library`
builds ``runtime/`` with CMake into ``build/runtime-examples`` of the repository (or into
``$AMBER_EXAMPLES_BUILD``) and points ``AMBER_LIBRARY`` at the result."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import amber as am
import amber.native as native
from amber.capture.ir import TOLERANCE, TestVector

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"


class ExampleError(am.AmberError):
    """An example could not run (the native runtime cannot be built, say)."""


class MismatchError(ExampleError):
    """Two runners of the same program disagree (the message names the value and the
    largest error)."""


def ensure_native_library() -> Path:
    """Make :mod:`amber.native` usable in this process; returns the library's path.

    Raises:
        ExampleError: the library is not installed and cannot be built (no CMake or C
            compiler, or the build failed: its output is in the message).
    """
    path = native.library_path()
    if path is None:
        build = Path(os.environ.get("AMBER_EXAMPLES_BUILD", ROOT / "build" / "runtime-examples"))
        lib = build / "libamber.so"
        if not lib.exists():
            if shutil.which("cmake") is None:
                raise ExampleError("the native runtime is not installed and cmake is missing; "
                                   "install amber with `pip install .` or set AMBER_LIBRARY")
            cc = os.environ.get("AMBER_RUNTIME_CC", "gcc" if shutil.which("gcc") else "cc")
            for cmd in (["cmake", "-S", str(RUNTIME), "-B", str(build),
                         f"-DCMAKE_C_COMPILER={cc}", "-DCMAKE_BUILD_TYPE=Release"],
                        ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2),
                         "--target", "amber"]):
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    raise ExampleError(f"building the native runtime failed: {' '.join(cmd)}"
                                       f"\n{res.stdout}\n{res.stderr}")
        os.environ["AMBER_LIBRARY"] = str(lib)
        path = lib
    native.library()  # raises NativeUnavailableError with the reason
    return path


def open_native(path: str | os.PathLike[str], threads: int = 1) -> native.NativeModel:
    """``path`` opened by the native runtime (C, through its public API), after running
    the file's own test vectors there.

    Raises:
        MismatchError: a stored test vector fails natively.
    """
    ensure_native_library()
    model = native.NativeModel(path, threads=threads)
    n, failed = model.verify()
    if failed or not n:
        raise MismatchError(f"{path}: {failed} of {n} stored test vectors fail natively")
    return model


def reference_run(model: am.Model, entry: str, *args: Any) -> list[np.ndarray]:
    """Outputs of ``entry`` run by the reference (NumPy) interpreter, flat, in signature
    order."""
    return [np.asarray(a) for a in model.program.run(entry, *args)]


def flat(tree: Any) -> list[np.ndarray]:
    """The leaves of a nested structure of tensors/arrays as NumPy arrays, in the order
    ``am.export`` gives an entry's outputs (dict keys sorted)."""
    leaves, _ = am.tree_flatten(tree)
    return [leaf.detach().numpy() if isinstance(leaf, am.Tensor) else np.asarray(leaf)
            for leaf in leaves]


def assert_close(what: str, got: Sequence[np.ndarray], want: Sequence[np.ndarray],
                 rtol: float, atol: float) -> float:
    """Check ``got`` against ``want`` leaf by leaf; returns the largest absolute error.

    Raises:
        MismatchError: a count, dtype or shape differs, or a value is out of tolerance.
    """
    if len(got) != len(want):
        raise MismatchError(f"{what}: {len(got)} outputs, expected {len(want)}")
    worst = 0.0
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape or g.dtype != w.dtype:
            raise MismatchError(f"{what}: output {k} is {g.dtype}{list(g.shape)}, expected "
                                f"{w.dtype}{list(w.shape)}")
        if g.size:
            err = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64))))
            worst = max(worst, err)
            if not np.allclose(g, w, rtol=rtol, atol=atol):
                raise MismatchError(f"{what}: output {k} differs by up to {err:.3g} "
                                    f"(rtol={rtol}, atol={atol})")
    return worst


def add_test_vector(program: am.Program, entry: str, inputs: Sequence[Any],
                    outputs: Sequence[np.ndarray]) -> None:
    """Store one more test vector in ``program``: ``inputs`` of ``entry`` (flat, in
    signature order) and the ``outputs`` eager execution gave, with the documented
    tolerance of each output's dtype. ``am.export`` proves an entry on random inputs;
    this adds a meaningful case (a real tree, a converging solve) that every runtime
    re-runs with ``amber verify``.

    Raises:
        ExampleError: the counts, dtypes or shapes do not match the signature.
    """
    ep = program.entry(entry)
    if len(inputs) != len(ep.inputs) or len(outputs) != len(ep.outputs):
        raise ExampleError(f"{entry}: the signature has {len(ep.inputs)} inputs and "
                           f"{len(ep.outputs)} outputs, got {len(inputs)} and {len(outputs)}")
    dims: dict[str, int] = {}
    ins: dict[str, np.ndarray] = {}
    for port, value in zip(ep.inputs, inputs):
        a = np.array(value, order="C")
        if a.dtype != port.dtype.np or a.ndim != len(port.shape):
            raise ExampleError(f"{entry}: input {port.name} is {port}, got {a.dtype}{a.shape}")
        for d, n in zip(port.shape, a.shape):
            if not isinstance(d, int) and d.is_symbol():
                dims[d.name] = int(n)
        ins[port.name] = a
    outs = {port.name: np.array(v, order="C") for port, v in zip(ep.outputs, outputs)}
    tol = {port.name: TOLERANCE[port.dtype.name] for port in ep.outputs}
    program.test_vectors.append(TestVector(entry, ins, outs, tol, dims))
