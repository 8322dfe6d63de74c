"""Two models loaded in one process never interfere: no global state, in one thread or
in several."""

from __future__ import annotations

import threading

import numpy as np

import amber as am


def test_two_models_side_by_side(parts):
    a = am.load(parts.backbone_path)
    b = am.load(parts.head_path)
    a2 = am.load(parts.backbone_path)
    x = am.randn(3, 3, 4, 4)
    ya = a(x).numpy()
    yb = b(am.randn(3, 8)).numpy()
    assert ya.shape == (3, 8) and yb.shape == (3, 5)
    # fine-tuning one loaded copy leaves the other copy and the file alone
    module = a2.as_module()
    with am.no_grad():
        for p in module.parameters():
            p.mul_(0.0)
    assert np.allclose(module(x).detach().numpy(), np.tanh(0.0))
    np.testing.assert_array_equal(a(x).numpy(), ya)
    np.testing.assert_array_equal(am.load(parts.backbone_path)(x).numpy(), ya)


def _worker(model, inputs, expected, grads, errors, k):
    try:
        for i in range(30):
            x = inputs[i % len(inputs)]
            got = model(x).numpy()
            if not np.array_equal(got, expected[i % len(inputs)]):
                errors.append(f"thread {k}: wrong output at step {i}")
            xt = am.tensor(x, requires_grad=True)
            model(xt).sum().backward()
            if not np.allclose(xt.grad.numpy(), grads[i % len(inputs)], rtol=1e-6,
                               atol=1e-7):
                errors.append(f"thread {k}: wrong gradient at step {i}")
            if i % 10 == 0:
                with am.no_grad():
                    model(am.tensor(x, requires_grad=True))
    except Exception as e:  # report, do not hang the test
        errors.append(f"thread {k}: {type(e).__name__}: {e}")


def test_concurrent_use_from_two_threads(parts, rng):
    models = [am.load(parts.backbone_path), am.load(parts.head_path)]
    shapes = [(2, 3, 4, 4), (4, 8)]
    jobs = []
    for m, shape in zip(models, shapes):
        inputs = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
        expected = [m(x).numpy() for x in inputs]
        grads = []
        for x in inputs:
            xt = am.tensor(x, requires_grad=True)
            m(xt).sum().backward()
            grads.append(xt.grad.numpy())
        jobs.append((m, inputs, expected, grads))
    errors: list[str] = []
    threads = [threading.Thread(target=_worker, args=(*job, errors, k))
               for k, job in enumerate(jobs + jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_concurrent_capture_and_eager(parts):
    backbone, head = am.load(parts.backbone_path), am.load(parts.head_path)
    results: dict[str, object] = {}

    def export():
        results["program"] = am.export(lambda x: head(backbone(x)), am.spec("b", 3, 4, 4))

    def eager():
        x = am.randn(2, 3, 4, 4, requires_grad=True)
        results["eager"] = head(backbone(x))

    threads = [threading.Thread(target=export), threading.Thread(target=eager)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results["eager"].requires_grad
    assert "backbone/forward" in results["program"].functions
