"""Devices and threads: ``am.device``, the CPU-only device checks behind ``Tensor.to``
and ``Module.to``, and ``am.set_num_threads`` / ``am.get_num_threads``.

amber computes on the CPU. ``am.device("cuda")`` can be named (as in PyTorch without a
GPU), but moving a tensor or module there raises :class:`~amber.errors.DeviceError`."""

from __future__ import annotations

from typing import Any

from . import _dtype as D
from .errors import ArgumentError, DeviceError

_TYPES = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "mtia", "privateuseone")


class device:
    """A device: ``am.device("cpu")``, ``am.device("cuda", 0)``, ``am.device("cuda:1")``.
    Compares equal to another device of the same type and index, and to its string."""

    __slots__ = ("index", "type")
    type: str
    index: int | None

    def __init__(self, type: str | device, index: int | None = None) -> None:
        if isinstance(type, device):
            self.type, self.index = type.type, type.index
            return
        if not isinstance(type, str):
            raise ArgumentError(f"am.device: expected a string or a device, got "
                                f"{type.__class__.__name__}")
        name, _, idx = type.partition(":")
        if name not in _TYPES:
            raise ArgumentError(f"Expected one of {', '.join(_TYPES)} device type at start "
                                f"of device string: {type!r}")
        if idx:
            if index is not None:
                raise ArgumentError(f"am.device: index given twice in {type!r} and "
                                    f"index={index}")
            if not idx.isdigit():
                raise ArgumentError(f"Invalid device string: {type!r}")
            index = int(idx)
        if index is not None and (not isinstance(index, int) or index < 0):
            raise ArgumentError(f"Device index must not be negative, got {index!r}")
        self.type, self.index = name, index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except ArgumentError:
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type,
                                                                         other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self) -> Any:
        return (device, (self.type, self.index))


CPU = device("cpu")


def is_device(x: Any) -> bool:
    """Whether ``x`` names a device (a device, a device string or an int GPU index)."""
    if isinstance(x, device):
        return True
    if isinstance(x, str):
        return x.partition(":")[0] in _TYPES
    return False


def check_cpu(x: Any, what: str) -> None:
    """Raise :class:`DeviceError` unless ``x`` (a device, its string or None) is the CPU."""
    if x is None:
        return
    if isinstance(x, int) and not isinstance(x, bool):
        x = device("cuda", x)
    d = device(x)
    if d.type != "cpu":
        raise DeviceError(
            f"{what}: amber runs on the CPU only, it cannot use device {str(d)!r}. Write "
            f"`device = 'cuda' if am.cuda.is_available() else 'cpu'` (am.cuda.is_available() "
            f"is False) or leave the device out")


def check_map_location(map_location: Any) -> None:
    """``am.load(..., map_location=...)``: None, "cpu" or a CPU device."""
    if callable(map_location) or isinstance(map_location, dict):
        raise ArgumentError("am.load: map_location may be None, 'cpu' or am.device('cpu'); "
                            "checkpoints always load to the CPU")
    check_cpu(map_location, "am.load(map_location=...)")


def parse_to(args: tuple[Any, ...], kwargs: dict[str, Any], what: str
             ) -> tuple[D.DType | None, bool, bool]:
    """The arguments of ``Tensor.to`` / ``Module.to`` as ``(dtype, non_blocking, copy)``,
    after checking any device is the CPU: ``to(dtype)``, ``to(device, dtype)``,
    ``to(tensor)``, keywords ``device``, ``dtype``, ``non_blocking``, ``copy``."""
    from .tensor import Tensor

    dtype: Any = kwargs.pop("dtype", None)
    check_cpu(kwargs.pop("device", None), what)
    flags = [kwargs.pop("non_blocking", False), kwargs.pop("copy", False)]
    kwargs.pop("memory_format", None)
    if kwargs:
        raise ArgumentError(f"{what}: unexpected keyword arguments {sorted(kwargs)}")
    bools: list[bool] = []
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, bool):
            bools.append(a)
        elif isinstance(a, (device, int)) or (isinstance(a, str) and is_device(a)):
            check_cpu(a, what)
        elif a is not None:
            dtype = a
    for i, b in enumerate(bools[:2]):
        flags[i] = b
    return (None if dtype is None else D.as_dtype(dtype)), bool(flags[0]), bool(flags[1])


# ----------------------------------------------------------------------------- threads
# One setting for eager kernels and native sessions: amber._threads holds it.
from ._threads import get_num_threads, set_num_threads  # noqa: E402


def get_num_threads_setting() -> int | None:
    """What ``am.load`` passes as ``threads`` when not told: the current setting."""
    return get_num_threads()


__all__ = ["device", "get_num_threads", "set_num_threads"]
