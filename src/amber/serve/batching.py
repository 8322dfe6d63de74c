"""Dynamic batching: requests that arrive within a short window are concatenated along
the entry's leading symbolic dim, run once, and split back."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .metrics import METRICS


class _Pending:
    __slots__ = ("arrays", "future", "key", "rows")

    def __init__(self, arrays: list[np.ndarray], future: asyncio.Future[Any]) -> None:
        self.arrays, self.future = arrays, future
        self.rows = int(arrays[0].shape[0]) if arrays else 0
        # requests batch together only when every non-leading dim agrees
        self.key = tuple((a.dtype.str, a.shape[1:]) for a in arrays)


class Batcher:
    """Collects requests for up to ``max_delay_ms`` after the first one arrives, or until
    ``max_batch`` rows are waiting, then runs them as one call of ``run`` in
    ``executor`` and hands each request its rows of every output."""

    def __init__(self, run: Callable[[list[np.ndarray]], list[np.ndarray]], *, name: str,
                 executor: concurrent.futures.Executor, max_batch: int,
                 max_delay_ms: float) -> None:
        self.run, self.name, self.executor = run, name, executor
        self.max_batch, self.max_delay = max_batch, max_delay_ms / 1000.0
        self.waiting: list[_Pending] = []
        self.wakeup: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None

    async def submit(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done():
            self.wakeup = asyncio.Event()
            self.task = loop.create_task(self._loop())
        pending = _Pending(arrays, loop.create_future())
        self.waiting.append(pending)
        METRICS.queue_depth(self.name, len(self.waiting))
        assert self.wakeup is not None
        self.wakeup.set()
        return await pending.future

    async def _loop(self) -> None:
        assert self.wakeup is not None
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if not self.waiting:
                continue
            deadline = time.monotonic() + self.max_delay
            while (sum(p.rows for p in self.waiting) < self.max_batch
                   and time.monotonic() < deadline):
                try:
                    await asyncio.wait_for(self.wakeup.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
                self.wakeup.clear()
            batch = self._take()
            METRICS.queue_depth(self.name, len(self.waiting))
            asyncio.get_running_loop().create_task(self._dispatch(batch))
            if self.waiting:
                self.wakeup.set()

    def _take(self) -> list[_Pending]:
        """The oldest request and the compatible ones after it, up to ``max_batch`` rows
        (a single request larger than that runs alone)."""
        first = self.waiting[0]
        batch, rows, rest = [first], first.rows, []
        for p in self.waiting[1:]:
            if p.key == first.key and rows + p.rows <= self.max_batch:
                batch.append(p)
                rows += p.rows
            else:
                rest.append(p)
        self.waiting = rest
        return batch

    async def _dispatch(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        METRICS.batch(self.name, sum(p.rows for p in batch))
        try:
            if len(batch) == 1:
                outs = await loop.run_in_executor(self.executor, self.run, batch[0].arrays)
                parts = [outs]
            else:
                joined = [np.concatenate(col) for col in zip(*(p.arrays for p in batch))]
                outs = await loop.run_in_executor(self.executor, self.run, joined)
                bounds = np.cumsum([p.rows for p in batch])[:-1]
                split = [np.split(o, bounds) for o in outs]
                parts = [[s[i] for s in split] for i in range(len(batch))]
        except BaseException as e:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        for p, out in zip(batch, parts, strict=True):
            if not p.future.done():
                p.future.set_result(out)
