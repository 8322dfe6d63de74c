"""am.export leaves the user's state as it was: the proof's eager runs start from the
parameters, buffers and .grad the modules had when export was called, and restore them."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import amber as am
import amber.nn as nn
from amber.capture.trace import state_kept


def _state(module: nn.Module) -> dict[str, tuple[bytes, bytes | None]]:
    """Every parameter's and buffer's bytes, and its .grad's bytes (None when unset)."""
    out = {}
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t is None:
            continue
        grad = None if t.grad is None else t.grad.numpy().tobytes()
        out[name] = (t.detach().numpy().tobytes(), grad)
    return out


def _net() -> nn.Module:
    am.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def _fresh_grad(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The gradient of ``model(x).sum()`` for the first weight, computed on a copy."""
    twin = copy.deepcopy(model)
    twin.zero_grad()
    twin(am.tensor(x)).sum().backward()
    return twin[0].weight.grad.numpy()


@pytest.mark.parametrize("zero_grad", ["none", "set_to_none", "zeros"])
@pytest.mark.parametrize("grad_before", [False, True])
def test_gradient_step_exports_and_leaves_grad_alone(zero_grad: str, grad_before: bool
                                                     ) -> None:
    model = _net()
    model.eval()
    if grad_before:
        model(am.randn(5, 3)).sum().backward()

    def step(x):
        if zero_grad != "none":
            model.zero_grad(set_to_none=zero_grad == "set_to_none")
        loss = model(x).sum()
        loss.backward()
        return model[0].weight.grad

    before = _state(model)
    program = am.export(step, am.spec("batch", 3))
    assert _state(model) == before
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    got = program.run("forward", x)[0]
    want = _fresh_grad(model, x)
    if grad_before and zero_grad == "none":  # accumulates onto the .grad of export time
        want = want + model[0].weight.grad.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert _state(model) == before


def test_step_without_zero_grad_was_refused_by_its_own_proof_before() -> None:
    # each eager run of the proof sees the state of the first, not the .grad it left
    lin = nn.Linear(3, 2)

    def step(x):
        lin(x).sum().backward()
        return lin.weight.grad

    program = am.export(step, am.spec("batch", 3), sizes={"batch": (2, 3, 4, 5)})
    assert lin.weight.grad is None and lin.bias.grad is None
    assert len(program.test_vectors) == 4
    for v in program.test_vectors:
        n = v.inputs["x"].shape[0]
        np.testing.assert_allclose(v.outputs["output"],
                                   np.tile(v.inputs["x"].sum(0), (2, 1)), rtol=1e-5,
                                   atol=1e-5)
        assert n in (2, 3, 4, 5)


def test_training_mode_batch_norm_export_is_refused_and_changes_nothing() -> None:
    model = _net()
    model.train()
    model(am.randn(5, 3)).sum().backward()  # some .grad and running statistics

    def step(x):
        model(x).sum().backward()
        return model[0].weight.grad

    before = _state(model)
    with pytest.raises(am.CaptureError, match=r"model\.eval\(\)"):
        am.export(step, am.spec("batch", 3))
    assert _state(model) == before
    assert model.training


def test_state_kept_restores_training_mode_batch_norm_and_grads() -> None:
    # what every eager run of the proof is wrapped in
    model = _net()
    model.train()
    tensors = [t for _, t in [*model.named_parameters(), *model.named_buffers()]]
    before = _state(model)
    grad_objects = [t.grad for t in tensors]
    with state_kept(tensors):
        for _ in range(2):
            model(am.randn(5, 3)).sum().backward()
            model.zero_grad(set_to_none=False)
            model(am.randn(5, 3)).sum().backward()
        assert _state(model) != before  # running statistics and .grad did change
    assert _state(model) == before
    assert [t.grad for t in tensors] == grad_objects


def test_state_kept_restores_a_grad_zeroed_in_place() -> None:
    lin = nn.Linear(2, 2)
    lin(am.ones(1, 2)).sum().backward()
    g = lin.weight.grad
    data = g.numpy().copy()
    with state_kept([lin.weight]):
        g.zero_()
    assert lin.weight.grad is g
    np.testing.assert_array_equal(g.numpy(), data)


def test_modules_outside_the_weights_are_kept_too() -> None:
    # `other` is no weight of the program (weights= says so), but f changes its running
    # statistics eagerly, at capture time and in every run of the proof
    model = _net()
    model.eval()
    other = nn.BatchNorm1d(2)
    other.train()

    def f(x):
        other(am.ones(4, 2) * am.arange(4.0).reshape(4, 1))
        return model(x)

    before = _state(other)
    program = am.export(f, am.spec("batch", 3), weights=model)
    assert set(program.weights) == {k for k, _ in model.named_parameters()} | {
        k for k, v in model.named_buffers() if v is not None}
    assert _state(other) == before
