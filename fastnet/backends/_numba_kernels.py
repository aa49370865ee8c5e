"""The Numba kernels behind the ``numba`` backend. Private: the wrapper validates every input.

Shapes: N samples, D inputs, H first-layer units, K classes, P parameters, C chunks, B block.

Network layout: one flat parameter vector described by ``layers``, an int64 table with one row per
layer: [n_in, n_out, W offset, b offset, activation offset]. W is (n_out, n_in) as in numpy.

A training step splits the N samples into blocks of B (block k: samples k * B ...) and the blocks
into C fixed chunks, processed in parallel. A block goes forward, through the softmax and
backward, adding its gradient to the chunk's own buffers: ``g1s[c]`` (D * Hp,) for the first
layer's weights, pixel-major, ``grads[c]`` (P,) for the rest. The chunk buffers are then summed in
chunk order, so results do not depend on the number of threads. Within a block, activations and
deltas are feature-major, (units, B), so the small layers' loops run over samples and vectorise.

The first layer, which touches the pixels and does most of the work, has its own module
(:mod:`fastnet.backends._numba_first_layer`, where the features' layout is described).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from fastnet.backends import _numba_first_layer as first_layer
from fastnet.backends._simd import lanes
from fastnet.config import NJIT, NJIT_PARALLEL

N_IN, N_OUT, W_OFF, B_OFF, A_OFF = range(5)


@njit(**NJIT)
def _dense_forward(A, nb, flat, layers):
    """Layers 2..L for the block; A (feature-major) holds every layer's activations, the last
    layer's rows get the logits. Inner loops run over the block's samples, so they vectorise."""
    L = layers.shape[0]
    for l in range(1, L):
        n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
        w, bias = layers[l, W_OFF], layers[l, B_OFF]
        a_in, a_out = layers[l - 1, A_OFF], layers[l, A_OFF]
        for o in range(n_out):
            z = A[a_out + o]
            for b in range(nb):
                z[b] = flat[bias + o]
            for i in range(n_in):
                wi = flat[w + o * n_in + i]
                a = A[a_in + i]
                for b in range(nb):
                    z[b] += wi * a[b]
            if l < L - 1:
                for b in range(nb):  # ReLU on hidden layers
                    if z[b] < 0:
                        z[b] = 0


@njit(**NJIT)
def _exp_nonpositive(out, x, n):
    """out[:n] = exp(x[:n]) for x <= 0, in a loop LLVM can vectorise (numba's np.exp is a scalar
    libm call here). For x in [-64, 0]: exp(x) = P(x / 128) ** 128, P the degree-15 Taylor
    polynomial on [-0.5, 0]: relative error below 3e-14 in float64 (1.3e-5 in float32), inside
    the agreement tolerances of fastnet.config. The rare x below -64 (and NaN) are redone with
    np.exp."""
    t = x.dtype.type
    for b in range(n):
        r = max(x[b], t(-64)) * t(1 / 128)
        p = t(1 / 1307674368000)  # 1/15!, then Horner down to 1/0!
        p = p * r + t(1 / 87178291200)
        p = p * r + t(1 / 6227020800)
        p = p * r + t(1 / 479001600)
        p = p * r + t(1 / 39916800)
        p = p * r + t(1 / 3628800)
        p = p * r + t(1 / 362880)
        p = p * r + t(1 / 40320)
        p = p * r + t(1 / 5040)
        p = p * r + t(1 / 720)
        p = p * r + t(1 / 120)
        p = p * r + t(1 / 24)
        p = p * r + t(1 / 6)
        p = p * r + t(0.5)
        p = p * r + t(1)
        p = p * r + t(1)
        for _ in range(7):  # ** 128
            p = p * p
        out[b] = p
    for b in range(n):
        if not x[b] >= t(-64):  # below the polynomial's range, or NaN (which must stay NaN)
            out[b] = np.exp(x[b])


@njit(**NJIT)
def _softmax_xent(A, nb, layers, y, n0, best, top, total, e):
    """Logits (last layer's rows of A) -> probabilities in place; return (loss sum, correct).

    Log-sum-exp form, exact even when p[label] underflows; labels < 0 mean "none" (no loss).
    Loops run over the block's samples (b), so each vectorises.
    """
    L = layers.shape[0]
    K, o = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    t = A.dtype.type  # typed constants: a literal 1 or 0 would promote float32 to float64
    for b in range(nb):
        best[b] = 0
        top[b] = A[o, b]
        total[b] = 0
    for k in range(1, K):
        z = A[o + k]
        for b in range(nb):
            if z[b] > top[b]:  # strict: the first maximum wins, like np.argmax
                top[b] = z[b]
                best[b] = k
    loss = 0.0
    for b in range(nb):  # before the logits are overwritten: log p[label] = z[label] - max - log total
        label = y[n0 + b]
        if label >= 0:
            loss -= A[o + label, b] - top[b]
    for k in range(K):
        z = A[o + k]
        for b in range(nb):
            z[b] = z[b] - top[b]
        _exp_nonpositive(e, z, nb)
        for b in range(nb):
            z[b] = e[b]
            total[b] += e[b]
    correct = 0
    product = 1.0  # one log per block: each total is in [1, K], so 32 of them stay far from overflow
    for b in range(nb):
        label = y[n0 + b]
        if label >= 0:
            product *= total[b]
            correct += best[b] == label
    loss += np.log(product)
    for b in range(nb):
        total[b] = t(1) / total[b]
    for k in range(K):
        z = A[o + k]
        for b in range(nb):
            z[b] *= total[b]
    return loss, correct


@njit(**NJIT)
def _dense_backward(g, A, Dl, nb, y, n0, flat, layers):
    """Gradients of layers L..2 for the block into g; leaves d(loss)/d(z1) in Dl[:H, :nb]."""
    L = layers.shape[0]
    K, o = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    for k in range(K):  # d(loss)/d(logits) = p - one_hot(label)
        for b in range(nb):
            Dl[o + k, b] = A[o + k, b]
    for b in range(nb):
        Dl[o + y[n0 + b], b] -= A.dtype.type(1)
    for l in range(L - 1, 0, -1):
        n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
        w, bias = layers[l, W_OFF], layers[l, B_OFF]
        a_in, a_out = layers[l - 1, A_OFF], layers[l, A_OFF]
        for j in range(n_out):
            dj = Dl[a_out + j]
            s = g[bias + j]
            for b in range(nb):
                s += dj[b]
            g[bias + j] = s
            for i in range(n_in):
                a = A[a_in + i]
                s = g[w + j * n_in + i]
                for b in range(nb):
                    s += dj[b] * a[b]
                g[w + j * n_in + i] = s
        for i in range(n_in):
            di, a = Dl[a_in + i], A[a_in + i]
            for b in range(nb):
                di[b] = 0
            for j in range(n_out):
                wji = flat[w + j * n_in + i]
                dj = Dl[a_out + j]
                for b in range(nb):
                    di[b] += wji * dj[b]
            for b in range(nb):  # ReLU: the gradient passes where the unit was active
                if a[b] <= 0:
                    di[b] = 0


@njit(**NJIT_PARALLEL)
def _chunked_pass(grads, g1s, dense_grads, stats, probs, rows, As, Dls, vecs, bests, flat, W1T, Hp, dense, pixels,
                  ptr, idx, val, scale, y, layers, backward):
    """Forward (and, if ``backward``, gradient accumulation) over C fixed chunks in parallel.

    dense, pixels, ptr, idx, val, scale: the features; W1T (D * Hp + UNIT_TILE,): the first layer's
    weights pixel-major (see _numba_first_layer). Written only when ``backward``: g1s (C, D * Hp)
    and grads (C, P), chunk c's gradient sums (not yet divided by N), W1's in g1s, the rest in
    grads. stats (C, 2): chunk c's loss sum and number correct; probs (N, K) is filled when it has
    N rows. Scratch, allocated once per network shape: dense_grads (threads, >= dense_grads_size)
    one per thread, the dense pixels' gradient lanes of the chunk it is on; one slice per chunk of rows (C, Hp) a
    sample's first-layer sums or deltas, As and Dls (C, units, B) activations and deltas, vecs
    (C, 3, B) and bests (C, B) for the softmax.
    """
    N = ptr.shape[0] - 1
    C = stats.shape[0]
    L = layers.shape[0]
    K, o = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    want_probs = probs.shape[0] == N
    block = As.shape[2]
    n_blocks = (N + block - 1) // block
    H = layers[0, N_OUT]
    dense_size = first_layer.dense_grads_size(pixels.shape[0], H, lanes(W1T))
    for c in prange(C):
        row, A, Dl = rows[c], As[c], Dls[c]  # A: activations, feature-major; Dl: their deltas
        top, total, e = vecs[c, 0], vecs[c, 1], vecs[c, 2]
        best = bests[c]
        g, g1 = grads[c], g1s[c]
        G = dense_grads[numba.get_thread_id()]
        if backward:
            g[layers[0, B_OFF]:] = 0  # from b1 on: W1's gradient goes to g1, its part of g is unused
            g1[:] = 0
            G[:dense_size] = 0
        loss = 0.0
        correct = 0
        for k in range(c * n_blocks // C, (c + 1) * n_blocks // C):
            n0 = k * block
            nb = min(block, N - n0)
            first_layer.forward(A, row, k, nb, dense, pixels, ptr, idx, val, scale, W1T, Hp, flat, layers)
            _dense_forward(A, nb, flat, layers)
            block_loss, block_correct = _softmax_xent(A, nb, layers, y, n0, best, top, total, e)
            loss += block_loss
            correct += block_correct
            if want_probs:
                for b in range(nb):
                    for j in range(K):
                        probs[n0 + b, j] = A[o + j, b]
            if backward:
                _dense_backward(g, A, Dl, nb, y, n0, flat, layers)
                first_layer.backward(g, g1, G, row, k, nb, Dl, dense, pixels, ptr, idx, val, scale, Hp, layers)
        if backward:
            first_layer.fold_dense_gradients(g1, Hp, G, pixels, H, scale)
        stats[c, 0] = loss
        stats[c, 1] = correct


@njit(**NJIT_PARALLEL)
def _reduce_gradients(grad, grads, g1s, inv_n, layers):
    """grad = (sum of the chunk buffers, in chunk order) / N, W1 back to (H, D) from pixel-major."""
    C = grads.shape[0]
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_OFF]
    Hp = g1s.shape[1] // D
    for h in prange(H):
        for d in range(D):
            s = g1s[0, d * Hp + h]
            for c in range(1, C):
                s += g1s[c, d * Hp + h]
            grad[w0 + h * D + d] = s * inv_n
    for p in prange(w0 + H * D, grad.shape[0]):
        s = grads[0, p]
        for c in range(1, C):
            s += grads[c, p]
        grad[p] = s * inv_n


@njit(**NJIT)
def _update(flat, grad, lr):
    """Gradient descent: flat -= lr * grad."""
    for p in range(flat.shape[0]):
        flat[p] -= lr * grad[p]
