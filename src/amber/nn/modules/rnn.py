"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their cells.

PyTorch's parameter names (``weight_ih_l0``, ``weight_hh_l1_reverse``, ``bias_ih_l0``,
``weight_hr_l0`` for LSTM projections), shapes, gate orders (LSTM i, f, g, o; GRU r, z, n)
and initialisation (U(-1/sqrt(hidden), 1/sqrt(hidden))), so a PyTorch state dict loads and
gives the same outputs. The time loop is ``am.scan`` (the input projections of all steps
are one matrix product before it), so a layer exports with symbolic batch and sequence
length and runs natively. In eager mode an LSTM (without ``proj_size``) runs that loop on
arrays as one autograd entry instead (``rnn_fused``: the same bits). Packed sequences are
not supported: pad the batch and mask."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ... import functional as _F
from ...control import TraceHooks, eager_into, eager_kernel, record_call, scan
from ...creation import empty
from ...errors import AmberError, ShapeError
from ...tensor import Tensor, _wrap_array
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module
from .rnn_fused import FLOATS, lstm_backward, lstm_forward

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _refuse_packed(what: str, input: Any) -> None:
    if not isinstance(input, Tensor):
        kind = type(input).__name__
        raise AmberError(
            f"{what}: expected a Tensor input, got {kind}. amber's recurrent layers do not "
            f"take PackedSequence: pad the sequences to one length (batch them as a tensor) "
            f"and mask the padded steps (or read each sequence's output at its length)")


def _cell_step(mode: str, xw: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor,
               b_hh: Tensor | None, w_hr: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """One step given the input projection ``xw`` (x @ W_ih.T + b_ih)."""
    hh = F.linear(h, w_hh, b_hh)
    if mode == "LSTM":
        assert c is not None
        i, f, g, o = _F.chunk(xw + hh, 4, -1)
        c_new = _F.sigmoid(f) * c + _F.sigmoid(i) * _F.tanh(g)
        h_new = _F.sigmoid(o) * _F.tanh(c_new)
        if w_hr is not None:
            h_new = F.linear(h_new, w_hr)
        return h_new, c_new
    if mode == "GRU":
        xr, xz, xn = _F.chunk(xw, 3, -1)
        hr, hz, hn = _F.chunk(hh, 3, -1)
        r = _F.sigmoid(xr + hr)
        z = _F.sigmoid(xz + hz)
        n = _F.tanh(xn + r * hn)
        return (1.0 - z) * n + z * h, None
    pre = xw + hh
    return (_F.tanh(pre) if mode == "RNN_TANH" else _F.relu(pre)), None


def _lstm_scan(xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None,
               reverse: bool, w_hr: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(ys, h_n, c_n)`` of an LSTM direction as a ``scan`` of the composed cell."""

    def step(carry: Any, xt: Tensor) -> tuple[Any, Tensor]:
        hn, cn = _cell_step("LSTM", xt, carry[0], carry[1], w_hh, b_hh, w_hr)
        return (hn, cn), hn

    (hn, cn), ys = scan(step, (h, c), xw, reverse=reverse)
    return ys, hn, cn


def _fusable(*tensors: Tensor | None) -> bool:
    """Whether an LSTM's loop may run on arrays: no capture in progress, concrete
    float32/float64 tensors of one dtype."""
    if TraceHooks.active:
        return False
    dts = {None if t._data is None else t._data.dtype for t in tensors if t is not None}
    return len(dts) == 1 and dts.pop() in FLOATS


def _lstm_loop(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor,
               b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool) -> tuple[Tensor, ...]:
    """``(ys, h_n, c_n)`` of ``F.linear(x, w_ih, b_ih)`` then :func:`_lstm_scan`, computed
    on arrays (``rnn_fused``: the same bits) and recorded as one autograd entry, so the
    backward takes every weight's gradient in one product."""
    ins = (x, h, c, w_ih, w_hh, b_ih, b_hh)
    xd, h0, c0, wi, w = (t._data for t in ins[:5])  # concrete: _fusable checked
    bi, b = (None if t is None else t._data for t in (b_ih, b_hh))
    assert xd is not None and h0 is not None and c0 is not None and wi is not None
    assert w is not None
    t_len, n, i_size = xd.shape
    mm = eager_kernel("matmul")
    # F.linear's kernels: one product over all steps' rows (its bits), then the bias
    xw = mm(np.ascontiguousarray(xd).reshape(t_len * n, i_size), wi.T)
    xw = xw.reshape(t_len, n, -1)
    if bi is not None:
        np.add(xw, bi, out=xw)
    kernels = (mm, functools.partial(eager_into, "sigmoid"),
               functools.partial(eager_into, "tanh"))
    # NOTE: a step's product is small: libamber does not wake its threads for it, but
    # splits it while they are awake (woken by the input projection, and kept awake by
    # the loop's products following each other closely)
    ys, acts, cs, tcs = lstm_forward(xw, h0, c0, w, b, reverse, kernels)
    last = 0 if reverse else -1
    outs = [_wrap_array(ys), _wrap_array(ys[last].copy()), _wrap_array(cs[last].copy())]

    def backward(dys: Tensor, dhn: Tensor, dcn: Tensor, create_graph: bool) -> Any:
        if create_graph:  # a gradient that must carry a graph: differentiable ops
            got: Any = _lstm_vjp_ops(x, h, c, w_ih, w_hh, b_ih, b_hh, reverse,
                                     (dys, dhn, dcn))
        else:
            d: list[Any] = [dys._data, dhn._data, dcn._data]
            dg, dh, dc, dwi, dw, db = lstm_backward(
                (xd, ys, acts, cs, tcs, h0, c0, w), d[0], d[1], d[2], reverse, mm)
            dx = mm(dg.reshape(t_len * n, -1), wi).reshape(xd.shape) if x.requires_grad \
                else None
            got = [None if g is None else _wrap_array(g)
                   for g in (dx, dh, dc, dwi, dw, db, None if b_ih is None else db.copy())]
        return tuple(g if t is not None and t.requires_grad else None for g, t in zip(got, ins))

    return tuple(record_call(tuple(t for t in ins if t is not None), outs,
                             _dropping_none(backward, ins)))


def _dropping_none(backward: Any, ins: tuple[Tensor | None, ...]) -> Any:
    """``backward`` whose gradients line up with the inputs that are not None."""
    keep = [i for i, t in enumerate(ins) if t is not None]

    def wrapped(*cots: Any, create_graph: bool) -> tuple[Any, ...]:
        got = backward(*cots, create_graph)
        return tuple(got[i] for i in keep)

    return wrapped


def _lstm_vjp_ops(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool,
                  cots: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor | None, ...]:
    """The gradients of :func:`_lstm_loop` (x, h0, c0, w_ih, w_hh, b_ih, b_hh) for
    cotangents ``cots`` in differentiable ops: the forward recomputed, then
    backpropagation through time."""
    sig, tanh = _F.sigmoid, _F.tanh
    xw = F.linear(x, w_ih, b_ih)
    steps = list(range(xw.shape[0] - 1, -1, -1) if reverse else range(xw.shape[0]))
    saved = {}
    for t in steps:
        si, sf, tg, so = _F.chunk(xw[t] + F.linear(h, w_hh, b_hh), 4, -1)
        si, sf, tg, so = sig(si), sig(sf), tanh(tg), sig(so)
        c_prev, h_prev = c, h
        c = sf * c + si * tg
        tc = tanh(c)
        h = so * tc
        saved[t] = (si, sf, tg, so, tc, c_prev, h_prev)
    dys, dh, dc = cots
    dxs: list[Any] = [None] * len(steps)
    dw: Any = 0
    for t in reversed(steps):
        si, sf, tg, so, tc, c_prev, h_prev = saved[t]
        dh = dh + dys[t]
        dc = dc + dh * so * (1 - tc * tc)
        dg = _F.cat([dc * tg * si * (1 - si), dc * c_prev * sf * (1 - sf),
                     dc * si * (1 - tg * tg), dh * tc * so * (1 - so)], -1)
        dxs[t] = dg
        dw = dw + _F.matmul(_F.transpose(dg, 0, 1), h_prev)
        dc = dc * sf
        dh = _F.matmul(dg, w_hh)
    dxw = _F.stack(dxs, 0)
    flat = _F.reshape(dxw, (-1, dxw.shape[-1]))
    dwi = _F.matmul(_F.transpose(flat, 0, 1), _F.reshape(x, (-1, x.shape[-1])))
    db = None if b_hh is None else dxw.sum((0, 1))
    return (_F.matmul(dxw, w_ih), dh, dc, dwi, dw, None if b_ih is None else db, db)


class RNNBase(Module):
    """Shared machinery of ``RNN``, ``LSTM`` and ``GRU``."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise AmberError(f"{name}: dropout should be a number in [0, 1], got {dropout!r}")
        if hidden_size <= 0 or num_layers <= 0:
            raise AmberError(f"{name}: hidden_size and num_layers must be positive, got "
                             f"{hidden_size} and {num_layers}")
        if proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise AmberError(f"{name}: proj_size must be 0 or in [1, hidden_size), got "
                             f"{proj_size}")
        if proj_size and mode != "LSTM":
            raise AmberError(f"{name}: proj_size is only supported by LSTM")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        dirs = 2 if bidirectional else 1
        gate = _GATES[mode] * hidden_size
        real = proj_size or hidden_size
        for layer in range(num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                fan = input_size if layer == 0 else real * dirs
                self.register_parameter("weight_ih" + sfx, Parameter(empty(gate, fan, dtype=dtype)))
                self.register_parameter("weight_hh" + sfx,
                                        Parameter(empty(gate, real, dtype=dtype)))
                if bias:
                    self.register_parameter("bias_ih" + sfx, Parameter(empty(gate, dtype=dtype)))
                    self.register_parameter("bias_hh" + sfx, Parameter(empty(gate, dtype=dtype)))
                if proj_size:
                    self.register_parameter("weight_hr" + sfx,
                                            Parameter(empty(proj_size, hidden_size, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def flatten_parameters(self) -> None:
        """Nothing to do: amber keeps each weight as its own tensor (PyTorch's cuDNN weight
        compaction has no counterpart)."""

    def _weights(self, layer: int, d: int) -> tuple[Any, ...]:
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        get = self._parameters.get
        return (get("weight_ih" + sfx), get("weight_hh" + sfx), get("bias_ih" + sfx),
                get("bias_hh" + sfx), get("weight_hr" + sfx))

    def _check_hidden(self, h: Tensor, want: tuple, what: str) -> None:
        if tuple(h.shape) != tuple(want):
            raise ShapeError(f"{type(self).__name__}: {what} must have shape {tuple(want)}, "
                             f"got {tuple(h.shape)}")

    def _initial(self, hx: Any, x: Tensor, batched: bool) -> tuple[Tensor, Tensor | None]:
        dirs = 2 if self.bidirectional else 1
        n = x.shape[1]
        real = self.proj_size or self.hidden_size
        lstm = self.mode == "LSTM"
        if hx is None:
            zero = _F.scalar(0, x.dtype)
            return (_F.broadcast_to(zero, (self.num_layers * dirs, n, real)),
                    _F.broadcast_to(zero, (self.num_layers * dirs, n, self.hidden_size))
                    if lstm else None)
        if lstm and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise AmberError("LSTM: hx must be a tuple (h_0, c_0)")
        h0: Tensor = hx[0] if lstm else hx
        c0: Tensor | None = hx[1] if lstm else None
        if not batched:
            h0 = _F.unsqueeze(h0, 1)
            c0 = None if c0 is None else _F.unsqueeze(c0, 1)
        self._check_hidden(h0, (self.num_layers * dirs, n, real), "h_0")
        if c0 is not None:
            self._check_hidden(c0, (self.num_layers * dirs, n, self.hidden_size), "c_0")
        return h0, c0

    def _direction(self, x: Tensor, h: Tensor, c: Tensor | None, layer: int, d: int
                   ) -> tuple[Tensor, Tensor, Tensor | None]:
        w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, d)
        mode = self.mode
        if (mode == "LSTM" and w_hr is None and x.shape[0]
                and _fusable(x, h, c, w_ih, w_hh, b_ih, b_hh)):
            assert c is not None
            return _lstm_loop(x, h, c, w_ih, w_hh, b_ih, b_hh,  # type: ignore[return-value]
                              bool(d))
        xw = F.linear(x, w_ih, b_ih)  # every step's input projection at once
        if mode == "LSTM":
            assert c is not None
            return _lstm_scan(xw, h, c, w_hh, b_hh, bool(d), w_hr)

        def step(carry: Any, xt: Tensor) -> tuple[Any, Tensor]:
            hn, _ = _cell_step(mode, xt, carry[0], None, w_hh, b_hh, w_hr)
            return (hn,), hn

        last, ys = scan(step, (h,), xw, reverse=bool(d))
        return ys, last[0], None

    def forward(self, input: Any, hx: Any = None) -> Any:
        name = type(self).__name__
        _refuse_packed(name, input)
        if input.ndim not in (2, 3):
            raise ShapeError(f"{name}: expected a 2-D (unbatched) or 3-D input, got "
                             f"{tuple(input.shape)}")
        batched = input.ndim == 3
        x = input if batched else _F.unsqueeze(input, 1)
        if batched and self.batch_first:
            x = _F.transpose(x, 0, 1)
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {x.shape[-1]} features, expected "
                             f"input_size={self.input_size}")
        h0, c0 = self._initial(hx, x, batched)
        dirs = 2 if self.bidirectional else 1
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                i = layer * dirs + d
                ys, hn, cn = self._direction(x, h0[i], None if c0 is None else c0[i], layer, d)
                outs.append(ys)
                hs.append(hn)
                cs.append(cn)
            x = outs[0] if dirs == 1 else _F.cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = _F.stack(hs, 0)
        c_n = _F.stack(cs, 0) if self.mode == "LSTM" else None  # type: ignore[arg-type]
        if not batched:
            x = _F.squeeze(x, 1)
            h_n = _F.squeeze(h_n, 1)
            c_n = None if c_n is None else _F.squeeze(c_n, 1)
        elif self.batch_first:
            x = _F.transpose(x, 0, 1)
        return (x, (h_n, c_n)) if self.mode == "LSTM" else (x, h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih.T + b_ih + h_{t-1} W_hh.T + b_hh)`` (or ReLU with
    ``nonlinearity='relu'``). Returns ``(output, h_n)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise AmberError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (gates i, f, g, o); ``proj_size`` projects the hidden state.
    Returns ``(output, (h_n, c_n))``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit (gates r, z, n; ``n = tanh(x W_in + b_in + r * (h W_hn +
    b_hn))``). Returns ``(output, h_n)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype=dtype)


# ----------------------------------------------------------------------------- cells


class RNNCellBase(Module):
    """Shared machinery of the single-step cells."""

    _mode = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 dtype: Any = None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=dtype))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def _run(self, input: Any, hx: Any) -> tuple[Tensor, Tensor | None, bool]:
        name = type(self).__name__
        _refuse_packed(name, input)
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input (N, {self.input_size}) or "
                             f"({self.input_size},), got {tuple(input.shape)}")
        batched = input.ndim == 2
        x = input if batched else _F.unsqueeze(input, 0)
        lstm = self._mode == "LSTM"
        if hx is None:
            zero = _F.broadcast_to(_F.scalar(0, x.dtype), (x.shape[0], self.hidden_size))
            h, c = zero, (zero if lstm else None)
        else:
            h, c = (hx[0], hx[1]) if lstm else (hx, None)
            if not batched:
                h = _F.unsqueeze(h, 0)
                c = None if c is None else _F.unsqueeze(c, 0)
            want = (x.shape[0], self.hidden_size)
            for t, what in ((h, "h"), (c, "c")):
                if t is not None and tuple(t.shape) != want:
                    raise ShapeError(f"{name}: hidden state {what} must have shape {want}, "
                                     f"got {tuple(t.shape)}")
        if lstm and _fusable(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih,
                             self.bias_hh):
            assert c is not None
            out = _lstm_loop(_F.unsqueeze(x, 0), h, c, self.weight_ih, self.weight_hh,
                             self.bias_ih, self.bias_hh, False)
            return out[1], out[2], batched
        xw = F.linear(x, self.weight_ih, self.bias_ih)
        hn, cn = _cell_step(self._mode, xw, h, c, self.weight_hh, self.bias_hh, None)
        return hn, cn, batched

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """One Elman RNN step: returns ``h'``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise AmberError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, dtype)
        self.nonlinearity = nonlinearity
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"

    def forward(self, input: Any, hx: Any = None) -> Any:
        h, _, batched = self._run(input, hx)
        return h if batched else _F.squeeze(h, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step: returns ``(h', c')``."""

    _mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, dtype)

    def forward(self, input: Any, hx: Any = None) -> Any:
        h, c, batched = self._run(input, hx)
        assert c is not None
        return (h, c) if batched else (_F.squeeze(h, 0), _F.squeeze(c, 0))


class GRUCell(RNNCellBase):
    """One GRU step: returns ``h'``."""

    _mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, dtype)

    def forward(self, input: Any, hx: Any = None) -> Any:
        h, _, batched = self._run(input, hx)
        return h if batched else _F.squeeze(h, 0)
