"""The MPI backend of ``amber.distributed``: a process group over an ``mpi4py``
communicator, with a watchdog that aborts the job when a collective stalls."""

from __future__ import annotations

import enum
import itertools
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DistributedError


class ReduceOp(enum.Enum):
    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"
    PRODUCT = "product"

    # NOTE: members are singletons, so identity hashing is exact and skips Enum's
    # Python-level __hash__ on every collective's op lookup
    __hash__ = object.__hash__


_AVG = ReduceOp.AVG


def _nothing() -> None:
    return None

_NOT_INIT = ("the default process group is not initialised: call "
             "amber.distributed.init_process_group('mpi') first (and launch the script with "
             "mpiexec -n N python script.py)")

DEFAULT: Group | None = None


def group_or_default(group: Group | None) -> Group:
    g = DEFAULT if group is None else group
    if g is None:
        raise DistributedError(_NOT_INIT)
    if g.closed:
        raise DistributedError("the process group was destroyed; call init_process_group "
                               "again")
    return g


def set_group(group: Group | None) -> None:
    global DEFAULT
    DEFAULT = group


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DistributedError(
            "amber.distributed needs mpi4py and an MPI library: pip install "
            "'amber[distributed]' (mpi4py with the mpich wheel), then launch with "
            "mpiexec -n N python script.py") from e
    return MPI


class Work:
    """A collective in flight (``async_op=True``); ``wait()`` blocks until it is done.
    A wait that outlives the group's timeout aborts the job (the watchdog)."""

    def __init__(self, group: Group, name: str, request: Any,
                 finish: Callable[[], None] | None = None) -> None:
        self._group, self._name, self._request, self._finish = group, name, request, finish
        self._done = request is None
        if self._done:
            self._complete()

    def is_completed(self) -> bool:
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def wait(self, timeout: Any = None) -> None:
        if not self._done:
            with self._group.watch(self._name):
                self._request.Wait()
            self._complete()
        return None

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            self._finish()
            self._finish = None


class Group:
    """The ranks of one communicator (the default group is all of ``MPI.COMM_WORLD``)."""

    def __init__(self, comm: Any, timeout: float) -> None:
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self.timeout = timeout
        self.closed = False
        # NOTE: no lock: a dict insert, pop and list() of its values are atomic under the
        # GIL, and the watchdog only reads
        self._in_flight: dict[int, tuple[Any, float]] = {}
        self._counter = itertools.count()
        # The blocking all-reduce's hot path reports to the watchdog through one slot
        # instead: what runs now (a new tuple per call; None between calls).
        self._hot: tuple[ReduceOp, np.ndarray] | None = None
        self._checked: Callable[[], Any] = _nothing  # the last buffer the hot path took
        MPI = _mpi()
        self._in_place = MPI.IN_PLACE
        self._request = MPI.Request
        self._allreduce = comm.Allreduce
        self._ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MAX: MPI.MAX,
                     ReduceOp.MIN: MPI.MIN, ReduceOp.PRODUCT: MPI.PROD}
        self._fast_ops = dict(self._ops)  # emptied when the group closes
        self._divisor: Any = None  # the world size in the checked buffer's dtype
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch_loop, daemon=True,
                                          name="amber-distributed-watchdog")
        self._watchdog.start()

    # -------------------------------------------------------------- the watchdog
    def watch(self, name: str) -> _Watch:
        return _Watch(self, name)

    def _watch_loop(self) -> None:
        period = min(1.0, self.timeout / 4)
        seen: Any = None  # NOTE: holding the last call's tuple keeps its id unique
        hot_since = 0.0
        while not self._stop.wait(period):
            now = time.monotonic()
            late = [(n, t) for n, t in list(self._in_flight.values())
                    if now - t > self.timeout]
            hot = self._hot
            if hot is None or hot is not seen:
                seen, hot_since = hot, now
            elif now - hot_since > self.timeout:
                late.append((("all_reduce", hot[0].name, hot[1].size, hot[1].dtype),
                             hot_since))
            if late:
                what, started = late[0]
                name = what if isinstance(what, str) else (
                    f"{what[0]}({what[1]}, {what[2]} x {what[3]})")
                _abort(self.comm, f"amber.distributed: rank {self.rank} of {self.size}: "
                       f"{name} did not complete within {self.timeout:g} s (started "
                       f"{now - started:.0f} s ago); another rank has probably failed, "
                       f"exited or stopped calling collectives. Aborting the job.")

    def close(self) -> None:
        self.closed = True
        self._fast_ops = {}
        self._stop.set()

    def check_rank(self, r: int, what: str) -> None:
        if not isinstance(r, int) or not 0 <= r < self.size:
            raise DistributedError(f"{what}={r!r} is not a rank of this group "
                                   f"(0..{self.size - 1})")

    # -------------------------------------------------------------- collectives
    # NOTE: a blocking collective (``blocking=True``) runs the MPI call at once, under the
    # watchdog, and returns a completed Work: blocking MPI calls are cheaper than a
    # non-blocking start and wait (about 4x for small buffers with MPICH).
    def _run(self, name: str, blocking: bool, start: Callable[[], Any],
             call: Callable[[], Any], finish: Callable[[], None] | None = None) -> Work:
        if blocking:
            with self.watch(name):
                call()
            return Work(self, name, None, finish)
        return Work(self, name, start(), finish)

    def fast_all_reduce(self, buf: np.ndarray, op: Any) -> bool:
        """The hot path: a blocking in-place all-reduce of a C-contiguous, writeable
        floating buffer (no Work, no closures, no allocation). False, having done
        nothing, when ``buf`` is not such a buffer, ``op`` no ``ReduceOp`` or the group
        closed."""
        mpi_op = self._fast_ops.get(op)
        if mpi_op is None:
            return False
        if self._checked() is not buf:  # checks once per buffer while it is reused
            if not (buf.flags.carray and buf.dtype.kind == "f"):
                return False
            self._checked = weakref.ref(buf)
            self._divisor = buf.dtype.type(self.size)
        self._hot = (op, buf)
        try:
            self._allreduce(self._in_place, buf, mpi_op)
        finally:
            self._hot = None
        if op is _AVG:
            np.divide(buf, self._divisor, buf)
        return True

    def all_reduce(self, buf: np.ndarray, op: ReduceOp, blocking: bool = False) -> Work:
        mpi_op = self._ops[op]
        if blocking and self.fast_all_reduce(buf, op):
            return _DONE
        MPI = _mpi()
        if buf.dtype == np.bool_ and op is not ReduceOp.MAX and op is not ReduceOp.MIN:
            raise DistributedError(f"all_reduce: {op.name} of a bool tensor; use MAX (any) "
                                   f"or MIN (all), or convert to an integer dtype")
        finish = None
        if op is ReduceOp.AVG:
            if not np.issubdtype(buf.dtype, np.floating):
                raise DistributedError(f"all_reduce: AVG needs a floating tensor, got "
                                       f"{buf.dtype}; use SUM")
            size = buf.dtype.type(self.size)

            def finish() -> None:
                np.divide(buf, size, buf)
        return self._run(f"all_reduce({op.name}, {buf.size} x {buf.dtype})", blocking,
                         lambda: self.comm.Iallreduce(MPI.IN_PLACE, buf, op=mpi_op),
                         lambda: self.comm.Allreduce(MPI.IN_PLACE, buf, op=mpi_op), finish)

    # The gradient reducer's primitives: raw MPI requests, no Work objects.
    def start_all_reduce(self, buf: np.ndarray) -> Any:
        """Start an in-place SUM all-reduce of ``buf``; returns its MPI request."""
        return self.comm.Iallreduce(self._in_place, buf, self._ops[ReduceOp.SUM])

    def test_all(self, requests: list[Any]) -> bool:
        """True when every request is done (and drives the MPI progress engine)."""
        return bool(self._request.Testall(requests))

    def wait_all(self, requests: list[Any], name: str) -> None:
        """Wait for all ``requests`` together, under the watchdog.
        NOTE: with MPICH, waiting on one request while others are in flight is several
        times slower than one ``Waitall`` over all of them."""
        with self.watch(name):
            self._request.Waitall(requests)

    def broadcast(self, buf: np.ndarray, src: int, blocking: bool = False) -> Work:
        return self._run(f"broadcast(src={src}, {buf.size} x {buf.dtype})", blocking,
                         lambda: self.comm.Ibcast(buf, root=src),
                         lambda: self.comm.Bcast(buf, root=src))

    def all_gather(self, src: np.ndarray, outs: list[np.ndarray],
                   blocking: bool = False) -> Work:
        recv = np.empty((self.size, *src.shape), dtype=src.dtype)
        send = np.ascontiguousarray(src)

        def finish() -> None:
            for r, o in enumerate(outs):
                o[...] = recv[r]
        return self._run(f"all_gather({src.size} x {src.dtype})", blocking,
                         lambda: self.comm.Iallgather(send, recv),
                         lambda: self.comm.Allgather(send, recv), finish)

    def barrier(self, blocking: bool = False) -> Work:
        return self._run("barrier", blocking, self.comm.Ibarrier, self.comm.Barrier)

    def all_gather_object(self, obj: Any) -> list[Any]:
        with self.watch("all_gather_object"):
            return list(self.comm.allgather(obj))

    def broadcast_object(self, obj: Any, src: int) -> Any:
        with self.watch("broadcast_object_list"):
            return self.comm.bcast(obj, root=src)


class _Watch:
    """Registers a blocking MPI call with the watchdog for its duration."""

    def __init__(self, group: Group, name: str) -> None:
        self.group, self.name = group, name

    def __enter__(self) -> None:
        self.key = next(self.group._counter)
        self.group._in_flight[self.key] = (self.name, time.monotonic())

    def __exit__(self, *exc: Any) -> None:
        self.group._in_flight.pop(self.key, None)


def _abort(comm: Any, message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    finally:
        comm.Abort(1)
        os._exit(1)  # NOTE: Abort does not return; this is belt and braces


_HOOKED = False


def _install_excepthook(comm: Any) -> None:
    """An uncaught exception on one rank would leave the others blocked in a collective:
    print it, then abort every rank (what ``python -m mpi4py`` does)."""
    global _HOOKED
    if _HOOKED:
        return
    _HOOKED = True
    previous = sys.excepthook

    def hook(kind: Any, value: Any, tb: Any) -> None:
        rank = comm.Get_rank()
        sys.stderr.write(f"amber.distributed: rank {rank} failed with an uncaught "
                         f"exception; aborting every rank of the job\n")
        try:
            previous(kind, value, tb)
        except Exception:  # pragma: no cover - a broken previous hook
            traceback.print_exception(kind, value, tb)
        sys.stderr.flush()
        comm.Abort(1)

    sys.excepthook = hook
    previous_thread = threading.excepthook

    def thread_hook(args: Any) -> None:
        previous_thread(args)
        sys.stderr.flush()
        comm.Abort(1)

    threading.excepthook = thread_hook


def new_group(timeout: float) -> Group:
    MPI = _mpi()
    if not MPI.Is_initialized():  # pragma: no cover - mpi4py initialises on import
        MPI.Init_thread(MPI.THREAD_MULTIPLE)
    comm = MPI.COMM_WORLD.Dup()
    _install_excepthook(comm)
    return Group(comm, timeout)


class _Done(Work):
    """The completed Work of a blocking collective."""

    def __init__(self) -> None:
        self._done, self._finish = True, None

    def wait(self, timeout: Any = None) -> None:
        return None


_DONE = _Done()
