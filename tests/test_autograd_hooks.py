"""Post-accumulate-grad hooks and backward-end callbacks (what data-parallel training
builds on)."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from amber import autograd
from amber.errors import AutogradError


def test_hook_runs_once_after_all_contributions() -> None:
    w = am.tensor(np.array([1.0, 2.0]), requires_grad=True)
    seen: list[np.ndarray] = []
    w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.numpy()))
    ((w * 3).sum() + (w * w).sum()).backward()  # two paths into w
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [5.0, 7.0])


def test_hooks_fire_in_backward_order_and_callbacks_at_the_end() -> None:
    a = am.tensor(np.ones(2), requires_grad=True)
    b = am.tensor(np.ones(2), requires_grad=True)
    events: list[str] = []

    def on(name: str):
        def hook(p: am.Tensor) -> None:
            events.append(name)
            if name == "b":
                autograd.queue_callback(lambda: events.append("end"))
        return hook

    autograd.register_post_accumulate_grad_hook(a, on("a"))
    autograd.register_post_accumulate_grad_hook(b, on("b"))
    h = (a * 2).exp()  # a's gradient arrives after b's (b is used last)
    (h * b).sum().backward()
    assert events == ["b", "a", "end"]


def test_remove_and_leaf_output_and_grad_api() -> None:
    w = am.tensor(np.ones(3), requires_grad=True)
    calls: list[int] = []
    handle = autograd.register_post_accumulate_grad_hook(w, lambda p: calls.append(1))
    w.sum().backward()
    w.backward(am.ones(3))  # the output is the leaf itself
    am.autograd.grad((w * 2).sum(), w)  # grad() accumulates nothing: no hook
    assert calls == [1, 1]
    handle.remove()
    w.sum().backward()
    assert calls == [1, 1]


def test_errors() -> None:
    x = am.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(AutogradError, match="leaf"):
        autograd.register_post_accumulate_grad_hook(x * 2, lambda p: None)
    with pytest.raises(AutogradError, match="does not require grad"):
        autograd.register_post_accumulate_grad_hook(am.ones(2), lambda p: None)
    with pytest.raises(AutogradError, match="during a backward"):
        autograd.queue_callback(lambda: None)
