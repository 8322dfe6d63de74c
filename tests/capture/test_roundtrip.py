"""Round trips: every nn layer and composite op, exported with a symbolic batch, saved,
loaded and run at three batch sizes, equals eager execution."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from amber import nn
from amber.nn import functional as F

BATCHES = (1, 3, 8)


def _int_spec(*dims, high):
    return am.spec(*dims, dtype=am.int64, low=0, high=high)


def _cases():
    am.manual_seed(0)
    bn1 = nn.BatchNorm1d(5)
    bn2 = nn.BatchNorm2d(3)
    for bn in (bn1, bn2):  # non-trivial running statistics, then eval mode
        bn.running_mean.copy_(am.randn(*bn.running_mean.shape))
        bn.running_var.copy_(am.rand(*bn.running_var.shape) + 0.5)
        bn.eval()
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 3 * 3, 10))
    return {
        "Linear": (nn.Linear(4, 3), [am.spec("batch", 4)]),
        "Linear_3d": (nn.Linear(4, 3), [am.spec("batch", 2, 4)]),
        "Conv2d": (nn.Conv2d(2, 3, 3, padding=1), [am.spec("batch", 2, 6, 6)]),
        "Conv2d_strided_grouped": (nn.Conv2d(4, 6, 3, stride=2, groups=2, bias=False),
                                   [am.spec("batch", 4, 7, 7)]),
        "LayerNorm": (nn.LayerNorm(5), [am.spec("batch", 5)]),
        "BatchNorm1d_eval": (bn1, [am.spec("batch", 5)]),
        "BatchNorm2d_eval": (bn2, [am.spec("batch", 3, 4, 4)]),
        "Embedding": (nn.Embedding(10, 4), [_int_spec("batch", 3, high=10)]),
        "Dropout_eval": (nn.Dropout(0.5).eval(), [am.spec("batch", 5)]),
        "Sequential_cnn": (cnn, [am.spec("batch", 1, 6, 6)]),
        "Flatten": (nn.Flatten(), [am.spec("batch", 2, 3, 4)]),
        "MaxPool2d": (nn.MaxPool2d(2), [am.spec("batch", 2, 6, 6)]),
        "AvgPool2d": (nn.AvgPool2d(2), [am.spec("batch", 2, 6, 6)]),
        "ReLU": (nn.ReLU(), [am.spec("batch", 5)]),
        "GELU": (nn.GELU(), [am.spec("batch", 5)]),
        "SiLU": (nn.SiLU(), [am.spec("batch", 5)]),
        "Sigmoid": (nn.Sigmoid(), [am.spec("batch", 5)]),
        "Tanh": (nn.Tanh(), [am.spec("batch", 5)]),
        "Softmax": (nn.Softmax(dim=-1), [am.spec("batch", 5)]),
        "LogSoftmax": (nn.LogSoftmax(dim=1), [am.spec("batch", 5)]),
        "softmax_over_batch": (lambda x: am.softmax(x, 0), [am.spec("batch", 5)]),
        "log_softmax": (lambda x: am.log_softmax(x, -1), [am.spec("batch", 5)]),
        "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [am.spec("batch", 5)]),
        "layer_norm": (lambda x, w, b: F.layer_norm(x, (5,), w, b),
                       [am.spec("batch", 5), am.randn(5), am.randn(5)]),
        "cross_entropy": (lambda x, y: F.cross_entropy(x, y),
                          [am.spec("batch", 5), _int_spec("batch", high=5)]),
        "cross_entropy_sum": (lambda x, y: F.cross_entropy(x, y, reduction="sum"),
                              [am.spec("batch", 5), _int_spec("batch", high=5)]),
        "nll_loss": (lambda x, y: F.nll_loss(am.log_softmax(x, 1), y),
                     [am.spec("batch", 5), _int_spec("batch", high=5)]),
        "mse_loss": (lambda x, y: F.mse_loss(x, y), [am.spec("batch", 5), am.spec("batch", 5)]),
        "mean_var_std": (lambda x: (x.mean(0), x.var(0), x.std(), x.mean()),
                         [am.spec("batch", 5)]),
        "logsumexp": (lambda x: am.logsumexp(x, 1), [am.spec("batch", 5)]),
        "reshape_flatten": (lambda x: x.reshape(x.shape[0], -1) + x.flatten(1),
                            [am.spec("batch", 2, 3)]),
        "indexing": (lambda x: x[:, 1] + x[-1, 0] + x[1:, 2].sum() + x[:-1].mean(),
                     [am.spec("batch", 3)]),
        "scale_by_batch": (lambda x: x * x.shape[0] - x.sum() / x.shape[0],
                           [am.spec("batch", 3)]),
        "argmax_max": (lambda x: (x.argmax(1), x.max(0).values), [am.spec("batch", 4)]),
        "where_clamp": (lambda x: am.where(x > 0, x, x * 0.1).clamp(-1, 1),
                        [am.spec("batch", 4)]),
        "cat_stack": (lambda x: (am.cat([x, x * 2], 0), am.stack([x, -x], 1)),
                      [am.spec("batch", 4)]),
        "matmul_batched": (lambda a, b: a @ b, [am.spec("batch", 2, 3), am.spec("batch", 3, 4)]),
    }


CASES = _cases()


def _eager(fn, args):
    out = fn(*args)
    leaves, _ = am.tree_flatten(out)
    return [t.detach().numpy() for t in leaves]


def _make_args(arg_specs, batch, rng):
    args = []
    for a in arg_specs:
        if isinstance(a, am.Spec):
            shape = tuple(batch if isinstance(d, str) else d for d in a.shape)
            if a.dtype.is_floating:
                args.append(rng.standard_normal(shape).astype(a.dtype.np))
            else:
                args.append(rng.integers(int(a.low), int(a.high), shape).astype(a.dtype.np))
        else:
            args.append(a.numpy())
    return args


@pytest.mark.parametrize("name", sorted(CASES))
def test_roundtrip(name, tmp_path):
    fn, arg_specs = CASES[name]
    program = am.export(fn, *arg_specs)
    path = tmp_path / f"{name}.amber"
    program.save(path)
    model = am.load(path)
    assert all(r.ok for r in model.verify())
    rng = np.random.default_rng(7)
    for batch in BATCHES:
        arrays = _make_args(arg_specs, batch, rng)
        want = _eager(fn, [am.tensor(a) for a in arrays])
        got = model(*arrays)
        got_leaves, _ = am.tree_flatten(got)
        assert len(got_leaves) == len(want)
        for g, w in zip(got_leaves, want):
            assert isinstance(g, am.Tensor)
            assert g.dtype == am.as_dtype(w.dtype)
            np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-6)


def test_export_of_a_gradient(tmp_path):
    """am.grad(loss_fn) records the backward pass as IR."""
    w0 = am.randn(4, 3)

    def loss_fn(w, x, y):
        return F.cross_entropy(x @ w, y)

    g = am.grad(loss_fn)
    program = am.export(g, w0, am.spec("batch", 4), _int_spec("batch", high=3))
    ops = {n.op for n in program.functions["forward"].nodes}
    assert "matmul" in ops and "transpose" in ops  # forward and backward matmuls
    program.save(tmp_path / "grad.amber")
    model = am.load(tmp_path / "grad.amber")
    rng = np.random.default_rng(1)
    for batch in BATCHES:
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        y = rng.integers(0, 3, batch)
        want = g(w0, am.tensor(x), am.tensor(y)).numpy()
        np.testing.assert_allclose(model(w0.numpy(), x, y).numpy(), want, rtol=1e-5,
                                   atol=1e-6)


def test_export_of_module_parameter_gradients_via_backward(tmp_path):
    """.backward() on tracers inside the captured function records the backward pass;
    module .grad fields are left untouched by the capture."""
    lin = nn.Linear(3, 2)

    def step(x):
        lin.zero_grad()
        loss = (lin(x) ** 2).mean()
        loss.backward()
        return lin.weight.grad, lin.bias.grad

    program = am.export(step, am.spec("batch", 3), weights=lin)
    assert lin.weight.grad is None or lin.weight.grad._data is not None
    program.save(tmp_path / "step.amber")
    model = am.load(tmp_path / "step.amber")
    x = np.random.default_rng(2).standard_normal((6, 3)).astype(np.float32)
    gw, gb = model(x)
    ew, eb = step(am.tensor(x))
    np.testing.assert_allclose(gw.numpy(), ew.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gb.numpy(), eb.numpy(), rtol=1e-5, atol=1e-6)


def test_second_order_gradient_export():
    h = am.grad(lambda x: am.grad(lambda y: am.sin(y).sum())(x).sum())
    p = am.export(h, am.spec("n"))
    x = np.linspace(-1, 1, 5).astype(np.float32)
    np.testing.assert_allclose(p.run("forward", x)[0], -np.sin(x), rtol=1e-5, atol=1e-6)
