"""ONNX in and out.

* :func:`export` / :func:`to_onnx` (``amber.onnx.export``): an amber program's entry point
  as an ONNX model, exactly or not at all (docs/onnx.md, "Export").
* :func:`from_onnx` (also ``am.from_onnx``): an ONNX model as an ordinary
  :class:`~amber.Program`, proven against ONNX's reference evaluator (docs/onnx.md,
  "Import").
* ``amber.onnx.backend``: amber as an ONNX backend (``onnx.backend.base.Backend``).

The ``onnx`` package is an optional extra (``pip install amber[onnx]``); it is imported
only when a function of this package needs it.
"""

from __future__ import annotations

from .export import (
    DEFAULT_OPSET,
    MIN_OPSET,
    REFUSED,
    REFUSED_DTYPES,
    REFUSED_NODES,
    SUPPORTED,
    OnnxExportError,
    OnnxUnavailableError,
    export,
    to_onnx,
)
from .importer import from_onnx

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "REFUSED",
    "REFUSED_DTYPES",
    "REFUSED_NODES",
    "SUPPORTED",
    "OnnxExportError",
    "OnnxUnavailableError",
    "export",
    "from_onnx",
    "to_onnx",
]
