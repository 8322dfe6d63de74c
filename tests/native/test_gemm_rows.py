"""Results that must not depend on how work is split: a row of a matrix product has the
same bits whatever the number of rows around it (the last, shorter panel of rows runs a
kernel of fewer rows that rounds as the full one), and a large fused elementwise group
gives the same bits on one thread and on several."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_do_not_depend_on_the_row_count(lib: N.NativeLibrary, dtype: type,
                                             tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = am.tensor(rng.standard_normal((70, 45)).astype(dtype))
    am.export(lambda x: x @ w, am.spec("rows", 70, dtype=np.dtype(dtype).name)).save(
        tmp_path / "mm.amber")
    model = N.NativeModel(tmp_path / "mm.amber")
    x = rng.standard_normal((40, 70)).astype(dtype)
    full = model.run("forward", x)[0]
    for rows in (3, 4, 5, 8, 9, 12, 13, 16, 20, 25):
        np.testing.assert_array_equal(model.run("forward", x[:rows])[0], full[:rows])
    np.testing.assert_allclose(full, x @ w.numpy(), rtol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("k", [70, 600])
def test_a_last_seventeen_columns_have_the_bits_of_whole_slivers(lib: N.NativeLibrary, k: int,
                                                                 tmp_path: Path) -> None:
    """n = 17, 49, 81 (a last pass of one sliver and one column, with AVX-512 that column
    with the rows as lanes) against the same columns of a product 96 wide; one and two
    depth blocks, a short last panel of rows, 1, 2 and 3 threads."""
    rng = np.random.default_rng(k)
    w = rng.standard_normal((k, 96)).astype(np.float32)
    x = rng.standard_normal((13, k)).astype(np.float32)
    outs = {}
    for n in (96, 17, 49, 81):
        wn = am.tensor(np.ascontiguousarray(w[:, :n]))
        am.export(lambda a, wn=wn: a @ wn, am.spec("rows", k)).save(tmp_path / f"m{n}.amber")
        outs[n] = [N.NativeModel(tmp_path / f"m{n}.amber", threads=t).run("forward", x)[0]
                   for t in (1, 2, 3)]
    for n in (17, 49, 81):
        for got in outs[n]:
            assert got.tobytes() == np.ascontiguousarray(outs[96][0][:, :n]).tobytes(), n
    ref = x.astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_allclose(outs[96][0], ref, rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("shape", [(300, 230), (70000,), (3, 1, 40000)])
def test_large_fused_groups_split_between_threads(lib: N.NativeLibrary, shape: tuple,
                                                  tmp_path: Path) -> None:
    """A fused elementwise group large enough to run on the pool gives the bits of one
    thread and of eager execution."""
    rng = np.random.default_rng(1)
    bias = am.tensor(rng.standard_normal(shape[-1]).astype(np.float32))

    def fn(x: am.Tensor) -> am.Tensor:
        return am.nn.functional.gelu(x + bias) * 0.5 - am.tanh(x)

    am.export(fn, am.spec(*shape)).save(tmp_path / "g.amber")
    x = rng.standard_normal(shape).astype(np.float32)
    outs = [N.NativeModel(tmp_path / "g.amber", threads=t).run("forward", x)[0]
            for t in (1, 2, 8)]
    assert N.NativeModel(tmp_path / "g.amber").stats().fused_groups >= 1
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    np.testing.assert_array_equal(outs[0], fn(am.tensor(x)).numpy())


@pytest.mark.parametrize("case", ["tall", "wide", "left", "deep", "deep64", "few", "conv_late",
                                  "conv_early"])
def test_tiles_do_not_change_bits(lib: N.NativeLibrary, case: str, tmp_path: Path) -> None:
    """Products split into tiles over rows, columns or both (by shape and thread count),
    with B packed by each tile or shared, and A packed or read in place, give the bits
    of one thread at 2, 3 and 8 threads. `deep`: two blocks of rows, each split over
    columns, A's rows 4 KiB apart (packed, not read in place): both blocks packed once
    for all tasks; `deep64`: float64, three blocks of rows (shared from 3 threads on);
    `few`: 16 rows, the weight packed once, two k blocks each task takes in turn."""
    rng = np.random.default_rng(5)
    f32 = np.float64 if case == "deep64" else np.float32
    if case.startswith("conv"):  # out channels x (in channels x taps) @ pixels, batch 1
        c_in, c_out, hw = (64, 96, 7) if case == "conv_late" else (8, 24, 40)
        am.manual_seed(5)
        net = am.nn.Conv2d(c_in, c_out, 3, padding=1).eval()
        spec, x = am.spec(1, c_in, hw, hw), rng.standard_normal((1, c_in, hw, hw)).astype(f32)
        fn = net
    else:
        m, k, n = {"tall": (300, 200, 40), "wide": (20, 150, 900), "left": (150, 260, 70),
                   "deep": (251, 1024, 131), "deep64": (199, 300, 131),
                   "few": (16, 1100, 200)}[case]
        w = am.tensor(rng.standard_normal((m, k) if case == "left" else (k, n)).astype(f32))
        shape = (k, n) if case == "left" else (m, k)
        spec = am.spec(*shape, dtype=np.dtype(f32).name)
        x = rng.standard_normal(shape).astype(f32)
        fn = (lambda a: w @ a) if case == "left" else (lambda a: a @ w)
    am.export(fn, spec).save(tmp_path / "p.amber")
    outs = [N.NativeModel(tmp_path / "p.amber", threads=t).run("forward", x)[0]
            for t in (1, 2, 3, 8)]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    np.testing.assert_allclose(outs[0], fn(am.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows", [13, 29, 48])
def test_left_operand_layout_does_not_change_bits(lib: N.NativeLibrary, rows: int,
                                                  tmp_path: Path) -> None:
    """A row-major left operand (read in place, its last short panel of rows packed) and
    the same operand given transposed (packed) give the same bits, on 1 and 2 threads."""
    rng = np.random.default_rng(7)
    w = am.tensor(rng.standard_normal((37, 70)).astype(np.float32))
    am.export(lambda x: x @ w, am.spec(rows, 37)).save(tmp_path / "a.amber")
    am.export(lambda xt: xt.transpose(0, 1) @ w, am.spec(37, rows)).save(tmp_path / "t.amber")
    x = rng.standard_normal((rows, 37)).astype(np.float32)
    outs = [N.NativeModel(tmp_path / f, threads=t).run("forward", a)[0]
            for f, a in (("a.amber", x), ("t.amber", np.ascontiguousarray(x.T)))
            for t in (1, 2)]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    np.testing.assert_allclose(outs[0], x @ w.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c_in, hw", [(600, (13, 11)), (40, (9, 18)), (24, (16, 16))])
def test_pointwise_convolution_reads_its_image_in_place(lib: N.NativeLibrary, c_in: int,
                                                        hw: tuple, tmp_path: Path) -> None:
    """A 1x1 convolution whose weight a session keeps packed reads the image's whole
    16-column slivers in place (a last partial one packed): the bits of the packed product
    (eager execution), at 1, 2 and 3 threads; with two k blocks (600 channels), a last
    partial sliver (143 and 162 pixels) and none (256)."""
    rng = np.random.default_rng(7)
    am.manual_seed(7)
    net = am.nn.Conv2d(c_in, 20, 1).eval()
    am.export(net, am.spec("batch", c_in, *hw)).save(tmp_path / "pw.amber")
    x = rng.standard_normal((2, c_in, *hw)).astype(np.float32)
    want = net(am.tensor(x)).detach().numpy()
    for t in (1, 2, 3):
        model = N.NativeModel(tmp_path / "pw.amber", threads=t)
        for i in range(2):
            np.testing.assert_array_equal(model.run("forward", x[i:i + 1])[0], want[i:i + 1])
    w64 = net.weight.detach().numpy()[:, :, 0, 0].astype(np.float64)
    ref = np.einsum("oc,nchw->nohw", w64, x.astype(np.float64))
    ref += net.bias.detach().numpy()[None, :, None, None]
    np.testing.assert_allclose(want, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride", [(2, 2), (2, 3)])
def test_strided_pointwise_convolution_gives_the_pointwise_bits(lib: N.NativeLibrary,
                                                               stride: tuple,
                                                               tmp_path: Path) -> None:
    """A strided 1x1 convolution without padding sums over the channels of every
    stride-th pixel as the unstrided one does on those pixels: the same bits, at batch 1
    and 3 and at 1 and 2 threads."""
    rng = np.random.default_rng(8)
    am.manual_seed(8)
    strided = am.nn.Conv2d(40, 24, 1, stride=stride).eval()
    plain = am.nn.Conv2d(40, 24, 1).eval()
    plain.load_state_dict(strided.state_dict())
    am.export(strided, am.spec("batch", 40, 29, 31)).save(tmp_path / "s.amber")
    x = rng.standard_normal((3, 40, 29, 31)).astype(np.float32)
    sub = np.ascontiguousarray(x[:, :, ::stride[0], ::stride[1]])
    am.export(plain, am.spec("batch", 40, *sub.shape[2:])).save(tmp_path / "p.amber")
    for t in (1, 2):
        s = N.NativeModel(tmp_path / "s.amber", threads=t)
        p = N.NativeModel(tmp_path / "p.amber", threads=t)
        for part in (slice(0, 1), slice(0, 3)):
            np.testing.assert_array_equal(s.run("forward", x[part])[0],
                                          p.run("forward", sub[part])[0])
