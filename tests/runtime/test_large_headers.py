"""Headers that are large in one direction (many functions, nodes, weights, entry points,
ports, symbols, test vectors: tests/helpers/big_headers.py) load in time about linear in
their size. A loader that searches names linearly takes minutes on such files (100,000
functions: 7 minutes; 8 MiB of symbolic dims: 93 s), so each load runs in a subprocess
with a deadline of 30 s, some 25 times what it takes on a heavily loaded machine; the
measured times are in docs/security.md ("Large headers").

The Python reader (both backends run it: it type-checks the program) reads such files
with the cyclic garbage collector paused: each collection walks every object built so
far, so collections every few hundred allocations made reading a large header take
time quadratic in effect (64 MiB: 68 s, and minutes on a loaded machine)."""

from __future__ import annotations

import gc
import subprocess
from pathlib import Path

import pytest

import amber as am
from helpers.big_headers import SHAPES, sized

HEADER_BYTES = 8 << 20
"""About 40,000 to 120,000 of each item: seconds at most for an O(n log n) loader."""


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_c_loader_is_not_quadratic(runtime_build: Path, tmp_path: Path, shape: str) -> None:
    path = tmp_path / f"{shape}.amber"
    path.write_bytes(sized(shape, HEADER_BYTES))
    try:
        res = subprocess.run([str(runtime_build / "amber-run"), str(path)],
                             capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {HEADER_BYTES >> 20} MiB of {shape} took more than 30 s")
    assert res.returncode == 0, res.stderr
    assert "amber format 1" in res.stdout


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shapes_are_valid_for_the_python_reader(tmp_path: Path, shape: str) -> None:
    path = tmp_path / f"{shape}.amber"
    path.write_bytes(sized(shape, 64 << 10))
    model = am.load(path, backend="reference")
    assert model.program.entries
    if shape == "vectors":
        assert all(r.ok for r in model.verify()[:3])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_python_reader_runs_no_collection_while_reading(tmp_path: Path, shape: str) -> None:
    path = tmp_path / f"{shape}.amber"
    path.write_bytes(sized(shape, 256 << 10))  # some 1,000 to 4,000 of each item
    found: list[int] = []  # objects each collection freed

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            found.append(info["collected"])

    for backend in ("reference", None):  # None: native when libamber opens the file
        gc.collect()
        found.clear()
        gc.callbacks.append(on_gc)
        try:
            model = am.load(path, backend=backend)
        finally:
            gc.callbacks.remove(on_gc)
        # at most the collection that may start when the collector resumes, and it
        # finds no garbage: reading leaves no reference cycles (they would pile up while
        # the collector is paused: millions of objects, seconds to free)
        assert len(found) <= 1 and sum(found) == 0, (backend, found)
        assert model.program.entries
        del model  # a program's values and functions refer to each other: a cycle
