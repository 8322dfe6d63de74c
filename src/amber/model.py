"""``am.load(path)``: a .amber file as a callable :class:`Model`.

Loading reads the container (bounds- and hash-checked), decodes the header, and
verifies the program (ops known in the file's opset version, types, symbolic dims): on
the native backend libamber's loader does all of it, and the Python program is built on
first need (docs/architecture.md, "Loading and running a file"). It never imports or
runs anything the file names: op names are only keys into the op registry."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._inputs import gather_args
from .capture.ir import EntryPoint, Program, max_error, within_tolerance
from .capture.serialize import program_from_header
from .errors import AmberError, FormatError
from .format.container import gc_paused
from .tensor import Tensor, _wrap_array, is_grad_enabled

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


class NativeBackend:
    """Runs entry points in libamber (an :class:`amber.native.NativeModel`)."""

    name = "native"

    def __init__(self, native: Any) -> None:
        self.native = native

    def run(self, entry: str, arrays: list[Any]) -> list[np.ndarray]:
        """Outputs of ``entry`` on ``arrays`` (in signature order), as new arrays."""
        return self.native.session().run(entry, arrays)


class ReferenceBackend:
    """Runs entry points with the reference interpreter, created on the first run."""

    name = "reference"

    def __init__(self, program: Program) -> None:
        self.program = program
        self._interpreter: Any = None

    @property
    def interpreter(self) -> Any:
        if self._interpreter is None:
            from .interpreter import Interpreter

            self._interpreter = Interpreter(self.program)
        return self._interpreter

    def run(self, entry: str, arrays: list[Any]) -> list[np.ndarray]:
        """Outputs of ``entry`` on ``arrays`` (in signature order), as arrays the caller
        owns (a stored weight or constant returned as it is is copied)."""
        return [_owned(a) for a in self.interpreter.run(entry, *arrays)]


class _Entry:
    """What a call of one entry point needs: input names, and how outputs are grouped."""

    __slots__ = ("names", "outputs", "single", "structure")

    def __init__(self, names: list[str], outputs: list[str], structure: Any) -> None:
        self.names = names
        self.outputs = outputs
        self.structure = structure
        self.single = len(outputs) == 1 and not isinstance(structure, dict)

    @classmethod
    def of(cls, e: EntryPoint) -> _Entry:
        return cls([p.name for p in e.inputs], [p.name for p in e.outputs], e.structure)


class Model:
    """A loaded program. ``model(x)`` runs entry point ``"forward"``; every entry point
    is also a method (``model.loss(x, y)``) and :meth:`run` takes the name. Inputs may be
    NumPy arrays, amber tensors or Python numbers; outputs are amber tensors, grouped as
    the exported function returned them.

    ``backend`` says which runtime runs calls that need no gradient (``"native"`` or
    ``"reference"``) and ``backend_reason`` why (for a fallback, the native error)."""

    def __init__(self, program: Program | None, *, backend: str = "reference",
                 format_version: int | None = None, path: str | None = None,
                 name: str | None = None, native: Any = None,
                 backend_reason: str | None = None,
                 build_program: Callable[[], Program] | None = None) -> None:
        if backend not in BACKENDS:
            raise AmberError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        self.backend = backend
        self.format_version = format_version
        self.path = path
        from .reuse import clean_name, default_name

        # the namespace of this model's functions and weights when a capture or a link
        # composes it into another program (backbone/forward, backbone/fc.weight)
        self.name = clean_name(name) if name else default_name(path)
        if backend == "native" and native is None:
            raise AmberError("backend='native' needs the file opened by the native runtime; "
                             "use am.load(path, backend='native')")
        # the file opened by libamber (amber.native.NativeModel) when backend is "native"
        self.native: Any = native if backend == "native" else None
        if program is None and (self.native is None or build_program is None):
            raise AmberError("Model needs a program, or a file opened by the native runtime "
                             "and a function building its program")
        # NOTE: on the native backend the Python program (and its reference interpreter)
        # is built on first need (a gradient, a capture, verify(), .program): a plain call
        # touches only libamber, whose loader checks what the Python reader checks
        self._program = program
        self._build_program = build_program
        self._build_lock = threading.Lock()
        self._reference_backend: ReferenceBackend | None = None
        # runs every call that needs neither a gradient nor a capture
        self._backend: NativeBackend | ReferenceBackend = (
            NativeBackend(native) if self.native is not None else self._reference)
        self._entries: dict[str, _Entry] = {}
        self._signatures: dict[str, EntryPoint] = {}  # native: decoded from the header
        self.backend_reason = backend_reason or (
            "opened by the native runtime" if backend == "native"
            else "backend='reference' was asked for")

    @property
    def program(self) -> Program:
        """The file's program (on the native backend decoded and verified on first use)."""
        if self._program is None:
            with self._build_lock:  # one program, whichever thread asks first
                if self._program is None:
                    assert self._build_program is not None
                    self._program = self._build_program()
                    self._build_program = None
        return self._program

    @property
    def _reference(self) -> ReferenceBackend:
        if self._reference_backend is None:
            self._reference_backend = ReferenceBackend(self.program)
        return self._reference_backend

    @property
    def _interp(self) -> Any:
        """The reference interpreter of this program (created on first use)."""
        return self._reference.interpreter

    def _entry(self, entry: str) -> _Entry:
        """What a call of ``entry`` needs (from its signature)."""
        e = self._entries[entry] = _Entry.of(self.signature(entry))
        return e

    # -- introspection ------------------------------------------------------------
    @property
    def entry_points(self) -> list[str]:
        if self._program is None:
            return list(self.native.entry_points)
        return list(self._program.entries)

    @property
    def opset_version(self) -> int:
        if self._program is None:
            return int(self.native.opset_version)
        return self._program.opset_version

    @property
    def metadata(self) -> dict[str, Any]:
        """Producer, its version, creation time and the user's fields (``["user"]``)."""
        if self._program is None:
            return dict(self.native.header().get("metadata", {}))
        return self._program.metadata

    def signature(self, name: str = "forward") -> EntryPoint:
        """Inputs and outputs (names, dtypes, dims) of entry point ``name``."""
        if self._program is not None:
            return self._program.entry(name)
        # on the native backend, decoded from the header's signature (which libamber's
        # loader checked) without building the program
        sig = self._signatures.get(name)
        if sig is None:
            if name not in self.native.entry_points:
                raise AmberError(f"the program has no entry point {name!r}; it has "
                                 f"{', '.join(self.native.entry_points) or 'none'}")
            from .capture.serialize import entry_from_json

            sig = self._signatures[name] = entry_from_json(
                name, self.native.header()["signatures"][name])
        return sig

    # -- running ----------------------------------------------------------------------
    def run(self, entry: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run entry point ``entry``."""
        e = self._entries.get(entry) or self._entry(entry)
        given = args if not kwargs and len(args) == len(e.names) else gather_args(
            entry, e.names, args, kwargs)
        arrays = _plain_arrays(given)
        if arrays is None:
            # a gradient is needed (ops bound through the registry) or a capture is in
            # progress (a call of this model's functions is recorded)
            from .reuse import call_program

            return call_program(self.program, entry, given, {}, name=self.name,
                                path=self.path, interpreter=self._interp)
        outs = self._backend.run(entry, arrays)
        if e.single:
            return _wrap_array(outs[0])
        return _build(e.structure, {n: _wrap_array(a) for n, a in zip(e.outputs, outs)})

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
        if "_entries" in self.__dict__ and name in self.entry_points:
            def method(*args: Any, **kwargs: Any) -> Any:
                return self.run(name, *args, **kwargs)

            method.__name__ = name
            program = self._program
            method.__doc__ = f"Run entry point {program.entries[name] if program else name}."
            return method
        raise AttributeError(f"the model has no entry point or attribute {name!r}")

    def verify(self) -> list[VectorResult]:
        """Run every stored test vector; report max error per output."""
        results = []
        for i, tv in enumerate(self.program.test_vectors):
            entry = self.program.entry(tv.entry)
            try:
                outs = self._backend.run(tv.entry, [tv.inputs[p.name] for p in entry.inputs])
            except AmberError as err:
                results.append(VectorResult(i, tv.entry, tv.dims, {}, {}, str(err)))
                continue
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


def _plain_arrays(args: Sequence[Any]) -> list[Any] | None:
    """``args`` for a backend (a tensor that needs no gradient as its array; arrays,
    numbers and lists as they are: the backend converts them), or None when a call needs
    the registry: an argument is being captured or needs a gradient."""
    out = []
    grad = None
    for x in args:
        if isinstance(x, Tensor):
            if x._data is None:  # a capture's tracer
                return None
            if x.requires_grad:
                if grad is None:
                    grad = is_grad_enabled()
                if grad:
                    return None
            out.append(np.asarray(x._data))
        else:
            out.append(x)
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
         weights_only: bool | None = None, plain_sums: bool = False) -> Any:
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
    the reference interpreter ignores it. ``plain_sums=True`` keeps the native runtime's
    sums within the plain sum bound of docs/opset.md section 5 (float32 3x3 stride-1
    convolutions without Winograd's F(2,3) rows, ~1.2x slower there); the reference
    interpreter always is.

    Raises:
        FormatError: the file is malformed, corrupt, uses an op this amber does not
            know, fails type checking, or is newer than this amber (both versions named);
            with ``backend="native"``, also when the C loader refuses it.
        amber.native.NativeUnavailableError: ``backend="native"`` but libamber cannot be
            loaded.
    """
    from . import checkpoint

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
    file = None if isinstance(path, (bytes, bytearray)) else os.fspath(path)
    native, reason, refusal = None, "backend='reference' was asked for", None
    if backend in (None, "native"):
        with gc_paused():  # a large header makes many entry points and ports
            native, reason, refusal = _open_native(path, backend, threads, verify_hashes,
                                                   plain_sums)
    if native is not None and native.opset_version < 1:  # a container without a program
        native.close()
        native = None
    if native is not None:  # the Python program is built on first need (see Model)
        return Model(None, backend="native", format_version=native.format_version,
                     path=file, name=name, native=native, backend_reason=reason,
                     build_program=_program_builder(path, file))
    c, program = _read_program(path, verify_hashes)  # FormatError for a malformed file
    if refusal is not None:  # the installed library refused a file Python reads
        warnings.warn(f"am.load({where!r}): running with the reference interpreter: "
                      f"{reason}", BackendFallbackWarning, stacklevel=2)
    return Model(program, backend="reference", format_version=c.format_version, path=file,
                 name=name, backend_reason=reason)


def _read_program(source: Any, verify_hashes: bool) -> tuple[Any, Program]:
    """The container and the decoded, verified program of ``source`` (Python reader)."""
    from .format.container import read_container

    with gc_paused():  # a large header builds millions of objects (see gc_paused)
        c = read_container(source, verify_hashes=verify_hashes)
        return c, program_from_header(c.header, c.tensors)


def _program_builder(source: Any, file: str | None) -> Callable[[], Program]:
    """Builds the program of a file libamber opened (its loader checked the file and the
    tensor hashes); a file changed on disk since is refused rather than mixed."""
    stamp = _file_stamp(file) if file is not None else None

    def build() -> Program:
        if file is not None and _file_stamp(file) != stamp:
            raise FormatError(f"{file}: the file changed on disk after am.load opened it; "
                              f"load it again")
        return _read_program(source, False)[1]

    return build


def _file_stamp(file: str) -> tuple[int, int, int]:
    try:
        st = os.stat(file)
    except OSError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _open_native(path: Any, backend: str | None, threads: int | None, verify_hashes: bool,
                 plain_sums: bool = False) -> tuple[Any, str, Exception | None]:
    """The file opened by libamber and why, or (None, why not, the native refusal or
    None when the library is missing) when ``backend`` is None."""
    from . import native as N

    try:
        lib = N.library()
        native = N.NativeModel(path, verify_hashes=verify_hashes, threads=threads,
                               plain_sums=plain_sums)
        return native, f"opened by the native runtime (libamber {lib.version}, {lib.path})", None
    except (N.NativeUnavailableError, N.NativeError) as e:
        if backend == "native":
            raise
        if isinstance(e, N.NativeError):  # installed, but it refused this file
            return None, f"the native runtime cannot open the file: {e}", e
        return None, str(e), None


__all__ = ["BackendFallbackWarning", "Model", "VectorResult", "load"]
