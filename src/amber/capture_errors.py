"""Errors for constructs that need a concrete value while a program is being captured.

The message names the user's own file and line (the innermost stack frame outside the
amber package), what was asked for, and the structured alternative."""

from __future__ import annotations

import os
import sys

from .errors import CaptureError

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(package dirs, standard-library dirs) whose frames are never "the user's line":
    amber itself, NumPy (amber calls it with the user's shapes) and the standard
    library (not its site-packages)."""
    import sysconfig

    import numpy

    pkgs = (_PKG_DIR + os.sep, os.path.dirname(os.path.abspath(numpy.__file__)) + os.sep)
    std = []
    for key in ("stdlib", "platstdlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            std.append(os.path.abspath(p) + os.sep)
    return pkgs, tuple(std)


_DIRS: tuple[tuple[str, ...], tuple[str, ...]] | None = None


def _is_library(path: str) -> bool:
    global _DIRS
    if _DIRS is None:
        _DIRS = _library_dirs()
    pkgs, std = _DIRS
    if path.startswith(pkgs):
        return True
    return any(path.startswith(d) and not path[len(d):].startswith(("site-packages",
                                                                     "dist-packages"))
               for d in std)


def user_frame() -> tuple[str, int, str]:
    """(file, line, source text) of the innermost caller outside amber, NumPy and the
    standard library."""
    f = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        path = name if name.startswith("<") else os.path.abspath(name)  # "<stdin>", ...
        if not _is_library(path):
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


def eager_only_error(what: str, instead: str) -> CaptureError:
    """``what``'s output shape depends on the values, so it cannot be captured."""
    path, line, text = user_frame()
    where = f"{path}:{line}" + (f": {text}" if text else "")
    return CaptureError(
        f"{where}\n  {what} has an output shape that depends on the values, so it runs "
        f"eagerly only and cannot be captured. Instead, {instead}."
    )
