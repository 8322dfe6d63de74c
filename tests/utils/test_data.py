"""amber.utils.data: datasets, samplers, default_collate and the DataLoader, in the main
process and with worker processes."""

from __future__ import annotations

import collections
import os

import numpy as np
import pytest

import amber as am
from amber.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)
from amber.utils.data.distributed import DistributedSampler


class Squares(Dataset):
    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError(i)
        return {"x": np.full(3, i, dtype=np.float32), "y": i * i, "name": f"s{i}"}


class Stream(IterableDataset):
    """0..n-1, split between workers by get_worker_info."""

    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


class Failing(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise KeyError("sample 5 is broken")
        return i


class WorkerIds(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return (info.id, info.seed, os.getpid(), float(np.random.rand()),
                float(am.rand(()).item()))


def test_tensor_dataset_and_subset_and_concat():
    x, y = am.arange(10).float(), am.arange(10) * 2
    ds = TensorDataset(x, y)
    assert len(ds) == 10 and ds[3][1].item() == 6
    sub = Subset(ds, [7, 2])
    assert len(sub) == 2 and sub[0][0].item() == 7.0
    cat = ConcatDataset([sub, ds])
    assert len(cat) == 12 and cat[1][0].item() == 2.0 and cat[2][0].item() == 0.0
    assert cat[-1][0].item() == 9.0
    with pytest.raises(IndexError):
        cat[12]
    assert len(sub + ds) == 12
    with pytest.raises(am.ShapeError, match="first dimension"):
        TensorDataset(am.zeros(3), am.zeros(4))


def test_random_split_lengths_and_fractions():
    ds = TensorDataset(am.arange(10))
    a, b = random_split(ds, [7, 3], generator=am.Generator(0))
    assert sorted(a.indices + b.indices) == list(range(10))
    parts = random_split(ds, [0.5, 0.3, 0.2])
    assert [len(p) for p in parts] == [5, 3, 2]
    parts = random_split(TensorDataset(am.arange(11)), [0.5, 0.5])
    assert [len(p) for p in parts] == [6, 5]  # remainder handed out round-robin
    with pytest.raises(am.ArgumentError, match="summing"):
        random_split(ds, [5, 4])
    c1 = random_split(ds, [5, 5], generator=am.Generator(3))[0].indices
    c2 = random_split(ds, [5, 5], generator=am.Generator(3))[0].indices
    assert c1 == c2


def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    g = am.Generator(1)
    perm = list(RandomSampler(range(20), generator=g))
    assert sorted(perm) == list(range(20)) and perm != list(range(20))
    assert len(list(RandomSampler(range(5), num_samples=12))) == 12
    with_rep = list(RandomSampler(range(3), replacement=True, num_samples=50))
    assert set(with_rep) <= {0, 1, 2} and len(with_rep) == 50
    assert sorted(SubsetRandomSampler([4, 8, 9])) == [4, 8, 9]
    w = list(WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 200, generator=am.Generator(0)))
    counts = collections.Counter(w)
    assert set(counts) == {1, 3} and counts[3] > counts[1]
    assert sorted(WeightedRandomSampler([1, 1, 1], 3, replacement=False)) == [0, 1, 2]
    bs = BatchSampler(range(10), 4, drop_last=False)
    assert list(bs) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(bs) == 3
    assert len(BatchSampler(range(10), 4, drop_last=True)) == 2
    for bad in (lambda: BatchSampler(range(3), 0, False),
                lambda: RandomSampler(range(3), num_samples=0),
                lambda: WeightedRandomSampler([1.0, -1.0], 2),
                lambda: WeightedRandomSampler([1.0, 0.0], 2, replacement=False)):
        with pytest.raises(am.ArgumentError):
            bad()


def test_default_collate_follows_pytorch_rules():
    Point = collections.namedtuple("Point", "a b")
    batch = [{"t": am.ones(2) * i, "n": np.int32(i), "f": 0.5 * i, "i": i, "b": i % 2 == 0,
              "s": "x", "tup": (i, float(i)), "p": Point(i, am.zeros(1))} for i in range(3)]
    out = default_collate(batch)
    assert out["t"].shape == (3, 2) and out["t"][2, 0].item() == 2.0
    assert out["n"].dtype is am.int32 and out["f"].dtype is am.float64
    assert out["i"].dtype is am.int64 and out["b"].dtype is am.bool
    assert out["s"] == ["x", "x", "x"]
    assert isinstance(out["tup"], list) and out["tup"][1].dtype is am.float64
    assert isinstance(out["p"], Point) and out["p"].b.shape == (3, 1)
    arr = default_collate([np.zeros((2, 2), np.float64)] * 4)
    assert arr.shape == (4, 2, 2) and arr.dtype is am.float64
    with pytest.raises(am.AmberError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(am.AmberError, match="equal size"):
        default_collate([am.zeros(2), am.zeros(3)])
    with pytest.raises(TypeError, match="object"):
        default_collate([object(), object()])
    conv = default_convert({"a": np.arange(3), "b": (np.float32(1.5), "s")})
    assert isinstance(conv["a"], am.Tensor) and isinstance(conv["b"], list)


def test_dataloader_batches_in_the_main_process():
    dl = DataLoader(Squares(10), batch_size=4)
    batches = list(dl)
    assert len(dl) == 3 and len(batches) == 3
    assert batches[0]["x"].shape == (4, 3) and batches[0]["y"].tolist() == [0, 1, 4, 9]
    assert batches[2]["name"] == ["s8", "s9"]
    assert len(DataLoader(Squares(10), batch_size=4, drop_last=True)) == 2
    one = list(DataLoader(Squares(3), batch_size=None))
    assert one[1]["y"] == 1 and isinstance(one[1]["x"], am.Tensor)
    am.manual_seed(0)
    e1 = [b["y"].tolist() for b in DataLoader(Squares(10), batch_size=5, shuffle=True)]
    e2 = [b["y"].tolist() for b in DataLoader(Squares(10), batch_size=5, shuffle=True)]
    assert e1 != e2 and sorted(y for b in e1 for y in b) == sorted(i * i for i in range(10))
    g1, g2 = am.Generator(5), am.Generator(5)
    assert [b["y"].tolist() for b in DataLoader(Squares(10), 5, shuffle=True, generator=g1)] \
        == [b["y"].tolist() for b in DataLoader(Squares(10), 5, shuffle=True, generator=g2)]
    custom = DataLoader(Squares(5), batch_size=2, collate_fn=lambda b: len(b))
    assert list(custom) == [2, 2, 1]
    by_bs = DataLoader(Squares(6), batch_sampler=[[5, 0], [1]])
    assert [b["y"].tolist() for b in by_bs] == [[25, 0], [1]]


def test_dataloader_iterable_dataset():
    dl = DataLoader(Stream(10), batch_size=4)
    assert [b.tolist() for b in dl] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(dl) == 3
    assert len(list(DataLoader(Stream(10), batch_size=4, drop_last=True))) == 2
    assert list(DataLoader(Stream(3), batch_size=None)) == [0, 1, 2]
    assert list(ChainDataset([Stream(2), Stream(2)])) == [0, 1, 0, 1]


@pytest.mark.parametrize("kwargs, match", [
    (dict(shuffle=True, sampler=[0, 1]), "mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler"),
    (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler"),
    (dict(batch_size=None, drop_last=True), "drop_last"),
    (dict(num_workers=-1), "num_workers"),
    (dict(prefetch_factor=2), "prefetch_factor"),
    (dict(persistent_workers=True), "persistent_workers"),
    (dict(timeout=-1), "timeout"),
])
def test_dataloader_argument_errors(kwargs, match):
    with pytest.raises(am.ArgumentError, match=match):
        DataLoader(Squares(4), **kwargs)


def test_dataloader_iterable_refuses_shuffle():
    with pytest.raises(am.ArgumentError, match="shuffle"):
        DataLoader(Stream(4), shuffle=True)


def test_workers_keep_sampler_order_and_match_single_process():
    am.manual_seed(0)
    single = [b["y"].tolist() for b in DataLoader(Squares(23), batch_size=3, shuffle=True)]
    am.manual_seed(0)
    multi = DataLoader(Squares(23), batch_size=3, shuffle=True, num_workers=2)
    # the loader draws the workers' base seed after the sampler's permutation: same order
    assert [b["y"].tolist() for b in multi] == single
    stream = DataLoader(Stream(11), batch_size=2, num_workers=2)
    got = sorted(x for b in stream for x in b.tolist())
    assert got == list(range(11))


def test_worker_info_seeds_and_init_fn():
    seen = []
    dl = DataLoader(WorkerIds(), batch_size=None, num_workers=2,
                    worker_init_fn=lambda wid: np.random.seed(100 + wid))
    rows = list(dl)
    ids = {r[0] for r in rows}
    assert ids == {0, 1}
    seeds = {r[0]: r[1] for r in rows}
    assert seeds[1] == seeds[0] + 1
    assert len({r[2] for r in rows}) == 2 and os.getpid() not in {r[2] for r in rows}
    by_worker = collections.defaultdict(list)
    for r in rows:
        by_worker[r[0]].append(r[3])
    assert by_worker[0][0] == np.random.RandomState(100).rand()  # init_fn ran last
    assert by_worker[0][0] != by_worker[1][0]
    assert rows[0][4] != rows[1][4]  # amber's generator differs per worker
    assert get_worker_info() is None
    seen.append(1)


def test_worker_exception_is_reraised_with_its_type():
    dl = DataLoader(Failing(), batch_size=2, num_workers=2)
    with pytest.raises(KeyError, match="sample 5 is broken"):
        list(dl)


def test_persistent_workers_reuse_processes():
    dl = DataLoader(WorkerIds(), batch_size=4, num_workers=2, persistent_workers=True)
    pids1 = {int(p) for b in dl for p in b[2].tolist()}
    it = iter(dl)
    next(it)  # an epoch broken off: its outstanding batches must not leak into the next
    del it
    pids2 = {int(p) for b in dl for p in b[2].tolist()}
    assert pids1 == pids2 and len(list(dl)) == 2
    first, second = iter(dl), iter(dl)
    next(first)
    assert next(second)[0].shape == (4,)
    with pytest.raises(am.AmberError, match="superseded"):
        next(first)
    stream = DataLoader(Stream(7), batch_size=2, num_workers=2, persistent_workers=True)
    for _ in range(2):
        assert sorted(x for b in stream for x in b.tolist()) == list(range(7))


def test_distributed_sampler_partitions_and_pads():
    ds = list(range(10))
    parts = [list(DistributedSampler(ds, num_replicas=3, rank=r, shuffle=False))
             for r in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    dropped = [list(DistributedSampler(ds, 3, r, shuffle=False, drop_last=True))
               for r in range(3)]
    assert dropped == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    s = [DistributedSampler(ds, 2, r, seed=4) for r in range(2)]
    e0 = [list(x) for x in s]
    assert sorted(e0[0] + e0[1]) == ds
    for x in s:
        x.set_epoch(1)
    e1 = [list(x) for x in s]
    assert e1 != e0 and sorted(e1[0] + e1[1]) == ds and len(s[0]) == 5
    with pytest.raises(am.ArgumentError, match="rank"):
        DistributedSampler(ds, num_replicas=2, rank=2)


def test_distributed_sampler_without_process_group_says_what_to_do():
    with pytest.raises(am.AmberError, match="num_replicas= and rank="):
        DistributedSampler(list(range(4)))


class Dies(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        os._exit(3)


class Slow(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        import time

        time.sleep(2)
        return i


def test_worker_that_dies_is_reported():
    with pytest.raises(am.AmberError, match=r"exited unexpectedly.*exit code 3"):
        list(DataLoader(Dies(), num_workers=1))


def test_timeout_is_reported():
    with pytest.raises(am.AmberError, match=r"timed out after 0\.5 seconds"):
        list(DataLoader(Slow(), num_workers=1, timeout=0.5))
