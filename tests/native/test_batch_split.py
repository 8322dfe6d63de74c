"""Image by image: an entry point whose every node acts on each index of the leading
(batch) dim alone runs its batch one image at a time up to its first matrix product
(the rest batched) when the batch-1 plan is large, so that the batch-1 plan stays in
cache. Results are bit-identical to the whole-batch run at every thread count; models
with a node that mixes rows, or a batch that is not the leading dim, run batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
from amber import nn
from amber.nn import functional as F
from helpers.programs import randomise_norm_state

N = pytest.importorskip("amber.native")


class _Block(nn.Module):
    """A ResNet basic block and a pooled, linear head (returns both)."""

    def __init__(self, c: int, mix: bool = False) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.b = nn.Conv2d(c, c, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(c, 10)
        self.mix = mix

    def forward(self, x: Any) -> Any:
        y = F.relu(self.b(F.relu(self.bn(self.a(x)))) + x)
        if self.mix:  # a node mixing the images: the batch runs whole
            y = y - y.sum(dim=0, keepdim=True) * 0.125
        f = self.pool(y).sum(dim=(2, 3))
        return self.fc(f), f


def _save(tmp_path: Path, name: str, mod: nn.Module, *shape: Any) -> Path:
    randomise_norm_state(mod, 1)
    path = tmp_path / f"{name}.amber"
    am.export(mod.eval(), am.spec(*shape)).save(str(path))
    return path


def _runs(path: Path, x: np.ndarray, threads: int) -> tuple[list[np.ndarray], Any]:
    m = N.NativeModel(path, threads=threads)
    m.run("forward", x)  # the first run caches the hoisted values
    out = m.run("forward", x)
    return out, m.stats()


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_image_by_image_bits_equal_the_whole_batch(tmp_path: Path, threads: int) -> None:
    mod = _Block(32)
    split = _save(tmp_path, "split", mod, "batch", 32, 48, 48)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 32, 48, 48)).astype(np.float32)
    for n in (8, 3, 2, 1):
        # a fixed batch dim: no batch symbol, the whole-batch run
        whole = _save(tmp_path, f"whole{n}", mod, n, 32, 48, 48)
        got, st = _runs(split, x[:n], threads)
        want, st_whole = _runs(whole, x[:n], threads)
        assert len(got) == 2
        for g, w in zip(got, want):
            assert g.shape[0] == n and g.tobytes() == w.tobytes()
        # image by image: a batch-1 plan beside the batch's
        assert st.plans == st_whole.plans + (n > 1)
        # before the matrix product, each image's rows are its batch-1 run's (the product
        # runs batched: NOTE: one row takes another GEMM path than several)
        one = [_runs(split, x[i:i + 1], threads)[0][1] for i in range(n)]
        assert np.concatenate(one).tobytes() == got[1].tobytes()


@pytest.mark.parametrize("threads", [2, 3])
def test_images_side_by_side_give_the_one_thread_bits(tmp_path: Path, threads: int) -> None:
    """With more than one thread the images run side by side, a session per thread, in
    whole rounds (the rest with the threads inside each node): every run's results, the
    first included (whose first image runs alone), are the one-thread run's bits."""
    path = _save(tmp_path, "split", _Block(32), "batch", 32, 48, 48)
    rng = np.random.default_rng(4)
    one = N.NativeModel(path, threads=1)
    many = N.NativeModel(path, threads=threads)
    for n in (7, 2, 5, 7, 6):  # rounds and a rest; back to a batch seen before
        x = rng.standard_normal((n, 32, 48, 48)).astype(np.float32)
        want = one.run("forward", x)
        for _ in range(3):
            got = many.run("forward", x)
            assert [g.tobytes() for g in got] == [w.tobytes() for w in want]


def test_images_side_by_side_under_a_tight_memory_limit(tmp_path: Path) -> None:
    """Each thread's session holds its image's values under the same memory limit; a
    limit too tight for them fails the run as the whole batch does, and a session that
    failed still runs when the batch fits."""
    path = _save(tmp_path, "split", _Block(32), "batch", 32, 48, 48)
    x = np.random.default_rng(5).standard_normal((4, 32, 48, 48)).astype(np.float32)
    want = N.NativeModel(path, threads=1).run("forward", x)
    small = N.NativeModel(path, threads=2, memory_limit=1 << 20)
    with pytest.raises(N.NativeError):
        small.run("forward", x)
    roomy = N.NativeModel(path, threads=2, memory_limit=64 << 20)
    for _ in range(2):
        assert [g.tobytes() for g in roomy.run("forward", x)] == [w.tobytes() for w in want]
    assert small.run("forward", x[:1])[0].shape == (1, 10)


def test_a_node_mixing_images_keeps_the_batch_whole(tmp_path: Path) -> None:
    mod = _Block(32, mix=True)
    path = _save(tmp_path, "mix", mod, "batch", 32, 48, 48)
    x = np.random.default_rng(0).standard_normal((4, 32, 48, 48)).astype(np.float32)
    got, st = _runs(path, x, 2)
    assert st.plans == _runs(_save(tmp_path, "whole", mod, 4, 32, 48, 48), x, 2)[1].plans
    one = _runs(path, x[:1], 2)[0]
    assert not np.array_equal(got[0][:1], one[0])  # the rows do depend on each other


def test_a_batch_that_is_not_the_leading_dim_runs_whole(tmp_path: Path) -> None:
    def f(x: Any) -> Any:  # [4, batch, 64, 512] -> [batch, 64, 512]
        return F.relu(x * 2.0 + 1.0).sum(dim=0)

    am.export(f, am.spec(4, "batch", 64, 512)).save(str(tmp_path / "t.amber"))
    am.export(f, am.spec(4, 3, 64, 512)).save(str(tmp_path / "w.amber"))
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 512)).astype(np.float32)
    got, st = _runs(tmp_path / "t.amber", x, 1)
    want, st_whole = _runs(tmp_path / "w.amber", x, 1)
    assert st.plans == st_whole.plans >= 1
    assert got[0].tobytes() == want[0].tobytes()


def test_errors_and_small_batches_as_before(tmp_path: Path) -> None:
    path = _save(tmp_path, "split", _Block(32), "batch", 32, 48, 48)
    m = N.NativeModel(path, threads=1)
    x = np.random.default_rng(0).standard_normal((3, 32, 48, 48)).astype(np.float32)
    m.run("forward", x)
    with pytest.raises(N.NativeError, match=r"float32\(3, 31, 48, 48\), declared"):
        m.run("forward", np.zeros((3, 31, 48, 48), np.float32))
    with pytest.raises(N.NativeError, match=">= 1"):
        m.run("forward", np.zeros((0, 32, 48, 48), np.float32))
    small = N.NativeModel(path, threads=1, memory_limit=1 << 20)
    with pytest.raises(N.NativeError):
        small.run("forward", x)
    got = m.run("forward", x)  # and the session still runs
    assert got[0].shape == (3, 10)


class _PartsAcross(nn.Module):
    """A concat of two convolutions computed in place (its parts inside its result),
    with a matrix product on a second input between the parts and the concat."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(16, 8, 1)
        self.b = nn.Conv2d(16, 8, 3, padding=1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x: Any, z: Any) -> Any:
        a, b = self.a(x), F.relu(self.b(x))
        m = self.fc(z)  # the first matmul: where the image-by-image part would end
        return am.cat([a, b], 1).sum(dim=(2, 3)), m


def test_a_concat_in_place_is_not_cut_from_its_parts(tmp_path: Path) -> None:
    """The image-by-image part ends before the parts of a concat that comes after its
    first matmul: the concat's result holds the parts' bits, as in the whole run."""
    rng = np.random.default_rng(3)
    mod = _PartsAcross().eval()
    x = rng.standard_normal((4, 16, 64, 64)).astype(np.float32)
    z = rng.standard_normal((4, 12)).astype(np.float32)
    for name, n in (("split", "batch"), ("whole", 4)):
        am.export(mod, am.spec(n, 16, 64, 64), am.spec(n, 12)).save(str(tmp_path / name))
    outs = []
    for name in ("split", "whole"):
        m = N.NativeModel(tmp_path / name, threads=2)
        m.run("forward", x, z)
        outs.append(m.run("forward", x, z))
    assert [o.tobytes() for o in outs[0]] == [o.tobytes() for o in outs[1]]
    want = mod(am.tensor(x), am.tensor(z))
    np.testing.assert_allclose(outs[0][0], want[0].detach().numpy(), rtol=1e-4, atol=1e-3)
