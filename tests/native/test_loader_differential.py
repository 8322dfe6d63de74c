"""The C loader refuses every file the Python reader refuses.

``am.load`` on the native backend runs a file without building the Python program, so
libamber's loader must check what the Python reader checks (structure, names, types of
every node, call and loop, signatures, test vectors). Deterministic mutations of the
golden files' headers (a changed dim, dtype, symbol, attribute, input, op name, port;
a dropped, duplicated, reordered or renamed member) are opened by both readers.

The C loader refuses more than the Python reader in a few documented places (C_STRICTER):
unknown top-level header members, a test vector without ``dims``, negative tolerances,
and integer members written as booleans."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amber import native as N
from amber.capture.serialize import program_from_header
from amber.errors import AmberError
from amber.format import read_container, write_container

GOLDEN = sorted((Path(__file__).parent.parent / "golden").glob("v*/*.amber"))
N_MUTANTS = 400

C_STRICTER = ("unknown member", "missing member \"dims\"", "tolerances must be non-negative",
              "dims must map symbol names to integers")
"""What only the C loader refuses (messages); every other difference is a bug."""


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield prefix, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(
        obj, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


def _new_value(v: Any, pool: list[str], rng: random.Random) -> Any:
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return rng.choice([v + 1, v - 1, 0, 1, 2 * v + 1, "N", "batch", "2*batch", -1, 3.5,
                           None])
    if isinstance(v, float):
        return rng.choice([v + 1, -v, 0, "x", None])
    if isinstance(v, str):
        return rng.choice([rng.choice(pool), rng.choice(pool), v + "x", "", v.upper(), 7,
                           "batch+1", "2*" + v if v.isidentifier() else v + "+1"])
    if isinstance(v, list):
        if not v:
            return [rng.choice(pool)]
        new, i = list(v), rng.randrange(len(v))
        r = rng.randrange(5)
        if r == 0:
            del new[i]
        elif r == 1:
            new.insert(i, copy.deepcopy(v[i]))
        elif r == 2:
            new.reverse()
        elif r == 3:
            new = []
        else:
            new.append(copy.deepcopy(v[i]))
        return new
    if isinstance(v, dict):
        new_d, keys = dict(v), list(v)
        r = rng.randrange(4)
        if r == 0 and keys:
            del new_d[rng.choice(keys)]
        elif r == 1:
            new_d["extra"] = 1
        elif r == 2 and len(keys) >= 2:
            a, b = rng.sample(keys, 2)
            new_d[a], new_d[b] = v[b], v[a]
        elif keys:
            new_d[rng.choice(keys)] = copy.deepcopy(v[rng.choice(keys)])
        return new_d
    return rng.choice([0, "x", [], {}])


def mutate(header: dict[str, Any], pool: list[str], rng: random.Random
           ) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """A copy of ``header`` with one member of its program, signatures or test vectors
    changed (or renamed), and the path of that member."""
    h = copy.deepcopy(header)
    cands = [p for p, _ in _paths(h) if p and p[0] in ("program", "signatures",
                                                         "test_vectors")]
    path = cands[rng.randrange(len(cands))]
    parent: Any = h
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if isinstance(key, str) and rng.random() < 0.05:
        parent[key + "_"] = parent.pop(key)
    else:
        parent[key] = _new_value(parent[key], pool, rng)
    return h, path


def _python_refusal(data: bytes) -> str | None:
    try:
        c = read_container(data)
        program_from_header(c.header, c.tensors)
    except AmberError as e:
        return str(e)
    return None


def _c_refusal(data: bytes) -> str | None:
    try:
        N.NativeModel(data, threads=1).close()
    except N.NativeError as e:
        return str(e)
    return None


def test_c_refuses_what_python_refuses(lib: N.NativeLibrary, tmp_path: Path) -> None:
    rng = random.Random(20261206)
    sources = []
    for f in GOLDEN:
        c = read_container(f)
        pool = sorted({v for _, v in _paths(c.header) if isinstance(v, str)})
        sources.append((f.name, c.header, dict(c.tensors), pool))
    only_python, only_c, both = [], [], 0
    for _ in range(N_MUTANTS):
        name, header, tensors, pool = sources[rng.randrange(len(sources))]
        mutant, path = mutate(header, pool, rng)
        out = tmp_path / "m.amber"
        write_container(out, mutant, tensors)
        data = out.read_bytes()
        py, c = _python_refusal(data), _c_refusal(data)
        both += bool(py and c)
        if py and not c:
            only_python.append(f"{name} {path}: {py}")
        if c and not py and not any(w in c for w in C_STRICTER):
            only_c.append(f"{name} {path}: {c}")
    assert not only_python, "the C loader accepts:\n" + "\n".join(only_python)
    assert not only_c, "only the C loader refuses (document it in C_STRICTER):\n" + \
        "\n".join(only_c)
    assert both > N_MUTANTS // 2  # the mutations reach the checks


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_files_pass_both(lib: N.NativeLibrary, path: Path) -> None:
    data = path.read_bytes()
    assert _python_refusal(data) is None
    assert _c_refusal(data) is None


def test_a_node_that_needs_a_minimum_size_still_opens(tmp_path: Path) -> None:
    """Two unpadded 5x5 convolutions need inputs of 16 rows and columns at the least;
    the probe sizes are smaller, so the loader retries at large ones before refusing
    (the runtime checks sizes when it runs)."""
    import numpy as np

    import amber as am
    from amber import nn

    net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 5))
    path = tmp_path / "lenet.amber"
    am.export(net.eval(), am.spec("b", 1, "h", "w"),
              sizes={"b": (1, 2), "h": (16, 20), "w": (16, 24)}).save(path)
    with N.NativeModel(path) as m:
        (y,) = m.run("forward", np.ones((1, 1, 16, 17), np.float32))
        assert y.shape == (1, 8, 2, 2)
        with pytest.raises(N.NativeError, match="larger than"):
            m.run("forward", np.ones((1, 1, 8, 8), np.float32))
    assert am.load(path).backend == "native"
