"""DistributedDataParallel on 2 MPI ranks against the same training in one process."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn.functional as F

from .mpi import launch, results
from .workers.common import data, model, weights

pytest.importorskip("mpi4py")
pytestmark = pytest.mark.slow


def single_process(kind: str, dtype: str, halves: bool) -> dict[str, np.ndarray]:
    """The reference: one process, global batch 32. With ``halves`` the loss is the mean
    of the two half-batch losses, each half through the model separately (what two ranks
    compute: BatchNorm statistics per half)."""
    m = model(kind, dtype)
    opt = am.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    for x, y in data(dtype):
        if halves:
            losses = [F.cross_entropy(m(am.tensor(x[i:i + 16])), am.tensor(y[i:i + 16]))
                      for i in (0, 16)]
            loss = (losses[0] + losses[1]) / 2
        else:
            loss = F.cross_entropy(m(am.tensor(x)), am.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: np.asarray(v) for k, v in weights(m).items()}


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("accumulate", [False, True], ids=["sync", "no_sync"])
def test_two_ranks_train_as_one_process(dtype: str, tol: float, accumulate: bool) -> None:
    proc, _ = launch("ddp_train.py", "mlp", dtype, "accumulate" if accumulate else "plain")
    ranks = results(proc)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["buckets"] > 1  # the tiny bucket cap makes several buckets
    assert ranks[0]["keys"][0].startswith("module.")
    ref = single_process("mlp", dtype, halves=False)
    for r in ranks:
        for k, v in ref.items():
            np.testing.assert_allclose(np.asarray(r["weights"][k]), v, rtol=0, atol=tol,
                                       err_msg=f"rank {r['rank']} {k}")


def test_batchnorm_statistics_per_rank() -> None:
    """BatchNorm normalises each rank's batch with that batch's statistics, so two ranks
    equal one process that runs each half-batch through the model separately; running
    statistics are each rank's own between forwards (rank 0's are broadcast to the others
    at the start of every forward, as PyTorch's ``broadcast_buffers`` does)."""
    ranks = results(launch("ddp_train.py", "bn", "float64")[0])
    ref = single_process("bn", "float64", halves=True)
    for r in ranks:
        for k, v in ref.items():
            if "running" in k or "num_batches" in k:
                continue
            np.testing.assert_allclose(np.asarray(r["weights"][k]), v, rtol=0, atol=1e-10,
                                       err_msg=k)
    for k in ranks[0]["weights"]:
        if "running" not in k:
            np.testing.assert_array_equal(ranks[0]["weights"][k], ranks[1]["weights"][k])


def test_sync_batchnorm_trains_as_one_process_at_the_global_batch() -> None:
    """SyncBatchNorm normalises with the statistics of the global batch: two ranks at
    batch 16 equal one process with BatchNorm at batch 32, running statistics included."""
    ranks = results(launch("ddp_train.py", "syncbn", "float64")[0])
    ref = single_process("bn", "float64", halves=False)
    for r in ranks:
        for k, v in ref.items():
            np.testing.assert_allclose(np.asarray(r["weights"][k]), v, rtol=0, atol=1e-10,
                                       err_msg=f"rank {r['rank']} {k}")


def test_dropout_ranks_stay_identical() -> None:
    """Each rank draws its own dropout masks (so the run differs from one process), but
    the averaged gradients keep every replica identical."""
    ranks = results(launch("ddp_train.py", "dropout", "float32")[0])
    for k in ranks[0]["weights"]:
        np.testing.assert_array_equal(ranks[0]["weights"][k], ranks[1]["weights"][k])


@pytest.mark.skipif(not hasattr(am, "save"), reason="needs am.save checkpoints")
def test_checkpoint_from_two_ranks_resumes_on_one(tmp_path) -> None:
    """Rank 0's checkpoint holds no world size: 2 ranks for 2 steps, then 1 rank for 2
    more, ends where 2 ranks for 4 steps do."""
    ckpt = str(tmp_path / "ckpt.safetensors")
    straight = results(launch("resume.py", str(tmp_path / "unused.safetensors"), "0", "4")[0])
    results(launch("resume.py", ckpt, "0", "2")[0])
    resumed = results(launch("resume.py", ckpt, "2", "4", n=1)[0])
    for k, v in straight[0]["weights"].items():
        np.testing.assert_allclose(resumed[0]["weights"][k], v, rtol=0, atol=1e-10, err_msg=k)


@pytest.fixture(scope="module")
def reducer_ranks() -> list[dict]:
    return results(launch("reducer.py")[0])


@pytest.mark.parametrize("layout", ["copy", "view"])
def test_reducer_averages_exactly_with_tied_frozen_and_unused_parameters(
        reducer_ranks: list[dict], layout: str) -> None:
    """Gradients averaged through buckets (fresh buffers, or gradient_as_bucket_view)
    equal the one-process gradient of the global batch, with a layer used twice, a
    frozen bias, a branch only rank 1 uses and a layer no rank uses; with no_sync
    accumulation too."""
    for r in reducer_ranks:
        assert r[f"{layout}_buckets"] > 3
        assert r[f"{layout}_sync"] < 1e-12, r[f"{layout}_sync"]
        assert r[f"{layout}_no_sync"] < 1e-12, r[f"{layout}_no_sync"]
        assert r[f"{layout}_frozen_untouched"]
        assert r[f"{layout}_unused_none"]


@pytest.mark.parametrize("layout", ["copy", "view"])
def test_reducer_hook_fires_once_per_parameter_and_overlaps(reducer_ranks: list[dict],
                                                            layout: str) -> None:
    """Each parameter that received a gradient is reported once per backward (the layer
    used twice too), and a bucket's all-reduce starts before backward has finished."""
    used = {"inp.weight", "shared.weight", "shared.bias", "head.weight", "head.bias"}
    for r in reducer_ranks:
        expect = used | ({"extra.weight", "extra.bias"} if r["rank"] == 1 else set())
        assert r[f"{layout}_fired"] == dict.fromkeys(sorted(expect), 1)
        assert r[f"{layout}_launch_before_last_hook"]


def test_reducer_names_unused_parameters_without_find_unused(reducer_ranks: list[dict]
                                                             ) -> None:
    for r in reducer_ranks:
        assert "unused.weight" in r["unused_error"]
        assert "find_unused_parameters=True" in r["unused_error"]
