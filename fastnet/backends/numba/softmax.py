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
# softmax_xent logs the product of a group of samples' totals (each in [1, K]) at a time: K ** group
# must stay below float64's 1.8e308 (e ** 709.8), with room to spare.
PRODUCT_LOG_LIMIT = 690.0


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
def _exp_in_range(x, lowest, coefficients):
    """exp(x) for x in [LOWEST, 0] (x below it is taken as LOWEST): P(x / 128) ** 128, P the Taylor
    polynomial on [-0.5, 0] (degree 15 in float64, 8 in float32): relative error below 3e-14 in
    float64 (1.4e-5 in float32), inside the agreement tolerances of fastnet.tolerances. Plain
    arithmetic, so a loop over samples around it vectorises (numba's np.exp is a scalar libm
    call)."""
    return _power_128_of_taylor(max(x, lowest) * type(x)(1 / 128), coefficients)


@njit(**NJIT, **INLINE)
def exp_nonpositive(out, x, n):
    """out[:n] = exp(x[:n]) for x <= 0, in a loop LLVM can vectorise: _exp_in_range, the softmax's
    exp, with the rare x below LOWEST (and NaN) redone with np.exp. A vectorised test finds whether
    there are any (a loop testing each value took as long as float32's polynomial). Measured on an
    Intel host, one thread, per value, with the shorter float32 polynomial: 2.8-3.0 -> 1.35-1.38
    cycles in float32; the test alone: 4.9 -> 3.9 in float64."""
    t = x.dtype.type
    lowest = t(LOWEST)
    coefficients = _taylor(x)
    for b in range(n):
        out[b] = _exp_in_range(x[b], lowest, coefficients)
    outside = False
    for b in range(n):
        outside |= not x[b] >= lowest  # below the polynomial's range, or NaN (which must stay NaN)
    if outside:
        for b in range(n):
            if not x[b] >= lowest:
                out[b] = np.exp(x[b])


@njit(**NJIT)
def softmax_xent(acts, nb, layers, labels, best, top, total, label_logit):
    """Logits (the last layer's rows of acts) -> probabilities in place; return (the block's
    cross-entropy loss sum, how many samples it classified correctly).

    Log-sum-exp form, exact even when p[label] underflows; the block's labels[b] < 0 mean "none" (no
    loss). best (B,) int64 and top, total, label_logit (B,) are scratch. Every loop runs over the
    block's samples (b) and vectorises: the label's logit is picked by a comparison in each class's
    loop, not loaded by its index; the exp is computed in the loop that sums it (_exp_in_range), its
    rare values out of range kept as they are and redone after; the log of the totals is taken of
    their product over a group of samples small enough not to overflow. Against a loop per sample
    for each of these, the softmax of a block alone took 0.74-0.76x the time in float64 (80-95 -> 59-71
    cycles per sample at 10 classes) and the same in float32 (a znver4 host, one thread, 3 runs); in
    a pass over MNIST at 784-10-10 float64, 61 -> 56 cycles per image (one run each).
    """
    n_layers = layers.shape[0]
    K, o = layers[n_layers - 1, N_OUT], layers[n_layers - 1, ACT_AT]
    t = acts.dtype.type  # typed constants: a literal 1 or 0 would promote float32 to float64
    lowest = t(LOWEST)
    coefficients = _taylor(acts)
    z = acts[o]
    for b in range(nb):
        best[b] = 0
        top[b] = z[b]
        label_logit[b] = z[b] if labels[b] == 0 else t(0)
        total[b] = 0
    for k in range(1, K):
        z = acts[o + k]
        for b in range(nb):
            if z[b] > top[b]:  # strict: the first maximum wins, like np.argmax
                top[b] = z[b]
                best[b] = k
            if labels[b] == k:
                label_logit[b] = z[b]
    loss = 0.0
    correct = 0
    for b in range(nb):  # log p[label] = z[label] - max - log total
        if labels[b] >= 0:
            loss -= label_logit[b] - top[b]
            correct += best[b] == labels[b]
    outside = 0
    for k in range(K):  # exp(z - max), summed: a value below LOWEST (or NaN) is kept as it is for now
        z = acts[o + k]
        for b in range(nb):
            shifted = z[b] - top[b]
            inside = shifted >= lowest
            e = _exp_in_range(shifted, lowest, coefficients)
            outside += not inside
            z[b] = e if inside else shifted
            total[b] += e if inside else t(0)
    if outside:  # those values, the only negative ones (an exp is positive): np.exp
        for k in range(K):
            z = acts[o + k]
            for b in range(nb):
                if not z[b] >= 0:
                    z[b] = np.exp(z[b])
                    total[b] += z[b]
    group = max(1, int(PRODUCT_LOG_LIMIT / np.log(max(K, 2))))  # K ** group stays finite
    for g in range(0, nb, group):
        product = 1.0
        for b in range(g, min(g + group, nb)):
            product *= total[b] if labels[b] >= 0 else t(1)
        loss += np.log(product)
    for b in range(nb):
        total[b] = t(1) / total[b]
    for k in range(K):
        z = acts[o + k]
        for b in range(nb):
            z[b] *= total[b]
    return loss, correct
