"""The first layer's Numba kernels: the only ones that touch the pixels, and most of a step's work.

Private: called by _numba_kernels._chunked_pass on one block of B samples at a time. Activations
and deltas are feature-major, ``A[h, b]`` and ``Dl[h, b]``, like the other layers'.

A dataset's pixels are split once (numba_backend.kernel_features) by how often they are non-zero:

- **Dense pixels**, non-zero in at least config.DENSE_PIXEL_FRACTION of the samples (on MNIST the
  ~200 central ones). Stored as they are, block by block: ``dense[base + j * B + b]`` is pixel
  ``pixels[j]`` of the block's sample b (``base`` = block index * P * B; zero past the last sample).
  Their part of the layer is a small dense matrix product vectorised over the block's samples: one
  vector of samples' values of a pixel times a broadcast weight, into register tiles of
  UNIT_TILE units x 2 vectors of samples (forward) or 2 pixels x UNIT_TILE units (backward).
  No index is read and no padding unit is computed.
- **Sparse pixels**, the rest, as compressed sparse rows: sample n's non-zero ones are
  ``idx[ptr[n]:ptr[n + 1]]`` with values ``val[...]``. Per non-zero pixel, the forward pass adds
  the pixel's weight row (pixel-major ``W1T[d * Hp + h]``, units padded to Hp, see
  numba_backend.padded_units) into the sample's sums held in registers; the backward pass adds the
  sample's deltas into the pixel's gradient row.

uint8 pixels stay uint8 in both parts; the 1/255 (``scale``) is applied to the sums. Each sample's
values are read from memory once per step: forward, then, once its block's deltas are known,
backward from cache.
"""

from __future__ import annotations

from numba import njit

from fastnet.backends._simd import at, lanes, vadd, vbroadcast, vfma, vload, vload4, vload_as, vsplat, vstore, vzero
from fastnet.config import NJIT, NJIT_SIMD

N_IN, N_OUT, W_OFF, B_OFF, A_OFF = range(5)  # columns of the ``layers`` table (see _numba_kernels)
UNIT_TILE = 5  # units per register tile of the dense-pixel kernels: 2 x 5 vector accumulators


@njit(**NJIT)
def tiled_units(H):
    """H rounded up to whole UNIT_TILEs: the units the dense-pixel kernels compute (those from H on
    are discarded)."""
    return -(-H // UNIT_TILE) * UNIT_TILE


@njit(**NJIT)
def dense_grads_size(n_pixels, H, L):
    """How many entries the dense pixels' gradient lanes take (see _dense_pixels_backward)."""
    return n_pixels * tiled_units(H) * L


@njit(**NJIT)
def gather_weights(W1T, Hp, flat, layers):
    """W1T[d * Hp + h] = W1[h, d]: the first layer's weights pixel-major (padding units stay 0)."""
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_OFF]
    for d in range(D):
        for h in range(H):
            W1T[d * Hp + h] = flat[w0 + h * D + d]


@njit(**NJIT_SIMD)
def _dense_pixels_forward(A, nb, dense, base, pixels, W1T, Hp, H):
    """A[h, b] = sum over dense pixels j of x_b[pixels[j]] * W1[h, pixels[j]] (unscaled), for the
    units below tiled_units(H) and the samples below nb rounded up to 2 vectors."""
    L = lanes(W1T)
    B = A.shape[1]
    for g in range(0, nb, 2 * L):
        for h0 in range(0, H, UNIT_TILE):
            a0 = a1 = a2 = a3 = a4 = c0 = c1 = c2 = c3 = c4 = vzero(W1T)  # a: samples g.., c: g + L..
            for j in range(pixels.shape[0]):
                x = vload_as(W1T, dense, base + j * B + g)
                u = vload_as(W1T, dense, base + j * B + g + L)
                w = at(pixels, j) * Hp + h0
                v = vbroadcast(W1T, at(W1T, w))
                a0, c0 = vfma(x, v, a0), vfma(u, v, c0)
                v = vbroadcast(W1T, at(W1T, w + 1))
                a1, c1 = vfma(x, v, a1), vfma(u, v, c1)
                v = vbroadcast(W1T, at(W1T, w + 2))
                a2, c2 = vfma(x, v, a2), vfma(u, v, c2)
                v = vbroadcast(W1T, at(W1T, w + 3))
                a3, c3 = vfma(x, v, a3), vfma(u, v, c3)
                v = vbroadcast(W1T, at(W1T, w + 4))
                a4, c4 = vfma(x, v, a4), vfma(u, v, c4)
            vstore(A[h0], g, a0)
            vstore(A[h0], g + L, c0)
            vstore(A[h0 + 1], g, a1)
            vstore(A[h0 + 1], g + L, c1)
            vstore(A[h0 + 2], g, a2)
            vstore(A[h0 + 2], g + L, c2)
            vstore(A[h0 + 3], g, a3)
            vstore(A[h0 + 3], g + L, c3)
            vstore(A[h0 + 4], g, a4)
            vstore(A[h0 + 4], g + L, c4)


@njit(**NJIT_SIMD)
def _add_tile(G, i, v0, v1, v2, v3, v4):
    """G[i + t * lanes : ... + lanes] += vt for the UNIT_TILE vectors of a tile."""
    L = lanes(G)
    vstore(G, i, vadd(vload(G, i), v0))
    vstore(G, i + L, vadd(vload(G, i + L), v1))
    vstore(G, i + 2 * L, vadd(vload(G, i + 2 * L), v2))
    vstore(G, i + 3 * L, vadd(vload(G, i + 3 * L), v3))
    vstore(G, i + 4 * L, vadd(vload(G, i + 4 * L), v4))


@njit(**NJIT_SIMD)
def _dense_pixels_backward(G, nb, dense, base, P, Dl, H):
    """G[(j * Ht + h) * L + l] += lane l of the block's sum of x_b[pixels[j]] * Dl[h, b] (unscaled;
    Ht = tiled_units(H), L lanes). Dl's columns from nb to the next whole vector must be zero."""
    L = lanes(G)
    B = Dl.shape[1]
    Ht = tiled_units(H)
    for j in range(0, P, 2):
        two = j + 1 < P
        q = j + 1 if two else j  # a lone last pixel is summed twice and kept once
        for h0 in range(0, H, UNIT_TILE):
            a0 = a1 = a2 = a3 = a4 = c0 = c1 = c2 = c3 = c4 = vzero(G)  # a: pixel j, c: pixel q
            d0, d1, d2, d3, d4 = Dl[h0], Dl[h0 + 1], Dl[h0 + 2], Dl[h0 + 3], Dl[h0 + 4]
            for g in range(0, nb, L):
                x = vload_as(G, dense, base + j * B + g)
                u = vload_as(G, dense, base + q * B + g)
                v = vload(d0, g)
                a0, c0 = vfma(x, v, a0), vfma(u, v, c0)
                v = vload(d1, g)
                a1, c1 = vfma(x, v, a1), vfma(u, v, c1)
                v = vload(d2, g)
                a2, c2 = vfma(x, v, a2), vfma(u, v, c2)
                v = vload(d3, g)
                a3, c3 = vfma(x, v, a3), vfma(u, v, c3)
                v = vload(d4, g)
                a4, c4 = vfma(x, v, a4), vfma(u, v, c4)
            _add_tile(G, (j * Ht + h0) * L, a0, a1, a2, a3, a4)
            if two:
                _add_tile(G, (q * Ht + h0) * L, c0, c1, c2, c3, c4)


@njit(**NJIT)
def fold_dense_gradients(g1, Hp, G, pixels, H, scale):
    """g1[pixels[j] * Hp + h] = scale * (the sum of G's lanes for (j, h)): the dense pixels' rows
    of a chunk's pixel-major gradient (sparse entries never touch those rows)."""
    L = lanes(G)
    Ht = tiled_units(H)
    for j in range(pixels.shape[0]):
        for h in range(H):
            i = (j * Ht + h) * L
            s = G[i]
            for lane in range(1, L):
                s += G[i + lane]
            g1[at(pixels, j) * Hp + h] = s * scale


@njit(**NJIT_SIMD)
def _pass_vectors(Hp, L):
    """How many vectors of units one pass over a sample's sparse pixels handles: all of them up to
    three, else four (Hp is then a multiple of four vectors, see numba_backend.padded_units)."""
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
def _sparse_pixels_forward(A, z, n0, nb, ptr, idx, val, W1T, Hp, H):
    """A[h, b] += sum over sample n0 + b's sparse non-zero pixels d of x[d] * W1[h, d] (unscaled):
    per sample, one pass over its entries per V vectors of units, the sums held in registers.
    z (Hp,) is scratch."""
    L = lanes(W1T)
    V = _pass_vectors(Hp, L)
    for b in range(nb):
        lo, hi = at(ptr, n0 + b), at(ptr, n0 + b + 1)
        if lo == hi:
            continue
        for t in range(0, Hp, V * L):
            if V == 2:
                _sum_rows_2(z, t, lo, hi, idx, val, W1T, Hp)
            else:
                _sum_rows_wide(z, t, V, lo, hi, idx, val, W1T, Hp)
        for h in range(H):
            A[h, b] += z[h]


@njit(**NJIT_SIMD)
def _sparse_pixels_backward(g1, e, n0, nb, Dl, ptr, idx, val, Hp, H, scale):
    """g1[d * Hp + h] += scale * sum_b Dl[h, b] * x_b[d] over each sample's sparse non-zero pixels.
    e (Hp,) is scratch whose entries from H on are zero."""
    L = lanes(g1)
    V = _pass_vectors(Hp, L)
    for b in range(nb):
        lo, hi = at(ptr, n0 + b), at(ptr, n0 + b + 1)
        if lo == hi:
            continue
        for h in range(H):
            e[h] = Dl[h, b] * scale
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


@njit(**NJIT)
def _activate(A, nb, flat, layers, scale):
    """A[h, b] = relu(scale * A[h, b] + b1[h]) for the block's samples (loops over samples
    vectorise)."""
    H, b0 = layers[0, N_OUT], layers[0, B_OFF]
    for h in range(H):
        a, bias = A[h], flat[b0 + h]
        for b in range(nb):
            s = a[b] * scale + bias
            a[b] = s if s > 0 else 0 * s  # ReLU; 0 * s keeps the dtype (and a NaN stays NaN)


@njit(**NJIT)
def forward(A, z, k, nb, dense, pixels, ptr, idx, val, scale, W1T, Hp, flat, layers):
    """A[:H, :nb] = the first layer's activations of block k (samples k * B ...); z (Hp,) scratch."""
    H = layers[0, N_OUT]
    B = A.shape[1]
    _dense_pixels_forward(A, nb, dense, k * pixels.shape[0] * B, pixels, W1T, Hp, H)
    _sparse_pixels_forward(A, z, k * B, nb, ptr, idx, val, W1T, Hp, H)
    _activate(A, nb, flat, layers, scale)


@njit(**NJIT)
def backward(g, g1, G, e, k, nb, Dl, dense, pixels, ptr, idx, val, scale, Hp, layers):
    """Block k's first-layer gradients from its deltas Dl[:H, :nb]: W1's into G (dense pixels,
    see _dense_pixels_backward) and g1 (sparse pixels), b1's into g."""
    H, b0 = layers[0, N_OUT], layers[0, B_OFF]
    B = Dl.shape[1]
    L = lanes(G)
    for h in range(tiled_units(H)):  # past the last sample (a last, partial block): no delta
        for b in range(nb, min(-(-nb // L) * L, B)):
            Dl[h, b] = 0
    P = pixels.shape[0]
    _dense_pixels_backward(G, nb, dense, k * P * B, P, Dl, H)
    _sparse_pixels_backward(g1, e, k * B, nb, Dl, ptr, idx, val, Hp, H, scale)
    for h in range(H):
        s = g[b0 + h]
        for b in range(nb):
            s += Dl[h, b]
        g[b0 + h] = s
