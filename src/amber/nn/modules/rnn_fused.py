"""An LSTM direction's time loop on arrays, forward and backward.

Outside capture, ``nn.LSTM`` and ``nn.LSTMCell`` (without ``proj_size``) run their
recurrence here rather than as a ``scan`` of primitives (``rnn.py`` records the loop as
one autograd entry). The forward loops over the steps with the kernels the primitives
would run (``kernels``: eager mode's ``matmul``, ``sigmoid`` and ``tanh``, libamber's;
NumPy's exact ``+`` and ``*`` in the composed cell's order), so its results are the same
bits as the composed cell's and as the exported file's. The backward is the LSTM's
backpropagation through time. Under capture the layer traces its plain ``scan``, so files
keep that graph."""

from __future__ import annotations

from typing import Any

import numpy as np

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def lstm_forward(xw: np.ndarray, h0: np.ndarray, c0: np.ndarray, w_hh: np.ndarray,
                 b_hh: np.ndarray | None, reverse: bool, kernels: tuple[Any, Any, Any]
                 ) -> tuple[np.ndarray, ...]:
    """The steps of ``xw`` (T, N, 4H: every step's input projection with its bias) from
    ``(h0, c0)``: returns ``(ys, acts, cs, tcs)``, the hidden states (T, N, H), the gate
    activations (sigmoid i, sigmoid f, tanh g, sigmoid o), the cell states and their
    tanh, each at its step's index. ``kernels``: ``mm(a, b)``, and ``sigmoid(x, out)``
    and ``tanh(x, out)`` writing into a contiguous ``out`` (``x`` may be strided)."""
    mm, sigmoid, tanh = kernels
    t_len, n, g4 = xw.shape
    hs = g4 // 4
    dt = xw.dtype
    ys = np.empty((t_len, n, hs), dt)
    acts = np.empty((t_len, n, g4), dt)
    cs = np.empty((t_len, n, hs), dt)
    tcs = np.empty((t_len, n, hs), dt)
    g_in, g_out = np.empty((n, hs), dt), np.empty((n, hs), dt)
    # NOTE: a transposed view costs libamber's product a gather per call (40x at batch
    # 1); the contiguous copy gives the same bits
    wt = np.ascontiguousarray(w_hh.T)
    h, c = h0, c0
    for t in (range(t_len - 1, -1, -1) if reverse else range(t_len)):
        gates = mm(h, wt)  # in place from here: the same roundings, fewer buffers
        if b_hh is not None:
            np.add(gates, b_hh, out=gates)
        np.add(xw[t], gates, out=gates)
        # NOTE: elementwise kernels give the same bits wherever an element sits, so one
        # sigmoid over all four gates equals the composed cell's per-gate calls
        a = acts[t]
        sigmoid(gates, a)
        tanh(gates[:, 2 * hs:3 * hs], g_out)  # (a strided view: read in place)
        a[:, 2 * hs:3 * hs] = g_out
        # the composed cell's order: sigmoid(f) * c + sigmoid(i) * tanh(g)
        np.multiply(a[:, hs:2 * hs], c, out=cs[t])
        c = cs[t]
        np.multiply(a[:, :hs], g_out, out=g_in)
        c += g_in
        tanh(c, tcs[t])
        h = ys[t]
        np.multiply(a[:, 3 * hs:], tcs[t], out=h)
    return ys, acts, cs, tcs


def _factors(acts: np.ndarray, c_prev: np.ndarray, tcs: np.ndarray) -> tuple[np.ndarray, ...]:
    """The step-independent factors of the gate gradients, for all steps at once:
    dgates = (dc, dc, dc, dh) * p (gate by gate), dc += dh * dtanh. Full-width
    contiguous passes where they can be (a gate's slice is a strided view)."""
    t_len, n, g4 = acts.shape
    hs = g4 // 4
    a4 = acts.reshape(t_len, n, 4, hs)
    si, tg, so = a4[:, :, 0], a4[:, :, 2], a4[:, :, 3]
    p = np.subtract(1, acts)
    p *= acts  # s (1 - s): the sigmoid gates' derivative
    p4 = p.reshape(t_len, n, 4, hs)
    np.multiply(tg, tg, out=p4[:, :, 2])
    np.subtract(1, p4[:, :, 2], out=p4[:, :, 2])  # 1 - tanh^2 for g
    other = np.empty_like(a4)  # what each gate's derivative is multiplied by
    other[:, :, 0], other[:, :, 1], other[:, :, 2], other[:, :, 3] = tg, c_prev, si, tcs
    p4 *= other
    dtanh = np.multiply(tcs, tcs)
    np.subtract(1, dtanh, out=dtanh)
    dtanh *= so
    return p4, dtanh


def lstm_backward(saved: tuple[np.ndarray, ...], dys: np.ndarray, dhn: np.ndarray,
                  dcn: np.ndarray, reverse: bool, mm: Any) -> tuple[np.ndarray, ...]:
    """Backpropagation through the steps of :func:`lstm_forward` run on ``x @ w_ih.T +
    b_ih``: given the gradients of ``ys``, ``h_n`` and ``c_n``, returns those of the
    gates' pre-activations (T, N, 4H: the input projection's), ``h0``, ``c0``, ``w_ih``,
    ``w_hh`` and the biases (one gradient for both)."""
    x, ys, acts, cs, tcs, h0, c0, w_hh = saved
    t_len, n, g4 = acts.shape
    hs, i_size = g4 // 4, x.shape[-1]
    sf = acts.reshape(t_len, n, 4, hs)[:, :, 1]
    # each step's x, h_{t-1} and a one (the biases'), at the step's index; c_{t-1}
    rows = np.empty((t_len, n, i_size + hs + 1), ys.dtype)
    rows[..., :i_size] = x
    h_prev, c_prev = rows[..., i_size:i_size + hs], np.empty_like(cs)
    rows[..., -1] = 1
    if reverse:
        h_prev[:-1], h_prev[-1], c_prev[:-1], c_prev[-1] = ys[1:], h0, cs[1:], c0
    else:
        h_prev[1:], h_prev[0], c_prev[1:], c_prev[0] = ys[:-1], h0, cs[:-1], c0
    p, dtanh = _factors(acts, c_prev, tcs)
    dg = np.empty_like(p)
    dh, dc = np.array(dhn, dtype=acts.dtype), np.array(dcn, dtype=acts.dtype)  # own buffers
    tmp = np.empty_like(dc)
    for t in (range(t_len) if reverse else range(t_len - 1, -1, -1)):
        dh += dys[t]
        np.multiply(dh, dtanh[t], out=tmp)
        dc += tmp
        np.multiply(dc[:, None, :], p[t, :, :3], out=dg[t, :, :3])
        np.multiply(dh, p[t, :, 3], out=dg[t, :, 3])
        dc *= sf[t]
        dh = mm(dg[t].reshape(n, g4), w_hh)
    flat = dg.reshape(-1, g4)
    # every step's contribution to every weight and bias in one product
    both = mm(rows.reshape(-1, i_size + hs + 1).T, flat)
    dwi = np.ascontiguousarray(both[:i_size].T)
    dw = np.ascontiguousarray(both[i_size:i_size + hs].T)
    return flat.reshape(t_len, n, g4), dh, dc, dwi, dw, both[-1].copy()
