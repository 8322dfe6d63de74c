"""``DistributedDataParallel``: one model replica per rank, gradients averaged across ranks
during ``backward()``.

As PyTorch's reducer does, parameters are grouped into size-bounded buckets in the
reverse order of ``module.parameters()`` (roughly the order backward produces their
gradients), each bucket backed by one flat buffer. A post-accumulate-grad hook copies each
parameter's finished gradient into its slice of the buffer, divided by the world size on
the way (one pass; the all-reduce then sums them into the average). Once a bucket is
complete, and every bucket before it has been launched, a non-blocking all-reduce
(``MPI_Iallreduce``) of its buffer starts while backward goes on; every later hook polls
the reductions in flight (``MPI_Testall``) so that the MPI library moves their data along
(MPICH progresses non-blocking collectives only inside MPI calls). When backward
finishes, the remaining buckets are launched, all are awaited together (``MPI_Waitall``)
and each ``.grad`` becomes a view of its bucket's averaged buffer. Buckets are reduced in
index order on every rank, so the collectives match across ranks whatever order the hooks
fire in, and every element is the same fixed sum: the result is deterministic."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ... import autograd
from ... import distributed as dist
from ..._tree import tree_flatten
from ...errors import DistributedError
from ...ops.registry import is_grad_enabled, no_grad
from ...tensor import Tensor
from ..modules.module import Module

_MB = 1024 * 1024
FIRST_BUCKET_BYTES = 1 * _MB  # small first bucket: communication starts early


class _Bucket:
    """Parameters of one dtype whose gradients travel in one all-reduce."""

    def __init__(self, index: int, params: list[tuple[str, Tensor]],
                 persistent: bool) -> None:
        self.index = index
        self.params = params
        self.dtype: np.dtype[Any] = params[0][1]._data.dtype  # type: ignore[union-attr]
        self.slices: dict[int, slice] = {}
        off = 0
        for _, p in params:
            n = p._data.size  # type: ignore[union-attr]
            self.slices[id(p)] = slice(off, off + n)
            off += n
        self.numel = off
        # With gradient_as_bucket_view one buffer serves every step (the gradients are
        # views of it); otherwise each step fills a fresh one that DDP then lets go of.
        self.persistent = np.zeros(off, self.dtype) if persistent else None
        self.pending: set[int] = set()
        self.buffer: np.ndarray | None = None
        self.request: Any = None

    def begin(self) -> None:
        self.pending = set(self.slices)
        self.buffer = (self.persistent if self.persistent is not None
                       else np.empty(self.numel, self.dtype))
        self.request = None

    def put(self, param: Tensor, scale: Any) -> None:
        """``param.grad / world`` into its slice (zeros when it has no gradient)."""
        assert self.buffer is not None
        if id(param) not in self.pending:  # its bucket may be in flight already
            raise DistributedError(
                "DistributedDataParallel: a parameter received a gradient twice in one "
                "backward, or after find_unused_parameters found it unused in the "
                "forward (did a forward run outside the DDP wrapper?)")
        self.pending.discard(id(param))
        out = self.buffer[self.slices[id(param)]]
        g = None if param.grad is None else param.grad._data
        if g is None:
            out[...] = 0
        else:
            np.multiply(g, scale, out=out.reshape(g.shape))

    def publish(self, used: np.ndarray | None) -> None:
        """Every ``.grad`` becomes a view of the averaged buffer (or stays None where
        ``used`` says no rank had a gradient for it)."""
        assert self.buffer is not None
        for i, (_, p) in enumerate(self.params):
            if used is not None and not used[i]:
                continue
            p.grad = Tensor._wrap(self.buffer[self.slices[id(p)]].reshape(p.shape))
        self.buffer = None if self.persistent is None else self.buffer


def _leaves_reached(outputs: list[Any]) -> set[int]:
    """ids of the leaf tensors the autograd graph of ``outputs`` reaches."""
    leaves: set[int] = set()
    seen: set[int] = set()
    stack = [t for t in outputs if isinstance(t, Tensor) and t._node is not None]
    while stack:
        node = stack.pop()._node
        for inp in (node.inputs or ()) if node is not None else ():
            if inp._node is None:
                leaves.add(id(inp))
            elif id(inp) not in seen:
                seen.add(id(inp))
                stack.append(inp)
    return leaves


def _make_buckets(params: list[tuple[str, Tensor]], cap_bytes: int,
                  persistent: bool) -> list[_Bucket]:
    groups: list[list[tuple[str, Tensor]]] = []
    by_dtype: dict[Any, list[tuple[str, Tensor]]] = {}
    limit = min(FIRST_BUCKET_BYTES, cap_bytes)
    size: dict[Any, int] = {}
    for name, p in reversed(params):
        key = p._data.dtype  # type: ignore[union-attr]
        current = by_dtype.setdefault(key, [])
        nbytes = p._data.nbytes  # type: ignore[union-attr]
        if current and size[key] + nbytes > limit:
            groups.append(current)
            current = by_dtype[key] = []
            size[key] = 0
            limit = cap_bytes
        current.append((name, p))
        size[key] = size.get(key, 0) + nbytes
    groups += [current for current in by_dtype.values() if current]
    return [_Bucket(i, g, persistent) for i, g in enumerate(groups)]


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training: ``DistributedDataParallel(model)``.

    At construction rank 0's parameters and buffers are copied to every rank. Each
    ``backward()`` averages the gradients of all parameters that require grad across the
    ranks. ``no_sync()`` skips the averaging (gradients accumulate locally until the next
    synchronised backward). Buffers (BatchNorm running statistics) are computed per rank
    and, with ``broadcast_buffers=True`` (PyTorch's default), replaced by rank 0's at the
    start of every forward. ``state_dict`` keys carry the ``module.`` prefix, as PyTorch's.

    ``find_unused_parameters=True`` lets a backward leave some parameters without a
    gradient: they count as zeros in the average, and a parameter no rank has a gradient
    for keeps ``.grad`` None (one extra small all-reduce per backward tells the ranks
    apart); otherwise such a backward raises ``DistributedError`` naming them.

    ``gradient_as_bucket_view=True`` keeps one buffer per bucket for the whole run and
    leaves every ``.grad`` a view of it (no allocation per step; a ``.grad`` held across
    a ``backward()`` is overwritten by the next one, as in PyTorch). By default each step
    averages into fresh buffers."""

    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None,
                 dim: int = 0, broadcast_buffers: bool = True, process_group: Any = None,
                 bucket_cap_mb: float | None = None, find_unused_parameters: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise DistributedError(f"DistributedDataParallel wraps an amber.nn.Module, got "
                                   f"{type(module).__name__}")
        if device_ids not in (None, [], ["cpu"]) or output_device not in (None, "cpu"):
            raise DistributedError("DistributedDataParallel: amber runs on the CPU; pass no "
                                   "device_ids / output_device")
        self.module = module
        group = dist._mpi.group_or_default(process_group)
        object.__setattr__(self, "_group", group)
        object.__setattr__(self, "broadcast_buffers", broadcast_buffers)
        object.__setattr__(self, "find_unused_parameters", find_unused_parameters)
        object.__setattr__(self, "require_backward_grad_sync", True)
        cap = int((25.0 if bucket_cap_mb is None else bucket_cap_mb) * _MB)
        if cap <= 0:
            raise DistributedError(f"bucket_cap_mb must be positive, got {bucket_cap_mb}")
        params: list[tuple[str, Tensor]] = [(n, p) for n, p in module.named_parameters()
                                            if p.requires_grad]
        self._sync_module_state()
        buckets = _make_buckets(params, cap, gradient_as_bucket_view)
        object.__setattr__(self, "_buckets", buckets)
        object.__setattr__(self, "_bucket_of", {id(p): b for b in buckets
                                                for _, p in b.params})
        object.__setattr__(self, "_scales", {b.dtype: b.dtype.type(1.0 / group.size)
                                             for b in buckets})
        object.__setattr__(self, "_next_launch", 0)
        object.__setattr__(self, "_in_flight", [])
        object.__setattr__(self, "_active", False)
        object.__setattr__(self, "_unused", [])
        object.__setattr__(self, "_handles", [autograd.register_post_accumulate_grad_hook(
            p, self._on_grad_ready) for _, p in params])

    # -------------------------------------------------------------- state sync
    def _sync_module_state(self) -> None:
        """Rank 0's parameters and buffers, copied to every rank (one broadcast per
        dtype over a flattened buffer)."""
        tensors: list[Tensor] = [t for _, t in self.module.named_parameters()]
        tensors += [b for _, b in self.module.named_buffers()]
        self._broadcast_coalesced(tensors)

    def _broadcast_coalesced(self, tensors: list[Tensor]) -> None:
        by_dtype: dict[Any, list[Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t._data.dtype, []).append(t)  # type: ignore[union-attr]
        for dtype, ts in sorted(by_dtype.items(), key=lambda kv: str(kv[0])):
            arrays = [t.detach().numpy().reshape(-1) for t in ts]
            flat = Tensor._wrap(np.concatenate(arrays) if arrays else np.empty(0, dtype))
            dist.broadcast(flat, 0, group=self._group)
            off = 0
            with no_grad():
                for t, a in zip(ts, arrays, strict=True):
                    part = flat.numpy()[off:off + a.size]
                    t._assign(part.reshape(t.shape).copy())
                    off += a.size

    # -------------------------------------------------------------- running
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._check_previous_backward()
        if self.broadcast_buffers and self._group.size > 1:
            buffers = [b for _, b in self.module.named_buffers()]
            if buffers:
                self._broadcast_coalesced(buffers)
        out = self.module(*args, **kwargs)
        if self.find_unused_parameters and is_grad_enabled():
            # As PyTorch does: parameters the output does not depend on are ready from
            # the start of the coming backward, so their buckets need not wait for it.
            reached = _leaves_reached(tree_flatten(out)[0])
            object.__setattr__(self, "_unused", [p for b in self._buckets
                                                 for _, p in b.params
                                                 if id(p) not in reached])
        return out

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside the block accumulate gradients locally, without
        communication; the first backward after it averages everything accumulated."""
        previous = self.require_backward_grad_sync
        object.__setattr__(self, "require_backward_grad_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "require_backward_grad_sync", previous)

    # -------------------------------------------------------------- the reducer
    def _check_previous_backward(self) -> None:
        """A backward that raised midway never ran ``_finalize``: its buckets are half
        filled and some of its all-reduces may be in flight, launched on this rank only.
        NOTE: no rank can recover that alone (the ranks' collectives no longer pair up),
        so the next step refuses to start, as PyTorch's reducer does."""
        if self._active and not autograd.in_backward():
            raise DistributedError(
                "DistributedDataParallel: the previous backward() raised before it finished, "
                "so its gradient averaging never completed and this rank's collectives no "
                "longer match the other ranks'. Let the exception end the job on every rank "
                "and resume from a checkpoint")

    def _on_grad_ready(self, param: Tensor) -> None:
        if not self.require_backward_grad_sync:
            return
        if not self._active:
            for b in self._buckets:
                b.begin()
            object.__setattr__(self, "_next_launch", 0)
            object.__setattr__(self, "_active", True)
            autograd.queue_callback(self._finalize)
            for p in self._unused:
                self._bucket_of[id(p)].put(p, self._scales[self._bucket_of[id(p)].dtype])
            if self._unused:
                self._launch_ready()
        bucket = self._bucket_of[id(param)]
        bucket.put(param, self._scales[bucket.dtype])
        if not bucket.pending and bucket.index == self._next_launch:
            self._launch_ready()
        if self._in_flight and self._group.test_all(self._in_flight):
            self._in_flight.clear()  # progress for the reductions in flight

    def _launch_ready(self) -> None:
        """Launch buckets in index order, as far as they are complete."""
        i = self._next_launch
        while i < len(self._buckets) and not self._buckets[i].pending:
            b = self._buckets[i]
            b.request = self._group.start_all_reduce(b.buffer)
            self._in_flight.append(b.request)
            i += 1
        object.__setattr__(self, "_next_launch", i)

    def _finalize(self) -> None:
        """At the end of backward: the parameters that got no gradient enter their
        buckets as they are (an earlier ``no_sync`` gradient, else zeros), the remaining
        buckets launch, and every bucket is awaited and published."""
        object.__setattr__(self, "_active", False)
        missing = [(n, p) for b in self._buckets for n, p in b.params if id(p) in b.pending]
        for _, p in missing:
            bucket = self._bucket_of[id(p)]
            bucket.put(p, self._scales[bucket.dtype])
        self._launch_ready()
        requests = [b.request for b in self._buckets]
        self._in_flight.clear()
        self._group.wait_all(requests, f"DistributedDataParallel: all-reduce of "
                             f"{len(requests)} gradient buckets")
        if missing and not self.find_unused_parameters:
            # NOTE: every rank ran the same collectives above, so none is left waiting.
            names = [n for n, _ in missing]
            raise DistributedError(
                "DistributedDataParallel: backward() gave no gradient to parameter(s) "
                + ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
                + "; pass find_unused_parameters=True if the forward pass does not use "
                "every parameter")
        used = self._globally_used() if self.find_unused_parameters else None
        off = 0
        for b in self._buckets:
            b.publish(None if used is None else used[off:off + len(b.params)])
            off += len(b.params)

    def _globally_used(self) -> np.ndarray:
        """Per parameter (in bucket order): 1 where some rank has a gradient for it."""
        used = np.array([p.grad is not None for b in self._buckets for _, p in b.params],
                        dtype=np.uint8)
        dist.all_reduce(Tensor._wrap(used), dist.ReduceOp.MAX, group=self._group)
        return used

    def __del__(self) -> None:
        try:
            for h in self._handles:
                h.remove()
        except Exception:
            pass
