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
    tanh, each at its step's index."""
    mm, sigmoid, tanh = kernels
    t_len, n, g4 = xw.shape
    hs = g4 // 4
    dt = xw.dtype
    ys = np.empty((t_len, n, hs), dt)
    acts = np.empty((t_len, n, g4), dt)
    cs = np.empty((t_len, n, hs), dt)
    tcs = np.empty((t_len, n, hs), dt)
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
        a[...] = sigmoid(gates)
        a[:, 2 * hs:3 * hs] = tanh(np.ascontiguousarray(gates[:, 2 * hs:3 * hs]))
        si, sf, tg, so = (a[:, k * hs:(k + 1) * hs] for k in range(4))
        # the composed cell's order: sigmoid(f) * c + sigmoid(i) * tanh(g)
        np.multiply(sf, c, out=cs[t])
        c = cs[t]
        c += si * tg
        tcs[t] = tanh(c)
        h = ys[t]
        np.multiply(so, tcs[t], out=h)
    return ys, acts, cs, tcs


def lstm_backward(saved: tuple[np.ndarray, ...], dys: np.ndarray, dhn: np.ndarray,
                  dcn: np.ndarray, reverse: bool, mm: Any) -> tuple[np.ndarray, ...]:
    """Backpropagation through the steps of :func:`lstm_forward`: given the gradients of
    ``ys``, ``h_n`` and ``c_n``, returns those of ``xw``, ``h0``, ``c0``, ``w_hh`` and
    ``b_hh``."""
    ys, acts, cs, tcs, h0, c0, w_hh = saved
    t_len, n, g4 = acts.shape
    hs = g4 // 4
    a4 = acts.reshape(t_len, n, 4, hs)
    si, sf, tg, so = (a4[:, :, k] for k in range(4))
    # h_{t-1} and c_{t-1} of every step, at the step's index
    h_prev, c_prev = np.empty((t_len, n, hs + 1), ys.dtype), np.empty_like(cs)
    h_prev[..., hs] = 1
    if reverse:
        h_prev[:-1, :, :hs], h_prev[-1, :, :hs], c_prev[:-1], c_prev[-1] = ys[1:], h0, cs[1:], c0
    else:
        h_prev[1:, :, :hs], h_prev[0, :, :hs], c_prev[1:], c_prev[0] = ys[:-1], h0, cs[:-1], c0
    # the step-independent factors, for all steps at once: dgates = dc * p[:3], dh * p[3]
    p = np.empty_like(a4)
    p[:, :, 0] = tg * si * (1 - si)
    p[:, :, 1] = c_prev * sf * (1 - sf)
    p[:, :, 2] = si * (1 - tg * tg)
    p[:, :, 3] = tcs * so * (1 - so)
    dtanh = so * (1 - tcs * tcs)
    dg = np.empty_like(a4)
    dh, dc = np.array(dhn, dtype=acts.dtype), np.array(dcn, dtype=acts.dtype)  # own buffers
    for t in (range(t_len) if reverse else range(t_len - 1, -1, -1)):
        dh += dys[t]
        dc += dh * dtanh[t]
        np.multiply(dc[:, None, :], p[t, :, :3], out=dg[t, :, :3])
        np.multiply(dh, p[t, :, 3], out=dg[t, :, 3])
        dc *= sf[t]
        dh = mm(dg[t].reshape(n, g4), w_hh)
    flat = dg.reshape(-1, g4)
    # every step's contribution in one product; the bias's as a column of ones
    both = mm(flat.T, h_prev.reshape(-1, hs + 1))
    return flat.reshape(t_len, n, g4), dh, dc, both[:, :hs].copy(), both[:, hs].copy()
