"""mpiexec -n 2 python faults.py MODE: rank 1 fails mid-training in one of several ways;
the job must end (non-zero) soon, with the failure named, never hang. MODE ``hook``: every
rank's backward raises midway at step 3 and the script catches it; the next step must
refuse to start."""

from __future__ import annotations

import os
import sys

import numpy as np

import amber as am
import amber.distributed as dist
import amber.nn as nn
from amber.nn.parallel import DistributedDataParallel

mode = sys.argv[1]
dist.init_process_group("mpi", timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 20)
rank = dist.get_rank()
ddp = DistributedDataParallel(nn.Linear(4, 2))
opt = am.optim.SGD(ddp.parameters(), lr=0.1)
step = 0


def hook(param: am.Tensor) -> None:
    if mode == "hook" and step == 3:
        raise ValueError("hook failure in backward")


am.autograd.register_post_accumulate_grad_hook(ddp.module.bias, hook)
for step in range(1000):
    if rank == 1 and step == 3:
        if mode == "raise":
            raise RuntimeError("simulated failure on rank 1 at step 3")
        if mode == "exit":
            sys.exit(0)  # leaves without a word: rank 0 waits in a collective
        if mode == "kill":
            os._exit(9)
    if mode == "exit":  # rank 0 then waits in the blocking all_reduce's fast path
        dist.all_reduce(am.tensor(np.ones(3, np.float32)))
    loss = ddp(am.tensor(np.ones((3, 4), np.float32))).sum()
    opt.zero_grad()
    try:
        loss.backward()
    except ValueError:
        continue  # the caller swallows it; DDP must not go on as if nothing happened
    opt.step()
print("unreachable: rank", rank, "finished")
