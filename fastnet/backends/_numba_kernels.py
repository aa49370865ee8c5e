"""The Numba kernels behind the ``numba`` backend. Private: the wrapper validates every input.

Data layout (prepared once per dataset): the features as CSR rows, since MNIST is 81% zero pixels,
so only non-zero pixels are ever read, and uint8 pixels stay uint8 (scale 1/255 folded in):
    indptr (N+1,)   row n's pixels are idx[indptr[n]:indptr[n+1]]
    idx    (nnz,)   input index d of each non-zero pixel (uint16 when D < 65536)
    vals   (nnz,)   its value, uint8 or float

Network layout: one flat parameter vector, described by ``layers``, an int64 table with one row
per layer: [n_in, n_out, W offset, b offset, activation offset]. W is (n_out, n_in) as in numpy.
The first layer is used transposed, W1T (D, Hp), Hp = H padded to a multiple of LANES, so one
non-zero pixel touches one contiguous row of weights in the forward and backward pass.

Per-chunk buffers: g1T (C, D, Hp) for the first layer's weight gradient, grest (C, P - D*H) for
all later parameters (b1, W2, b2, ...), stats (C, 2) for the loss sum and the number correct.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastnet.config import NJIT, NJIT_LANEWISE, NJIT_PARALLEL

N_IN, N_OUT, W_OFF, B_OFF, A_OFF = range(5)


@njit(**NJIT)
def flat_zero(a):
    """Zero in a's dtype: `a[0] * 0` would be float64 (float32 times an int literal promotes)."""
    return a.dtype.type(0)


@njit(**NJIT)
def _transpose_first_layer(W1T, flat, layers):
    """W1T[d, h] = W1[h, d]; the padding columns stay zero."""
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_OFF]
    for d in range(D):
        for h in range(H):
            W1T[d, h] = flat[w0 + h * D + d]


@njit(**NJIT_LANEWISE)
def _sparse_first_layer(z, start, end, idx, vals, W1T):
    """z[:Hp] = sum over the sample's non-zero pixels k of vals[k] * W1T[idx[k], :] (unscaled).

    Four pixels share one pass over the lanes: a loop over only Hp (often 16) lanes costs more to
    enter (alias and trip-count checks) than to run, so each entry must do more work.
    """
    Hp = W1T.shape[1]
    for j in range(Hp):
        z[j] = 0
    k = start
    while k + 4 <= end:
        a, b, c, d = vals[k], vals[k + 1], vals[k + 2], vals[k + 3]
        ia, ib, ic, id_ = idx[k], idx[k + 1], idx[k + 2], idx[k + 3]
        for j in range(Hp):
            z[j] += (a * W1T[ia, j] + b * W1T[ib, j]) + (c * W1T[ic, j] + d * W1T[id_, j])
        k += 4
    while k < end:
        v, i = vals[k], idx[k]
        for j in range(Hp):
            z[j] += v * W1T[i, j]
        k += 1


@njit(**NJIT_LANEWISE)
def _sparse_first_layer_backward(g1T, delta, start, end, idx, vals):
    """g1T[idx[k], :] += vals[k] * delta[:Hp] for the sample's non-zero pixels k (two per pass)."""
    Hp = g1T.shape[1]
    k = start
    while k + 2 <= end:
        a, b = vals[k], vals[k + 1]
        ia, ib = idx[k], idx[k + 1]
        for j in range(Hp):
            g1T[ia, j] += a * delta[j]
            g1T[ib, j] += b * delta[j]
        k += 2
    if k < end:
        v, i = vals[k], idx[k]
        for j in range(Hp):
            g1T[i, j] += v * delta[j]


@njit(**NJIT)
def _forward_sample(act, n, indptr, idx, vals, scale, W1T, flat, layers):
    """Activations of every layer for sample n into ``act``; the last layer holds the logits."""
    _sparse_first_layer(act, indptr[n], indptr[n + 1], idx, vals, W1T)
    H, b0 = layers[0, N_OUT], layers[0, B_OFF]
    for h in range(H):
        z = act[h] * scale + flat[b0 + h]
        act[h] = z
        if z < 0:  # ReLU; max(z, 0) would promote float32 to float64
            act[h] = 0
    L = layers.shape[0]
    for l in range(1, L):
        n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
        w, b = layers[l, W_OFF], layers[l, B_OFF]
        a_in, a_out = layers[l - 1, A_OFF], layers[l, A_OFF]
        for o in range(n_out):
            s = flat[b + o]
            for i in range(n_in):
                s += flat[w + o * n_in + i] * act[a_in + i]
            act[a_out + o] = s
            if l < L - 1 and s < 0:
                act[a_out + o] = 0


@njit(**NJIT)
def _softmax_xent(act, layers, label):
    """Turn the logits in ``act`` into probabilities; return (-log p[label], argmax)."""
    L = layers.shape[0]
    K, a = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    best = 0
    for k in range(1, K):
        if act[a + k] > act[a + best]:
            best = k
    m = act[a + best]
    z_label = act[a + label] if label >= 0 else m
    total = flat_zero(act)
    for k in range(K):
        e = np.exp(act[a + k] - m)
        act[a + k] = e
        total += e
    inv = act.dtype.type(1) / total  # typed 1: a literal 1 would promote float32 to float64
    for k in range(K):
        act[a + k] *= inv
    # log-sum-exp form: exact even when p[label] underflows to zero
    return np.log(total) - (z_label - m), best


@njit(**NJIT)
def _backward_sample(g1T, grest, act, delta, n, label, indptr, idx, vals, scale, flat, layers):
    """Add sample n's gradient (not yet divided by N) to this chunk's buffers."""
    L = layers.shape[0]
    D, H = layers[0, N_IN], layers[0, N_OUT]
    rest0 = D * H  # grest[p] is the gradient of flat[rest0 + p]
    K, aK = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    for k in range(K):  # d(loss)/d(logits) = p - one_hot(label)
        delta[aK + k] = act[aK + k]
    delta[aK + label] -= act.dtype.type(1)
    for l in range(L - 1, 0, -1):
        n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
        w, b = layers[l, W_OFF] - rest0, layers[l, B_OFF] - rest0
        a_in, a_out = layers[l - 1, A_OFF], layers[l, A_OFF]
        for i in range(n_in):
            delta[a_in + i] = 0
        for o in range(n_out):
            d = delta[a_out + o]
            grest[b + o] += d
            for i in range(n_in):
                grest[w + o * n_in + i] += d * act[a_in + i]
                delta[a_in + i] += flat[rest0 + w + o * n_in + i] * d
        for i in range(n_in):  # ReLU: pass the gradient where the unit was active
            if act[a_in + i] <= 0:
                delta[a_in + i] = 0
    b0 = layers[0, B_OFF] - rest0
    for h in range(H):
        grest[b0 + h] += delta[h]
        delta[h] *= scale
    _sparse_first_layer_backward(g1T, delta, indptr[n], indptr[n + 1], idx, vals)


@njit(**NJIT_PARALLEL)
def _chunked_pass(g1T, grest, stats, probs, flat, W1T, indptr, idx, vals, scale, y, layers,
                  act_size, backward):
    """Forward (and, if ``backward``, gradient accumulation) over fixed sample chunks in parallel.

    stats[c] = (loss sum, number correct) of chunk c; probs (N, K) is filled when it has N rows.
    Labels y[n] < 0 mean "no label": no loss, no gradient.
    """
    N = indptr.shape[0] - 1
    C = stats.shape[0]
    L = layers.shape[0]
    K, aK = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    want_probs = probs.shape[0] == N
    for c in prange(C):
        lo, hi = c * N // C, (c + 1) * N // C
        act = np.zeros(act_size, flat.dtype)
        delta = np.zeros(act_size, flat.dtype)
        if backward:
            g1T[c] = 0
            grest[c] = 0
        loss = 0.0
        correct = 0
        for n in range(lo, hi):
            _forward_sample(act, n, indptr, idx, vals, scale, W1T, flat, layers)
            label = y[n]
            sample_loss, guess = _softmax_xent(act, layers, label)
            loss += sample_loss
            correct += guess == label
            if want_probs:
                for k in range(K):
                    probs[n, k] = act[aK + k]
            if backward:
                _backward_sample(g1T[c], grest[c], act, delta, n, label, indptr, idx, vals, scale,
                                 flat, layers)
        stats[c, 0] = loss
        stats[c, 1] = correct


@njit(**NJIT_PARALLEL)
def _reduce_gradients(grad, g1T, grest, inv_n, layers):
    """grad (flat layout) = sum over chunks, in chunk order, divided by N."""
    D, H = layers[0, N_IN], layers[0, N_OUT]
    C = g1T.shape[0]
    for d in prange(D):
        for h in range(H):
            s = g1T[0, d, h]
            for c in range(1, C):
                s += g1T[c, d, h]
            grad[h * D + d] = s * inv_n
    rest0 = D * H
    for p in prange(grest.shape[1]):
        s = grest[0, p]
        for c in range(1, C):
            s += grest[c, p]
        grad[rest0 + p] = s * inv_n


@njit(**NJIT)
def _update(flat, grad, lr):
    """Gradient descent: flat -= lr * grad."""
    for p in range(flat.shape[0]):
        flat[p] -= lr * grad[p]


@njit(**NJIT)
def _csr_rows(X, indptr, idx, vals):
    """Fill CSR arrays (allocated by the caller from the non-zero counts) from dense rows X."""
    for n in range(X.shape[0]):
        k = indptr[n]
        for d in range(X.shape[1]):
            x = X[n, d]
            if x != 0:
                idx[k] = d
                vals[k] = x
                k += 1
