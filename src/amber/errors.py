"""amber's exception hierarchy: every error amber raises is an ``AmberError``."""

from __future__ import annotations


class AmberError(Exception):
    """Base class of every error raised by amber."""


class ShapeError(AmberError, ValueError):
    """Operand shapes are incompatible with an op (names the op and the shapes)."""


class DTypeError(AmberError, TypeError):
    """Operand dtypes are not accepted by an op (names the op and the dtypes)."""


class AutogradError(AmberError, RuntimeError):
    """Misuse of automatic differentiation (non-scalar backward, freed graph, ...)."""


class CaptureError(AmberError):
    """A construct cannot be captured exactly; the message names the user's line and the fix."""


class FormatError(AmberError):
    """A .amber file is malformed, corrupt, or newer than this reader."""


class OutOfRangeError(AmberError, IndexError):
    """An index tensor holds a value outside the indexed dimension."""
