"""Errors for constructs that need a concrete value while a program is being captured.

The message names the user's own file and line (the innermost stack frame outside the
amber package), what was asked for, and the structured alternative."""

from __future__ import annotations

import os
import sys

from .errors import CaptureError

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def user_frame() -> tuple[str, int, str]:
    """(file, line, source text) of the innermost caller outside the amber package."""
    f = sys._getframe(1)
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if not path.startswith(_PKG_DIR + os.sep):
            import linecache

            return path, f.f_lineno, linecache.getline(path, f.f_lineno).strip()
        f = f.f_back  # type: ignore[assignment]
    return "<unknown>", 0, ""


def concrete_value_error(what: str) -> CaptureError:
    path, line, text = user_frame()
    where = f"{path}:{line}" + (f": {text}" if text else "")
    return CaptureError(
        f"{where}\n  {what} needs a concrete value, but this tensor is symbolic during "
        f"capture. Use am.cond(pred, true_fn, false_fn, ...) for a data-dependent branch, "
        f"am.while_loop for a data-dependent loop, or give the dimension a static size in "
        f"am.spec(...)."
    )
