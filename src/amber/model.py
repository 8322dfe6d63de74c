"""``am.load(path)``: a .amber file as a callable :class:`Model`.

Loading reads the container (bounds- and hash-checked), decodes the header, and
verifies the program (ops known in the file's opset version, types, symbolic dims). It
never imports or runs anything the file names: op names are only keys into the op
registry."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .capture.ir import EntryPoint, Program, max_error, within_tolerance
from .capture.serialize import program_from_header
from .errors import AmberError
from .tensor import Tensor, _wrap_array

BACKENDS = ("native", "reference")
"""``"native"``: libamber through its C API (:mod:`amber.native`); ``"reference"``: the
NumPy interpreter."""


class BackendFallbackWarning(UserWarning):
    """:func:`load` runs a file with the reference interpreter because the native runtime
    refused it (the message gives the native error; ``Model.backend_reason`` keeps it)."""


@dataclass
class VectorResult:
    """Outcome of one stored test vector: max error and pass/fail per output."""

    index: int
    entry: str
    dims: dict[str, int]
    errors: dict[str, float]
    passed: dict[str, bool]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(self.passed.values())


class Model:
    """A loaded program. ``model(x)`` runs entry point ``"forward"``; every entry point
    is also a method (``model.loss(x, y)``) and :meth:`run` takes the name. Inputs may be
    NumPy arrays, amber tensors or Python numbers; outputs are amber tensors, grouped as
    the exported function returned them.

    ``backend`` says which runtime runs calls that need no gradient (``"native"`` or
    ``"reference"``) and ``backend_reason`` why (for a fallback, the native error)."""

    def __init__(self, program: Program, *, backend: str = "reference",
                 format_version: int | None = None, path: str | None = None,
                 name: str | None = None, native: Any = None,
                 backend_reason: str | None = None) -> None:
        if backend not in BACKENDS:
            raise AmberError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        from .interpreter import Interpreter

        self.program = program
        self.backend = backend
        self.format_version = format_version
        self.path = path
        from .reuse import clean_name, default_name

        # the namespace of this model's functions and weights when a capture or a link
        # composes it into another program (backbone/forward, backbone/fc.weight)
        self.name = clean_name(name) if name else default_name(path)
        self._interp = Interpreter(program)
        if backend == "native" and native is None:
            raise AmberError("backend='native' needs the file opened by the native runtime; "
                             "use am.load(path, backend='native')")
        # the file opened by libamber (amber.native.NativeModel) when backend is "native"
        self.native = native if backend == "native" else None
        # entry -> (input count, whether it returns one tensor): the direct native path
        self._direct = {name: (len(e.inputs), len(e.outputs) == 1
                               and not isinstance(e.structure, dict))
                        for name, e in program.entries.items()}
        self.backend_reason = backend_reason or (
            "opened by the native runtime" if backend == "native"
            else "backend='reference' was asked for")

    # -- introspection ------------------------------------------------------------
    @property
    def entry_points(self) -> list[str]:
        return list(self.program.entries)

    @property
    def opset_version(self) -> int:
        return self.program.opset_version

    @property
    def metadata(self) -> dict[str, Any]:
        """Producer, its version, creation time and the user's fields (``["user"]``)."""
        return self.program.metadata

    def signature(self, name: str = "forward") -> EntryPoint:
        """Inputs and outputs (names, dtypes, dims) of entry point ``name``."""
        return self.program.entry(name)

    # -- running ----------------------------------------------------------------------
    def run(self, entry: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run entry point ``entry``."""
        # The common serving call (positional NumPy arrays or plain tensors on a native
        # model) needs neither a gradient nor a capture: straight to C.
        native = self.native
        direct = self._direct.get(entry) if native is not None and not kwargs else None
        arrays = _plain_arrays(args) if direct is not None and len(args) == direct[0] else None
        if native is not None and direct is not None and arrays is not None:
            outs = native.session().run(entry, arrays)
            if direct[1]:
                return _wrap_array(outs[0])
            e = self.program.entries[entry]
            return _build(e.structure, {p.name: _wrap_array(a) for p, a in zip(e.outputs, outs)})
        from .reuse import call_program

        # native runtime (or NumPy interpreter) unless a gradient is needed (ops bound
        # through the registry) or a capture is in progress (a call of this model's
        # functions is recorded)
        return call_program(self.program, entry, args, kwargs, name=self.name,
                            path=self.path, interpreter=self._interp, native=self.native)

    def as_module(self, trainable: Any = None) -> Any:
        """An ``am.nn.Module`` running this program whose parameters are the file's
        weights, named as in the file (``trainable``: names, or a predicate on names, of
        the float weights to make parameters; default all), for fine-tuning with
        ``am.optim``; its ``save(path)`` writes the program with the new weights and
        regenerated test vectors. See :class:`amber.reuse.LoadedModule`."""
        from .reuse import as_module

        return as_module(self, trainable)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run("forward", *args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        program = self.__dict__.get("program")
        if program is not None and name in program.entries:
            def method(*args: Any, **kwargs: Any) -> Any:
                return self.run(name, *args, **kwargs)

            method.__name__ = name
            method.__doc__ = f"Run entry point {program.entries[name]}."
            return method
        raise AttributeError(f"the model has no entry point or attribute {name!r}")

    def verify(self) -> list[VectorResult]:
        """Run every stored test vector; report max error per output."""
        results = []
        for i, tv in enumerate(self.program.test_vectors):
            try:
                if self.native is not None:
                    outs = self.native.run(tv.entry, **tv.inputs)
                else:
                    outs = self._interp.run(tv.entry, **tv.inputs)
            except AmberError as err:
                results.append(VectorResult(i, tv.entry, tv.dims, {}, {}, str(err)))
                continue
            entry = self.program.entry(tv.entry)
            errors, passed = {}, {}
            for p, got in zip(entry.outputs, outs):
                want = tv.outputs[p.name]
                rtol, atol = tv.tolerance.get(p.name, (0.0, 0.0))
                errors[p.name] = max_error(got, want)
                passed[p.name] = got.dtype == want.dtype and within_tolerance(
                    got, want, rtol, atol)
            results.append(VectorResult(i, tv.entry, tv.dims, errors, passed))
        return results

    def __repr__(self) -> str:
        where = f" from {self.path!r}" if self.path else ""
        return f"<amber.Model{where} entries={self.entry_points} backend={self.backend!r}>"


def _plain_arrays(args: tuple[Any, ...]) -> list[np.ndarray] | None:
    """``args`` as arrays when each is an ndarray or a concrete tensor that needs no
    gradient (then running them involves no autograd and no capture); else None."""
    out = []
    for x in args:
        if type(x) is np.ndarray:
            out.append(x)
        elif type(x) is Tensor and x._data is not None and not x.requires_grad:
            out.append(np.asarray(x._data))
        else:
            return None
    return out


def _owned(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a if a.flags.writeable and a.flags.owndata else np.array(a, copy=True)


def _build(structure: Any, tensors: Mapping[str, Tensor]) -> Any:
    if isinstance(structure, str):
        return tensors[structure]
    if structure is None:
        vals = list(tensors.values())
        return vals[0] if len(vals) == 1 else tuple(vals)
    (kind, body), = structure.items()
    if kind == "dict":
        return {k: _build(v, tensors) for k, v in body.items()}
    items = [_build(v, tensors) for v in body]
    return items if kind == "list" else tuple(items)


def load(path: str | os.PathLike[str] | bytes | Any, backend: str | None = None, *,
         verify_hashes: bool = True, name: str | None = None,
         threads: int | None = None, map_location: Any = None,
         weights_only: bool | None = None) -> Any:
    """Load a .amber file (a path or its bytes) as a :class:`Model`, or a checkpoint.

    The file's first bytes decide: a safetensors file (what ``am.save`` writes, or any
    safetensors state dict) is returned as the object that was saved (see
    :func:`amber.checkpoint.load_checkpoint`; ``map_location`` may be None or "cpu",
    ``weights_only`` is accepted for PyTorch compatibility: a checkpoint never holds
    code); a pickled PyTorch checkpoint (``torch.save``, zip or legacy) raises
    :class:`~amber.errors.UnsupportedCheckpointError` with the conversion recipe.

    ``backend`` runs calls that need no gradient: ``"native"`` (libamber through its C
    API, :mod:`amber.native`), ``"reference"`` (the NumPy interpreter), or None (the
    default): native when the library is installed and opens the file, else reference;
    ``Model.backend_reason`` says why, and a file the installed library refuses gives a
    :class:`BackendFallbackWarning` naming the native error. Calls that need a gradient,
    and captures, always go through the op registry.

    ``name`` is the model's namespace when a capture or ``amber link`` composes it into
    another program (default: the file name without ``.amber``; see docs/reuse.md).

    ``threads`` is the native runtime's intra-op thread count per session (None: the
    count set by ``am.set_num_threads``, else one per core; 1: the calling thread only);
    the reference interpreter ignores it.

    Raises:
        FormatError: the file is malformed, corrupt, uses an op this amber does not
            know, fails type checking, or is newer than this amber (both versions named);
            with ``backend="native"``, also when the C loader refuses it.
        amber.native.NativeUnavailableError: ``backend="native"`` but libamber cannot be
            loaded.
    """
    from . import checkpoint
    from .format.container import read_container

    where = "<bytes>" if isinstance(path, (bytes, bytearray)) else (
        "<file>" if hasattr(path, "read") else os.fspath(path))
    if hasattr(path, "read"):
        path = path.read()
    kind = checkpoint.sniff(path)
    if kind in ("zip", "pickle"):
        checkpoint.refuse_pickle(kind, where)
    if kind == "safetensors":
        from ._device import check_map_location

        check_map_location(map_location)
        return checkpoint.load_checkpoint(path)
    if threads is None:
        from ._device import get_num_threads_setting

        threads = get_num_threads_setting()
    if backend is not None and backend not in BACKENDS:
        raise AmberError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    c = read_container(path, verify_hashes=verify_hashes)
    program = program_from_header(c.header, c.tensors)
    native = None
    reason = "backend='reference' was asked for"
    if backend in (None, "native"):
        from . import native as N

        try:
            lib = N.library()
            # the Python reader has checked the hashes already (when asked to)
            native = N.NativeModel(path, verify_hashes=False, threads=threads)
            reason = f"opened by the native runtime (libamber {lib.version}, {lib.path})"
        except (N.NativeUnavailableError, N.NativeError) as e:
            if backend == "native":
                raise
            reason = str(e)
            if isinstance(e, N.NativeError):  # installed, but it refused this file
                reason = f"the native runtime cannot open the file: {e}"
                warnings.warn(f"am.load({where!r}): running with the reference interpreter: "
                              f"{reason}", BackendFallbackWarning, stacklevel=2)
    return Model(program, backend="native" if native is not None else "reference",
                 format_version=c.format_version,
                 path=None if isinstance(path, (bytes, bytearray)) else os.fspath(path),
                 name=name, native=native, backend_reason=reason)


__all__ = ["BackendFallbackWarning", "Model", "VectorResult", "load"]
