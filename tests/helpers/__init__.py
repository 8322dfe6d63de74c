"""Shared test helpers: the op checker and independent NumPy references."""

from .opcheck import (
    assert_close,
    central_differences,
    check_forward,
    check_grad,
    check_op,
    evaluate,
    forward_tol,
    infer_checked,
)

__all__ = [
    "assert_close",
    "central_differences",
    "check_forward",
    "check_grad",
    "check_op",
    "evaluate",
    "forward_tol",
    "infer_checked",
]
