"""``DistributedDataParallel``: one model replica per rank, gradients averaged across ranks
during ``backward()``.

As PyTorch's reducer does, parameters are grouped into size-bounded buckets in the
reverse order of ``module.parameters()`` (roughly the order backward produces their
gradients). A post-accumulate-grad hook marks each parameter ready; once a bucket is
complete, and every bucket before it has been launched, its gradients are flattened into
one buffer and a non-blocking all-reduce starts while backward goes on (each later
hook drives the MPI progress engine of the reductions in flight).
When backward finishes, every bucket is awaited and the averaged gradients written back
into ``.grad``. Buckets are reduced in index order on every rank, so the collectives
match across ranks whatever order the hooks fire in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ... import autograd
from ... import distributed as dist
from ...errors import DistributedError
from ...ops.registry import no_grad
from ...tensor import Tensor
from ..modules.module import Module

_MB = 1024 * 1024
FIRST_BUCKET_BYTES = 1 * _MB  # small first bucket: communication starts early


class _Bucket:
    def __init__(self, index: int, params: list[tuple[str, Tensor]]) -> None:
        self.index = index
        self.params = params
        self.dtype = params[0][1]._data.dtype  # type: ignore[union-attr]
        self.sizes = [p._data.size for _, p in params]  # type: ignore[union-attr]
        self.numel = sum(self.sizes)
        self.pending: set[int] = set()
        self.buffer: np.ndarray | None = None
        self.work: Any = None

    def reset(self) -> None:
        self.pending = {id(p) for _, p in self.params}
        self.buffer = None
        self.work = None

    def flatten(self, world: int) -> None:
        """The bucket's gradients, each divided by the world size on the way in (one pass;
        the all-reduce then sums them into the average, as PyTorch's reducer does)."""
        buf = np.empty(self.numel, dtype=self.dtype)
        scale = self.dtype.type(1.0 / world)
        off = 0
        for (_, p), n in zip(self.params, self.sizes, strict=True):
            g = p.grad
            if g is None:
                buf[off:off + n] = 0
            else:
                np.multiply(g._data.reshape(-1), scale,  # type: ignore[union-attr]
                            out=buf[off:off + n])
            off += n
        self.buffer = buf

    def unflatten(self) -> None:
        assert self.buffer is not None
        off = 0
        for (_, p), n in zip(self.params, self.sizes, strict=True):
            p.grad = Tensor._wrap(self.buffer[off:off + n].reshape(p.shape))
            off += n


def _make_buckets(params: list[tuple[str, Tensor]], cap_bytes: int) -> list[_Bucket]:
    buckets: list[_Bucket] = []
    by_dtype: dict[Any, list[tuple[str, Tensor]]] = {}
    limit = min(FIRST_BUCKET_BYTES, cap_bytes)
    size: dict[Any, int] = {}
    for name, p in reversed(params):
        key = p._data.dtype  # type: ignore[union-attr]
        current = by_dtype.setdefault(key, [])
        nbytes = p._data.nbytes  # type: ignore[union-attr]
        if current and size[key] + nbytes > limit:
            buckets.append(_Bucket(len(buckets), current))
            current = by_dtype[key] = []
            size[key] = 0
            limit = cap_bytes
        current.append((name, p))
        size[key] = size.get(key, 0) + nbytes
    for current in by_dtype.values():
        if current:
            buckets.append(_Bucket(len(buckets), current))
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training: ``DistributedDataParallel(model)``.

    At construction rank 0's parameters and buffers are copied to every rank. Each
    ``backward()`` averages the gradients of all parameters that require grad across the
    ranks. ``no_sync()`` skips the averaging (gradients accumulate locally until the next
    synchronised backward). Buffers (BatchNorm running statistics) are computed per rank
    and, with ``broadcast_buffers=True`` (PyTorch's default), replaced by rank 0's at the
    start of every forward. ``state_dict`` keys carry the ``module.`` prefix, as PyTorch's.

    ``find_unused_parameters=True`` lets a backward leave some parameters without a
    gradient (they count as zeros in the average); otherwise such a backward raises."""

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
        object.__setattr__(self, "_buckets", _make_buckets(params, cap))
        object.__setattr__(self, "_bucket_of", {id(p): b for b in self._buckets
                                                for _, p in b.params})
        object.__setattr__(self, "_next_launch", 0)
        object.__setattr__(self, "_active", False)
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
        if self.broadcast_buffers and self._group.size > 1:
            buffers = [b for _, b in self.module.named_buffers()]
            if buffers:
                self._broadcast_coalesced(buffers)
        return self.module(*args, **kwargs)

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
    def _on_grad_ready(self, param: Tensor) -> None:
        if not self.require_backward_grad_sync:
            return
        if not self._active:
            for b in self._buckets:
                b.reset()
            object.__setattr__(self, "_next_launch", 0)
            object.__setattr__(self, "_active", True)
            autograd.queue_callback(self._finalize)
        bucket = self._bucket_of[id(param)]
        bucket.pending.discard(id(param))
        self._launch_ready()
        for b in self._buckets[:self._next_launch]:
            b.work.is_completed()  # progress for the reductions in flight

    def _launch_ready(self, force: bool = False) -> None:
        """Launch buckets in index order, as far as they are complete."""
        i = self._next_launch
        while i < len(self._buckets):
            b = self._buckets[i]
            if b.pending and not force:
                break
            b.flatten(self._group.size)
            b.work = self._group.all_reduce(b.buffer, dist.ReduceOp.SUM)
            i += 1
        object.__setattr__(self, "_next_launch", i)

    def _finalize(self) -> None:
        object.__setattr__(self, "_active", False)
        missing = [n for b in self._buckets for n, p in b.params if id(p) in b.pending]
        if missing and not self.find_unused_parameters:
            # NOTE: every rank runs the same code, so every rank stops here alike.
            self._launch_ready(force=True)
            self._wait_all()
            raise DistributedError(
                "DistributedDataParallel: backward() gave no gradient to parameter(s) "
                + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
                + "; pass find_unused_parameters=True if the forward pass does not use "
                "every parameter")
        self._launch_ready(force=True)
        self._wait_all()
        for b in self._buckets:
            b.unflatten()

    def _wait_all(self) -> None:
        for b in self._buckets:
            b.work.wait()

    def __del__(self) -> None:
        try:
            for h in self._handles:
                h.remove()
        except Exception:
            pass
