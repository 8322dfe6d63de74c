"""Two models side by side in one process, each with sessions, run from two threads:
results are bit-identical to single-threaded runs; sessions are per thread and reused."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import _threads as amt
from amber import native as N

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RUNS = 200


def _inputs(m: N.NativeModel, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for port in m.signature().inputs:
        shape = tuple(2 + seed % 3 if isinstance(d, str) else d for d in port.shape)
        out.append(rng.standard_normal(shape).astype(port.dtype))
    return out


def test_two_models_two_threads(lib: N.NativeLibrary) -> None:
    models = [N.NativeModel(GOLDEN / "v1" / "mlp.amber"),
              N.NativeModel(GOLDEN / "v1" / "cnn.amber", threads=1)]
    cases = {(i, seed): _inputs(m, seed) for i, m in enumerate(models) for seed in range(4)}
    want = {k: models[k[0]].run("forward", *v) for k, v in cases.items()}
    errors: list[BaseException] = []
    sessions: dict[str, set[int]] = {}
    main_sessions = {m.session().handle for m in models}  # alive throughout
    both_alive = threading.Barrier(2, timeout=60)

    def worker(name: str, order: list[tuple[int, int]]) -> None:
        try:
            for r in range(RUNS):
                key = order[r % len(order)]
                got = models[key[0]].run("forward", *cases[key])
                for g, w in zip(got, want[key]):
                    assert g.tobytes() == w.tobytes(), (name, key, r)
            sessions[name] = {m.session().handle for m in models}
            both_alive.wait()  # neither thread's sessions are freed before both recorded
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    keys = sorted(cases)
    threads = [threading.Thread(target=worker, args=("a", keys)),
               threading.Thread(target=worker, args=("b", keys[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # one session per model per thread, none shared between threads or with this one
    assert len(sessions["a"]) == len(sessions["b"]) == 2
    assert not (sessions["a"] & sessions["b"]) and not (sessions["a"] & main_sessions)
    # the main thread's session is reused run after run
    before = models[0].session().handle
    models[0].run("forward", *cases[(0, 0)])
    assert models[0].session().handle == before
    for m in models:
        m.close()


def test_loaded_models_side_by_side_from_threads(lib: N.NativeLibrary) -> None:
    a = am.load(GOLDEN / "v1" / "mlp.amber")
    b = am.load(GOLDEN / "v1" / "symbolic.amber")
    assert a.backend == b.backend == "native"
    xs = {"a": _inputs(a.native, 1), "b": _inputs(b.native, 2)}
    want = {"a": a.native.run("forward", *xs["a"]), "b": b.native.run("forward", *xs["b"])}
    errors: list[BaseException] = []

    def worker(model: am.Model, key: str) -> None:
        try:
            for _ in range(50):
                got = model.native.run("forward", *xs[key])
                assert all(np.array_equal(g, w) for g, w in zip(got, want[key]))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(m, k)) for m, k in
               ((a, "a"), (b, "b"), (a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_sessions_of_finished_threads_are_freed(lib: N.NativeLibrary) -> None:
    m = N.NativeModel(GOLDEN / "v1" / "mlp.amber")
    x = _inputs(m, 0)

    def worker() -> None:
        m.run("forward", *x)

    for _ in range(5):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    import gc

    gc.collect()
    assert len(m._handles.sessions) <= 1
    m.run("forward", *x)
    m.close()
    assert not m._handles.sessions


def test_products_of_weights_agree_across_batches_threads_and_runs(lib: N.NativeLibrary,
                                                                   tmp_path: Path) -> None:
    """Products with a weight at batch 1 and 2 (rows streamed past B), 3 and 64 (B packed,
    the packed copy kept from the first such run on): close to the reference interpreter,
    and bit-identical run after run and between one and two threads."""
    am.manual_seed(0)
    net = am.nn.Sequential(am.nn.Linear(300, 200), am.nn.ReLU(), am.nn.Linear(200, 37))
    path = tmp_path / "mlp.amber"
    am.export(net, am.spec("batch", 300)).save(path)
    ref = am.load(path, backend="reference")
    one, two = N.NativeModel(path, threads=1), N.NativeModel(path, threads=2)
    rng = np.random.default_rng(0)
    for b in (1, 2, 3, 64):
        x = rng.standard_normal((b, 300)).astype(np.float32)
        [first] = one.run("forward", x)
        np.testing.assert_allclose(first, ref.run("forward", x).numpy(), rtol=1e-4, atol=1e-4)
        for m in (two, one, two):
            assert m.run("forward", x)[0].tobytes() == first.tobytes(), b


@pytest.mark.parametrize("out, k", [(10, 300), (3, 40), (10, 64), (3, 65), (17, 300)])
def test_narrow_products_of_weights_keep_their_packed_copy(lib: N.NativeLibrary, out: int,
                                                           k: int, tmp_path: Path) -> None:
    """A linear layer with fewer outputs than a packed sliver's 16 columns (the digits
    CNN's 784 -> 10 head), shallow (the small-product kernel) or deep, or a partial last
    sliver: with its transposed weight packed once per session, the bits of the same
    product with the weight passed in at every run, at batch 1 to 40, on one and two
    threads, run after run."""
    rng = np.random.default_rng(out + k)
    w = rng.standard_normal((out, k)).astype(np.float32)
    wt = am.tensor(w)
    am.export(lambda x: am.nn.functional.linear(x, wt), am.spec("batch", k)).save(
        tmp_path / "kept.amber")
    am.export(lambda x, v: am.nn.functional.linear(x, v), am.spec("batch", k),
              am.spec(out, k)).save(tmp_path / "input.amber")
    plain = N.NativeModel(tmp_path / "input.amber", threads=1)
    kept = [N.NativeModel(tmp_path / "kept.amber", threads=t) for t in (1, 2)]
    for b in (1, 2, 3, 8, 40):
        x = rng.standard_normal((b, k)).astype(np.float32)
        [want] = plain.run("forward", x, w)
        np.testing.assert_allclose(want, x @ w.T, rtol=1e-4, atol=1e-4)
        for m in (*kept, *kept):
            assert m.run("forward", x)[0].tobytes() == want.tobytes(), (b, out)


def test_load_passes_threads_to_the_runtime(lib: N.NativeLibrary,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    real = N.NativeModel

    def spy(*args: object, **kwargs: object) -> N.NativeModel:
        seen.update(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(N, "NativeModel", spy)
    m = am.load(GOLDEN / "v1" / "mlp.amber", backend="native", threads=3)
    assert seen["threads"] == 3 and m.backend == "native"
    am.load(GOLDEN / "v1" / "mlp.amber", backend="native")
    assert seen["threads"] == am.get_num_threads()  # the setting (by default, the cores)
    monkeypatch.setattr(amt, "_num_threads", amt.get_num_threads())  # restored after
    am.set_num_threads(2)  # the default of models loaded afterwards
    am.load(GOLDEN / "v1" / "mlp.amber", backend="native")
    assert seen["threads"] == 2
    am.load(GOLDEN / "v1" / "mlp.amber", backend="native", threads=1)
    assert seen["threads"] == 1  # an explicit count wins


def test_kept_weights_give_way_under_the_memory_limit(lib: N.NativeLibrary,
                                                      tmp_path: Path) -> None:
    """A packed weight kept for speed counts against the memory limit but never makes a
    run fail: a session that runs under some limit runs under every larger one, with the
    same bits (here the packed copy of the first weight would otherwise crowd out the
    second weight's transpose or the values of the run)."""
    am.manual_seed(0)
    net = am.nn.Sequential(am.nn.Linear(300, 200), am.nn.ReLU(), am.nn.Linear(200, 37))
    path = tmp_path / "mlp.amber"
    am.export(net, am.spec("batch", 300)).save(path)
    x = np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32)
    _runs_under_growing_limits(path, x, range(300_000, 1_000_001, 50_000), threads=1)


def test_direct_convolution_under_the_memory_limit(lib: N.NativeLibrary,
                                                   tmp_path: Path) -> None:
    """A 3x3 convolution computed directly (at stride 1 by rows: on AVX-512 its tile
    buffers take 123 KB a thread, on AVX2 it runs from about 0.9 MB here; elsewhere
    through the GEMM, from about 1.1 MB) with its packed filters kept: under a limit too
    small for its scratch memory the run fails cleanly, never falling back to a path of
    other bits; from some limit on it runs, with the same bits."""
    am.manual_seed(0)
    nn = am.nn
    net = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, padding=1)).eval()
    path = tmp_path / "conv.amber"
    am.export(net, am.spec("batch", 64, 20, 20)).save(path)
    x = np.random.default_rng(0).standard_normal((2, 64, 20, 20)).astype(np.float32)
    _runs_under_growing_limits(path, x, range(300_000, 1_500_001, 50_000), threads=2)


def _runs_under_growing_limits(path: Path, x: np.ndarray, limits: range, threads: int) -> None:
    """Once a session runs under a memory limit it runs under every larger one, with
    the single-threaded run's bits."""
    [want] = N.NativeModel(path, threads=1).run("forward", x)
    ran = []
    for limit in limits:
        m = N.NativeModel(path, threads=threads, memory_limit=limit)
        try:
            outs = [m.run("forward", x)[0] for _ in range(2)]
        except N.NativeLimitError:
            ran.append(False)
            continue
        ran.append(True)
        assert all(o.tobytes() == want.tobytes() for o in outs), limit
    assert True in ran and ran == sorted(ran), ran  # once it runs, it keeps running


class _ResBlock(am.nn.Module):
    """A ResNet bottleneck with a 1x1, a 3x3 (stride 2), a depthwise conv, batch norm,
    ReLU, max- and average-pooling: every convolution path and both pooling kernels."""

    def __init__(self) -> None:
        super().__init__()
        nn = am.nn
        self.c1, self.b1 = nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24)
        self.c2, self.b2 = nn.Conv2d(24, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24)
        self.dw = nn.Conv2d(24, 24, 3, 1, 1, groups=24)
        self.c3 = nn.Conv2d(24, 32, 1)
        self.down = nn.Conv2d(16, 32, 1, 2)

    def forward(self, x):
        F = am.nn.functional
        h = F.relu(self.b1(self.c1(x)))
        h = F.relu(self.b2(self.c2(h)))
        h = self.c3(F.relu(self.dw(h)))
        h = F.relu(h + self.down(x))
        return F.max_pool2d(h, 3, 2, 1) + F.avg_pool2d(h, 3, 2, 1, count_include_pad=False)


def test_resnet_block_bits_do_not_depend_on_threads(lib: N.NativeLibrary,
                                                    tmp_path: Path) -> None:
    """Summation orders depend on shapes only: a ResNet block gives the same bits with 1
    and 8 threads, 8 threads calling concurrently, run after run."""
    am.manual_seed(3)
    net = _ResBlock().eval()
    path = tmp_path / "block.amber"
    am.export(net, am.spec("batch", 16, 20, 20)).save(path)
    x = np.random.default_rng(3).standard_normal((2, 16, 20, 20)).astype(np.float32)
    [want] = N.NativeModel(path, threads=1).run("forward", x)
    ref = am.load(path, backend="reference").run("forward", x).numpy()
    np.testing.assert_allclose(want, ref, rtol=1e-4, atol=1e-4)
    many = N.NativeModel(path, threads=8)
    bad: list[int] = []

    def worker(k: int) -> None:
        for _ in range(125):  # 8 x 125 = 1000 runs
            if many.run("forward", x)[0].tobytes() != want.tobytes():
                bad.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
    # large enough that every kernel (pooling included) splits its work among threads
    big = np.random.default_rng(4).standard_normal((4, 16, 48, 48)).astype(np.float32)
    path = tmp_path / "big.amber"
    am.export(net, am.spec("batch", 16, 48, 48)).save(path)
    [want] = N.NativeModel(path, threads=1).run("forward", big)
    for threads_n in (2, 3, 8):
        m = N.NativeModel(path, threads=threads_n)
        for _ in range(4):
            assert m.run("forward", big)[0].tobytes() == want.tobytes(), threads_n


class _MobileTail(am.nn.Module):
    """The end of MobileNetV2 in small: a stride-2 depthwise convolution from 14x14 to 7x7
    and a stride-1 one on 7x7 (each plane a few vectors), with batch norm and ReLU6."""

    def __init__(self) -> None:
        super().__init__()
        nn = am.nn
        self.d1, self.b1 = nn.Conv2d(64, 64, 3, 2, 1, groups=64, bias=False), nn.BatchNorm2d(64)
        self.d2, self.b2 = nn.Conv2d(64, 64, 3, 1, 1, groups=64, bias=False), nn.BatchNorm2d(64)

    def forward(self, x):
        F = am.nn.functional
        h = F.relu6(self.b1(self.d1(x)))
        return F.relu6(self.b2(self.d2(h)))


def test_small_depthwise_planes_do_not_depend_on_threads(lib: N.NativeLibrary,
                                                         tmp_path: Path) -> None:
    """Depthwise convolutions of 7x7 planes split between threads: the reference's values
    and the same bits with 1, 2, 3 and 8 threads."""
    am.manual_seed(8)
    x = np.random.default_rng(8).standard_normal((8, 64, 14, 14)).astype(np.float32)
    _same_bits_across_threads(_MobileTail().eval(), tmp_path / "tail.amber", x, (2, 3, 8),
                              1e-5)


def test_depthwise_rows_do_not_depend_on_threads(lib: N.NativeLibrary, tmp_path: Path) -> None:
    """Depthwise 3x3 convolutions on rows wider than 8 (strips carried down the plane) at
    stride 2 and then 1 (rows of two whole vectors, 22x64 to 11x32): the reference's
    values and the same bits with 1, 2, 3 and 8 threads."""
    am.manual_seed(9)
    x = np.random.default_rng(9).standard_normal((2, 64, 22, 64)).astype(np.float32)
    _same_bits_across_threads(_MobileTail().eval(), tmp_path / "rows.amber", x, (2, 3, 8),
                              1e-5)


def _same_bits_across_threads(net: am.nn.Module, path: Path, x: np.ndarray,
                              threads: tuple[int, ...], tol: float) -> None:
    """net exported for x (batch symbolic) at path: the reference's values within tol,
    and with each thread count the bits of one thread, run after run (weights are packed
    on the first run)."""
    am.export(net, am.spec("batch", *x.shape[1:])).save(path)
    ref = am.load(path, backend="reference").run("forward", x).numpy()
    [want] = N.NativeModel(path, threads=1).run("forward", x)
    np.testing.assert_allclose(want, ref, rtol=tol, atol=tol)
    for n in threads:
        m = N.NativeModel(path, threads=n)
        for _ in range(3):
            assert m.run("forward", x)[0].tobytes() == want.tobytes(), n


class _SmallImages(am.nn.Module):
    """Convolutions on 7x7 images: a 3x3, a 1x1 and a strided 1x1, each with batch norm
    and ReLU (products transposed at batch 1, images side by side at larger batches)."""

    def __init__(self) -> None:
        super().__init__()
        nn = am.nn
        self.c1, self.b1 = nn.Conv2d(24, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32)
        self.c2 = nn.Conv2d(32, 48, 1)
        self.c3 = nn.Conv2d(48, 16, 1, 2)

    def forward(self, x):
        F = am.nn.functional
        h = F.relu(self.b1(self.c1(x)))
        return self.c3(F.relu(self.c2(h)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convolutions_of_an_image_do_not_depend_on_its_batch(lib: N.NativeLibrary,
                                                             tmp_path: Path, dtype) -> None:
    """An image gives the same bits alone and within a batch, with 1 and 2 threads: every
    convolution path sums in the same order."""
    am.manual_seed(5)
    net = _SmallImages().eval()
    if dtype is np.float64:
        net = net.double()
    path = tmp_path / "small.amber"
    am.export(net, am.spec("batch", 24, 7, 7, dtype=am.float64 if dtype is np.float64
                           else am.float32)).save(path)
    x = np.random.default_rng(5).standard_normal((5, 24, 7, 7)).astype(dtype)
    ref = am.load(path, backend="reference").run("forward", x).numpy()
    for threads in (1, 2):
        m = N.NativeModel(path, threads=threads)
        [whole] = m.run("forward", x)
        np.testing.assert_allclose(whole, ref, rtol=1e-4, atol=1e-4)
        for i in range(len(x)):
            for _ in range(2):  # the transposed weight is packed on the first run
                assert m.run("forward", x[i:i + 1])[0].tobytes() == whole[i:i + 1].tobytes()


@pytest.mark.parametrize("inner", [63, 64, 65])
def test_large_copies_split_between_threads(lib: N.NativeLibrary, tmp_path: Path,
                                            inner: int) -> None:
    """Transposes, slices and concatenations of a few hundred thousand elements (rows of
    up to 64 elements copied a block at a time, longer ones row by row) split between the
    pool's threads: NumPy's values at every thread count."""

    def fn(x):
        t = x.permute(2, 0, 3, 1, 4)
        return am.cat([t[0] * 1.0, t[2][:, 1:]], 1), (t[1] + 1.0).permute(0, 2, 1, 3)

    x = np.random.default_rng(5).standard_normal((2, 150, 3, 12, inner)).astype(np.float32)
    path = tmp_path / "copies.amber"
    am.export(fn, am.spec(*x.shape)).save(path)
    t = x.transpose(2, 0, 3, 1, 4)
    want = [np.concatenate([t[0], t[2][:, 1:]], 1), (t[1] + 1.0).transpose(0, 2, 1, 3)]
    for threads_n in (1, 2, 8):
        got = N.NativeModel(path, threads=threads_n).run("forward", x)
        for g, w in zip(got, want, strict=True):
            assert g.tobytes() == np.ascontiguousarray(w).tobytes(), threads_n


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_concatenations_split_between_threads(lib: N.NativeLibrary, tmp_path: Path,
                                              axis: int, dtype) -> None:
    """A concatenation of some hundred thousand elements along each axis (inputs of odd
    sizes, one of extent 1 along it), after an elementwise op that wakes the pool: each
    input copied by the pool's threads, NumPy's bits at every thread count, run after
    run."""
    rng = np.random.default_rng(axis)
    shape = [3, 17, 9, 77]
    xs = []
    for extent in (shape[axis], 1, 5):
        s = list(shape)
        s[axis] = extent
        xs.append((rng.standard_normal(s) * 100).astype(dtype))

    def fn(a, b, c):
        return am.cat([a + a, b, c], axis)

    path = tmp_path / "cat.amber"
    am.export(fn, *(am.spec(*x.shape, dtype=getattr(am, x.dtype.name)) for x in xs)).save(path)
    want = np.concatenate([xs[0] + xs[0], xs[1], xs[2]], axis)
    for threads_n in (1, 2, 3, 8):
        m = N.NativeModel(path, threads=threads_n)
        for _ in range(3):
            assert m.run("forward", *xs)[0].tobytes() == want.tobytes(), threads_n


class _OneImage(am.nn.Module):
    """Convolutions of one image whose products split between threads by columns (an
    odd count of two-sliver units), by groups of rows (few columns, many rows; two depth
    blocks), and a 1x1 read in place with a partial last sliver, with epilogues (batch
    norm, ReLU, a residual sum)."""

    def __init__(self) -> None:
        super().__init__()
        nn = am.nn
        self.c1, self.b1 = nn.Conv2d(8, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
        self.c2 = nn.Conv2d(64, 60, 3, 2, 0)
        self.c3 = nn.Conv2d(60, 600, 1)
        self.c4, self.b4 = nn.Conv2d(600, 60, 1, bias=False), nn.BatchNorm2d(60)

    def forward(self, x):
        F = am.nn.functional
        h = F.relu(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(self.b4(self.c4(F.relu(self.c3(h)))) + h)


def test_one_image_bits_do_not_depend_on_threads(lib: N.NativeLibrary,
                                                 tmp_path: Path) -> None:
    """A convolution of one image runs its product in tasks that each take a share of
    the columns or rows through every depth block: the same bits with 1, 2 and 3
    threads, and the reference's values."""
    am.manual_seed(6)
    x = np.random.default_rng(6).standard_normal((1, 8, 29, 29)).astype(np.float32)
    _same_bits_across_threads(_OneImage().eval(), tmp_path / "one.amber", x, (2, 3), 1e-4)


def test_one_image_on_two_threads_under_memory_limits(lib: N.NativeLibrary,
                                                      tmp_path: Path) -> None:
    """Tasks with a block of scratch each give way to one shared block when the limit
    does not allow them: a session that runs under some limit runs under every larger
    one, with the same bits."""
    am.manual_seed(6)
    path = tmp_path / "one.amber"
    am.export(_OneImage().eval(), am.spec("batch", 8, 29, 29)).save(path)
    x = np.random.default_rng(6).standard_normal((1, 8, 29, 29)).astype(np.float32)
    _runs_under_growing_limits(path, x, range(600_000, 2_000_001, 100_000), threads=2)
