"""Hostile headers: any mutation of a valid program header either loads or raises
FormatError; nothing else escapes, nothing hangs."""

from __future__ import annotations

import copy
import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import amber as am
from amber.capture.serialize import header_to_json, program_from_header

_lin = am.nn.Linear(3, 2)
_PROGRAM = am.export(lambda x, i: (am.relu(_lin(x)).sum(1) + x[:, 0], _lin(x)[i]),
                     am.spec("batch", 3), am.tensor([0, 1]))
_HEADER, _TENSORS = header_to_json(_PROGRAM, {"k": "v"})


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


PATHS = [p for p in _paths(_HEADER) if p]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "batch", "2*batch", "x", "t0", "float32", "int64", "matmul",
                       "weights/weight", "nan", "inf", "n//0", "((", "constant", "call"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "dtype", "shape", "op", "inputs", "attrs", "outputs",
                         "tensor", "data", "value", "x"]), inner, max_size=3),
    max_leaves=8,
)


def _set(doc, path, value):
    node = doc
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        if isinstance(node, dict):
            node.pop(path[-1])
        else:
            node.pop(path[-1])
    else:
        node[path[-1]] = value


_DELETE = object()


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values | st.just(_DELETE)),
                min_size=1, max_size=3))
def test_mutated_headers_load_or_raise_format_error(mutations):
    header = copy.deepcopy(_HEADER)
    for path, value in mutations:
        try:
            _set(header, path, value)
        except (KeyError, IndexError, TypeError, AttributeError):
            continue  # an earlier mutation removed the parent
    try:
        program = program_from_header(header, _TENSORS)
    except am.FormatError:
        return
    # whatever loads must also run (or fail with an amber error) without crashing
    model = am.Model(program)
    try:
        model.verify()
    except am.AmberError:
        pass
    str(program)
    io.StringIO().write(repr(model))


def test_valid_header_loads():
    program = program_from_header(copy.deepcopy(_HEADER), _TENSORS)
    assert all(r.ok for r in am.Model(program).verify())
    assert np.array_equal(program.weights["weight"], _lin.weight.detach().numpy())
