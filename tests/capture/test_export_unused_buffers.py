"""Export stores the weights a program needs: every parameter and persistent buffer
(the state dict), and a non-persistent buffer only when the program reads it."""

from __future__ import annotations

import numpy as np

import amber as am


class _WithPositions(am.nn.Module):
    """Like a transformer embedding that registers position ids it may not use."""

    def __init__(self, use: bool) -> None:
        super().__init__()
        self.lin = am.nn.Linear(3, 3)
        self.use = use
        self.register_buffer("position_ids", am.arange(512).reshape(1, 512), persistent=False)
        self.register_buffer("scale", am.ones(3), persistent=True)
        self.register_buffer("offset", am.zeros(3), persistent=False)

    def forward(self, x):
        y = self.lin(x) + self.offset
        if self.use:
            y = y + self.position_ids[:, : x.shape[1]].float()
        return y


def test_unused_non_persistent_buffers_are_not_stored(tmp_path) -> None:
    program = am.export(_WithPositions(use=False), am.spec("b", 3))
    assert set(program.weights) == {"lin.weight", "lin.bias", "scale", "offset"}
    program.save(tmp_path / "m.amber")
    assert set(am.load(tmp_path / "m.amber").program.weights) == set(program.weights)


def test_used_non_persistent_buffers_are_stored() -> None:
    program = am.export(_WithPositions(use=True), am.spec("b", 3))
    assert "position_ids" in program.weights
    np.testing.assert_array_equal(program.weights["position_ids"], np.arange(512)[None])
