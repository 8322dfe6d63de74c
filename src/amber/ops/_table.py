"""The table of registered primitives, in a module that imports nothing, so that any layer
(the ONNX exporter, the verifier) can read the primitives' schema without importing the
op machinery. ``amber.ops.registry`` fills it; read it as ``amber.ops.REGISTRY``."""

from __future__ import annotations

from typing import Any

REGISTRY: dict[str, Any] = {}
"""Primitive name -> ``amber.ops.registry.Primitive``."""
