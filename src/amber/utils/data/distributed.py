"""``DistributedSampler``: each of ``num_replicas`` processes sees its own share of the
dataset, as ``torch.utils.data.distributed.DistributedSampler``."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np

from ...errors import AmberError, ArgumentError
from .sampler import Sampler


def _from_process_group(what: str) -> int:
    """``num_replicas`` / ``rank`` from ``amber.distributed`` (imported only when asked:
    it is optional)."""
    try:
        import amber.distributed as dist  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise AmberError(
            f"DistributedSampler: {what} was not given and amber.distributed is not "
            f"available in this amber; pass num_replicas= and rank= explicitly") from None
    is_init = getattr(dist, "is_initialized", None)
    if not (callable(is_init) and is_init()):
        raise AmberError(
            f"DistributedSampler: {what} was not given and the default process group is "
            f"not initialised; call amber.distributed.init_process_group(...) first, or "
            f"pass num_replicas= and rank= explicitly")
    getter = dist.get_world_size if what == "num_replicas" else dist.get_rank
    return int(getter())


class DistributedSampler(Sampler[int]):
    """The indices of replica ``rank`` out of ``num_replicas`` (default: from
    ``amber.distributed``'s process group): every ``num_replicas``-th index of the
    (shuffled with ``seed + epoch`` if ``shuffle``) order, starting at ``rank``. The
    order is padded by repeating its start so that every replica gets the same count,
    or with ``drop_last`` trimmed to a multiple of ``num_replicas``. Call
    ``set_epoch(epoch)`` before each epoch for a fresh shuffle that all replicas
    agree on."""

    def __init__(self, dataset: Sized, num_replicas: int | None = None,
                 rank: int | None = None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        if num_replicas is None:
            num_replicas = _from_process_group("num_replicas")
        if rank is None:
            rank = _from_process_group("rank")
        if num_replicas < 1:
            raise ArgumentError(f"DistributedSampler: num_replicas must be at least 1, got "
                                f"{num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ArgumentError(f"DistributedSampler: invalid rank {rank}, rank should be in "
                                f"the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            rng = np.random.Generator(np.random.PCG64(self.seed + self.epoch))
            indices: list[Any] = rng.permutation(n).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad <= len(indices):
                indices += indices[:pad]
            else:
                indices += (indices * math.ceil(pad / len(indices)))[:pad]
        else:
            indices = indices[: self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Shuffle differently in the next iteration (same order on every replica)."""
        self.epoch = epoch


__all__ = ["DistributedSampler"]
