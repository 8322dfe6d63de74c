"""The MPI backend of ``amber.distributed``: a process group over an ``mpi4py``
communicator, with a watchdog that aborts the job when a collective stalls."""

from __future__ import annotations

import enum
import os
import sys
import threading
import time
import traceback
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
        self._watch_lock = threading.Lock()
        self._in_flight: dict[int, tuple[str, float]] = {}
        self._counter = 0
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch_loop, daemon=True,
                                          name="amber-distributed-watchdog")
        self._watchdog.start()

    # -------------------------------------------------------------- the watchdog
    def watch(self, name: str) -> _Watch:
        return _Watch(self, name)

    def _watch_loop(self) -> None:
        period = min(1.0, self.timeout / 4)
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._watch_lock:
                late = [(n, t) for n, t in self._in_flight.values() if now - t > self.timeout]
            if late:
                name, started = late[0]
                _abort(self.comm, f"amber.distributed: rank {self.rank} of {self.size}: "
                       f"{name} did not complete within {self.timeout:g} s (started "
                       f"{now - started:.0f} s ago); another rank has probably failed, "
                       f"exited or stopped calling collectives. Aborting the job.")

    def close(self) -> None:
        self.closed = True
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

    def all_reduce(self, buf: np.ndarray, op: ReduceOp, blocking: bool = False) -> Work:
        MPI = _mpi()
        mpi_op = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MAX: MPI.MAX,
                  ReduceOp.MIN: MPI.MIN, ReduceOp.PRODUCT: MPI.PROD}[op]
        if buf.dtype == np.bool_ and op is not ReduceOp.MAX and op is not ReduceOp.MIN:
            raise DistributedError(f"all_reduce: {op.name} of a bool tensor; use MAX (any) "
                                   f"or MIN (all), or convert to an integer dtype")
        finish = None
        if op is ReduceOp.AVG:
            if not np.issubdtype(buf.dtype, np.floating):
                raise DistributedError(f"all_reduce: AVG needs a floating tensor, got "
                                       f"{buf.dtype}; use SUM")
            size = self.size

            def finish() -> None:
                np.divide(buf, size, out=buf)
        return self._run(f"all_reduce({op.name}, {buf.size} x {buf.dtype})", blocking,
                         lambda: self.comm.Iallreduce(MPI.IN_PLACE, buf, op=mpi_op),
                         lambda: self.comm.Allreduce(MPI.IN_PLACE, buf, op=mpi_op), finish)

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
        g = self.group
        with g._watch_lock:
            g._counter += 1
            self.key = g._counter
            g._in_flight[self.key] = (self.name, time.monotonic())

    def __exit__(self, *exc: Any) -> None:
        with self.group._watch_lock:
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
