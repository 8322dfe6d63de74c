"""Concatenations computed in place: when every input of a concat along the channels is a
convolution's result (or the epilogue group after one) that only the concat reads, the
memory plan puts each of them inside the concat's result and the convolutions write
there (image by image at batch > 1: the images of a part are not contiguous). The concat
then copies nothing. The results must be the bits of the plain plan (fusion off) at any
batch and thread count, and the plan must refuse the placement wherever it is unsafe."""

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


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


class Fire(nn.Module):
    """SqueezeNet's fire module, its result read by a 1x1 convolution. ``variant``
    changes what reads the parts (see the tests)."""

    def __init__(self, variant: str = "fire", cin: int = 5, sq: int = 3, e1: int = 4,
                 e3: int = 6) -> None:
        super().__init__()
        self.variant = variant
        self.squeeze = nn.Conv2d(cin, sq, 1)
        self.expand1x1 = nn.Conv2d(sq, e1, 1)
        self.expand3x3 = nn.Conv2d(sq, e3, 3, padding=1)
        self.head = nn.Conv2d(e1 + e3, 2, 1)
        self.head6 = nn.Conv2d(e3, 2, 1)

    def forward(self, x: Any) -> Any:
        s = F.relu(self.squeeze(x))
        a, b = self.expand1x1(s), F.relu(self.expand3x3(s))  # a: a conv without a group
        v = self.variant
        if v == "twice":  # one value twice
            return self.head(am.cat([b, b[:, :4]], 1))
        if v == "axis2":  # along the rows
            return self.head6(am.cat([b, self.expand3x3(s)], 2))
        if v == "residual":  # the group after a part reads x's images: x + relu(conv(x))
            c = F.relu(self.expand1x1(s) + s[:, :1])
            return self.head(am.cat([c, b], 1))
        y = am.cat([a, b], 1)
        if v == "result":  # the concat is a result
            return y
        if v == "shared":  # a part read by another node too
            return self.head(y), a * 2
        return self.head(y)


def _export(tmp_path: Path, variant: str, seed: int = 0) -> Path:
    am.manual_seed(seed)
    path = tmp_path / f"{variant}.amber"
    am.export(Fire(variant).eval(), am.spec("batch", 5, "h", "w")).save(str(path))
    return path


def _run(lib: ctypes.CDLL, path: Path, x: np.ndarray, flags: int = 0,
         threads: int = 1) -> tuple[list[bytes], int]:
    """The outputs' bytes and the plan's value bytes."""
    with Model(lib, path=path, flags=flags, threads=threads) as m:
        assert m.status == 0, m.error
        s = Session(m)
        outs = s.run("forward", x)
        assert isinstance(outs, list), outs
        again = s.run("forward", x)  # the plan and the remembered types reused
        assert isinstance(again, list) and [o.tobytes() for o in again] == \
            [o.tobytes() for o in outs]
        value_bytes = s.stats().plan_value_bytes
        s.close()
    return [o.tobytes() for o in outs], value_bytes


@pytest.mark.parametrize("batch,h,w", [(1, 7, 9), (3, 7, 9), (2, 13, 13), (5, 4, 3)])
def test_fire_concat_in_place_gives_the_plain_bits(lib: ctypes.CDLL, tmp_path: Path,
                                                   batch: int, h: int, w: int) -> None:
    path = _export(tmp_path, "fire")
    x = np.random.default_rng(batch).standard_normal((batch, 5, h, w)).astype(np.float32)
    plain, plain_bytes = _run(lib, path, x, NO_FUSION)
    for threads in (1, 2, 3):
        got, value_bytes = _run(lib, path, x, 0, threads)
        assert got == plain, threads
        # planned: the squeeze's result and the concat's; the two parts lie inside it
        assert value_bytes == planned_bytes(batch, 3, h, w) + planned_bytes(batch, 10, h, w)
    # fusion off: the concat's inputs are a bias add and a ReLU (no conv): not placed
    assert plain_bytes > value_bytes + planned_bytes(batch, 10, h, w)
    am.manual_seed(0)
    module = Fire("fire").eval()
    want = module(am.tensor(x)).detach().numpy()
    np.testing.assert_allclose(np.frombuffer(plain[0], np.float32).reshape(want.shape), want,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["twice", "axis2", "residual", "result", "shared"])
def test_placement_is_refused_where_unsafe(lib: ctypes.CDLL, tmp_path: Path,
                                           variant: str) -> None:
    """A value concatenated twice, a concat along another axis, a part whose epilogue
    reads the batch's images, a concat that is a result and a part read elsewhere too:
    each concat copies its inputs as before (they keep their own slots), same bits."""
    path = _export(tmp_path, variant)
    batch, h, w = 2, 5, 6
    x = np.random.default_rng(1).standard_normal((batch, 5, h, w)).astype(np.float32)
    plain, _ = _run(lib, path, x, NO_FUSION)
    got, value_bytes = _run(lib, path, x)
    assert got == plain
    parts = {"twice": planned_bytes(batch, 6, h, w), "axis2": planned_bytes(batch, 6, h, w),
             "residual": planned_bytes(batch, 4, h, w) + planned_bytes(batch, 6, h, w),
             "result": planned_bytes(batch, 4, h, w) + planned_bytes(batch, 6, h, w),
             "shared": planned_bytes(batch, 4, h, w) + planned_bytes(batch, 6, h, w)}[variant]
    assert value_bytes >= planned_bytes(batch, 3, h, w) + parts, value_bytes
    am.manual_seed(0)
    want = Fire(variant).eval()(am.tensor(x))
    want = want if isinstance(want, tuple) else (want,)
    for g, wv in zip(got, want, strict=True):
        wv = wv.detach().numpy()
        np.testing.assert_allclose(np.frombuffer(g, np.float32).reshape(wv.shape), wv,
                                   rtol=1e-5, atol=1e-5)


def test_batch_sizes_share_a_session(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """One session through batch 1, 4 and 1 again (a plan each) and other image sizes:
    every result is the batch-1 run's bits for its image."""
    path = _export(tmp_path, "fire", seed=3)
    rng = np.random.default_rng(5)
    with Model(lib, path=path, threads=2) as m:
        s = Session(m)
        for h, w in ((6, 6), (9, 4)):
            x = rng.standard_normal((4, 5, h, w)).astype(np.float32)
            whole = s.run("forward", x)
            assert isinstance(whole, list), whole
            for i in range(4):
                one = s.run("forward", x[i:i + 1])
                assert isinstance(one, list), one
                assert one[0].tobytes() == whole[0][i:i + 1].tobytes()
        s.close()


@pytest.mark.sanitize
def test_concat_in_place_under_sanitizers(sanitize_build: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98"}
    x = np.random.default_rng(2).standard_normal((3, 5, 7, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    for variant in ("fire", "shared", "residual"):
        res = subprocess.run([str(sanitize_build / "amber-run"), str(_export(tmp_path, variant)),
                              "--entry", "forward", "--input", f"x={tmp_path / 'x.npy'}",
                              "--output", str(tmp_path)], capture_output=True, text=True,
                             env=env)
        assert res.returncode == 0, f"{variant}: {res.stderr}"


def _declared_program(path: Path, channels: int) -> Path:
    """Two 1x1 convolutions (4 and 6 channels) concatenated, the concat declaring
    `channels` (the parts' places follow from the declared types)."""
    from helpers.program_files import fn, node, p, program_file

    conv = {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1}
    nodes = [node("conv2d", ["x", "w1"], "a", conv, shape=["n", 4, 3, 3]),
             node("conv2d", ["x", "w2"], "b", conv, shape=["n", 6, 3, 3]),
             node("concat", ["a", "b"], "c", {"axis": 1}, shape=["n", channels, 3, 3]),
             node("neg", ["c"], "y", shape=["n", channels, 3, 3])]
    params = [p("x", shape=["n", 2, 3, 3]), p("w1", shape=[4, 2, 1, 1]),
              p("w2", shape=[6, 2, 1, 1])]
    return program_file(path, [fn("f", params, nodes, ["y"])])


@pytest.mark.parametrize("batch", [1, 3])
def test_hand_written_concat_of_convolutions(lib: ctypes.CDLL, tmp_path: Path,
                                             batch: int) -> None:
    """Plain conv2d nodes (weights as inputs) placed in a concat read by another op; a file
    whose concat declares other than its parts' channels is refused when it is opened."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 2, 3, 3)).astype(np.float32)
    w1, w2 = (rng.standard_normal((c, 2, 1, 1)).astype(np.float32) for c in (4, 6))
    want = -np.concatenate([np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x) for w in (w1, w2)], 1)
    for channels in (10, 7, 13):
        with Model(lib, path=_declared_program(tmp_path / "c.amber", channels)) as m:
            if channels != 10:
                assert m.status != 0 and "declared" in m.error, m.error
                continue
            assert m.status == 0, m.error
            s = Session(m)
            got = s.run("forward", x, w1, w2)
            assert isinstance(got, list), got
            np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)
            assert s.stats().plan_value_bytes == planned_bytes(batch, 10, 3, 3)  # c alone
            s.close()
