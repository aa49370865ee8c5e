"""The softmax and the cross-entropy loss on one block of samples, between .upper_layers' forward
and backward; with the vectorisable exp it needs.

Layout: the logits are the last layer's rows of the block's feature-major activations ``acts``
(see .layers, .upper_layers); they are replaced in place by the probabilities.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import overload

from fastnet.backends.numba.flags import INLINE, NJIT
from fastnet.backends.numba.layers import ACT_AT, N_OUT


# exp's Taylor coefficients, highest first: 1/15! down to 1/0! for float64; 1/8! down for float32,
# whose error is then set by its own rounding, amplified by the squarings (the largest relative
# error over [-64, 0] went from 1.29e-5 to 1.34e-5 without the 7 higher terms).
_TAYLOR = tuple(1 / math.factorial(k) for k in range(15, -1, -1))
_TAYLOR_FLOAT32 = _TAYLOR[-9:]
LOWEST = -64  # exp_nonpositive's polynomial covers [LOWEST, 0]
# softmax_xent logs its product of the samples' totals (each in [1, K]) once it passes this: far
# below float64's 1.8e308, with room for one more factor of any K below 1e58
PRODUCT_LIMIT = 1e250


def _taylor(x):
    """The coefficients for the float array x's dtype (in a kernel, chosen when it is compiled:
    the overload)."""
    return _TAYLOR_FLOAT32 if x.dtype == np.float32 else _TAYLOR


@overload(_taylor, jit_options=NJIT, **INLINE)
def _taylor_for(x):  # x: Numba's type of the array
    coefficients = _TAYLOR_FLOAT32 if x.dtype.bitwidth == 32 else _TAYLOR
    return lambda x: coefficients


@njit(**NJIT, **INLINE)
def _power_128_of_taylor(r, coefficients):
    """P(r) ** 128, P the Taylor polynomial with these coefficients (Horner: a fixed count, which
    LLVM unrolls, so the loop over samples around it still vectorises)."""
    t = type(r)
    p = t(coefficients[0])
    for c in coefficients[1:]:
        p = p * r + t(c)
    for _ in range(7):  # ** 128
        p = p * p
    return p


@njit(**NJIT, **INLINE)
def exp_nonpositive(out, x, n):
    """out[:n] = exp(x[:n]) for x <= 0, in a loop LLVM can vectorise (numba's np.exp is a scalar
    libm call here). For x in [LOWEST, 0] = [-64, 0]: exp(x) = P(x / 128) ** 128, P the Taylor
    polynomial on [-0.5, 0] (degree 15 in float64, 8 in float32): relative error below 3e-14 in
    float64 (1.4e-5 in float32), inside the agreement tolerances of fastnet.tolerances. The rare x
    below LOWEST (and NaN) are redone with np.exp; a vectorised test finds whether there are any (a
    loop testing each value took as long as float32's polynomial). Measured on an Intel host, one thread, per
    value, with the shorter float32 polynomial: 2.8-3.0 -> 1.35-1.38 cycles in float32; the test
    alone: 4.9 -> 3.9 in float64."""
    t = x.dtype.type
    lowest = t(LOWEST)
    coefficients = _taylor(x)
    for b in range(n):
        r = max(x[b], lowest) * t(1 / 128)
        out[b] = _power_128_of_taylor(r, coefficients)
    outside = False
    for b in range(n):
        outside |= not x[b] >= lowest  # below the polynomial's range, or NaN (which must stay NaN)
    if outside:
        for b in range(n):
            if not x[b] >= lowest:
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
    # the log of the totals' product, not of each total: each total is in [1, K], and the product
    # is logged and restarted before it could overflow (a block of 256 samples at K = 17 would)
    product = 1.0
    for b in range(nb):
        label = labels[b]
        if label >= 0:
            product *= total[b]
            correct += best[b] == label
            if product > PRODUCT_LIMIT:
                loss += np.log(product)
                product = 1.0
    loss += np.log(product)
    for b in range(nb):
        total[b] = t(1) / total[b]
    for k in range(K):
        z = acts[o + k]
        for b in range(nb):
            z[b] *= total[b]
    return loss, correct
