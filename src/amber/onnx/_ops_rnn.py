"""ONNX recurrent operators (LSTM, GRU, RNN) as ``am.scan`` loops: the input
projection of every time step is one matmul before the loop, the recurrence runs in
the scan body, so the sequence length may be symbolic."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..control import scan
from ..ops import elementwise as E
from ..ops import linalg as L
from ..ops import shape as S
from ..tensor import Tensor
from ._graph import Ctx, op
from ._ops_elementwise import need, sc

_ACTS = {"sigmoid": E.sigmoid, "tanh": E.tanh,
         "relu": lambda x: E.where(E.lt(x, sc(0, x.dtype)), sc(0, x.dtype), x)}


def _acts(c: Ctx, defaults: list[str], dirs: int) -> list[Any]:
    names = c.a("activations")
    names = [n.decode() if isinstance(n, bytes) else n for n in names] if names else \
        defaults * dirs
    if c.a("activation_alpha") or c.a("activation_beta"):
        raise c.unsupported("activation_alpha / activation_beta")
    out = []
    for n in names:
        f = _ACTS.get(str(n).lower())
        if f is None:
            raise c.unsupported(f"activation {n!r} (supported: Sigmoid, Tanh, Relu)")
        out.append(f)
    return out


def _pick(t: Tensor, d: int) -> Tensor:
    """Direction d of a [dirs, ...] tensor."""
    s = S.slice_(t, starts=(d,) + (0,) * (t.ndim - 1), stops=(d + 1,) + tuple(t.shape[1:]),
                 steps=(1,) * t.ndim)
    return _F.reshape_exact(s, tuple(t.shape[1:]))


def _cols(t: Tensor, k: int, h: int) -> Tensor:
    """Gate k (width h) of the last axis."""
    r = t.ndim
    return S.slice_(t, starts=(0,) * (r - 1) + (k * h,), stops=tuple(t.shape[:-1]) +
                    ((k + 1) * h,), steps=(1,) * r)


def _common(c: Ctx, gates: int) -> tuple:
    x, w, r = c.t(0), c.t(1), c.t(2)
    need(c, x, D.FLOATS)
    if c.has(4):
        lens = c.s(4)
        if not all(isinstance(v, (int, np.integer)) and v == x.shape[0]
                   for v in np.asarray(lens).flat):
            raise c.unsupported("sequence_lens shorter than the sequence (sequences of "
                                "different lengths)")
    if c.a("clip") is not None:
        raise c.unsupported("clip")
    layout = c.a("layout", 0)
    if layout:
        x = S.transpose(x, perm=(1, 0, 2))
    direction = c.a("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    h = int(c.a("hidden_size", r.shape[-1]))
    batch = x.shape[1]
    b = c.topt(3)
    return x, w, r, b, layout, direction, dirs, h, batch


def _init(c: Ctx, i: int, d: int, batch: Any, h: int, dt: D.DType) -> Tensor:
    if c.has(i):
        return _pick(c.t(i), d)
    return S.broadcast_to(sc(0, dt), shape=(batch, h))


def _outputs(c: Ctx, ys: list[Tensor], finals: list[list[Tensor]], layout: int) -> list:
    y = S.concat(*[_F.unsqueeze(v, 1) for v in ys], axis=1)  # [seq, dirs, batch, h]
    outs = [y if not layout else S.transpose(y, perm=(2, 0, 1, 3))]
    for k in range(len(finals[0])):
        f = S.concat(*[_F.unsqueeze(fs[k], 0) for fs in finals], axis=0)  # [dirs, batch, h]
        outs.append(f if not layout else S.transpose(f, perm=(1, 0, 2)))
    return outs


def _projected(x: Tensor, w: Tensor, b: Tensor | None, d: int, gates: int, h: int
               ) -> tuple[Tensor, Tensor | None]:
    """x @ W^T (+ Wb) for every step, and Rb."""
    wd = _pick(w, d)
    xw = _F.matmul(x, S.transpose(wd, perm=(1, 0)))
    rb = None
    if b is not None:
        bd = _pick(b, d)
        wb = S.slice_(bd, starts=(0,), stops=(gates * h,), steps=(1,))
        rb = S.slice_(bd, starts=(gates * h,), stops=(2 * gates * h,), steps=(1,))
        xw = E.add(xw, wb)
    return xw, rb


@op("LSTM", notes="forward, reverse, bidirectional; peepholes; input_forget; layout (14); "
                  "no sequence_lens or clip")
def _lstm(c: Ctx) -> list:
    x, w, r, b, layout, direction, dirs, h, batch = _common(c, 4)
    acts = _acts(c, ["Sigmoid", "Tanh", "Tanh"], dirs)
    ys, finals = [], []
    for d in range(dirs):
        f_, g_, h_ = acts[3 * d: 3 * d + 3]
        xw, rb = _projected(x, w, b, d, 4, h)
        if rb is not None:
            xw = E.add(xw, rb)
        rt = S.transpose(_pick(r, d), perm=(1, 0))
        p = _pick(c.t(7), d) if c.has(7) else None
        couple = bool(c.a("input_forget", 0))

        def step(carry: Any, xt: Tensor, rt: Any = rt, p: Any = p, f_: Any = f_,
                 g_: Any = g_, h_: Any = h_, couple: bool = couple) -> Any:
            hp, cp = carry
            z = E.add(xt, L.matmul(hp, rt))
            i, o, f, g = (_cols(z, k, h) for k in range(4))
            if p is not None:
                i = E.add(i, E.mul(cp, _cols(p, 0, h)))
                f = E.add(f, E.mul(cp, _cols(p, 2, h)))
            i = f_(i)
            f = E.sub(sc(1, i.dtype), i) if couple else f_(f)
            cn = E.add(E.mul(f, cp), E.mul(i, g_(g)))
            if p is not None:
                o = E.add(o, E.mul(cn, _cols(p, 1, h)))
            hn = E.mul(f_(o), h_(cn))
            return (hn, cn), hn

        init = (_init(c, 5, d, batch, h, x.dtype), _init(c, 6, d, batch, h, x.dtype))
        rev = direction == "reverse" or d == 1
        (hf, cf), y = scan(step, init, xw, reverse=rev)
        ys.append(y)
        finals.append([hf, cf])
    return _outputs(c, ys, finals, layout)


@op("GRU", notes="forward, reverse, bidirectional; linear_before_reset; layout (14); no "
                 "sequence_lens or clip")
def _gru(c: Ctx) -> list:
    x, w, r, b, layout, direction, dirs, h, batch = _common(c, 3)
    acts = _acts(c, ["Sigmoid", "Tanh"], dirs)
    lbr = bool(c.a("linear_before_reset", 0))
    ys, finals = [], []
    for d in range(dirs):
        f_, g_ = acts[2 * d: 2 * d + 2]
        xw, rb = _projected(x, w, b, d, 3, h)
        rt = S.transpose(_pick(r, d), perm=(1, 0))

        def step(hp: Tensor, xt: Tensor, rt: Any = rt, rb: Any = rb, f_: Any = f_,
                 g_: Any = g_) -> Any:
            hr = L.matmul(hp, rt)
            if rb is not None:
                hr = E.add(hr, rb)
            z = f_(E.add(_cols(xt, 0, h), _cols(hr, 0, h)))
            rr = f_(E.add(_cols(xt, 1, h), _cols(hr, 1, h)))
            if lbr:
                hh = g_(E.add(_cols(xt, 2, h), E.mul(rr, _cols(hr, 2, h))))
            else:
                rh = L.matmul(E.mul(rr, hp), _cols(rt, 2, h))
                if rb is not None:
                    rh = E.add(rh, _cols(rb, 2, h))
                hh = g_(E.add(_cols(xt, 2, h), rh))
            hn = E.add(E.mul(E.sub(sc(1, z.dtype), z), hh), E.mul(z, hp))
            return hn, hn

        rev = direction == "reverse" or d == 1
        hf, y = scan(step, _init(c, 5, d, batch, h, x.dtype), xw, reverse=rev)
        ys.append(y)
        finals.append([hf])
    return _outputs(c, ys, finals, layout)


@op("RNN", notes="forward, reverse, bidirectional; layout (14); no sequence_lens or clip")
def _rnn(c: Ctx) -> list:
    x, w, r, b, layout, direction, dirs, h, batch = _common(c, 1)
    acts = _acts(c, ["Tanh"], dirs)
    ys, finals = [], []
    for d in range(dirs):
        xw, rb = _projected(x, w, b, d, 1, h)
        if rb is not None:
            xw = E.add(xw, rb)
        rt = S.transpose(_pick(r, d), perm=(1, 0))

        def step(hp: Tensor, xt: Tensor, rt: Any = rt, f_: Any = acts[d]) -> Any:
            hn = f_(E.add(xt, L.matmul(hp, rt)))
            return hn, hn

        rev = direction == "reverse" or d == 1
        hf, y = scan(step, _init(c, 5, d, batch, h, x.dtype), xw, reverse=rev)
        ys.append(y)
        finals.append([hf])
    return _outputs(c, ys, finals, layout)
