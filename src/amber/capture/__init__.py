"""Capture and IR: turn an amber function or module into a Program (see DESIGN.md,
"Capture" and "IR"; the file format is specified in docs/format.md)."""

from __future__ import annotations

from . import control as _control  # noqa: F401  (installs the control-flow hooks)
from .dims import DimExpr, format_dim, parse_dim, symbol
from .ir import (
    BUILTIN_OPS,
    OPSET_VERSION,
    TOLERANCE,
    EntryPoint,
    Function,
    Node,
    Port,
    Program,
    TestVector,
    Value,
)
from .passes import (
    common_subexpression_elimination,
    constant_folding,
    dead_code_elimination,
    optimize,
)
from .trace import Spec, export, spec
from .verify import verify_program

__all__ = [
    "BUILTIN_OPS",
    "OPSET_VERSION",
    "TOLERANCE",
    "DimExpr",
    "EntryPoint",
    "Function",
    "Node",
    "Port",
    "Program",
    "Spec",
    "TestVector",
    "Value",
    "common_subexpression_elimination",
    "constant_folding",
    "dead_code_elimination",
    "export",
    "format_dim",
    "optimize",
    "parse_dim",
    "spec",
    "symbol",
    "verify_program",
]
