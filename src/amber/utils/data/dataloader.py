"""``DataLoader``: batches from a dataset, in the main process or in worker processes,
with ``torch.utils.data.DataLoader``'s arguments and defaults."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ...creation import Generator, default_generator
from ...errors import AmberError, ArgumentError
from . import _worker
from ._collate import default_collate, default_convert
from .dataset import Dataset, IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

T_co = TypeVar("T_co", covariant=True)

# how often the main process checks that its workers are alive while it waits
_POLL_S = 1.0


class _InfiniteConstantSampler(Sampler[None]):
    """The sampler of an ``IterableDataset``: the dataset itself decides what comes."""

    def __iter__(self) -> Iterator[None]:
        while True:
            yield None


class DataLoader(Generic[T_co]):
    """Iterate over ``dataset`` in batches.

    ``batch_size`` samples (``None``: no batching, each sample passes through
    ``default_convert``) are drawn in order, or shuffled (``shuffle=True``, a fresh
    order per epoch from ``generator``), or by a ``sampler`` / ``batch_sampler``, and
    joined by ``collate_fn`` (default :func:`default_collate`). ``drop_last`` drops a
    last, incomplete batch.

    ``num_workers > 0`` loads batches in that many worker processes (``multiprocessing``,
    ``multiprocessing_context`` or the platform default), ``prefetch_factor`` batches
    ahead per worker, yielding them in sampler order. Each worker seeds amber's default
    generator, ``random`` and NumPy's global generator with ``base_seed + worker_id``
    and then calls ``worker_init_fn(worker_id)``; :func:`get_worker_info` tells a
    dataset which worker it runs in. ``persistent_workers`` keeps the workers between
    epochs. ``timeout`` (seconds, 0: no limit) bounds the wait for one batch; a worker
    that dies or raises is reported in the main process.

    ``pin_memory`` and ``pin_memory_device`` are accepted for PyTorch compatibility and
    change nothing: amber tensors live in host memory already."""

    def __init__(self, dataset: Dataset[T_co], batch_size: int | None = 1,
                 shuffle: bool | None = None, sampler: Any = None, batch_sampler: Any = None,
                 num_workers: int = 0, collate_fn: Callable[[Any], Any] | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable[[int], Any] | None = None,
                 multiprocessing_context: Any = None, generator: Generator | None = None,
                 *, prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True) -> None:
        _check_workers(num_workers, timeout, prefetch_factor, persistent_workers)
        if isinstance(dataset, IterableDataset):
            for name, v in (("shuffle", shuffle), ("sampler", sampler),
                            ("batch_sampler", batch_sampler)):
                if v not in (None, False):
                    raise ArgumentError(f"DataLoader with IterableDataset: expected "
                                        f"unspecified {name} option, but got {name}={v!r}")
        elif shuffle not in (None, False) and sampler is not None:
            raise ArgumentError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ArgumentError("DataLoader: batch_sampler option is mutually exclusive "
                                    "with batch_size, shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ArgumentError("DataLoader: batch_size=None option disables auto-batching "
                                "and is mutually exclusive with drop_last")
        if sampler is None:
            if isinstance(dataset, IterableDataset):
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)  # type: ignore[arg-type]
            else:
                sampler = SequentialSampler(dataset)  # type: ignore[arg-type]
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor if prefetch_factor is not None or \
            num_workers == 0 else 2
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else default_convert)
        self._pool: _WorkerPool | None = None
        self._epoch = 0

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self) -> Any:
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)  # type: ignore[arg-type]
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)

    def __iter__(self) -> _LoaderIter:
        # NOTE: drawn with and without workers (as PyTorch), so that the sampler's
        # shuffle that follows is the same either way
        base_seed = int((self.generator or default_generator)._rng.integers(2**62))
        if self.num_workers == 0:
            return _LoaderIter(self, self._single_process())
        pool = self._pool
        if pool is None or not pool.alive():
            pool = _WorkerPool(self, base_seed)
            if self.persistent_workers:
                self._pool = pool
        self._epoch += 1
        return _LoaderIter(self, pool.epoch(self._epoch, not self.persistent_workers))

    def _single_process(self) -> Iterator[Any]:
        ds, collate = self.dataset, self.collate_fn
        if isinstance(ds, IterableDataset):
            it = iter(ds)
            if not self._auto_collation:
                for item in it:
                    yield collate(item)
                return
            while True:
                batch = list(itertools.islice(it, self.batch_size))
                if not batch or (self.drop_last and len(batch) < (self.batch_size or 0)):
                    return
                yield collate(batch)
        for indices in self._index_sampler:
            if self._auto_collation:
                yield collate(_worker.fetch_many(ds, indices))
            else:
                yield collate(ds[indices])  # type: ignore[arg-type]

    def __del__(self) -> None:
        pool = self.__dict__.get("_pool")
        if pool is not None:
            pool.shutdown()


def _check_workers(num_workers: int, timeout: float, prefetch_factor: int | None,
                   persistent_workers: bool) -> None:
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ArgumentError(f"DataLoader: num_workers option should be a non-negative "
                            f"integer, got {num_workers!r}")
    if timeout < 0:
        raise ArgumentError(f"DataLoader: timeout option should be non-negative, got "
                            f"{timeout!r}")
    if num_workers == 0 and prefetch_factor is not None:
        raise ArgumentError("DataLoader: prefetch_factor option could only be specified in "
                            "multiprocessing; let num_workers > 0 to enable it")
    if prefetch_factor is not None and prefetch_factor < 1:
        raise ArgumentError(f"DataLoader: prefetch_factor option should be a positive "
                            f"integer, got {prefetch_factor!r}")
    if persistent_workers and num_workers == 0:
        raise ArgumentError("DataLoader: persistent_workers option needs num_workers > 0")


class _LoaderIter:
    """What ``iter(loader)`` returns: an iterator that also knows ``len``."""

    def __init__(self, loader: DataLoader[Any], gen: Iterator[Any]) -> None:
        self._loader = loader
        self._gen = gen

    def __iter__(self) -> _LoaderIter:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def __len__(self) -> int:
        return len(self._loader)


class _WorkerPool:
    """Worker processes, one task queue each and one shared result queue."""

    def __init__(self, loader: DataLoader[Any], base_seed: int) -> None:
        ctx = loader.multiprocessing_context
        if ctx is None:
            ctx = mp.get_context()
        elif isinstance(ctx, str):
            ctx = mp.get_context(ctx)
        self.loader = loader
        self.n = loader.num_workers
        self.data_queue = ctx.Queue()
        self.index_queues = [ctx.Queue() for _ in range(self.n)]
        iterable = isinstance(loader.dataset, IterableDataset)
        self.procs = []
        for w in range(self.n):
            p = ctx.Process(target=_worker.worker_loop, daemon=True, args=(
                loader.dataset, iterable, loader._auto_collation, loader.collate_fn,
                loader.drop_last, loader.batch_size, self.index_queues[w], self.data_queue,
                w, self.n, base_seed + w, loader.worker_init_fn, os.getpid()))
            p.start()
            self.procs.append(p)
        self.closed = False
        self.current_epoch = -1  # the epoch whose iterator may fetch results

    def alive(self) -> bool:
        return not self.closed and all(p.is_alive() for p in self.procs)

    def shutdown(self, now: bool = False) -> None:
        """Stop the workers: ask them to exit (``now``: terminate them at once)."""
        if self.closed:
            return
        self.closed = True
        for q in self.index_queues:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for p in self.procs:
            if now:
                p.terminate()
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        for q in [*self.index_queues, self.data_queue]:
            q.cancel_join_thread()
            q.close()

    def _get(self, epoch: int) -> tuple[int, Any]:
        """The next result of ``epoch`` (stale results of an abandoned epoch dropped)."""
        timeout = self.loader.timeout
        start = time.monotonic()
        while True:
            self._check_current(epoch)
            wait = _POLL_S if not timeout else min(_POLL_S, timeout)
            try:
                e, idx, data = self.data_queue.get(timeout=wait)
            except queue.Empty:
                dead = [p for p in self.procs if not p.is_alive()]
                if dead:
                    self.shutdown(now=True)
                    codes = ", ".join(f"pid {p.pid} exit code {p.exitcode}" for p in dead)
                    raise AmberError(f"DataLoader worker(s) exited unexpectedly ({codes})"
                                     ) from None
                if timeout and time.monotonic() - start > timeout:
                    self.shutdown(now=True)  # a stuck worker would not read its stop
                    raise AmberError(f"DataLoader timed out after {timeout} seconds "
                                     f"waiting for a batch from its workers") from None
                continue
            if e == epoch:
                return idx, data

    def _check_current(self, epoch: int) -> None:
        if epoch != self.current_epoch:
            raise AmberError("this DataLoader iterator was superseded: with "
                             "persistent_workers a new iter(loader) takes over the "
                             "workers, and earlier iterators stop")

    def epoch(self, epoch: int, close_after: bool) -> Iterator[Any]:
        """One pass over the loader's sampler (or the workers' streams), in order."""
        loader = self.loader
        self.current_epoch = epoch
        iterable = isinstance(loader.dataset, IterableDataset)
        sampler_it = None if iterable else iter(loader._index_sampler)
        active = [True] * self.n
        owner: dict[int, int] = {}
        buffer: dict[int, Any] = {}
        rr = itertools.cycle(range(self.n))
        sent = received = 0

        def send() -> bool:
            nonlocal sent
            if not any(active):
                return False
            indices = None
            if sampler_it is not None:
                indices = next(sampler_it, _DONE)
                if indices is _DONE:
                    return False
            w = next(rr)
            while not active[w]:
                w = next(rr)
            self.index_queues[w].put((epoch, sent, indices))
            owner[sent] = w
            sent += 1
            return True

        try:
            for _ in range(loader.prefetch_factor * self.n):  # type: ignore[operator]
                if not send():
                    break
            while received < sent:
                self._check_current(epoch)
                while received not in buffer:
                    idx, data = self._get(epoch)
                    buffer[idx] = data
                data = buffer.pop(received)
                received += 1
                if isinstance(data, _worker.IterableEnd):
                    active[data.worker_id] = False
                    send()
                    continue
                if isinstance(data, _worker.WorkerFailure):
                    data.reraise()
                send()
                yield data
        finally:
            if close_after:
                self.shutdown()


_DONE = object()

__all__ = ["DataLoader"]
