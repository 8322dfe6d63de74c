"""mpiexec -n 2 python collectives.py: every collective on every rank; prints results."""

from __future__ import annotations

import numpy as np
from common import emit

import amber as am
import amber.distributed as dist
from amber.errors import DistributedError
from amber.tensor import Tensor

assert not dist.is_initialized()
dist.init_process_group("mpi", timeout=60)
r, w = dist.get_rank(), dist.get_world_size()
out: dict = {"rank": r, "world": w, "backend": dist.get_backend()}
for op in ("SUM", "AVG", "MAX", "MIN", "PRODUCT"):
    t = am.tensor(np.array([1.0, 2.0, -3.0]) * (r + 1))
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    out[op] = t.numpy().tolist()
# buffers the fast path must not take: read-only, Fortran-ordered (each is copied first)
ro = np.array([1.0, 2.0]) * (r + 1)
ro.flags.writeable = False
fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3) * (r + 1))
odd = [Tensor._wrap(ro), Tensor._wrap(fortran)]
for t in odd:
    dist.all_reduce(t)
out["odd_buffers"] = [t.numpy().tolist() for t in odd]
again = am.tensor(np.full(3, float(r + 1)))  # one buffer reduced twice in a row
dist.all_reduce(again)
dist.all_reduce(again, op=dist.ReduceOp.AVG)
out["again"] = again.numpy().tolist()
ti = am.tensor(np.array([r + 1, 10 * (r + 1)], dtype=np.int64))
dist.all_reduce(ti)
out["int_sum"] = ti.numpy().tolist()
b = am.tensor(np.full((2, 2), float(r + 5)))
dist.broadcast(b, src=1)
out["broadcast"] = b.numpy().tolist()
gathered = [am.zeros(3) for _ in range(w)]
dist.all_gather(gathered, am.full((3,), float(r)))
out["all_gather"] = [g.numpy().tolist() for g in gathered]
work = dist.all_reduce(am.tensor(np.ones(4)), async_op=True)
assert work is not None
work.wait()
objs: list = [None] * w
dist.all_gather_object(objs, {"rank": r})
out["objects"] = objs
lst = [r, "x"] if r == 0 else [None, None]
dist.broadcast_object_list(lst, src=0)
out["bcast_objects"] = lst
dist.barrier()
errors = []
for bad in (lambda: dist.broadcast(am.zeros(1), src=w),
            lambda: dist.all_reduce(am.tensor(np.array([True])), op=dist.ReduceOp.SUM),
            lambda: dist.all_reduce(am.tensor(np.array([1])), op=dist.ReduceOp.AVG),
            lambda: dist.init_process_group("mpi"),
            lambda: dist.init_process_group("nccl")):
    try:
        bad()
        errors.append(None)
    except DistributedError as e:
        errors.append(str(e))
out["errors"] = errors
emit(out)
dist.destroy_process_group()
assert not dist.is_initialized()
