"""Layers 2..L (the hidden layers after the first, and the output layer) on one block of samples:
forward and backward, written to be called block by block by any pass over the data.

Layout: a block is at most B samples (flags.BLOCK); ``acts`` and ``deltas`` are feature-major,
(rows, B), every layer's units stacked (row ``layers[l, ACT_AT] + o`` is unit o of layer l + 1,
see .layers), so every inner loop runs over the block's ``nb`` samples and vectorises. ``flat`` is
the network's flat parameter vector and ``layers`` its layer table. Only columns below nb are
read or written.

The output layer's logits (its rows of ``acts``) go through .softmax between the two.
"""

from __future__ import annotations

from numba import njit

from fastnet.backends.numba.flags import NJIT
from fastnet.backends.numba.layers import ACT_AT, B_AT, N_IN, N_OUT, W_AT


@njit(**NJIT)
def forward(acts, nb, flat, layers):
    """Layers 2..L from layer 1's activations (acts[:H, :nb]): each layer's rows of acts get
    W @ inputs + b, then ReLU except on the last layer, whose rows get the logits."""
    n_layers = layers.shape[0]
    for l in range(1, n_layers):
        n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
        w, bias = layers[l, W_AT], layers[l, B_AT]
        a_in, a_out = layers[l - 1, ACT_AT], layers[l, ACT_AT]
        for o in range(n_out):
            z = acts[a_out + o]
            for b in range(nb):
                z[b] = flat[bias + o]
            for i in range(n_in):
                wi = flat[w + o * n_in + i]
                a = acts[a_in + i]
                for b in range(nb):
                    z[b] += wi * a[b]
            if l < n_layers - 1:
                for b in range(nb):  # ReLU on hidden layers
                    if z[b] < 0:
                        z[b] = 0


@njit(**NJIT)
def backward(flat_grad, deltas, acts, nb, y, n0, flat, layers):
    """Add the block's gradients of layers L..2 (W and b) into flat_grad (laid out like flat), from
    the probabilities in the last layer's rows of acts and the labels y[n0:n0 + nb]; leave
    d(loss)/d(z1) in deltas[:H, :nb] for layer 1."""
    n_layers = layers.shape[0]
    K, o = layers[n_layers - 1, N_OUT], layers[n_layers - 1, ACT_AT]
    for k in range(K):  # d(loss)/d(logits) = p - one_hot(label)
        for b in range(nb):
            deltas[o + k, b] = acts[o + k, b]
    for b in range(nb):
        deltas[o + y[n0 + b], b] -= acts.dtype.type(1)
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
        for i in range(n_in):  # the deltas of the layer below
            di, a = deltas[a_in + i], acts[a_in + i]
            for b in range(nb):
                di[b] = 0
            for j in range(n_out):
                wji = flat[w + j * n_in + i]
                dj = deltas[a_out + j]
                for b in range(nb):
                    di[b] += wji * dj[b]
            for b in range(nb):  # ReLU: the gradient passes where the unit was active
                if a[b] <= 0:
                    di[b] = 0
