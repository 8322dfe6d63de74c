"""mpiexec -n 2 python reducer.py: DistributedDataParallel's reducer, case by case, against
gradients each rank computes itself for the global batch; prints what it found."""

from __future__ import annotations

import numpy as np
from common import emit

import amber as am
import amber.distributed as dist
import amber.nn as nn
import amber.nn.functional as F
from amber.errors import DistributedError
from amber.nn.parallel import DistributedDataParallel

dist.init_process_group("mpi", timeout=60)
rank, world = dist.get_rank(), dist.get_world_size()
rng = np.random.default_rng(3)
X, Y = rng.normal(size=(8, 6)), rng.integers(0, 3, 8)  # the global batch
part = slice(rank * 8 // world, (rank + 1) * 8 // world)


class Tied(nn.Module):
    """A layer used twice (its gradient is a sum of two), a frozen bias, a branch only
    rank 1 uses and a layer nobody uses."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 6)
        self.inp.bias.requires_grad_(False)
        self.shared = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)
        self.extra = nn.Linear(6, 3)
        self.unused = nn.Linear(6, 3)

    def forward(self, x: am.Tensor, use_extra: bool) -> am.Tensor:
        h = self.shared(am.tanh(self.shared(self.inp(x))))
        out = self.head(h)
        return out + self.extra(h) if use_extra else out


def build() -> Tied:
    am.manual_seed(0)
    return Tied().double()


def reference(use_extra: tuple[bool, ...], halves: int = 1) -> dict[str, np.ndarray | None]:
    """One process: the gradient of the mean over ranks of each rank's mean loss."""
    m = build()
    for r in range(world):
        rows = slice(r * 8 // world, (r + 1) * 8 // world)
        for h in range(halves):
            sub = np.array_split(np.arange(8)[rows], halves)[h]
            loss = F.cross_entropy(m(am.tensor(X[sub]), use_extra[r]), am.tensor(Y[sub]))
            (loss / (world * halves)).backward()
    return {n: None if p.grad is None else p.grad.numpy().copy()
            for n, p in m.named_parameters()}


def grads(m: nn.Module) -> dict[str, np.ndarray | None]:
    return {n: None if p.grad is None else p.grad.numpy().copy()
            for n, p in m.named_parameters()}


def max_diff(a: dict, b: dict) -> float | str:
    for k in a:
        if (a[k] is None) != (b[k] is None):
            return f"{k}: grad None on one side only"
    return max(float(np.abs(a[k] - b[k]).max()) for k in a if a[k] is not None)


out: dict = {"rank": rank}
use_extra = tuple(r == 1 for r in range(world))
for as_view in (False, True):
    model = build()
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.0002, find_unused_parameters=True,
                                  gradient_as_bucket_view=as_view)
    events: list[str] = []
    fired: dict[str, int] = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(
                lambda _p, n=n: (fired.__setitem__(n, fired.get(n, 0) + 1),
                                 events.append("hook")))
    start = type(ddp._group).start_all_reduce
    ddp._group.start_all_reduce = lambda buf, g=ddp._group, ev=events: (  # type: ignore
        ev.append("launch"), start(g, buf))[1]
    key = "view" if as_view else "copy"
    # two steps, the second accumulating over a no_sync half-batch
    F.cross_entropy(ddp(am.tensor(X[part]), rank == 1), am.tensor(Y[part])).backward()
    out[f"{key}_sync"] = max_diff(grads(model), reference(use_extra))
    out[f"{key}_fired"] = dict(fired)
    out[f"{key}_launch_before_last_hook"] = events.index("launch") < len(events) - 1 - \
        events[::-1].index("hook")
    out[f"{key}_buckets"] = len(ddp._buckets)
    out[f"{key}_events"] = events[:]
    model.zero_grad()
    halves = np.array_split(np.arange(8)[part], 2)
    with ddp.no_sync():
        (F.cross_entropy(ddp(am.tensor(X[halves[0]]), rank == 1),
                         am.tensor(Y[halves[0]])) / 2).backward()
    (F.cross_entropy(ddp(am.tensor(X[halves[1]]), rank == 1),
                     am.tensor(Y[halves[1]])) / 2).backward()
    out[f"{key}_no_sync"] = max_diff(grads(model), reference(use_extra, halves=2))
    out[f"{key}_frozen_untouched"] = model.inp.bias.grad is None
    out[f"{key}_unused_none"] = model.unused.weight.grad is None

# find_unused_parameters=False: a parameter no gradient reached is an error on every rank
ddp = DistributedDataParallel(build(), bucket_cap_mb=0.0002)
try:
    F.cross_entropy(ddp(am.tensor(X[part]), True), am.tensor(Y[part])).backward()
    out["unused_error"] = None
except DistributedError as e:
    out["unused_error"] = str(e)
emit(out)
dist.destroy_process_group()
