"""Results written over a residual: when the fused group after a 1x1 convolution adds a
value of the result's type that dies there (a ResNet block's last convolution), the memory
plan gives the result that value's memory, and with AVX-512 every GEMM tile reads its block
of the residual before it stores the result there (the columns of a last partial sliver,
on 14x14 and 7x7 images, through a buffer); any other path reads a copy. The results must
be the bits of the plain plan (fusion off) at any batch and thread count, and the plan
must refuse the placement where the residual's memory is still read."""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
import amber.nn as nn
import amber.nn.functional as F
from helpers.capi import NO_FUSION, Model, Session, load, planned_bytes
from helpers.programs import randomise_norm_state


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


class Block(nn.Module):
    """relu(x), then a bottleneck's 1x1 reduce and 1x1 expand whose BatchNorm adds the
    first relu's result (the residual) before its relu; a 1x1 head reads the block's
    result. ``variant`` changes what reads the residual (see the tests)."""

    def __init__(self, c: int, mid: int, variant: str = "over") -> None:
        super().__init__()
        self.variant = variant
        self.reduce = nn.Conv2d(c, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.expand = nn.Conv2d(mid, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.square = nn.Conv2d(c, c, 1, bias=False)
        self.wide = nn.Conv2d(mid, c, 3, padding=1, bias=False)
        self.head = nn.Conv2d(c, 3, 1)

    def block(self, r: Any) -> Any:
        h = F.relu(self.bn1(self.reduce(r)))
        return F.relu(self.bn2(self.expand(h)) + r)

    def forward(self, x: Any) -> Any:
        r, v = F.relu(x), self.variant
        if v == "alive":  # the residual read after the block too
            return self.head(self.block(r)) + self.head(r)
        if v == "own_input":  # the residual is the product's own input
            return self.head(F.relu(self.bn2(self.square(r)) + r))
        if v == "conv3x3":  # a 3x3 convolution's group adds it (its own kernel's path)
            return self.head(F.relu(self.bn2(self.wide(F.relu(self.reduce(r)))) + r))
        if v == "chain":  # the second block's residual is the first block's result
            return self.head(self.block(self.block(r)))
        return self.head(self.block(r))


def _export(tmp_path: Path, c: int, mid: int, variant: str, nan: bool = False) -> Path:
    am.manual_seed(1)
    model = Block(c, mid, variant)
    randomise_norm_state(model, 2)
    if nan:  # a NaN parameter: the tiles leave the epilogue to its pass
        state = model.state_dict()
        var = state["bn2.running_var"].numpy().copy()
        var[1] = np.nan
        state["bn2.running_var"] = am.tensor(var)
        model.load_state_dict(state)
    path = tmp_path / f"{variant}_{c}_{mid}_{int(nan)}.amber"
    am.export(model.eval(), am.spec("batch", c, "h", "w")).save(str(path))
    return path


def _run(lib: ctypes.CDLL, path: Path, x: np.ndarray, flags: int = 0,
         threads: int = 1) -> tuple[bytes, int]:
    """The output's bytes and the plan's value bytes."""
    with Model(lib, path=path, flags=flags, threads=threads) as m:
        assert m.status == 0, m.error
        s = Session(m)
        outs = s.run("forward", x)
        assert isinstance(outs, list), outs
        again = s.run("forward", x)  # the plan reused: the residual is new each run
        assert isinstance(again, list) and again[0].tobytes() == outs[0].tobytes()
        value_bytes = s.stats().plan_value_bytes
        s.close()
    return outs[0].tobytes(), value_bytes


def _input(batch: int, c: int, h: int, w: int, at: int = 3) -> np.ndarray:
    """NaN and inf through the sums, the residual and the relu (at pixel 0: a residual
    row starting with NaN, which the tiles add as any other value)."""
    x = np.random.default_rng(batch + h).standard_normal((batch, c, h, w)) * 2
    x.flat[at:at + 2] = [np.nan, np.inf]
    return x.astype(np.float32)


# (channels, bottleneck channels, height, width): 196 and 49 pixels (a last partial
# sliver of 4 and 1 columns), 99 (3), 3136 (whole slivers; 16 deep: the small
# convolution's path, then a copy), 600 deep (more than one k block: a copy)
SHAPES = [(24, 16, 14, 14), (40, 12, 7, 7), (20, 8, 9, 11), (32, 16, 56, 56),
          (16, 600, 5, 7)]


@pytest.mark.parametrize("c,mid,h,w", SHAPES)
def test_result_over_the_residual_gives_the_plain_bits(lib: ctypes.CDLL, tmp_path: Path,
                                                       c: int, mid: int, h: int,
                                                       w: int) -> None:
    path = _export(tmp_path, c, mid, "over")
    for batch in (1, 3):
        x = _input(batch, c, h, w)
        plain, _ = _run(lib, path, x, NO_FUSION)
        for threads in (1, 2, 3):
            got, value_bytes = _run(lib, path, x, 0, threads)
            assert got == plain, (batch, threads)
            # planned: relu(x) and the reduce's result; the block's result lies over relu(x)
            # (a batch run image by image: the batch-1 plan)
            assert value_bytes in [planned_bytes(b, c, h, w) + planned_bytes(b, mid, h, w)
                                   for b in (1, batch)]
    with am.no_grad(), np.errstate(invalid="ignore"):
        am.manual_seed(1)
        model = Block(c, mid)
        randomise_norm_state(model, 2)
        want = model.eval()(am.tensor(x)).numpy()
    np.testing.assert_allclose(np.frombuffer(plain, np.float32).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c,mid,h,w", SHAPES[:3])
def test_a_nan_parameter_reads_a_copy_a_nan_first_element_not(lib: ctypes.CDLL, tmp_path: Path,
                                                           c: int, mid: int, h: int,
                                                           w: int) -> None:
    """A NaN scalar of the epilogue (the BatchNorm's) leaves the tiles' epilogue to its
    pass, on a copy of the residual; a residual row starting with NaN (never a scalar: the
    tile adds the row) goes through the tiles, written over it. The plain bits both."""
    for nan, at in ((True, 3), (False, 0)):
        path = _export(tmp_path, c, mid, "over", nan=nan)
        x = _input(2, c, h, w, at)
        plain, _ = _run(lib, path, x, NO_FUSION)
        for threads in (1, 2):
            assert _run(lib, path, x, 0, threads)[0] == plain, (nan, at, threads)


def test_blocks_in_a_row_each_write_over_the_last(lib: ctypes.CDLL, tmp_path: Path) -> None:
    c, mid, h, w = 24, 16, 7, 7
    path = _export(tmp_path, c, mid, "chain")
    for batch in (1, 2):
        x = _input(batch, c, h, w)
        plain, _ = _run(lib, path, x, NO_FUSION)
        for threads in (1, 2):
            got, value_bytes = _run(lib, path, x, 0, threads)
            assert got == plain
            # relu(x), whose memory both blocks' results take, and the reduce's results
            assert value_bytes == (planned_bytes(batch, c, h, w)
                                   + 2 * planned_bytes(batch, mid, h, w))


@pytest.mark.parametrize("variant", ["alive", "own_input", "conv3x3"])
def test_placement_is_refused_where_the_residual_is_read(lib: ctypes.CDLL, tmp_path: Path,
                                                         variant: str) -> None:
    """A residual read after the group, a residual the product itself reads, a 3x3
    convolution's (not a path whose tiles read it first): the result keeps a slot of its
    own, same bits."""
    c, mid, h, w = 24, 16, 14, 14
    path = _export(tmp_path, c, mid, variant)
    batch = 2
    x = _input(batch, c, h, w)
    plain, _ = _run(lib, path, x, NO_FUSION)
    for threads in (1, 2):
        got, value_bytes = _run(lib, path, x, 0, threads)
        assert got == plain
        assert value_bytes >= 2 * planned_bytes(batch, c, h, w), value_bytes


@pytest.mark.sanitize
def test_result_over_the_residual_under_sanitizers(sanitize_build: Path,
                                                   tmp_path: Path) -> None:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98"}
    for c, mid, h, w in SHAPES[:3]:
        np.save(tmp_path / "x.npy", _input(2, c, h, w))
        for variant in ("over", "chain", "alive"):
            res = subprocess.run([str(sanitize_build / "amber-run"),
                                  str(_export(tmp_path, c, mid, variant)), "--entry",
                                  "forward", "--input", f"x={tmp_path / 'x.npy'}", "--output",
                                  str(tmp_path)], capture_output=True, text=True, env=env)
            assert res.returncode == 0, f"{variant} {c} {h}x{w}: {res.stderr}"
