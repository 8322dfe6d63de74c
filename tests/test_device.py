"""Devices, thread settings, inference mode and dtype limits with PyTorch's names."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn as nn
from amber import _device as amd


def test_device_parsing_and_equality():
    assert am.device("cpu") == "cpu" == am.device(am.device("cpu"))
    d = am.device("cuda:1")
    assert (d.type, d.index, str(d)) == ("cuda", 1, "cuda:1")
    assert repr(am.device("cuda", 0)) == "device(type='cuda', index=0)"
    assert am.device("cpu") != am.device("cuda")
    assert hash(am.device("cpu")) == hash(am.device("cpu"))
    for bad in ("gpu", "cuda:x", "cuda:-1"):
        with pytest.raises(am.ArgumentError):
            am.device(bad)
    with pytest.raises(am.ArgumentError, match="twice"):
        am.device("cuda:0", 1)


def test_accelerators_are_absent_and_the_usual_idiom_picks_the_cpu():
    assert am.cuda.is_available() is False and am.cuda.device_count() == 0
    assert am.backends.mps.is_available() is False and am.backends.mps.is_built() is False
    am.cuda.manual_seed_all(0)
    am.backends.cudnn.deterministic = True
    device = "cuda" if am.cuda.is_available() else "cpu"
    t = am.ones(2).to(device)
    assert t.device == am.device("cpu") and t.device.type == "cpu"
    assert t.is_cpu and not t.is_cuda


def test_tensor_to_forms():
    t = am.ones(2, 3)
    assert t.to("cpu") is t and t.cpu() is t and t.to(am.device("cpu")) is t
    assert t.to(am.float64).dtype is am.float64
    assert t.to("cpu", am.int64).dtype is am.int64
    assert t.to(device="cpu", dtype=am.float64).dtype is am.float64
    assert t.to(am.zeros(1, dtype=am.int32)).dtype is am.int32
    assert t.to("float64").dtype is am.float64
    c = t.to("cpu", copy=True)
    assert c is not t and np.array_equal(c.numpy(), t.numpy())
    for bad in (lambda: t.to("cuda"), lambda: t.to(0), lambda: t.cuda(),
                lambda: t.to(device="mps"), lambda: am.nn.Linear(2, 2).to("cuda"),
                lambda: am.nn.Linear(2, 2).cuda()):
        with pytest.raises(am.DeviceError, match="CPU only"):
            bad()
    with pytest.raises(am.ArgumentError, match="unexpected"):
        t.to(am.float64, pinned=True)


def test_module_to_device_and_dtype():
    m = nn.Linear(2, 2)
    assert m.to("cpu") is m and m.to(am.device("cpu")).weight.dtype is am.float32
    m.to("cpu", am.float64)
    assert m.weight.dtype is am.float64
    m.to(am.zeros(1))
    assert m.weight.dtype is am.float32


def test_num_threads_setting(monkeypatch):
    from amber import _threads

    monkeypatch.setattr(_threads, "_num_threads", _threads.get_num_threads())  # restored
    assert am.get_num_threads() >= 1
    am.set_num_threads(3)
    assert am.get_num_threads() == 3 and amd.get_num_threads_setting() == 3
    for bad in (0, -1, 1.5, True):
        with pytest.raises(am.ArgumentError):
            am.set_num_threads(bad)


def test_inference_mode_as_context_and_decorator():
    w = am.ones(2, requires_grad=True)
    with am.inference_mode():
        assert not am.is_grad_enabled() and am.is_inference_mode_enabled()
        assert not (w * 2).requires_grad
    assert am.is_grad_enabled() and not am.is_inference_mode_enabled()
    with am.inference_mode(False):
        assert (w * 2).requires_grad

    @am.inference_mode()
    def f(x):
        return x * 2

    @am.inference_mode
    def g(x):
        return x * 3

    assert not f(w).requires_grad and not g(w).requires_grad
    assert am.is_grad_enabled()


def test_finfo_iinfo_match_numpy():
    for dt in (am.float32, am.float64):
        fi, ref = am.finfo(dt), np.finfo(dt.np)
        assert (fi.bits, fi.eps, fi.max, fi.min) == (ref.bits, ref.eps, ref.max, ref.min)
        assert fi.tiny == fi.smallest_normal == ref.smallest_normal
        assert fi.resolution == 10.0 ** -ref.precision and fi.dtype == dt.name
    assert am.finfo().dtype == "float32"
    for dt in (am.int32, am.int64):
        ii, ref = am.iinfo(dt), np.iinfo(dt.np)
        assert (ii.bits, ii.max, ii.min, ii.dtype) == (ref.bits, ref.max, ref.min, dt.name)
    with pytest.raises(am.DTypeError, match="iinfo"):
        am.finfo(am.int32)
    with pytest.raises(am.DTypeError, match="finfo"):
        am.iinfo(am.float32)
    with pytest.raises(am.DTypeError):
        am.iinfo(am.bool)


def test_manual_seed_reproduces():
    am.manual_seed(7)
    a = am.randn(3)
    am.manual_seed(7)
    assert np.array_equal(a.numpy(), am.randn(3).numpy())
