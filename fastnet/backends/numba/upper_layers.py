"""Layers 2..L (the hidden layers after the first, and the output layer) on one block of samples:
forward and backward, written to be called block by block by any pass over the data.

Layout: a block is at most B samples (flags.pass_block in a pass, flags.BLOCK in .epoch's);
``acts`` and ``deltas`` are feature-major, (rows, B), every layer's units stacked (row
``layers[l, ACT_AT] + o`` is unit o of layer l + 1, see .layers), so every inner loop runs over the
block's samples and vectorises. ``flat`` is the network's flat parameter vector and ``layers`` its
layer table. Only columns below nb are read for results; the products also fill the columns up to
a whole pair of vectors (from whatever those hold). Nothing uses those; layer 1's deltas there are
zeroed (first_layer.backward) before the dense pixels' backward pass reads them.

The output layer's logits (its rows of ``acts``) go through .softmax between the two.

A layer's outputs, and in the backward pass the deltas of the layer below, are computed in register
tiles as layer 1's are (.dense_pixels): UNIT_TILE units x 2 vectors of samples, each input row
loaded once per tile (:func:`_products`). Against one output row at a time, updated in memory per
input, a whole pass over MNIST took 0.94x the time at 784-10-10 float32, 0.91x at 784-128-10 (in
one process, alternated). The weight gradient stays a loop per (unit, input) that LLVM vectorises:
register tiles for it measured no faster.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastnet.backends.numba.dense_pixels import UNIT_TILE, store_tile
from fastnet.backends.numba.flags import INLINE, NJIT, NJIT_SIMD
from fastnet.backends.numba.layers import ACT_AT, B_AT, N_IN, N_OUT, W_AT
from fastnet.backends.numba.vector import at, lane_count, vbroadcast, vfma, vload, vzero

NO_BIAS = -1  # _products' bias offset for "no bias" (the deltas of the layer below)


@njit(**NJIT_SIMD)
def _products(rows, out_at, in_at, n_outputs, n_inputs, n_cols, flat, w, out_step, in_step, bias):
    """rows[out_at + o, :n_cols] = b[o] + sum over i of W(o, i) * rows[in_at + i, :n_cols], where
    W(o, i) = flat[w + o * out_step + i * in_step] and b[o] = flat[bias + o] (0 if bias is
    NO_BIAS), for o below n_outputs rounded up to whole UNIT_TILEs: the rows from n_outputs on get
    copies of the last output's values. n_cols: a whole number of pairs of vectors (columns past
    the block's samples are computed from whatever they hold, and unused).

    Those extra rows may be input rows (the backward pass's are the layer above's deltas): that is
    safe because, for each pair of column vectors, the tile that writes them is the last one and
    stores only after all its reads. Keep it so.

    Called with ``np.int64(1)``, not 1 (.flags, constant arguments): forward and backward share one
    compilation."""
    lanes = lane_count(rows)
    last = n_outputs - 1
    for g in range(0, n_cols, 2 * lanes):
        for o0 in range(0, n_outputs, UNIT_TILE):
            k0, k1, k2, k3, k4 = o0, min(o0 + 1, last), min(o0 + 2, last), min(o0 + 3, last), min(o0 + 4, last)
            if bias != NO_BIAS:
                a0 = c0 = vbroadcast(rows, at(flat, bias + k0))  # a: samples g.., c: g + lanes..
                a1 = c1 = vbroadcast(rows, at(flat, bias + k1))
                a2 = c2 = vbroadcast(rows, at(flat, bias + k2))
                a3 = c3 = vbroadcast(rows, at(flat, bias + k3))
                a4 = c4 = vbroadcast(rows, at(flat, bias + k4))
            else:
                a0 = a1 = a2 = a3 = a4 = c0 = c1 = c2 = c3 = c4 = vzero(rows)
            p0, p1, p2 = w + k0 * out_step, w + k1 * out_step, w + k2 * out_step
            p3, p4 = w + k3 * out_step, w + k4 * out_step
            for i in range(n_inputs):
                row, q = rows[in_at + i], i * in_step
                x, u = vload(row, g), vload(row, g + lanes)
                v = vbroadcast(rows, at(flat, p0 + q))
                a0, c0 = vfma(x, v, a0), vfma(u, v, c0)
                v = vbroadcast(rows, at(flat, p1 + q))
                a1, c1 = vfma(x, v, a1), vfma(u, v, c1)
                v = vbroadcast(rows, at(flat, p2 + q))
                a2, c2 = vfma(x, v, a2), vfma(u, v, c2)
                v = vbroadcast(rows, at(flat, p3 + q))
                a3, c3 = vfma(x, v, a3), vfma(u, v, c3)
                v = vbroadcast(rows, at(flat, p4 + q))
                a4, c4 = vfma(x, v, a4), vfma(u, v, c4)
            store_tile(rows, out_at + o0, g, a0, c0, a1, c1, a2, c2, a3, c3, a4, c4)


@njit(**NJIT, **INLINE)
def _paired_columns(nb, rows):
    """The columns _products computes for nb samples: nb rounded up to a whole pair of vectors."""
    pair = 2 * lane_count(rows)
    return -(-nb // pair) * pair


@njit(**NJIT)
def forward(acts, nb, flat, layers):
    """Layers 2..L from layer 1's activations (acts[:H, :nb]): each layer's rows of acts get
    W @ inputs + b, then ReLU except on the last layer, whose rows get the logits. Rows past a
    layer's units, up to a whole UNIT_TILE, are overwritten (later layers', computed after, or the
    slack rows after the last layer's)."""
    n_layers = layers.shape[0]
    n_cols = _paired_columns(nb, acts)
    for l in range(1, n_layers):
        n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
        a_in, a_out = layers[l - 1, ACT_AT], layers[l, ACT_AT]
        _products(acts, a_out, a_in, n_out, n_in, n_cols, flat, layers[l, W_AT], n_in, np.int64(1), layers[l, B_AT])
        if l < n_layers - 1:
            for o in range(n_out):
                z = acts[a_out + o]
                for b in range(nb):  # ReLU on hidden layers
                    if z[b] < 0:
                        z[b] = 0


@njit(**NJIT)
def backward(flat_grad, deltas, acts, nb, labels, flat, layers):
    """Add the block's gradients of layers L..2 (W and b) into flat_grad (laid out like flat), from
    the probabilities in the last layer's rows of acts and the block's labels[:nb]; leave
    d(loss)/d(z1) in deltas[:H, :nb] for layer 1. Rows of deltas past a layer's units, up to a
    whole UNIT_TILE, are overwritten (those of the layers above, already used)."""
    n_layers = layers.shape[0]
    K, o = layers[n_layers - 1, N_OUT], layers[n_layers - 1, ACT_AT]
    n_cols = _paired_columns(nb, acts)
    for k in range(K):  # d(loss)/d(logits) = p - one_hot(label)
        for b in range(nb):
            deltas[o + k, b] = acts[o + k, b]
    for b in range(nb):
        deltas[o + labels[b], b] -= acts.dtype.type(1)
    for l in range(n_layers - 1, 0, -1):
        n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
        w, bias = layers[l, W_AT], layers[l, B_AT]
        a_in, a_out = layers[l - 1, ACT_AT], layers[l, ACT_AT]
        for j in range(n_out):
            dj = deltas[a_out + j]
            s = flat_grad[bias + j]  # the bias gradient: the deltas summed over the block
            for b in range(nb):
                s += dj[b]
            flat_grad[bias + j] = s
            for i in range(n_in):
                a = acts[a_in + i]
                s = flat_grad[w + j * n_in + i]
                for b in range(nb):
                    s += dj[b] * a[b]
                flat_grad[w + j * n_in + i] = s
        # the deltas of the layer below: W's transpose times these
        _products(deltas, a_in, a_out, n_in, n_out, n_cols, flat, w, np.int64(1), n_in, np.int64(NO_BIAS))
        for i in range(n_in):  # ReLU: the gradient passes where the unit was active
            di, a = deltas[a_in + i], acts[a_in + i]
            for b in range(nb):
                if a[b] <= 0:
                    di[b] = 0
