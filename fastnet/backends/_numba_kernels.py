"""The Numba kernels behind the ``numba`` backend. Private: the wrapper validates every input.

Shapes: N samples, D inputs, H first-layer units, K classes, P parameters, C chunks, B block.

Network layout: one flat parameter vector described by ``layers``, an int64 table with one row per
layer: [n_in, n_out, W offset, b offset, activation offset]. W is (n_out, n_in) as in numpy.

Features are sparse rows (CSR, made once per dataset, see numba_backend.kernel_features): sample
n's non-zero pixels are ``idx[ptr[n]:ptr[n + 1]]`` with values ``val[...]`` (uint8 stays uint8;
the 1/255 scale is applied to the first layer's sums). On MNIST 81% of pixels are zero, so the
first layer, which dominates the work (D x H per sample each way), only touches the other 19%.

A training step splits the N samples into C fixed chunks (in parallel) and each chunk into blocks
of B samples. A block goes forward, through the softmax and backward, adding its gradient to the
chunk's own buffers: ``g1s[c]`` (D * Hp,) for the first layer's weights, ``grads[c]`` (P,) for the
rest. The chunk buffers are then summed in chunk order, so results do not depend on the number of
threads. Within a block, activations and deltas are feature-major, (units, B), so the small
layers' loops run over samples and vectorise.

The first layer runs on explicit vectors (:mod:`fastnet.backends._simd`): its weights are
gathered each step pixel-major, ``W1T[d * Hp + h]``, with the units padded to Hp (whole vectors
of 8 float32 or 4 float64 lanes; see numba_backend.padded_units). Per non-zero pixel, the forward
pass adds a weight row into the sample's sums held in registers; the backward pass adds the
sample's deltas into that pixel's gradient row. A sample's entries are read twice per step, both
times from cache: forward, then backward once its block's deltas are known.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastnet.backends._simd import at, lanes, vadd, vbroadcast, vfma, vload, vload4, vsplat, vstore, vzero
from fastnet.config import NJIT, NJIT_PARALLEL, NJIT_SIMD

N_IN, N_OUT, W_OFF, B_OFF, A_OFF = range(5)


@njit(**NJIT)
def _gather_first_layer(W1T, flat, layers):
    """W1T[d * Hp + h] = W1[h, d]: the first layer's weights pixel-major (padding units stay 0)."""
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_OFF]
    Hp = W1T.shape[0] // D
    for d in range(D):
        for h in range(H):
            W1T[d * Hp + h] = flat[w0 + h * D + d]


@njit(**NJIT_SIMD)
def _pass_vectors(Hp, L):
    """How many vectors of units one pass over a sample's pixels handles: all of them up to three,
    else four (Hp is then a multiple of four vectors, see numba_backend.padded_units)."""
    return min(Hp // L, 4)


@njit(**NJIT_SIMD)
def _sum_rows_2(z, t, lo, hi, idx, val, W1T, Hp):
    """z[t : t + 2L] = sum over entries k in [lo, hi) of val[k] * W1T[idx[k] * Hp + t : ... + 2L].

    Entries are taken four at a time into four independent pairs of sums: an FMA takes 4 cycles,
    and a single chain of sums would wait on each one.
    """
    L = lanes(W1T)
    s0 = s1 = s2 = s3 = u0 = u1 = u2 = u3 = vzero(W1T)  # s: units t.., u: units t+L..
    k = lo
    while k + 4 <= hi:
        p0, p1 = at(idx, k) * Hp + t, at(idx, k + 1) * Hp + t
        p2, p3 = at(idx, k + 2) * Hp + t, at(idx, k + 3) * Hp + t
        x = vload4(W1T, val, k)  # four pixel values, converted at once
        v = vsplat(x, 0)
        s0, u0 = vfma(vload(W1T, p0), v, s0), vfma(vload(W1T, p0 + L), v, u0)
        v = vsplat(x, 1)
        s1, u1 = vfma(vload(W1T, p1), v, s1), vfma(vload(W1T, p1 + L), v, u1)
        v = vsplat(x, 2)
        s2, u2 = vfma(vload(W1T, p2), v, s2), vfma(vload(W1T, p2 + L), v, u2)
        v = vsplat(x, 3)
        s3, u3 = vfma(vload(W1T, p3), v, s3), vfma(vload(W1T, p3 + L), v, u3)
        k += 4
    while k < hi:
        p0 = at(idx, k) * Hp + t
        v = vbroadcast(W1T, at(val, k))
        s0, u0 = vfma(vload(W1T, p0), v, s0), vfma(vload(W1T, p0 + L), v, u0)
        k += 1
    vstore(z, t, vadd(vadd(s0, s1), vadd(s2, s3)))
    vstore(z, t + L, vadd(vadd(u0, u1), vadd(u2, u3)))


@njit(**NJIT_SIMD)
def _sum_rows_wide(z, t, V, lo, hi, idx, val, W1T, Hp):
    """As _sum_rows_2 for V = 3 or 4 vectors of units: two entries at a time (2V sums in registers
    already hide the FMA latency)."""
    L = lanes(W1T)
    a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = vzero(W1T)  # a: entry k, c: entry k + 1
    k = lo
    while k < hi:
        p = at(idx, k) * Hp + t
        v = vbroadcast(W1T, at(val, k))
        second = k + 1 < hi
        q = at(idx, k + 1) * Hp + t if second else p
        w = vbroadcast(W1T, at(val, k + 1) if second else 0)  # a lone last entry adds 0 * row
        a0, c0 = vfma(vload(W1T, p), v, a0), vfma(vload(W1T, q), w, c0)
        a1, c1 = vfma(vload(W1T, p + L), v, a1), vfma(vload(W1T, q + L), w, c1)
        a2, c2 = vfma(vload(W1T, p + 2 * L), v, a2), vfma(vload(W1T, q + 2 * L), w, c2)
        if V > 3:
            a3, c3 = vfma(vload(W1T, p + 3 * L), v, a3), vfma(vload(W1T, q + 3 * L), w, c3)
        k += 2
    vstore(z, t, vadd(a0, c0))
    vstore(z, t + L, vadd(a1, c1))
    vstore(z, t + 2 * L, vadd(a2, c2))
    if V > 3:
        vstore(z, t + 3 * L, vadd(a3, c3))


@njit(**NJIT_SIMD)
def _first_layer_forward(A, z, n0, nb, ptr, idx, val, W1T, flat, layers, scale):
    """A[:H, b] = relu(scale * (W1 @ x_b) + b1) for the block's samples, from their non-zero pixels:
    per sample, one pass over its pixels per V vectors of units, the sums held in registers."""
    D, H, b0 = layers[0, N_IN], layers[0, N_OUT], layers[0, B_OFF]
    L = lanes(W1T)
    Hp = W1T.shape[0] // D
    V = _pass_vectors(Hp, L)
    for b in range(nb):
        lo, hi = at(ptr, n0 + b), at(ptr, n0 + b + 1)
        for t in range(0, Hp, V * L):
            if V == 2:
                _sum_rows_2(z, t, lo, hi, idx, val, W1T, Hp)
            else:
                _sum_rows_wide(z, t, V, lo, hi, idx, val, W1T, Hp)
        for h in range(H):
            a = z[h] * scale + flat[b0 + h]
            A[h, b] = a if a > 0 else 0 * a  # ReLU; 0 * a keeps the dtype (and a NaN stays NaN)


@njit(**NJIT_SIMD)
def _first_layer_backward(g1, g, e, n0, Dl, nb, ptr, idx, val, layers, scale):
    """g1[d * Hp + h] += scale * sum_b Dl[h, b] * x_b[d], over each sample's non-zero pixels only;
    g[b1] += sum_b Dl[:H, b]. e (Hp,) is scratch whose entries from H on are zero."""
    D, H, b0 = layers[0, N_IN], layers[0, N_OUT], layers[0, B_OFF]
    L = lanes(g1)
    Hp = g1.shape[0] // D
    V = _pass_vectors(Hp, L)
    for b in range(nb):
        for h in range(H):
            e[h] = Dl[h, b] * scale
        lo, hi = at(ptr, n0 + b), at(ptr, n0 + b + 1)
        for t in range(0, Hp, V * L):
            d0, d1 = vload(e, t), vload(e, t + L)  # this sample's deltas stay in registers
            d2 = vload(e, t + 2 * L) if V > 2 else d0
            d3 = vload(e, t + 3 * L) if V > 3 else d0
            for k in range(lo, hi):
                p = at(idx, k) * Hp + t
                v = vbroadcast(g1, at(val, k))
                vstore(g1, p, vfma(d0, v, vload(g1, p)))
                vstore(g1, p + L, vfma(d1, v, vload(g1, p + L)))
                if V > 2:
                    vstore(g1, p + 2 * L, vfma(d2, v, vload(g1, p + 2 * L)))
                if V > 3:
                    vstore(g1, p + 3 * L, vfma(d3, v, vload(g1, p + 3 * L)))
    for h in range(H):
        s = g[b0 + h]
        for b in range(nb):
            s += Dl[h, b]
        g[b0 + h] = s


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
def _chunked_pass(grads, g1s, stats, probs, rows, As, Dls, vecs, bests, flat, W1T, ptr, idx, val, scale,
                  y, layers, backward):
    """Forward (and, if ``backward``, gradient accumulation) over C fixed chunks in parallel.

    ptr, idx, val: the sparse features (see the module docstring); W1T: the first layer's weights
    pixel-major. Written only when ``backward``: g1s (C, D * Hp) and grads (C, P), chunk c's
    gradient sums (not yet divided by N), W1's in g1s, the rest in grads. stats (C, 2): chunk c's
    loss sum and number correct; probs (N, K) is filled when it has N rows. Scratch, one slice per
    chunk, allocated once per network shape: rows (C, Hp) a sample's first-layer sums or deltas;
    As and Dls (C, units, B) activations and deltas; vecs (C, 3, B) and bests (C, B) for the softmax.
    """
    N = ptr.shape[0] - 1
    C = stats.shape[0]
    L = layers.shape[0]
    K, o = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    want_probs = probs.shape[0] == N
    block = As.shape[2]
    for c in prange(C):
        lo, hi = c * N // C, (c + 1) * N // C
        row, A, Dl = rows[c], As[c], Dls[c]  # A: activations, feature-major; Dl: their deltas
        top, total, e = vecs[c, 0], vecs[c, 1], vecs[c, 2]
        best = bests[c]
        g, g1 = grads[c], g1s[c]
        if backward:
            g[layers[0, B_OFF]:] = 0  # from b1 on: W1's gradient goes to g1, its part of g is unused
            g1[:] = 0
        loss = 0.0
        correct = 0
        for n0 in range(lo, hi, block):
            nb = min(block, hi - n0)
            _first_layer_forward(A, row, n0, nb, ptr, idx, val, W1T, flat, layers, scale)
            _dense_forward(A, nb, flat, layers)
            block_loss, block_correct = _softmax_xent(A, nb, layers, y, n0, best, top, total, e)
            loss += block_loss
            correct += block_correct
            if want_probs:
                for b in range(nb):
                    for k in range(K):
                        probs[n0 + b, k] = A[o + k, b]
            if backward:
                _dense_backward(g, A, Dl, nb, y, n0, flat, layers)
                _first_layer_backward(g1, g, row, n0, Dl, nb, ptr, idx, val, layers, scale)
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
