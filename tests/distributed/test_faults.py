"""A rank that fails mid-training ends the whole job soon, with the failure named."""

from __future__ import annotations

import pytest

from .mpi import launch

pytest.importorskip("mpi4py")
pytestmark = pytest.mark.slow


def test_a_rank_raising_ends_the_job_with_its_error() -> None:
    proc, took = launch("faults.py", "raise", timeout=60)
    assert proc.returncode != 0
    assert took < 30
    assert "simulated failure on rank 1 at step 3" in proc.stderr
    assert "unreachable" not in proc.stdout


def test_a_rank_leaving_silently_times_out_the_others() -> None:
    proc, took = launch("faults.py", "exit", "5", timeout=60)
    assert proc.returncode != 0
    assert took < 30
    assert "all_reduce(SUM, 3 x float32) did not complete within 5 s" in proc.stderr


def test_a_rank_dying_ends_the_job() -> None:
    proc, took = launch("faults.py", "kill", timeout=60)
    assert proc.returncode != 0
    assert took < 30


def test_the_step_after_a_backward_that_raised_is_refused() -> None:
    """A backward that raised midway left its buckets half reduced: the next forward
    raises a DistributedError that says so, instead of a misleading error (or silently
    unaveraged gradients) later."""
    proc, took = launch("faults.py", "hook", timeout=60)
    assert proc.returncode != 0
    assert took < 30
    assert "the previous backward() raised before it finished" in proc.stderr
    assert "unreachable" not in proc.stdout
