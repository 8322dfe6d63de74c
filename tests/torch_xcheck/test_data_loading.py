"""amber.utils.data batches like torch.utils.data: same structure, dtypes, shapes and
values from default_collate, same batch indices from the deterministic samplers."""

from __future__ import annotations

import collections
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import amber as am  # noqa: E402
import amber.utils.data as ad  # noqa: E402

td = torch.utils.data
pytestmark = pytest.mark.torch
Pair = collections.namedtuple("Pair", "left right")


def _same(a, t):
    if isinstance(t, torch.Tensor):
        assert isinstance(a, am.Tensor), (a, t)
        assert a.dtype.name == str(t.dtype).removeprefix("torch."), (a.dtype, t.dtype)
        np.testing.assert_array_equal(a.numpy(), t.numpy())
    elif isinstance(t, dict):
        assert type(a) is type(t) and list(a) == list(t)
        for k in t:
            _same(a[k], t[k])
    elif isinstance(t, (list, tuple)):
        assert type(a) is type(t) and len(a) == len(t), (type(a), type(t))
        for x, y in zip(a, t):
            _same(x, y)
    else:
        assert a == t


def _sample(i):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3) * i
    return {"arr": arr, "f64": arr.astype(np.float64), "i32": np.int32(i), "f": 0.25 * i,
            "i": i, "b": bool(i % 2), "s": f"n{i}", "pair": Pair(i, [i, i + 1]),
            "tup": (np.int64(i), {"deep": float(i)})}


def test_default_collate_matches_torch():
    batch = [_sample(i) for i in range(4)]
    amb = ad.default_collate(batch)
    ref = td.default_collate(batch)
    _same(amb, ref)


def test_default_convert_matches_torch():
    sample = _sample(3)
    _same(ad.default_convert(sample), td.default_convert(sample))


@pytest.mark.parametrize("kw", [dict(batch_size=3), dict(batch_size=3, drop_last=True),
                                dict(batch_size=None), dict(batch_size=4)])
def test_sequential_loader_matches_torch(kw):
    data = [_sample(i) for i in range(10)]
    amb, ref = list(ad.DataLoader(data, **kw)), list(td.DataLoader(data, **kw))
    assert len(amb) == len(ref) == len(ad.DataLoader(data, **kw))
    for a, t in zip(amb, ref):
        _same(a, t)


def test_distributed_sampler_without_shuffle_matches_torch():
    for n, reps, drop in [(10, 3, False), (10, 3, True), (7, 4, False), (2, 5, False)]:
        for r in range(reps):
            a = ad.DistributedSampler(range(n), reps, r, shuffle=False, drop_last=drop)
            t = td.DistributedSampler(range(n), reps, r, shuffle=False, drop_last=drop)
            assert list(a) == list(t) and len(a) == len(t)


def test_batch_sampler_and_random_split_sizes_match_torch():
    for n, bs, drop in [(10, 3, False), (10, 3, True), (9, 3, True), (1, 4, False)]:
        a = ad.BatchSampler(range(n), bs, drop)
        t = td.BatchSampler(range(n), bs, drop)
        assert list(a) == list(t) and len(a) == len(t)
    for n, fr in [(10, [0.3, 0.7]), (11, [0.5, 0.5]), (7, [0.2, 0.2, 0.6]), (5, [1.0])]:
        a = [len(s) for s in ad.random_split(list(range(n)), fr)]
        with pytest.warns(UserWarning) if 0 in a else contextlib.nullcontext():
            t = [len(s) for s in td.random_split(list(range(n)), fr)]
        assert a == t


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), bs=st.integers(1, 9), drop=st.booleans(),
       reps=st.integers(1, 5), ddrop=st.booleans())
def test_batch_and_replica_partitions_match_torch(n, bs, drop, reps, ddrop):
    data = list(range(n))
    amb = [b.tolist() for b in ad.DataLoader(data, batch_size=bs, drop_last=drop)]
    ref = [b.tolist() for b in td.DataLoader(data, batch_size=bs, drop_last=drop)]
    assert amb == ref and len(ad.DataLoader(data, batch_size=bs, drop_last=drop)) == len(ref)
    if n:
        for r in range(reps):
            a = ad.DistributedSampler(data, reps, r, shuffle=False, drop_last=ddrop)
            t = td.DistributedSampler(data, reps, r, shuffle=False, drop_last=ddrop)
            assert list(a) == list(t) and len(a) == len(t)
