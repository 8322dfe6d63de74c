"""``am.load`` on the native backend: one loader. A plain call (positional or by
keyword) and ``signature()`` run without building the Python program or its
interpreter; the first gradient, ``verify()`` or ``.program`` builds them, once."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
import amber.model as M
from amber import native as N
from amber.errors import FormatError


class Net(am.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = am.nn.Linear(4, 3)

    def forward(self, x: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
        h = self.lin(x)
        return h, h.sum()


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the Python reader's program builds and interpreter constructions."""
    from amber.interpreter import Interpreter

    seen = {"program": 0, "interpreter": 0}
    build, init = M.program_from_header, Interpreter.__init__

    def counted_build(*a: Any, **k: Any) -> Any:
        seen["program"] += 1
        return build(*a, **k)

    def counted_init(self: Any, *a: Any, **k: Any) -> None:
        seen["interpreter"] += 1
        init(self, *a, **k)

    monkeypatch.setattr(M, "program_from_header", counted_build)
    monkeypatch.setattr(Interpreter, "__init__", counted_init)
    return seen


@pytest.fixture
def path(tmp_path: Path) -> Path:
    out = tmp_path / "net.amber"
    am.export(Net(), am.spec("batch", 4)).save(out, metadata={"owner": "tests"})
    return out


def test_a_plain_call_builds_no_python_program(path: Path, counts: dict[str, int]) -> None:
    model = am.load(path, backend="native")
    x = np.ones((2, 4), np.float32)
    h, s = model(x)
    h2, s2 = model.run("forward", x=x)
    assert model.forward(x)[0].shape == (2, 3)
    assert model.entry_points == ["forward"] and model.opset_version >= 1
    assert model.metadata["user"] == {"owner": "tests"}
    sig = model.signature()
    assert [p.name for p in sig.inputs] == ["x"] and sig.inputs[0].shape[1] == 4
    assert counts == {"program": 0, "interpreter": 0}
    assert sig == model.program.entry("forward")  # as the Python reader decodes it
    np.testing.assert_array_equal(h.numpy(), h2.numpy())
    np.testing.assert_allclose(s.numpy(), h.numpy().sum(), rtol=1e-6)
    ref = am.load(path, backend="reference")
    np.testing.assert_allclose(h.numpy(), ref(x)[0].numpy(), rtol=1e-6, atol=1e-6)


def test_the_first_gradient_builds_the_program_once(path: Path, counts: dict[str, int]) -> None:
    model = am.load(path, backend="native")
    model(np.ones((2, 4), np.float32))
    x = am.tensor(np.ones((2, 4), np.float32), requires_grad=True)
    for _ in range(2):
        model(x)[1].backward()
    assert counts == {"program": 1, "interpreter": 1}
    assert x.grad is not None and x.grad.shape == (2, 4)


def test_verify_builds_the_program_once(path: Path, counts: dict[str, int]) -> None:
    model = am.load(path, backend="native")
    assert all(r.ok for r in model.verify())
    assert all(r.ok for r in model.verify())
    assert model.program is model.program
    assert counts["program"] == 1


def test_a_file_changed_on_disk_is_refused_when_the_program_is_built(path: Path) -> None:
    model = am.load(path, backend="native")
    data = path.read_bytes()
    path.write_bytes(data)  # same bytes, a new modification time
    os.utime(path, ns=(1, 1))
    with pytest.raises(FormatError, match="changed on disk"):
        model.verify()


def test_an_unknown_entry_point_is_named(path: Path, counts: dict[str, int]) -> None:
    model = am.load(path, backend="native")
    with pytest.raises(am.errors.AmberError, match="no entry point 'nope'; it has forward"):
        model.run("nope", np.ones((2, 4), np.float32))
    with pytest.raises(AttributeError, match="nope"):
        model.nope
    assert counts["program"] == 0


def test_a_file_both_readers_refuse_raises_format_error(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # inside the header: its hash no longer matches
    for backend in (None, "native", "reference"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback warning: the file is malformed
            with pytest.raises(FormatError):
                am.load(bytes(data), backend=backend)


def test_corrupt_weights_are_refused_unless_hashes_are_skipped(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-64] ^= 0x01  # inside the last tensor's bytes
    with pytest.raises(FormatError, match="SHA-256 mismatch"):
        am.load(bytes(data), backend="native")
    assert am.load(bytes(data), backend="native", verify_hashes=False).backend == "native"


def test_a_container_without_a_program_is_refused(tmp_path: Path) -> None:
    from amber.format import write_container

    write_container(tmp_path / "bare.amber", {"meta": 1}, {"w": np.ones(3, np.float32)})
    for backend in (None, "native"):
        with pytest.raises(FormatError, match="not an amber program"):
            am.load(tmp_path / "bare.amber", backend=backend)


def test_a_file_only_libamber_refuses_falls_back_with_a_warning(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> Any:
        raise N.NativeFormatError(3, "AMBER_ERR_FORMAT", "not today", "net.amber")

    monkeypatch.setattr(N, "NativeModel", refuse)
    with pytest.warns(M.BackendFallbackWarning, match="not today"):
        model = am.load(path)
    assert model.backend == "reference" and "not today" in model.backend_reason
    with pytest.raises(FormatError, match="not today"):
        am.load(path, backend="native")
