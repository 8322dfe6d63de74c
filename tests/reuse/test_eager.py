"""A loaded model called eagerly: the interpreter when no gradient is needed, the op
registry (recorded on the autograd tape) when one is."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am


@pytest.fixture(scope="module")
def f64(tmp_path_factory):
    """A float64 model with a few op kinds, saved and loaded, and its eager source."""
    am.manual_seed(11)
    net = am.nn.Sequential(am.nn.Linear(3, 5), am.nn.Tanh(), am.nn.Linear(5, 4),
                           am.nn.Sigmoid()).double()
    net.eval()

    def fn(x):
        h = net(x)
        return (h * h).log_softmax(-1) + h.mean(0)

    path = tmp_path_factory.mktemp("f64") / "f64.amber"
    am.export(fn, am.spec("batch", 3, dtype=am.float64), weights=net).save(path)
    return am.load(path), fn, net


def _central_fd(f, arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        hi = f()
        arr[i] = old - eps
        lo = f()
        arr[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g


def _weights(rng, shape):
    return am.tensor(rng.standard_normal(shape))


def test_gradient_wrt_inputs_matches_finite_differences(f64, rng):
    model, _, _ = f64
    x0 = rng.standard_normal((2, 3))
    w = _weights(rng, (2, 4))
    x = am.tensor(x0.copy(), requires_grad=True)
    (model(x) * w).sum().backward()
    fd = _central_fd(lambda: float((model(x0).numpy() * w.numpy()).sum()), x0)
    np.testing.assert_allclose(x.grad.numpy(), fd, rtol=1e-6, atol=1e-8)


def test_gradient_wrt_weights_matches_finite_differences(f64, rng):
    model, _, _ = f64
    module = model.as_module()
    x = am.tensor(rng.standard_normal((3, 3)))
    w = _weights(rng, (3, 4))
    (module(x) * w).sum().backward()
    program = model.program
    for name, p in module.named_parameters():
        arr = np.array(program.weights[name], copy=True)

        def loss(arr=arr, name=name):
            view = dict(program.weights)
            view[name] = arr
            saved = program.weights
            program.weights = view
            try:
                return float((program.run("forward", x.numpy())[0] * w.numpy()).sum())
            finally:
                program.weights = saved

        fd = _central_fd(loss, arr)
        np.testing.assert_allclose(p.grad.numpy(), fd, rtol=1e-6, atol=1e-8, err_msg=name)


def test_gradients_equal_those_of_the_source(f64, rng):
    model, fn, net = f64
    x0 = rng.standard_normal((4, 3))
    xa = am.tensor(x0, requires_grad=True)
    xb = am.tensor(x0, requires_grad=True)
    fn(xa).sum().backward()
    model(xb).sum().backward()
    np.testing.assert_allclose(xb.grad.numpy(), xa.grad.numpy(), rtol=1e-12, atol=1e-12)
    net.zero_grad()
    module = model.as_module()
    fn(am.tensor(x0)).sum().backward()
    module(am.tensor(x0)).sum().backward()
    src = dict(net.named_parameters())
    for name, p in module.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), src[name].grad.numpy(), rtol=1e-12,
                                   atol=1e-12)


def test_am_grad_and_second_order(f64, rng):
    model, fn, _ = f64
    x = am.tensor(rng.standard_normal((2, 3)))
    g = am.grad(lambda x: model(x).sum())(x)
    np.testing.assert_allclose(g.numpy(), am.grad(lambda x: fn(x).sum())(x).numpy(),
                               rtol=1e-12, atol=1e-12)
    gg = am.grad(lambda x: am.grad(lambda y: model(y).sum())(x).sum())(x)
    want = am.grad(lambda x: am.grad(lambda y: fn(y).sum())(x).sum())(x)
    np.testing.assert_allclose(gg.numpy(), want.numpy(), rtol=1e-10, atol=1e-10)


def test_no_grad_path_matches_registry_path(f64, rng):
    model, _, _ = f64
    x0 = rng.standard_normal((5, 3))
    fast = model(x0)  # NumPy array in, interpreter
    assert not fast.requires_grad
    slow = model(am.tensor(x0, requires_grad=True))
    assert slow.requires_grad
    np.testing.assert_allclose(slow.detach().numpy(), fast.numpy(), rtol=1e-12, atol=1e-12)
    with am.no_grad():
        assert not model(am.tensor(x0, requires_grad=True)).requires_grad


def test_registry_path_checks_inputs_like_the_interpreter(f64):
    model, _, _ = f64
    bad = am.tensor(np.zeros((2, 4)), requires_grad=True)
    with pytest.raises(am.ShapeError, match="input 'x' must have shape float64\\[batch, 3\\]"):
        model(bad)
    with pytest.raises(am.DTypeError, match="must be float64"):
        model(am.zeros(2, 3, requires_grad=True))


def test_gradient_flows_through_composition(parts, rng):
    backbone, head = am.load(parts.backbone_path), am.load(parts.head_path)
    x0 = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    xa = am.tensor(x0, requires_grad=True)
    xb = am.tensor(x0, requires_grad=True)
    head(backbone(xa)).sum().backward()
    parts.head(parts.backbone(xb)).sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xb.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_keyword_inputs_and_errors(parts):
    backbone = am.load(parts.backbone_path)
    x = am.randn(2, 3, 4, 4, requires_grad=True)
    np.testing.assert_allclose(backbone(input=x).detach().numpy(),
                               backbone(x.detach()).numpy(), rtol=1e-6)
    with pytest.raises(am.AmberError, match="unknown input 'y'"):
        backbone(y=x)
    with pytest.raises(am.AmberError, match="takes 1 inputs"):
        backbone(x, x)


def test_gradient_through_a_composed_file(parts, tmp_path, rng):
    backbone, head = am.load(parts.backbone_path), am.load(parts.head_path)
    am.export(lambda x: head(backbone(x)), am.spec("batch", 3, 4, 4)).save(
        tmp_path / "net.amber")
    net = am.load(tmp_path / "net.amber")
    x0 = rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
    xa, xb = am.tensor(x0, requires_grad=True), am.tensor(x0, requires_grad=True)
    net(xa).sum().backward()  # call nodes run through the registry too
    parts.head(parts.backbone(xb)).sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xb.grad.numpy(), rtol=1e-5, atol=1e-6)
    module = net.as_module()
    assert {n.split("/")[0] for n, _ in module.named_parameters()} == {"backbone", "head"}
    module(am.tensor(x0)).sum().backward()
    assert module.get_parameter("head/0.bias").grad is not None


def test_gradients_flow_through_loaded_control_flow(tmp_path) -> None:
    """cond, while_loop and scan inside a loaded model run eagerly on the tape."""

    def f(x):
        y = am.cond(x.sum() > 0, lambda v: v * v, lambda v: am.sin(v), x)
        n, y = am.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 0.9 + 0.1),
                             (am.tensor(0), y))
        _, ys = am.scan(lambda c, r: (c + r, am.tanh(c + r)), am.zeros_like(x[0]), y)
        return ys.sum(0) + y[-1]

    path = tmp_path / "control.amber"
    am.export(f, am.spec("n", 3, dtype=am.float64)).save(path)
    m = am.load(path, backend="reference")
    for x0 in (np.linspace(0.1, 1.0, 12).reshape(4, 3), -np.ones((2, 3))):
        x = am.tensor(x0, requires_grad=True)
        (m(x) ** 2).sum().backward()
        want = am.grad(lambda t: (f(t) ** 2).sum())(am.tensor(x0))
        np.testing.assert_allclose(x.grad.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
