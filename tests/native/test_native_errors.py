"""Failures on the C side surface as typed amber exceptions carrying the C message; the
backend choice of ``am.load`` and its errors."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber.cli import main

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
MLP = GOLDEN / "v1" / "mlp.amber"


@pytest.fixture
def mlp(lib: N.NativeLibrary) -> N.NativeModel:
    m = N.NativeModel(MLP)
    yield m
    m.close()


def _input(m: N.NativeModel, batch: int = 2) -> np.ndarray:
    port = m.signature().inputs[0]
    shape = tuple(batch if isinstance(d, str) else d for d in port.shape)
    return np.ones(shape, dtype=port.dtype)


def test_corrupt_file_is_a_format_error_with_the_c_message(lib: N.NativeLibrary,
                                                           tmp_path: Path) -> None:
    data = bytearray(MLP.read_bytes())
    data[-1] ^= 0xFF  # a weight byte: its SHA-256 no longer matches
    bad = tmp_path / "bad.amber"
    bad.write_bytes(bytes(data))
    with pytest.raises(am.FormatError) as info:
        N.NativeModel(bad)
    err = info.value
    assert isinstance(err, N.NativeError) and isinstance(err, am.AmberError)
    assert err.status_name == "AMBER_ERR_INTEGRITY" and err.status == 7
    assert err.c_message and err.c_message in str(err)
    assert "bad.amber" in str(err)


@pytest.mark.parametrize("data, status", [
    (b"", "AMBER_ERR_FORMAT"),
    (b"not an amber file at all, just text" * 4, "AMBER_ERR_FORMAT"),
])
def test_garbage_bytes_are_format_errors(lib: N.NativeLibrary, data: bytes, status: str
                                         ) -> None:
    with pytest.raises(am.FormatError) as info:
        N.NativeModel(data)
    assert info.value.status_name == status
    assert info.value.c_message


def test_newer_format_version_is_refused_naming_both(lib: N.NativeLibrary) -> None:
    data = bytearray(MLP.read_bytes())
    # the preamble: 8-byte magic, then the little-endian uint32 format version
    (version,) = struct.unpack_from("<I", data, 8)
    assert version == 1
    struct.pack_into("<I", data, 8, 99)
    with pytest.raises(am.FormatError) as info:
        N.NativeModel(bytes(data))
    assert info.value.status_name == "AMBER_ERR_VERSION"
    assert "99" in info.value.c_message


def test_missing_file(lib: N.NativeLibrary, tmp_path: Path) -> None:
    with pytest.raises(am.FormatError) as info:
        N.NativeModel(tmp_path / "nope.amber")
    assert info.value.status_name == "AMBER_ERR_IO"
    assert info.value.c_message


def test_run_errors_are_typed(mlp: N.NativeModel) -> None:
    x = _input(mlp)
    with pytest.raises(am.DTypeError) as dt:
        mlp.run("forward", x.astype(np.float64))
    assert dt.value.status_name == "AMBER_ERR_DTYPE" and dt.value.c_message in str(dt.value)
    with pytest.raises(am.ShapeError) as sh:
        mlp.run("forward", x[:, :-1])
    assert sh.value.status_name == "AMBER_ERR_SHAPE" and sh.value.c_message
    with pytest.raises(am.ShapeError):
        mlp.run("forward", x[0])  # rank 1 instead of 2
    with pytest.raises(N.NativeNotFoundError) as nf:
        mlp.run("no_such_entry", x)
    assert "no_such_entry" in str(nf.value) and isinstance(nf.value, am.AmberError)
    with pytest.raises(am.DTypeError):
        mlp.run("forward", x.astype(np.complex64))
    with pytest.raises(am.AmberError, match="missing input"):
        mlp.run("forward")
    # the session is still usable after failures
    assert mlp.run("forward", x)[0].shape[0] == 2


def test_session_error_message_is_the_c_message(mlp: N.NativeModel) -> None:
    s = mlp.new_session()
    with pytest.raises(am.ShapeError) as info:
        s.run("forward", [_input(mlp)[:, :-1]])
    assert s.error and s.error == info.value.c_message
    s.run("forward", [_input(mlp)])
    assert s.error == ""
    s.close()
    s.close()  # idempotent


def test_limits_are_limit_errors(lib: N.NativeLibrary) -> None:
    with N.NativeModel(MLP, memory_limit=16) as m:
        with pytest.raises(am.errors.LimitError) as info:
            m.run("forward", _input(m, 64))
    assert info.value.status_name == "AMBER_ERR_LIMIT"


def test_failed_vector_is_a_mismatch(lib: N.NativeLibrary, tmp_path: Path) -> None:
    program = am.export(lambda x: x * 2.0, am.spec("n", 3))
    program.test_vectors[0].outputs[program.entry("forward").outputs[0].name] += 1.0
    path = tmp_path / "wrong.amber"
    program.save(path)
    with N.NativeModel(path) as m, pytest.raises(N.NativeMismatchError) as info:
        m.verify()
    assert info.value.c_message
    out = io.StringIO()
    assert main(["verify", str(path)], out=out) == 1
    assert "libamber verify: FAILED" in out.getvalue()


def test_inputs_convert_and_wrap(mlp: N.NativeModel) -> None:
    x = _input(mlp, 3)
    want = mlp.run("forward", x)[0]
    # non-contiguous and big-endian arrays are converted; lists take the port's dtype
    wide = np.repeat(x, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    np.testing.assert_array_equal(mlp.run("forward", wide)[0], want)
    np.testing.assert_array_equal(mlp.run("forward", x.astype(">f4"))[0], want)
    np.testing.assert_array_equal(mlp.run("forward", x.tolist())[0], want)
    np.testing.assert_array_equal(mlp.run("forward", am.tensor(x))[0], want)
    np.testing.assert_array_equal(mlp.run_named("forward", {"input": x})["output"], want)
    # outputs are the caller's: writable, owned, not overwritten by the next run
    out = mlp.run("forward", x)[0]
    assert out.flags.writeable and out.flags.owndata
    mlp.run("forward", x * 0)
    np.testing.assert_array_equal(out, want)
    # read-only arrays and arrays that view another's memory are read in place
    frozen = x.copy()
    frozen.setflags(write=False)
    np.testing.assert_array_equal(mlp.run("forward", frozen)[0], want)
    np.testing.assert_array_equal(mlp.run("forward", np.frombuffer(x.tobytes(), np.float32)
                                          .reshape(x.shape))[0], want)
    np.testing.assert_array_equal(mlp.run("forward", np.vstack([x, x])[3:])[0], want)


def test_a_bad_output_descriptor_is_an_error(mlp: N.NativeModel,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The binding checks what C hands back before it reads it (a broken library must
    not make Python read wild memory)."""
    s = mlp.new_session()
    s.run("forward", [_input(mlp)])
    call = s._calls["forward"]

    for field, value in [("rank", -1), ("rank", N.MAX_RANK + 1), ("dtype", 7), ("dtype", -1)]:
        def fake_run(*args: object, field: str = field, value: int = value) -> int:
            setattr(call.out_list[0], field, value)
            return 0

        monkeypatch.setattr(s._lib, "session_run", fake_run)
        monkeypatch.setattr(s._lib, "session_run_into", fake_run)
        with pytest.raises(N.NativeError, match="output descriptor is invalid"):
            s.run("forward", [_input(mlp)])
    s.close()


def test_load_backends(lib: N.NativeLibrary, tmp_path: Path) -> None:
    assert am.load(MLP).backend == "native"
    assert am.load(MLP, backend="native").backend == "native"
    assert am.load(MLP, backend="reference").native is None
    with pytest.raises(am.AmberError, match="unknown backend"):
        am.load(MLP, backend="gpu")
    bad = bytearray(MLP.read_bytes())
    bad[-1] ^= 0xFF
    (tmp_path / "bad.amber").write_bytes(bytes(bad))
    with pytest.raises(am.FormatError):
        am.load(tmp_path / "bad.amber", backend="native")
    # without hash checks the Python reader accepts it; so may the C loader
    assert am.load(tmp_path / "bad.amber", verify_hashes=False).backend in ("native",
                                                                             "reference")


def test_gradients_still_flow_through_the_op_registry(lib: N.NativeLibrary) -> None:
    model = am.load(MLP)
    assert model.backend == "native"
    x = am.tensor(np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32),
                  requires_grad=True)
    y = model(x)
    assert y.requires_grad
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == (2, 16)
    ref = am.load(MLP, backend="reference")
    xr = am.tensor(x.detach().numpy(), requires_grad=True)
    ref(xr).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xr.grad.numpy(), rtol=1e-5, atol=1e-6)
    with am.no_grad():
        np.testing.assert_allclose(model(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-6)


def test_native_unavailable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setattr(N, "_lib", None)
    monkeypatch.setattr(N, "_lib_error", None)
    monkeypatch.setenv("AMBER_LIBRARY", str(tmp_path / "libamber-missing.so"))
    assert not N.available()
    with pytest.raises(N.NativeUnavailableError, match="backend='reference'"):
        am.load(MLP, backend="native")
    # the default falls back to the reference interpreter
    model = am.load(MLP)
    assert model.backend == "reference" and model.native is None
    out = io.StringIO()
    assert main(["verify", "--backend", "reference", str(MLP)], out=out) == 0
    assert main(["verify", "--backend", "native", str(MLP)], out=io.StringIO()) == 2


def test_cli_backends(lib: N.NativeLibrary, tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["verify", str(MLP)], out=out) == 0
    assert "backend: native" in out.getvalue() and "libamber verify: 4/4" in out.getvalue()
    out = io.StringIO()
    assert main(["verify", "--backend", "reference", str(MLP)], out=out) == 0
    assert "backend: reference" in out.getvalue() and "libamber" not in out.getvalue()
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    results = {}
    for backend in ("native", "reference"):
        dst = tmp_path / f"{backend}.npz"
        assert main(["run", str(MLP), "--backend", backend, "--input",
                     f"input={tmp_path / 'x.npy'}", "--output", str(dst)],
                    out=io.StringIO()) == 0
        results[backend] = np.load(dst)["output"]
    np.testing.assert_allclose(results["native"], results["reference"], rtol=1e-5, atol=1e-6)


def test_loop_limits_are_options(lib: N.NativeLibrary, tmp_path: Path) -> None:
    def count(n):
        return am.while_loop(lambda i: i < n, lambda i: i + 1, am.zeros((), dtype=am.int64))

    program = am.export(count, am.spec(dtype=am.int64, low=0, high=50))
    path = tmp_path / "count.amber"
    program.save(path)
    with N.NativeModel(path) as m:
        assert int(m.run("forward", np.int64(40))[0]) == 40
    for option in ("max_loop_iterations", "max_run_iterations"):
        with N.NativeModel(path, **{option: 10}) as m:
            assert int(m.run("forward", np.int64(5))[0]) == 5
            with pytest.raises(am.errors.LimitError) as info:
                m.run("forward", np.int64(40))
            assert info.value.status_name == "AMBER_ERR_LIMIT" and info.value.c_message
