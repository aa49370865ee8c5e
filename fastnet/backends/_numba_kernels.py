"""The Numba kernels behind the ``numba`` backend. Private: the wrapper validates every input.

Shapes: N samples, D inputs, H first-layer units, K classes, P parameters, C chunks, B block.

Network layout: one flat parameter vector described by ``layers``, an int64 table with one row per
layer: [n_in, n_out, W offset, b offset, activation offset]. W is (n_out, n_in) as in numpy.

A training step splits the N samples into C fixed chunks (in parallel) and each chunk into blocks
of B samples. A block's pixels are converted to floats once (X stays uint8 in memory; the 1/255
scale is applied to the first layer's sums), then the block goes forward, through the softmax and
backward, adding its gradient to the chunk's own buffer ``grads[c]`` (P,). Within a block,
activations and deltas are feature-major, (units, B), so the small layers' loops run over samples. The chunk buffers are
then summed in chunk order, so results do not depend on the number of threads.

The first layer dominates the work (D x H per sample each way); its loops are written so that LLVM's
loop vectoriser gets long, contiguous inner loops over D with several independent accumulators:
the forward pass computes 4 samples x 2 units per pass, the backward pass adds 4 samples' outer
products per pass over a weight row.

Prepared features (once per dataset, see numba_backend.kernel_features): pixel columns are
reordered by how often they are non-zero (``perm``), and within each chunk samples are ordered by
``span`` (1 + position of their last non-zero pixel in that order; ``order`` maps back to the
caller's rows). A group of 4 samples then only loops up to its largest span: about half of D on
MNIST, where 81% of pixels are zero. The first layer's weights are gathered into the same column
order each step (W1p, H x D) and the gradient is scattered back in the reduction.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastnet.config import NJIT, NJIT_PARALLEL

N_IN, N_OUT, W_OFF, B_OFF, A_OFF = range(5)


@njit(**NJIT)
def _group_span(span, n, count):
    """The largest span among samples n .. n+count-1: how far their pixel loops must go."""
    m = span[n]
    for i in range(1, count):
        m = max(m, span[n + i])
    return m


@njit(**NJIT)
def _load_block(xf, X, span, n0, nb):
    """xf[:nb] = X[n0:n0+nb] as floats (raw pixel values: the scale is applied later), each row
    up to the span of the widest group that reads it: groups of 8, then 4, then single samples,
    as in _first_layer_backward (the forward's groups of 4 lie inside these)."""
    b = 0
    while b < nb:
        count = 8 if b + 8 <= nb else (4 if b + 4 <= nb else 1)
        end = _group_span(span, n0 + b, count)
        for i in range(b, b + count):
            src, dst = X[n0 + i], xf[i]  # views: LLVM vectorises loops over views only
            for d in range(end):
                dst[d] = src[d]
        b += count


@njit(**NJIT)
def _first_layer_forward(A, xf, span, n0, nb, W1p, flat, layers, scale):
    """A[:H, b] = relu(scale * (W1 @ x_b) + b1) for the block's samples (A is feature-major).

    Four samples at a time, two units per pass over the pixels: eight independent sums; each
    weight row is loaded once for four samples, whose pixel rows stay in L1 across all units.
    """
    H, b0 = layers[0, N_OUT], layers[0, B_OFF]
    zero = flat.dtype.type(0)  # a literal 0 would make the sums float64
    b = 0
    while b + 4 <= nb:
        end = _group_span(span, n0 + b, 4)
        x0, x1, x2, x3 = xf[b], xf[b + 1], xf[b + 2], xf[b + 3]
        h = 0
        while h < H:
            u = W1p[h]  # row views: LLVM vectorises loops over views, not over flat[r + d]
            v = W1p[h + 1] if h + 1 < H else W1p[h]
            s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = zero
            for d in range(end):
                s0 += u[d] * x0[d]
                s1 += u[d] * x1[d]
                s2 += u[d] * x2[d]
                s3 += u[d] * x3[d]
                t0 += v[d] * x0[d]
                t1 += v[d] * x1[d]
                t2 += v[d] * x2[d]
                t3 += v[d] * x3[d]
            A[h, b], A[h, b + 1], A[h, b + 2], A[h, b + 3] = s0, s1, s2, s3
            if h + 1 < H:  # an odd last unit was computed twice; keep it once
                A[h + 1, b], A[h + 1, b + 1], A[h + 1, b + 2], A[h + 1, b + 3] = t0, t1, t2, t3
            h += 2
        b += 4
    while b < nb:
        end = span[n0 + b]
        x0 = xf[b]
        for h in range(H):
            u = W1p[h]
            s0 = zero
            for d in range(end):
                s0 += u[d] * x0[d]
            A[h, b] = s0
        b += 1
    for h in range(H):
        bias = flat[b0 + h]
        a = A[h]
        for b in range(nb):
            a[b] = a[b] * scale + bias
            if a[b] < 0:  # ReLU
                a[b] = 0


@njit(**NJIT)
def _first_layer_backward(g, xf, span, n0, Dl, nb, layers, scale):
    """g[W1] += scale * sum_b Dl[:H, b] (outer) x_b, in the permuted column order;
    g[b1] += sum_b Dl[:H, b]."""
    D, H, w0, b0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_OFF], layers[0, B_OFF]
    b = 0
    while b < nb:
        if b + 8 <= nb:  # eight samples per pass: the gradient rows (L2) are streamed once per eight
            end = _group_span(span, n0 + b, 8)
            x0, x1, x2, x3 = xf[b], xf[b + 1], xf[b + 2], xf[b + 3]  # stay in L1 across units
            x4, x5, x6, x7 = xf[b + 4], xf[b + 5], xf[b + 6], xf[b + 7]
            for h in range(H):
                row = g[w0 + h * D:w0 + (h + 1) * D]  # views: LLVM vectorises loops over views only
                e0, e1 = Dl[h, b] * scale, Dl[h, b + 1] * scale
                e2, e3 = Dl[h, b + 2] * scale, Dl[h, b + 3] * scale
                e4, e5 = Dl[h, b + 4] * scale, Dl[h, b + 5] * scale
                e6, e7 = Dl[h, b + 6] * scale, Dl[h, b + 7] * scale
                for d in range(end):
                    row[d] += (((e0 * x0[d] + e1 * x1[d]) + (e2 * x2[d] + e3 * x3[d]))
                               + ((e4 * x4[d] + e5 * x5[d]) + (e6 * x6[d] + e7 * x7[d])))
            b += 8
        elif b + 4 <= nb:  # four samples per pass: each gradient entry is stored once for four
            end = _group_span(span, n0 + b, 4)
            x0, x1, x2, x3 = xf[b], xf[b + 1], xf[b + 2], xf[b + 3]  # stay in L1 across units
            for h in range(H):
                row = g[w0 + h * D:w0 + (h + 1) * D]  # views: LLVM vectorises loops over views only
                e0, e1 = Dl[h, b] * scale, Dl[h, b + 1] * scale
                e2, e3 = Dl[h, b + 2] * scale, Dl[h, b + 3] * scale
                for d in range(end):
                    row[d] += (e0 * x0[d] + e1 * x1[d]) + (e2 * x2[d] + e3 * x3[d])
            b += 4
        else:
            end = span[n0 + b]
            x0 = xf[b]
            for h in range(H):
                row = g[w0 + h * D:w0 + (h + 1) * D]
                e0 = Dl[h, b] * scale
                for d in range(end):
                    row[d] += e0 * x0[d]
            b += 1
    for h in range(H):
        s = g[b0 + h]
        for b in range(nb):
            s += Dl[h, b]
        g[b0 + h] = s


@njit(**NJIT)
def _gather_first_layer(W1p, flat, perm, layers):
    """W1p[h, j] = W1[h, perm[j]]: the first layer's weights in the prepared column order."""
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_OFF]
    for h in range(H):
        for j in range(D):
            W1p[h, j] = flat[w0 + h * D + perm[j]]


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
def _softmax_xent(A, nb, layers, y, order, n0, best, top, total, e):
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
        label = y[order[n0 + b]]
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
        label = y[order[n0 + b]]
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
def _dense_backward(g, A, Dl, nb, y, order, n0, flat, layers):
    """Gradients of layers L..2 for the block into g; leaves d(loss)/d(z1) in Dl[:H, :nb]."""
    L = layers.shape[0]
    K, o = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    for k in range(K):  # d(loss)/d(logits) = p - one_hot(label)
        for b in range(nb):
            Dl[o + k, b] = A[o + k, b]
    for b in range(nb):
        Dl[o + y[order[n0 + b]], b] -= A.dtype.type(1)
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
def _chunked_pass(grads, stats, probs, xfs, As, Dls, vecs, bests, flat, W1p, X, scale, span, order,
                  y, layers, backward):
    """Forward (and, if ``backward``, gradient accumulation) over C fixed chunks in parallel.

    X, span, order: the prepared features (see the module docstring); y and probs are in the
    caller's sample order. grads (C, P): chunk c's gradient sum (not yet divided by N; W1 in the
    prepared column order), written only when ``backward``; stats (C, 2): chunk c's loss sum and
    number correct; probs (N, K) is filled when it has N rows. Scratch, one slice per chunk,
    allocated once per network shape: xfs (C, B, D) pixels as floats; As and Dls (C, units, B)
    activations and deltas; vecs (C, 3, B) and bests (C, B) for the softmax.
    """
    N = X.shape[0]
    C = stats.shape[0]
    L = layers.shape[0]
    K, o = layers[L - 1, N_OUT], layers[L - 1, A_OFF]
    want_probs = probs.shape[0] == N
    block = xfs.shape[1]
    for c in prange(C):
        lo, hi = c * N // C, (c + 1) * N // C
        xf, A, Dl = xfs[c], As[c], Dls[c]  # A: activations, feature-major; Dl: their deltas
        top, total, e = vecs[c, 0], vecs[c, 1], vecs[c, 2]
        best = bests[c]
        g = grads[c]
        if backward:
            g[:] = 0
        loss = 0.0
        correct = 0
        for n0 in range(lo, hi, block):
            nb = min(block, hi - n0)
            _load_block(xf, X, span, n0, nb)
            _first_layer_forward(A, xf, span, n0, nb, W1p, flat, layers, scale)
            _dense_forward(A, nb, flat, layers)
            block_loss, block_correct = _softmax_xent(A, nb, layers, y, order, n0, best, top, total, e)
            loss += block_loss
            correct += block_correct
            if want_probs:
                for b in range(nb):
                    for k in range(K):
                        probs[order[n0 + b], k] = A[o + k, b]
            if backward:
                _dense_backward(g, A, Dl, nb, y, order, n0, flat, layers)
                _first_layer_backward(g, xf, span, n0, Dl, nb, layers, scale)
        stats[c, 0] = loss
        stats[c, 1] = correct


@njit(**NJIT_PARALLEL)
def _reduce_gradients(grad, grads, inv_n, perm, layers):
    """grad = (sum of the chunk buffers, in chunk order) / N, with W1 back in its own column order."""
    C = grads.shape[0]
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_OFF]
    for h in prange(H):
        r = w0 + h * D
        for j in range(D):
            s = grads[0, r + j]
            for c in range(1, C):
                s += grads[c, r + j]
            grad[r + perm[j]] = s * inv_n
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
