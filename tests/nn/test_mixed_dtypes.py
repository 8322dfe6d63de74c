"""A layer and its input have one dtype, as in PyTorch: a float32 input to a float64
Linear or Conv2d is a DTypeError in eager mode, and the exported model (typed by its
signature) refuses it too, so eager and exported give one answer."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from amber import nn

F32, F64 = np.float32, np.float64


def _layers():
    am.manual_seed(0)
    return {"linear": (nn.Linear(3, 2), (4, 3)), "conv2d": (nn.Conv2d(1, 2, 3), (1, 1, 5, 5))}


@pytest.mark.parametrize("name", ["linear", "conv2d"])
@pytest.mark.parametrize("layer_dtype, input_dtype", [(F64, F32), (F32, F64)])
def test_a_layer_refuses_an_input_of_another_float_dtype(name, layer_dtype, input_dtype,
                                                        tmp_path) -> None:
    layer, shape = _layers()[name]
    layer = layer.to(am.float64) if layer_dtype is F64 else layer
    x = np.random.default_rng(0).standard_normal(shape).astype(input_dtype)
    want = np.dtype(layer_dtype).name
    with pytest.raises(am.DTypeError, match=rf"{name}: input is {np.dtype(input_dtype).name} "
                                            rf"but weight is {want}"):
        layer(am.tensor(x))
    # the exported model, typed by its signature, refuses the same call
    path = tmp_path / "m.amber"
    am.export(layer, am.tensor(x.astype(layer_dtype))).save(path)
    for backend in ("reference", "native"):
        with pytest.raises(am.DTypeError):
            am.load(path, backend=backend)(x)
    assert layer(am.tensor(x.astype(layer_dtype))).dtype.name == want


def test_functional_forms_and_bias() -> None:
    x, w = am.ones(2, 3), am.ones(4, 3, dtype=am.float64)
    with pytest.raises(am.DTypeError, match="linear: input is float32 but weight is float64"):
        am.nn.functional.linear(x, w)
    with pytest.raises(am.DTypeError, match="linear: input is float32 but bias is float64"):
        am.nn.functional.linear(x, w.float(), am.zeros(4, dtype=am.float64))
    with pytest.raises(am.DTypeError, match="conv2d: input is float32 but weight is float64"):
        am.nn.functional.conv2d(am.ones(1, 1, 4, 4), am.ones(1, 1, 3, 3, dtype=am.float64))


@pytest.mark.torch
def test_pytorch_refuses_the_same_calls() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        torch.nn.Linear(3, 2).double()(torch.ones(4, 3))
    with pytest.raises(RuntimeError):
        torch.nn.Conv2d(1, 2, 3).double()(torch.ones(1, 1, 5, 5))
    with pytest.raises(RuntimeError):
        torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4).double())
