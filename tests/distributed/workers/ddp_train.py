"""mpiexec -n N python ddp_train.py KIND DTYPE [accumulate]: trains with
DistributedDataParallel, each rank on its slice of every global batch of 32, and prints
the final weights from every rank."""

from __future__ import annotations

import sys

import numpy as np
from common import data, emit, model, weights

import amber as am
import amber.distributed as dist
import amber.nn.functional as F
from amber.nn.parallel import DistributedDataParallel

kind, dtype = sys.argv[1], sys.argv[2]
accumulate = len(sys.argv) > 3 and sys.argv[3] == "accumulate"
dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
am.manual_seed(100 + rank)  # different dropout masks per rank, as in real jobs
ddp = DistributedDataParallel(model(kind, dtype), bucket_cap_mb=0.0005)
opt = am.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
for x, y in data(dtype):
    per = len(x) // world
    xs, ys = x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]
    opt.zero_grad()
    if accumulate:  # two micro-batches: the first without communication
        half = per // 2
        with ddp.no_sync():
            (F.cross_entropy(ddp(am.tensor(xs[:half])), am.tensor(ys[:half])) / 2).backward()
        (F.cross_entropy(ddp(am.tensor(xs[half:])), am.tensor(ys[half:])) / 2).backward()
    else:
        F.cross_entropy(ddp(am.tensor(xs)), am.tensor(ys)).backward()
    opt.step()
state = {k.removeprefix("module."): v for k, v in weights(ddp).items()}
emit({"rank": rank, "world": world, "weights": state,
      "keys": list(ddp.state_dict()), "buckets": len(ddp._buckets)})
dist.destroy_process_group()
np.seterr(all="ignore")
