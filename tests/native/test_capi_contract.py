"""The behaviours docs/c-api.md ("Calls and lifetimes") defines, one test each, through the
public C API only: argument errors, unaligned inputs, the lifetime of outputs and error
strings, and what a failed run leaves in the output descriptors."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from helpers.capi import Model, Session, Tensor, from_numpy, load, status_name, to_numpy

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "tests" / "golden" / "v1" / "mlp.amber"  # forward(input: float32[batch, 16])


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


@pytest.fixture
def session(lib: ctypes.CDLL):
    m = Model(lib, path=MLP)
    assert m.status == 0, m.error
    s = Session(m)
    yield s
    s.close()
    m.close()


def _run(lib: ctypes.CDLL, s: Session, *arrays: np.ndarray, n_out: int = 1
         ) -> tuple[str, ctypes.Array]:
    ins = (Tensor * max(1, len(arrays)))(*[from_numpy(a) for a in arrays])
    outs = (Tensor * n_out)()
    for o in outs:  # garbage the run must overwrite
        o.dtype, o.rank, o.data = 3, 7, 0x1234
    st = lib.amber_session_run(s.handle, b"forward", ins, len(arrays), outs, n_out)
    return status_name(lib, st), outs


def test_open_memory_null_is_an_invalid_argument(lib: ctypes.CDLL) -> None:
    handle = ctypes.c_void_p()
    st = lib.amber_model_open_memory(None, 0, None, ctypes.byref(handle))
    assert status_name(lib, st) == "AMBER_ERR_INVALID_ARGUMENT"
    assert b"NULL" in lib.amber_model_error(handle)
    lib.amber_model_close(handle)


def test_session_free_null_is_allowed(lib: ctypes.CDLL) -> None:
    lib.amber_session_free(None)
    lib.amber_model_close(None)


def test_invalid_dtype_code_is_a_dtype_error(lib: ctypes.CDLL, session: Session) -> None:
    x = np.ones((2, 16), np.float32)
    t = from_numpy(x)
    t.dtype = 17
    outs = (Tensor * 1)()
    st = lib.amber_session_run(session.handle, b"forward", (Tensor * 1)(t), 1, outs, 1)
    assert status_name(lib, st) == "AMBER_ERR_DTYPE"
    assert 'input "input"' in session.error and "invalid dtype code 17" in session.error
    t.dtype, t.rank = 0, 33
    st = lib.amber_session_run(session.handle, b"forward", (Tensor * 1)(t), 1, outs, 1)
    assert status_name(lib, st) == "AMBER_ERR_SHAPE"


def test_inputs_are_named_one_way(lib: ctypes.CDLL, session: Session) -> None:
    for bad in (np.ones((2, 16), np.float64), np.ones((2, 5), np.float32),
                np.ones((2, 16, 1), np.float32), np.ones((0, 16), np.float32)):
        st, _ = _run(lib, session, bad)
        assert st in ("AMBER_ERR_DTYPE", "AMBER_ERR_SHAPE")
        assert 'input "input"' in session.error, session.error
        assert "argument" not in session.error


def test_unaligned_input_is_refused(lib: ctypes.CDLL, session: Session) -> None:
    raw = np.zeros(2 * 16 * 4 + 1, np.uint8)
    x = raw[1:].view(np.float32).reshape(2, 16)  # data at an odd address
    assert x.ctypes.data % 4
    st, outs = _run(lib, session, x)
    assert st == "AMBER_ERR_INVALID_ARGUMENT"
    assert "not aligned" in session.error and 'input "input"' in session.error
    st, outs = _run(lib, session, x.copy())  # a copy is aligned
    assert st == "AMBER_OK"


def test_failed_run_zeroes_the_outputs(lib: ctypes.CDLL, session: Session) -> None:
    st, outs = _run(lib, session, np.ones((2, 5), np.float32))
    assert st == "AMBER_ERR_SHAPE"
    assert (outs[0].dtype, outs[0].rank, outs[0].data) == (0, 0, None)
    st, outs = _run(lib, session)  # wrong count: still zeroed
    assert st == "AMBER_ERR_INVALID_ARGUMENT"
    assert (outs[0].dtype, outs[0].rank, outs[0].data) == (0, 0, None)


def test_error_string_lives_until_the_next_call(lib: ctypes.CDLL, session: Session) -> None:
    _run(lib, session, np.ones((2, 5), np.float32))
    first = lib.amber_session_error(session.handle)
    assert first and lib.amber_session_error(session.handle) == first
    st, _ = _run(lib, session, np.ones((2, 16), np.float32))
    assert st == "AMBER_OK" and lib.amber_session_error(session.handle) == b""
    assert lib.amber_session_error(None) == b"session is NULL"


def test_verify_counts_as_a_run_for_output_lifetimes(lib: ctypes.CDLL, session: Session
                                                     ) -> None:
    x = np.ones((3, 16), np.float32)
    st, outs = _run(lib, session, x)
    assert st == "AMBER_OK"
    before = to_numpy(lib, outs[0])
    stats = session.stats()
    st, n, failed = session.verify()
    assert st == 0 and n > 0
    # verify ran the vectors on this session: it counts as runs, and the memory the
    # earlier outputs pointed at now belongs to the last vector's run
    assert session.stats().runs == stats.runs + n
    st, outs = _run(lib, session, x)
    np.testing.assert_array_equal(to_numpy(lib, outs[0]), before)


def test_entry_found_by_its_own_string_or_by_name(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """A run finds its entry point by the string amber_model_entry_name gave (checked
    against the last entry run, by address) or by name, in any order of entry points."""
    import amber as am

    am.manual_seed(0)
    lin = am.nn.Linear(3, 2)
    prog = am.export(lin, am.spec("n", 3))
    prog.add(lambda x: lin(x) * 2.0, am.spec("n", 3), name="double", weights=lin)
    prog.save(tmp_path / "two.amber")
    m = Model(lib, path=tmp_path / "two.amber")
    assert m.status == 0, m.error
    s = Session(m)
    own = {}
    for i in range(2):
        name = ctypes.c_char_p()
        assert lib.amber_model_entry_name(m.handle, i, ctypes.byref(name)) == 0
        own[name.value] = name
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    want = {b"forward": lin(am.tensor(x)).detach().numpy()}
    want[b"double"] = want[b"forward"] * 2.0
    for entry, by in [(b"forward", "own"), (b"double", "own"), (b"double", "name"),
                      (b"forward", "name"), (b"forward", "own"), (b"double", "own")]:
        ins, outs = (Tensor * 1)(from_numpy(x)), (Tensor * 1)()
        key = own[entry] if by == "own" else ctypes.c_char_p(bytes(entry))
        assert lib.amber_session_run(s.handle, key, ins, 1, outs, 1) == 0, s.error
        np.testing.assert_allclose(to_numpy(lib, outs[0]), want[entry], rtol=1e-6)
    ins, outs = (Tensor * 1)(from_numpy(x)), (Tensor * 1)()
    st = lib.amber_session_run(s.handle, b"forwarb", ins, 1, outs, 1)
    assert status_name(lib, st) == "AMBER_ERR_NOT_FOUND"
    s.close()
    m.close()


@pytest.fixture
def four_outputs(lib: ctypes.CDLL, tmp_path: Path):
    """forward(x: float32[n, 3]) -> (relu(x) * 2, x, the first again, its reshape)."""
    import amber as am

    def f(x: am.Tensor) -> tuple[am.Tensor, ...]:
        y = am.relu(x) * 2.0
        return y, x, y, y.reshape(-1)

    am.export(f, am.spec("n", 3)).save(tmp_path / "four.amber")
    m = Model(lib, path=tmp_path / "four.amber")
    assert m.status == 0, m.error
    s = Session(m)
    yield s
    s.close()
    m.close()


def _run_into(lib: ctypes.CDLL, s: Session, x: np.ndarray, bufs: list[np.ndarray | None]
              ) -> tuple[str, ctypes.Array]:
    ins = (Tensor * 1)(from_numpy(x))
    outs = (Tensor * len(bufs))()
    for o, b in zip(outs, bufs):
        if b is not None:
            ctypes.memmove(ctypes.byref(o), ctypes.byref(from_numpy(b)), ctypes.sizeof(o))
    st = lib.amber_session_run_into(s.handle, b"forward", ins, 1, outs, len(bufs))
    return status_name(lib, st), outs


def test_run_into_writes_every_result_into_the_callers_memory(
        lib: ctypes.CDLL, four_outputs: Session) -> None:
    """Computed, returned-input, repeated and reshaped results all land in the caller's
    arrays, with the values amber_session_run gives."""
    x = np.array([[-1, 2, 3], [4, -5, 6]], np.float32)
    want = [np.maximum(x, 0) * 2, x, np.maximum(x, 0) * 2, (np.maximum(x, 0) * 2).ravel()]
    for _ in range(2):  # the second run reuses the session's plans
        bufs = [np.full(w.shape, np.nan, np.float32) for w in want]
        st, outs = _run_into(lib, four_outputs, x, bufs)
        assert st == "AMBER_OK", four_outputs.error
        for o, b, w in zip(outs, bufs, want):
            assert o.data == b.ctypes.data
            np.testing.assert_array_equal(b, w)


def test_run_into_leaves_other_results_in_the_sessions_memory(
        lib: ctypes.CDLL, four_outputs: Session) -> None:
    """A NULL data pointer, or memory of another shape or dtype, gets the session's
    memory as amber_session_run gives it; the caller's array is not written."""
    x = np.ones((2, 3), np.float32)
    wrong_shape, wrong_dtype = np.full((3, 2), 7, np.float32), np.full((2, 3), 7, np.float64)
    st, outs = _run_into(lib, four_outputs, x, [wrong_shape, wrong_dtype, None, None])
    assert st == "AMBER_OK", four_outputs.error
    for o, b in zip(outs[:2], (wrong_shape, wrong_dtype)):
        assert o.data not in (None, b.ctypes.data)
        assert (b == 7).all()
    for k, w in enumerate([x * 2, x, x * 2, (x * 2).ravel()]):
        np.testing.assert_array_equal(to_numpy(lib, outs[k]), w)


def test_run_into_refuses_bad_output_descriptors(lib: ctypes.CDLL, four_outputs: Session
                                                 ) -> None:
    x = np.ones((2, 3), np.float32)
    raw = np.zeros(2 * 3 * 4 + 1, np.uint8)
    odd = raw[1:].view(np.float32).reshape(2, 3)
    st, outs = _run_into(lib, four_outputs, x, [odd, None, None, None])
    assert st == "AMBER_ERR_INVALID_ARGUMENT"
    assert 'output "' in four_outputs.error and "not aligned" in four_outputs.error
    assert all((o.dtype, o.rank, o.data) == (0, 0, None) for o in outs)
    good = np.zeros((2, 3), np.float32)
    st, outs = _run_into(lib, four_outputs, x, [good, None, None, None])
    outs[0].rank = 40
    st = lib.amber_session_run_into(four_outputs.handle, b"forward",
                                    (Tensor * 1)(from_numpy(x)), 1, outs, 4)
    assert status_name(lib, st) == "AMBER_ERR_SHAPE", four_outputs.error
    assert 'output "' in four_outputs.error
