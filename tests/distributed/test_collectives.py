"""amber.distributed's collectives under mpiexec, and its errors without a process group."""

from __future__ import annotations

import pytest

import amber as am
import amber.distributed as dist
from amber.errors import DistributedError

from .mpi import launch, results


def test_not_initialised_errors_say_what_to_do() -> None:
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(am.zeros(2))):
        with pytest.raises(DistributedError, match="init_process_group"):
            call()


@pytest.mark.slow
def test_collectives_on_two_ranks() -> None:
    pytest.importorskip("mpi4py")
    ranks = results(launch("collectives.py")[0])
    assert [(r["rank"], r["world"]) for r in ranks] == [(0, 2), (1, 2)]
    for r in ranks:
        assert r["backend"] == "mpi"
        assert r["SUM"] == [3.0, 6.0, -9.0]
        assert r["AVG"] == [1.5, 3.0, -4.5]
        assert r["MAX"] == [2.0, 4.0, -3.0]
        assert r["MIN"] == [1.0, 2.0, -6.0]
        assert r["PRODUCT"] == [2.0, 8.0, 18.0]
        assert r["int_sum"] == [3, 30]
        assert r["odd_buffers"] == [[3.0, 6.0], [[0.0, 3.0, 6.0], [9.0, 12.0, 15.0]]]
        assert r["again"] == [3.0, 3.0, 3.0]
        assert r["broadcast"] == [[6.0, 6.0], [6.0, 6.0]]
        assert r["all_gather"] == [[0.0] * 3, [1.0] * 3]
        assert r["objects"] == [{"rank": 0}, {"rank": 1}]
        assert r["bcast_objects"] == [0, "x"]
        src, bool_sum, int_avg, twice, nccl = r["errors"]
        assert "not a rank" in src
        assert "bool" in bool_sum
        assert "AVG" in int_avg
        assert "already initialised" in twice
        assert "'nccl' is not supported" in nccl
