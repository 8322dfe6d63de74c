"""The binding on every golden file: the C runtime through ``amber.native`` equals the
reference interpreter on the stored test vectors and on random inputs at other sizes,
and the file's vectors verify in C."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber.capture.ir import within_tolerance
from amber.interpreter import Interpreter
from amber.reuse import random_inputs

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FILES = sorted(GOLDEN.glob("v*/*.amber"))
# NOTE: random inputs may put a data-dependent loop on a fixed point it never leaves
# (v3/while_grad does at size 1); both runtimes then stop at this bound with an error.
LOOP_LIMIT = 20_000


def test_golden_files_exist() -> None:
    assert {p.parent.name for p in FILES} >= {"v1"}
    assert len(FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_native_equals_reference(lib: N.NativeLibrary, path: Path) -> None:
    native = am.load(path)
    ref = am.load(path, backend="reference")
    assert native.backend == "native" and native.native is not None
    assert ref.backend == "reference" and ref.native is None
    nm = native.native
    assert nm.entry_points == ref.entry_points
    assert nm.format_version == ref.format_version
    assert nm.opset_version == ref.opset_version
    for name in ref.entry_points:
        sig, want = nm.signature(name), ref.signature(name)
        assert [p.name for p in sig.inputs] == [p.name for p in want.inputs]
        assert [p.name for p in sig.outputs] == [p.name for p in want.outputs]
        assert [p.dtype for p in sig.inputs] == [p.dtype.np for p in want.inputs]
        assert [len(p.shape) for p in sig.outputs] == [len(p.shape) for p in want.outputs]

    # the file's own vectors, in C and through the binding
    n, failed = nm.verify()
    assert n == len(ref.program.test_vectors) and failed == 0
    assert all(r.ok for r in native.verify())

    # stored inputs and random inputs at other sizes: native == reference
    program = ref.program
    cases = [(tv.entry, dict(tv.inputs)) for tv in program.test_vectors]
    rng = np.random.default_rng(3)
    for ename, entry in program.entries.items():
        for size in (1, 4, 7):
            cases.append((ename, random_inputs(entry, {s: size for s in entry.symbols}, rng)))
    interp = Interpreter(program, max_iterations=LOOP_LIMIT)
    nm = N.NativeModel(path, max_loop_iterations=LOOP_LIMIT)
    for ename, inputs in cases:
        entry = program.entry(ename)
        try:
            want_arrays = interp.run(ename, **inputs)
        except am.AmberError as e:  # random inputs outside what the program accepts
            with pytest.raises(am.AmberError) as native_error:
                nm.run(ename, **inputs)
            assert isinstance(native_error.value, N.NativeError)
            assert set(type(e).__mro__) & set(type(native_error.value).__mro__) - {
                am.AmberError, N.NativeError, Exception, BaseException, object}, (e, native_error)
            continue
        got = nm.run(ename, **inputs)
        assert len(got) == len(want_arrays)
        for port, g, w in zip(entry.outputs, got, want_arrays):
            assert g.dtype == w.dtype and g.shape == w.shape, (ename, port.name)
            rtol, atol = (1e-5, 1e-6) if g.dtype.kind == "f" else (0.0, 0.0)
            if g.dtype == np.float64:
                rtol, atol = 1e-9, 1e-12
            assert within_tolerance(g, w, rtol, atol), (ename, port.name)


@pytest.mark.parametrize("path", FILES[:2], ids=lambda p: p.name)
def test_golden_from_bytes(lib: N.NativeLibrary, path: Path) -> None:
    data = path.read_bytes()
    model = am.load(data)
    assert model.backend == "native"
    with N.NativeModel(data) as nm:
        n, failed = nm.verify()
        assert n > 0 and failed == 0
    with N.NativeModel(bytearray(data)) as nm:  # copied into an aligned buffer
        assert nm.verify()[1] == 0
