"""``amber.distributed``: collectives over MPI with PyTorch's names.

Launch one process per rank with ``mpiexec -n N python train.py``; each calls
``init_process_group(backend="mpi")`` and then ``all_reduce``, ``broadcast``,
``all_gather``, ``barrier``. Communication runs on MPI through ``mpi4py`` (extra
``amber[distributed]``); amber has no network layer of its own.

Faults never hang a job: an uncaught exception on any rank prints its traceback and
aborts every rank (``MPI_Abort``), and a collective that has not completed within the
process group's ``timeout`` aborts the job with a message naming the rank and the
operation (a watchdog thread, as PyTorch's NCCL watchdog does)."""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np

from ..errors import DistributedError
from ..tensor import Tensor
from . import _mpi
from ._mpi import Group, ReduceOp, Work, group_or_default, new_group, set_group

__all__ = [
    "ReduceOp",
    "Work",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "destroy_process_group",
    "get_backend",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_initialized",
    "is_mpi_available",
]

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


def is_available() -> bool:
    """True when a backend (MPI through ``mpi4py``) can be imported."""
    return is_mpi_available()


def is_mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def init_process_group(backend: str = "mpi", init_method: str | None = None,
                       timeout: datetime.timedelta | float | None = None,
                       world_size: int = -1, rank: int = -1) -> None:
    """Join the job's process group. With ``backend="mpi"`` rank and world size come from
    the MPI launcher (``mpiexec -n N``); passing others that disagree is an error.
    ``timeout`` (a ``timedelta`` or seconds, default 30 min) bounds every collective."""
    if backend not in ("mpi", None):
        raise DistributedError(f"init_process_group: backend {backend!r} is not supported; "
                               f"amber's backend is 'mpi' (launch with mpiexec -n N)")
    if init_method not in (None, "env://", "mpi://"):
        raise DistributedError(f"init_process_group: init_method {init_method!r}: the MPI "
                               f"backend takes ranks from the launcher; omit init_method")
    if _mpi.DEFAULT is not None:
        raise DistributedError("init_process_group: the default process group is already "
                               "initialised; call destroy_process_group() first")
    seconds = _seconds(DEFAULT_TIMEOUT if timeout is None else timeout)
    group = new_group(seconds)
    if world_size not in (-1, group.size) or rank not in (-1, group.rank):
        got = (group.rank, group.size)
        group.close()
        raise DistributedError(f"init_process_group: rank={rank}, world_size={world_size} "
                               f"disagree with the MPI launcher's rank {got[0]} of {got[1]}")
    set_group(group)


def _seconds(timeout: datetime.timedelta | float) -> float:
    s = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not s > 0:
        raise DistributedError(f"timeout must be positive, got {timeout!r}")
    return s


def is_initialized() -> bool:
    return _mpi.DEFAULT is not None


def get_backend(group: Group | None = None) -> str:
    group_or_default(group)
    return "mpi"


def get_rank(group: Group | None = None) -> int:
    return group_or_default(group).rank


def get_world_size(group: Group | None = None) -> int:
    return group_or_default(group).size


def destroy_process_group(group: Group | None = None) -> None:
    """Leave the process group (its watchdog stops; MPI itself finalises at exit)."""
    g = group_or_default(group)
    g.close()
    if g is _mpi.DEFAULT:
        set_group(None)


def _buffer(tensor: Tensor, what: str) -> np.ndarray:
    if not isinstance(tensor, Tensor):
        raise DistributedError(f"{what}: expected an amber Tensor, got {type(tensor).__name__}")
    data = tensor._data
    if data is None:
        raise DistributedError(f"{what}: collectives run eagerly; they cannot be captured "
                               f"into an exported program")
    if not (data.flags.c_contiguous and data.flags.writeable):
        data = np.ascontiguousarray(data).copy()
        tensor._data = data
    return data


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group: Group | None = None,
               async_op: bool = False) -> Work | None:
    """Reduce ``tensor`` across ranks in place (SUM, AVG, MAX, MIN, PRODUCT); every rank
    ends with the result. With ``async_op`` returns a ``Work`` to ``wait()`` on."""
    g = _mpi.DEFAULT if group is None else group
    # NOTE: the fast path (a blocking reduction of a floating tensor's own C-contiguous,
    # writeable buffer) runs straight into MPI_Allreduce(MPI_IN_PLACE): its overhead
    # over raw mpi4py is what small messages pay on every call.
    if g is not None and not async_op and type(tensor) is Tensor:
        data = tensor._data
        if data is not None and g.fast_all_reduce(data, op):
            return None
    g = group_or_default(group)
    work = g.all_reduce(_buffer(tensor, "all_reduce"), ReduceOp(op), not async_op)
    if async_op:
        return work
    work.wait()
    return None


def broadcast(tensor: Tensor, src: int = 0, group: Group | None = None,
              async_op: bool = False) -> Work | None:
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every rank (shapes and dtypes must
    agree)."""
    g = group_or_default(group)
    g.check_rank(src, "broadcast src")
    work = g.broadcast(_buffer(tensor, "broadcast"), src, not async_op)
    if async_op:
        return work
    work.wait()
    return None


def all_gather(tensor_list: list[Tensor], tensor: Tensor, group: Group | None = None,
               async_op: bool = False) -> Work | None:
    """Fill ``tensor_list[r]`` with rank r's ``tensor`` (a list of world-size tensors of
    ``tensor``'s shape and dtype)."""
    g = group_or_default(group)
    if not isinstance(tensor_list, list) or len(tensor_list) != g.size:
        raise DistributedError(f"all_gather: tensor_list must be a list of {g.size} tensors "
                               f"(one per rank)")
    src = _buffer(tensor, "all_gather")
    outs = [_buffer(t, "all_gather") for t in tensor_list]
    for i, o in enumerate(outs):
        if o.shape != src.shape or o.dtype != src.dtype:
            raise DistributedError(f"all_gather: tensor_list[{i}] has shape {o.shape} "
                                   f"{o.dtype}, the input {src.shape} {src.dtype}")
    work = g.all_gather(src, outs, not async_op)
    if async_op:
        return work
    work.wait()
    return None


def all_gather_object(object_list: list[Any], obj: Any, group: Group | None = None) -> None:
    """Fill ``object_list[r]`` with rank r's ``obj`` (pickled by mpi4py: use it only for
    data the job itself produced)."""
    g = group_or_default(group)
    if not isinstance(object_list, list) or len(object_list) != g.size:
        raise DistributedError(f"all_gather_object: object_list must have {g.size} entries")
    object_list[:] = g.all_gather_object(obj)


def broadcast_object_list(object_list: list[Any], src: int = 0,
                          group: Group | None = None) -> None:
    """Replace ``object_list``'s entries with rank ``src``'s."""
    g = group_or_default(group)
    g.check_rank(src, "broadcast_object_list src")
    object_list[:] = g.broadcast_object(list(object_list), src)


def barrier(group: Group | None = None, async_op: bool = False) -> Work | None:
    """Wait until every rank has reached the barrier."""
    work = group_or_default(group).barrier(not async_op)
    if async_op:
        return work
    work.wait()
    return None
