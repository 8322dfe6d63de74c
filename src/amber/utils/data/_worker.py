"""What runs inside a ``DataLoader`` worker process, and ``get_worker_info``."""

from __future__ import annotations

import queue
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# the poll interval of a worker waiting for work: it also checks its parent is alive
_POLL_S = 1.0


@dataclass(frozen=True)
class WorkerInfo:
    """In a worker process: its ``id`` (0 .. ``num_workers - 1``), ``num_workers``, its
    ``seed`` and its copy of the ``dataset``."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """The current worker's :class:`WorkerInfo`, or None in the main process. An
    ``IterableDataset`` uses it to give each worker its own part of the stream."""
    return _info


class WorkerFailure:
    """An exception raised in a worker, carried to the main process as text (the
    exception object itself may not pickle)."""

    def __init__(self, worker_id: int, exc: BaseException) -> None:
        self.exc_type = type(exc)
        self.message = (f"Caught {type(exc).__name__} in DataLoader worker process "
                        f"{worker_id}.\nOriginal Traceback (most recent call last):\n"
                        + "".join(traceback.format_exception(exc)))

    def reraise(self) -> None:
        try:
            err = self.exc_type(self.message)
        except Exception:  # an exception type whose constructor needs other arguments
            err = RuntimeError(self.message)
        raise err


class IterableEnd:
    """A worker's iterable-dataset stream is exhausted (for this epoch)."""

    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id


def _seed_worker(seed: int) -> None:
    from ...creation import manual_seed

    manual_seed(seed)
    random.seed(seed)
    # NOTE: PyTorch leaves NumPy's global generator alone, so every worker would draw
    # the same "random" augmentations; amber seeds it per worker too.
    np.random.seed(seed % 2**32)


def worker_loop(dataset: Any, iterable: bool, auto_collation: bool,
                collate_fn: Callable[[Any], Any], drop_last: bool, batch_size: int | None,
                index_queue: Any, data_queue: Any, worker_id: int, num_workers: int,
                seed: int, init_fn: Callable[[int], Any] | None, parent_pid: int) -> None:
    """Serve tasks ``(epoch, task_index, indices)`` from ``index_queue`` until ``None``;
    put ``(epoch, task_index, batch | WorkerFailure | IterableEnd)`` on ``data_queue``."""
    import os

    global _info
    _seed_worker(seed)
    _info = WorkerInfo(worker_id, num_workers, seed, dataset)
    init_error = None
    if init_fn is not None:
        try:
            init_fn(worker_id)
        except Exception as e:
            init_error = WorkerFailure(worker_id, e)
    it, it_epoch = None, -1
    while True:
        try:
            task = index_queue.get(timeout=_POLL_S)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return  # the main process died
            continue
        if task is None:
            return
        epoch, idx, indices = task
        if init_error is not None:
            data_queue.put((epoch, idx, init_error))
            continue
        try:
            if iterable:
                if it_epoch != epoch:
                    it, it_epoch = iter(dataset), epoch
                out = _next_iterable(it, auto_collation, collate_fn, drop_last, batch_size,
                                     worker_id)
            elif auto_collation:
                out = collate_fn(fetch_many(dataset, indices))
            else:
                out = collate_fn(dataset[indices])
        except Exception as e:
            out = WorkerFailure(worker_id, e)
        data_queue.put((epoch, idx, out))


def fetch_many(dataset: Any, indices: list[int]) -> list[Any]:
    """The samples at ``indices`` (through ``__getitems__`` when the dataset has it)."""
    many = getattr(dataset, "__getitems__", None)
    if callable(many):
        return list(many(indices))
    return [dataset[i] for i in indices]


def _next_iterable(it: Any, auto_collation: bool, collate_fn: Callable[[Any], Any],
                   drop_last: bool, batch_size: int | None, worker_id: int) -> Any:
    if not auto_collation:
        try:
            return collate_fn(next(it))
        except StopIteration:
            return IterableEnd(worker_id)
    batch = []
    for item in it:
        batch.append(item)
        if len(batch) == batch_size:
            break
    if not batch or (drop_last and len(batch) < (batch_size or 0)):
        return IterableEnd(worker_id)
    return collate_fn(batch)
