"""parameters_to_vector / vector_to_parameters (amber.nn.utils)."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn as nn
from amber.nn.utils import parameters_to_vector, vector_to_parameters


def test_round_trip_and_gradient():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    v = parameters_to_vector(m.parameters())
    assert v.shape == (6 + 2 + 2 + 1,) and v.requires_grad
    (v * am.arange(11).float()).sum().backward()
    assert m[0].weight.grad.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    vector_to_parameters(-v.detach(), m.parameters())
    np.testing.assert_array_equal(parameters_to_vector(m.parameters()).detach().numpy(),
                                  -v.detach().numpy())
    assert all(p.requires_grad and p.is_leaf for p in m.parameters())


def test_size_mismatch_and_bad_input_raise():
    m = nn.Linear(2, 2)
    with pytest.raises(am.AmberError, match=r"expected shape \(6,\)"):
        vector_to_parameters(am.zeros(5), m.parameters())
    with pytest.raises(am.AmberError, match="Tensor"):
        vector_to_parameters([0.0] * 6, m.parameters())
    with pytest.raises(am.AmberError, match="no parameters"):
        parameters_to_vector([])
