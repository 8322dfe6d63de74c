"""``am.load`` says which backend runs a file and why: a file the installed native
runtime refuses falls back to the reference interpreter with a
:class:`amber.BackendFallbackWarning` naming the native error (kept as
``Model.backend_reason``); ``backend="native"`` still raises the typed error; an
unavailable library is a reason, not a warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N

MLP = Path(__file__).resolve().parents[1] / "golden" / "v1" / "mlp.amber"


def _refuse(*args: object, **kwargs: object) -> N.NativeModel:
    raise N.NativeFormatError(5, "AMBER_ERR_FORMAT", "header: an op the runtime refuses",
                              "mlp.amber: cannot open")


def test_native_backend_says_where_the_library_is(lib: N.NativeLibrary) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no warning
        model = am.load(MLP)
    assert model.backend == "native" and model.native is not None
    assert lib.version in model.backend_reason and str(lib.path) in model.backend_reason
    ref = am.load(MLP, backend="reference")
    assert ref.backend == "reference" and ref.backend_reason == ("backend='reference' was "
                                                                 "asked for")


def test_a_file_the_native_runtime_refuses_falls_back_visibly(
        lib: N.NativeLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(N, "NativeModel", _refuse)
    with pytest.warns(am.BackendFallbackWarning, match=r"mlp\.amber.*reference interpreter.*"
                      r"an op the runtime refuses \(AMBER_ERR_FORMAT\)") as rec:
        model = am.load(MLP)
    assert rec[0].filename == __file__  # reported at the caller's line
    assert model.backend == "reference" and model.native is None
    assert "the native runtime cannot open the file" in model.backend_reason
    assert "AMBER_ERR_FORMAT" in model.backend_reason
    x = np.zeros((1, 16), np.float32)
    assert model(x).shape == (1, 10)  # the reference interpreter runs it
    # asking for the native backend explicitly keeps the typed error
    with pytest.raises(N.NativeFormatError, match="an op the runtime refuses"):
        am.load(MLP, backend="native")


def test_an_unavailable_library_is_a_reason_not_a_warning(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(N, "_lib", None)
    monkeypatch.setattr(N, "_lib_error", None)
    monkeypatch.setenv("AMBER_LIBRARY", str(tmp_path / "libamber-missing.so"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = am.load(MLP)
    assert model.backend == "reference"
    assert "native runtime is unavailable" in model.backend_reason
    assert "libamber-missing.so" in model.backend_reason
    with pytest.raises(N.NativeUnavailableError):
        am.load(MLP, backend="native")
