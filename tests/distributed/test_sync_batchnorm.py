"""SyncBatchNorm in one process (the MPI runs are in test_ddp.py)."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.distributed.nn as dist_nn
import amber.nn as nn
from amber.errors import DistributedError, ShapeError


def _pair() -> tuple[nn.Module, nn.Module]:
    am.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU()).double()
    am.manual_seed(0)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(
        nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU()).double())
    return plain, synced


def test_convert_keeps_parameters_buffers_and_mode() -> None:
    bn = nn.BatchNorm1d(4)
    bn.eval()
    model = nn.Sequential(nn.Linear(2, 4), bn)
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    sync = converted[1]
    assert isinstance(sync, nn.SyncBatchNorm) and not sync.training
    assert sync.weight is bn.weight and sync.running_var is bn.running_var
    assert set(converted.state_dict()) == set(nn.Sequential(nn.Linear(2, 4),
                                                            nn.BatchNorm1d(4)).state_dict())


@pytest.mark.parametrize("training", [True, False])
def test_without_a_process_group_it_is_batchnorm(training: bool) -> None:
    plain, synced = _pair()
    plain.train(training)
    synced.train(training)
    x = np.random.default_rng(1).normal(size=(4, 2, 5, 5))
    xa, xb = am.tensor(x, requires_grad=True), am.tensor(x, requires_grad=True)
    plain(xa).sum().backward()
    synced(xb).sum().backward()
    np.testing.assert_array_equal(xa.grad.numpy(), xb.grad.numpy())
    for (k, a), b in zip(plain.state_dict().items(), synced.state_dict().values(),
                         strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_rank_is_checked() -> None:
    with pytest.raises(ShapeError, match="SyncBatchNorm"):
        nn.SyncBatchNorm(3)(am.tensor(np.ones(3)))


def test_differentiable_all_reduce_refuses_what_it_cannot_differentiate() -> None:
    with pytest.raises(DistributedError, match="SUM and AVG"):
        dist_nn.all_reduce(am.tensor(np.ones(2)), am.distributed.ReduceOp.MAX)
