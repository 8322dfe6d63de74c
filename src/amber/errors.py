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


class IRError(AmberError):
    """A program fails verification (unknown op, type mismatch, unbound symbolic dim)."""


class ExportError(CaptureError):
    """The captured program disagrees with eager execution, or cannot be proven."""


class ControlFlowError(AmberError, TypeError):
    """A control-flow construct (``am.cond``, ``am.while_loop``, ``am.scan``,
    ``am.fori_loop``) got a non-tensor operand or carry, a predicate that is not a bool
    scalar, or a user function whose outputs change structure, dtype or shape; the
    message names the user's function and the mismatching leaf (e.g. ``carry[1]['h']``)."""


class LimitError(AmberError, RuntimeError):
    """A program ran past a configured limit (see ``am.control.set_limits``)."""


class IterationLimitError(LimitError):
    """A loop ran past ``max_iterations`` iterations."""


class RecursionLimitError(LimitError):
    """Graph functions nested past ``max_recursion_depth`` (or past Python's own stack)."""


class SeamError(AmberError, TypeError):
    """Two models are composed (by capture or ``amber link``) where a value's dtype, rank
    or static dims disagree with the input it feeds; the message names both models, the
    entry point, the input and both types."""


class LinkError(AmberError, ValueError):
    """An ``amber link`` request is malformed: a ``--connect`` spec that does not parse,
    names an unknown model, entry point or port, connects the wrong direction, feeds an
    input twice, or forms a cycle."""


class DistributedError(AmberError, RuntimeError):
    """A collective failed or timed out, the process group is not initialised, or ranks
    disagree (``amber.distributed``); the message names the rank and the operation."""
class ArgumentError(AmberError, ValueError):
    """An argument has an invalid value or conflicts with another argument (a
    ``DataLoader`` given both ``sampler`` and ``shuffle``, a negative learning rate, an
    unknown scheduler mode); the message names the argument and what is accepted."""


class UnsupportedCheckpointError(FormatError):
    """``am.load`` was given a file it will not read, such as a pickled PyTorch
    checkpoint (``torch.save``); the message says how to convert it to safetensors."""


class DeviceError(AmberError, RuntimeError):
    """A tensor or module was sent to a device amber does not run on (amber computes
    on the CPU; ``am.cuda.is_available()`` is False)."""
class UnsupportedError(AmberError, NotImplementedError):
    """A model uses something amber does not support (an ONNX operator, an attribute
    value, a data type, an operator domain, sequence or optional types). Raised instead
    of computing anything else; the message names the node, its op type, domain and
    opset, and what is unsupported."""
