"""The softmax and the cross-entropy loss on one block of samples, between .upper_layers' forward
and backward; with the vectorisable exp it needs.

Layout: the logits are the last layer's rows of the block's feature-major activations ``acts``
(see .layers, .upper_layers); they are replaced in place by the probabilities.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastnet.backends.numba.flags import INLINE, NJIT
from fastnet.backends.numba.layers import ACT_AT, N_OUT


_TAYLOR = tuple(1 / math.factorial(k) for k in range(15, -1, -1))  # exp's Taylor coefficients, 1/15! down to 1/0!


@njit(**NJIT, **INLINE)
def exp_nonpositive(out, x, n):
    """out[:n] = exp(x[:n]) for x <= 0, in a loop LLVM can vectorise (numba's np.exp is a scalar
    libm call here). For x in [-64, 0]: exp(x) = P(x / 128) ** 128, P the degree-15 Taylor
    polynomial on [-0.5, 0]: relative error below 3e-14 in float64 (1.3e-5 in float32), inside
    the agreement tolerances of fastnet.tolerances. The rare x below -64 (and NaN) are redone
    with np.exp."""
    t = x.dtype.type
    for b in range(n):
        r = max(x[b], t(-64)) * t(1 / 128)
        p = t(_TAYLOR[0])
        for c in _TAYLOR[1:]:  # Horner (a fixed count: LLVM unrolls it, and the loop over b still vectorises)
            p = p * r + t(c)
        for _ in range(7):  # ** 128
            p = p * p
        out[b] = p
    for b in range(n):
        if not x[b] >= t(-64):  # below the polynomial's range, or NaN (which must stay NaN)
            out[b] = np.exp(x[b])


@njit(**NJIT)
def softmax_xent(acts, nb, layers, labels, best, top, total, e):
    """Logits (the last layer's rows of acts) -> probabilities in place; return (the block's
    cross-entropy loss sum, how many samples it classified correctly).

    Log-sum-exp form, exact even when p[label] underflows; the block's labels[b] < 0 mean "none" (no
    loss). best (B,) int64 and top, total, e (B,) are scratch. Loops run over the block's samples
    (b), so each vectorises.
    """
    n_layers = layers.shape[0]
    K, o = layers[n_layers - 1, N_OUT], layers[n_layers - 1, ACT_AT]
    t = acts.dtype.type  # typed constants: a literal 1 or 0 would promote float32 to float64
    for b in range(nb):
        best[b] = 0
        top[b] = acts[o, b]
        total[b] = 0
    for k in range(1, K):
        z = acts[o + k]
        for b in range(nb):
            if z[b] > top[b]:  # strict: the first maximum wins, like np.argmax
                top[b] = z[b]
                best[b] = k
    loss = 0.0
    for b in range(nb):  # before the logits are overwritten: log p[label] = z[label] - max - log total
        label = labels[b]
        if label >= 0:
            loss -= acts[o + label, b] - top[b]
    for k in range(K):
        z = acts[o + k]
        for b in range(nb):
            z[b] = z[b] - top[b]
        exp_nonpositive(e, z, nb)
        for b in range(nb):
            z[b] = e[b]
            total[b] += e[b]
    correct = 0
    product = 1.0  # one log per block: each total is in [1, K]; 128 of them at K = 10 stay below 1e128
    for b in range(nb):
        label = labels[b]
        if label >= 0:
            product *= total[b]
            correct += best[b] == label
    loss += np.log(product)
    for b in range(nb):
        total[b] = t(1) / total[b]
    for k in range(K):
        z = acts[o + k]
        for b in range(nb):
            z[b] *= total[b]
    return loss, correct
