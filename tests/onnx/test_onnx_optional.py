"""Without the optional onnx extra, amber imports fine and ONNX export fails with a typed
error naming the extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import amber as am


def test_missing_extra_raises_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    program = am.export(lambda x: x * 2, np.ones(3, np.float32), check=False)
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(am.onnx.OnnxUnavailableError, match=r"amber\[onnx\]"):
        am.onnx.export(program, None)
    assert issubclass(am.onnx.OnnxUnavailableError, ImportError)
    assert issubclass(am.onnx.OnnxExportError, am.AmberError)
