"""mpiexec -n N python resume.py CKPT FIRST LAST: trains global-batch-32 steps FIRST..LAST-1
with DDP (resuming from CKPT when FIRST > 0; rank 0 writes CKPT at the end)."""

from __future__ import annotations

import os
import sys

from common import data, emit, model, weights

import amber as am
import amber.distributed as dist
import amber.nn.functional as F
from amber.nn.parallel import DistributedDataParallel

ckpt, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
net = model("mlp", "float64")
opt = am.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
if first > 0:
    state = am.load(ckpt)
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
ddp = DistributedDataParallel(net)
for x, y in data("float64", steps=last)[first:]:
    per = len(x) // world
    loss = F.cross_entropy(ddp(am.tensor(x[rank * per:(rank + 1) * per])),
                           am.tensor(y[rank * per:(rank + 1) * per]))
    opt.zero_grad()
    loss.backward()
    opt.step()
if rank == 0:
    am.save({"model": net.state_dict(), "optimizer": opt.state_dict()}, ckpt)
    assert os.path.exists(ckpt)
emit({"rank": rank, "weights": weights(net)})
