"""Layer 1 on the sparse pixels (the rarely non-zero ones, see .features): per sample, only its
non-zero entries, vectorised over the units by hand (.vector).

Layout read: compressed sparse rows; row n's entries are ``idx[ptr[n]:ptr[n + 1]]`` (pixels)
with values ``val[...]``. The weights are pixel-major, ``W1T[d * Hp + h]``, a pixel's Hp units
(H padded, see .workspace) one whole number of vectors. Forward: each non-zero pixel's weight row
is added into the sample's unit sums, held in registers. Backward: the sample's deltas, held in
registers, times each non-zero value are added into that pixel's row of the W1 gradient.
"""

from __future__ import annotations

from numba import njit

from fastnet.backends.numba.flags import INLINE, L1_ROWS_BYTES, NJIT_SIMD
from fastnet.backends.numba.vector import (at, lane_count, vadd, vadd_transposed, vbroadcast, vfma, vload, vload4,
                                          vsplat, vstore, vstore_transposed, vzero)

# The kernels work per sample, on its units' sums (forward) or deltas (backward) held contiguous,
# while a block's activations and deltas are feature-major (.upper_layers). In rows of one vector,
# or when a block's H rows take more than flags.L1_ROWS_BYTES, SAMPLE_TILE samples' are stored
# sample-major and moved in square tiles of vectors (vector.vadd_transposed, vstore_transposed);
# else one sample's H values at a time. Measured on MNIST, both passes over all blocks, one thread,
# in one process, alternated, tiles against one sample at a time: float32 at hidden 10, 20, 32, 48,
# 64, 128: 1.05, 1.10, 0.98, 0.93, 0.80, 0.74x the time; float64 at hidden 10, 20, 32, 128: 1.05,
# 1.02, 0.84, 0.76x. One sample's H values at a time touch H cache lines of the block's rows, which
# at hidden 128 float32 take 64 KiB. Since the one-vector loops were inlined (_sum_rows_1_inline,
# _add_rows_1), tiles have paid at hidden 10 too, where a sample's scalar sums and deltas then cost
# more than its entries: float32 with 16 lanes (a znver4 host, one thread, fresh processes
# alternated, 3 rounds), the sparse forward 114-130 -> 65-67 cycles per image, the backward
# 113-116 -> 93-96, a whole pass 531-560 -> 512-516. Float64 at hidden 10 (two vectors, sum_rows
# called per sample) in tiles: 1.01-1.03x the pass's time, so rows of 2 or 3 vectors keep the rule.
SAMPLE_TILE = 16


@njit(**NJIT_SIMD, **INLINE)
def _in_tiles(rows, H, Hp):
    """Whether the kernels move a block's values in tiles (see SAMPLE_TILE)."""
    return Hp == lane_count(rows) or H * rows.shape[1] * rows.itemsize > L1_ROWS_BYTES


@njit(**NJIT_SIMD, **INLINE)
def pass_width(Hp, lanes):
    """The units one pass over a sample's entries takes in a full-batch pass, rows of Hp units: all
    of them up to three vectors, else four vectors (Hp is then a multiple of four vectors: asserted
    in .workspace). Plain arithmetic, so that Python code can call its py_func (.epoch)."""
    return min(Hp // lanes, 4) * lanes


@njit(**NJIT_SIMD, **INLINE)
def _sum_rows_1_inline(z, t, lo, hi, idx, val, W1T, Hp):
    """As _sum_rows_2 for one vector of units (hidden up to 8 float32 units, or 16 with AVX-512):
    four entries at a time into four sums. Inlined into the forward pass's tiles for rows of one
    vector (as _add_rows_1 into the backward's), called through _sum_rows_1 elsewhere. At 784-10-10 float32
    with 16 lanes, against a call of _sum_rows_1 per sample (a znver4 host, fresh processes
    alternated): the first layer's forward took 0.73-0.80x the time on one thread (3 rounds), a
    step on two threads 0.77-0.95x (4 rounds). Inlining the two-vector variant too (float64 at
    hidden 10) showed nothing through this host's noise."""
    s0 = s1 = s2 = s3 = vzero(W1T)
    k = lo
    while k + 4 <= hi:
        x = vload4(W1T, val, k)
        s0 = vfma(vload(W1T, at(idx, k) * Hp + t), vsplat(x, 0), s0)
        s1 = vfma(vload(W1T, at(idx, k + 1) * Hp + t), vsplat(x, 1), s1)
        s2 = vfma(vload(W1T, at(idx, k + 2) * Hp + t), vsplat(x, 2), s2)
        s3 = vfma(vload(W1T, at(idx, k + 3) * Hp + t), vsplat(x, 3), s3)
        k += 4
    while k < hi:
        s0 = vfma(vload(W1T, at(idx, k) * Hp + t), vbroadcast(W1T, at(val, k)), s0)
        k += 1
    vstore(z, t, vadd(vadd(s0, s1), vadd(s2, s3)))


@njit(**NJIT_SIMD)
def _sum_rows_1(z, t, lo, hi, idx, val, W1T, Hp):
    """_sum_rows_1_inline, compiled on its own (sum_rows' one-vector passes)."""
    _sum_rows_1_inline(z, t, lo, hi, idx, val, W1T, Hp)


@njit(**NJIT_SIMD)
def _sum_rows_2(z, t, lo, hi, idx, val, W1T, Hp):
    """z[t : t + 2 lanes] = sum over entries k in [lo, hi) of val[k] * W1T[idx[k] * Hp + t : ...].

    Entries are taken four at a time into four independent pairs of sums: an FMA takes 4 cycles,
    and a single chain of sums would wait on each one.
    """
    lanes = lane_count(W1T)
    s0 = s1 = s2 = s3 = u0 = u1 = u2 = u3 = vzero(W1T)  # s: units t.., u: units t + lanes..
    k = lo
    while k + 4 <= hi:
        p0, p1 = at(idx, k) * Hp + t, at(idx, k + 1) * Hp + t
        p2, p3 = at(idx, k + 2) * Hp + t, at(idx, k + 3) * Hp + t
        x = vload4(W1T, val, k)  # four pixel values, converted at once
        v = vsplat(x, 0)
        s0, u0 = vfma(vload(W1T, p0), v, s0), vfma(vload(W1T, p0 + lanes), v, u0)
        v = vsplat(x, 1)
        s1, u1 = vfma(vload(W1T, p1), v, s1), vfma(vload(W1T, p1 + lanes), v, u1)
        v = vsplat(x, 2)
        s2, u2 = vfma(vload(W1T, p2), v, s2), vfma(vload(W1T, p2 + lanes), v, u2)
        v = vsplat(x, 3)
        s3, u3 = vfma(vload(W1T, p3), v, s3), vfma(vload(W1T, p3 + lanes), v, u3)
        k += 4
    while k < hi:
        p0 = at(idx, k) * Hp + t
        v = vbroadcast(W1T, at(val, k))
        s0, u0 = vfma(vload(W1T, p0), v, s0), vfma(vload(W1T, p0 + lanes), v, u0)
        k += 1
    vstore(z, t, vadd(vadd(s0, s1), vadd(s2, s3)))
    vstore(z, t + lanes, vadd(vadd(u0, u1), vadd(u2, u3)))


@njit(**NJIT_SIMD)
def _sum_rows_wide(z, t, V, lo, hi, idx, val, W1T, Hp):
    """As _sum_rows_2 for V = 3 or 4 vectors of units: two entries at a time (2V sums in registers
    already hide the FMA latency)."""
    lanes = lane_count(W1T)
    a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = vzero(W1T)  # a: entry k, c: entry k + 1
    k = lo
    while k < hi:
        p = at(idx, k) * Hp + t
        v = vbroadcast(W1T, at(val, k))
        second = k + 1 < hi
        q = at(idx, k + 1) * Hp + t if second else p
        w = vbroadcast(W1T, at(val, k + 1) if second else 0)  # a lone last entry adds 0 * row
        a0, c0 = vfma(vload(W1T, p), v, a0), vfma(vload(W1T, q), w, c0)
        a1, c1 = vfma(vload(W1T, p + lanes), v, a1), vfma(vload(W1T, q + lanes), w, c1)
        a2, c2 = vfma(vload(W1T, p + 2 * lanes), v, a2), vfma(vload(W1T, q + 2 * lanes), w, c2)
        if V > 3:
            a3, c3 = vfma(vload(W1T, p + 3 * lanes), v, a3), vfma(vload(W1T, q + 3 * lanes), w, c3)
        k += 2
    vstore(z, t, vadd(a0, c0))
    vstore(z, t + lanes, vadd(a1, c1))
    vstore(z, t + 2 * lanes, vadd(a2, c2))
    if V > 3:
        vstore(z, t + 3 * lanes, vadd(a3, c3))


@njit(**NJIT_SIMD, **INLINE)
def sum_rows(z, lo, hi, idx, val, W1T, Hp, width):
    """z[:Hp] = sum over one sample's entries [lo, hi) of val[k] * W1T's row idx[k], rows of Hp
    units (all of layer 1's, padded; or a thread's slab of them, .epoch): one pass over the entries
    per ``width`` units (1 to 4 vectors: pass_width, or .epoch's shares), the sums held in
    registers."""
    V = width // lane_count(W1T)
    for t in range(0, Hp, width):
        if V == 1:
            _sum_rows_1(z, t, lo, hi, idx, val, W1T, Hp)
        elif V == 2:
            _sum_rows_2(z, t, lo, hi, idx, val, W1T, Hp)
        else:
            _sum_rows_wide(z, t, V, lo, hi, idx, val, W1T, Hp)


@njit(**NJIT_SIMD, **INLINE)
def forward(acts, sums, n0, nb, ptr, idx, val, W1T, Hp, H):
    """acts[h, b] += sum over row n0 + b's sparse non-zero pixels d of x[d] * W1[h, d]
    (unscaled): per sample, one pass over its entries per pass_width units, the sums held in
    registers, then stored in ``sums`` (SAMPLE_TILE, Hp), scratch, and moved into acts (see
    SAMPLE_TILE). In tiles, the rows from H up to a whole vector get the padding units' sums, zero."""
    width = pass_width(Hp, lane_count(W1T))
    if not _in_tiles(acts, H, Hp):
        z = sums[0]
        for b in range(nb):
            lo, hi = at(ptr, n0 + b), at(ptr, n0 + b + 1)
            if lo != hi:
                sum_rows(z, lo, hi, idx, val, W1T, Hp, width)
                for h in range(H):
                    acts[h, b] += z[h]
        return
    T = sums.shape[0]
    for b0 in range(0, nb, T):
        n = min(T, nb - b0)
        for j in range(T):  # an empty row's sums are zeros, and so are those past the last sample
            lo = at(ptr, n0 + b0 + j) if j < n else 0
            hi = at(ptr, n0 + b0 + j + 1) if j < n else 0
            if Hp == lane_count(W1T):
                _sum_rows_1_inline(sums[j], 0, lo, hi, idx, val, W1T, Hp)
            else:
                sum_rows(sums[j], lo, hi, idx, val, W1T, Hp, width)
        _add_transposed_sums(acts, b0, sums, n, H)


@njit(**NJIT_SIMD, **INLINE)
def _add_rows_1(rows, e, t, lo, hi, idx, val, Hp):
    """add_rows for the one vector of units from t, four entries at a time: inlined into add_rows
    (one-vector shares, .epoch), and into the backward pass for rows of one vector. There, at
    784-10-10 float32 with 16 lanes, against a call of add_rows per sample: 0.92x the time of a
    whole pass on one thread (in one process, alternated). Inlining add_rows itself (so the epoch's
    calls too), or a two-vector variant beside this one, made the pass slower instead (1.1x). The
    backward pass's tiles (SAMPLE_TILE) at this width were slower too while they called add_rows
    per sample; with this loop inlined there, they are faster (see SAMPLE_TILE)."""
    d = vload(e, t)
    k = lo
    while k + 4 <= hi:
        x = vload4(rows, val, k)  # four values, converted at once
        p0, p1 = at(idx, k) * Hp + t, at(idx, k + 1) * Hp + t
        p2, p3 = at(idx, k + 2) * Hp + t, at(idx, k + 3) * Hp + t
        vstore(rows, p0, vfma(d, vsplat(x, 0), vload(rows, p0)))
        vstore(rows, p1, vfma(d, vsplat(x, 1), vload(rows, p1)))
        vstore(rows, p2, vfma(d, vsplat(x, 2), vload(rows, p2)))
        vstore(rows, p3, vfma(d, vsplat(x, 3), vload(rows, p3)))
        k += 4
    while k < hi:
        p = at(idx, k) * Hp + t
        vstore(rows, p, vfma(d, vbroadcast(rows, at(val, k)), vload(rows, p)))
        k += 1


@njit(**NJIT_SIMD)
def add_rows(rows, e, lo, hi, idx, val, Hp, width):
    """rows[idx[k] * Hp + h] += e[h] * val[k] for one sample's entries [lo, hi): a pixel-major
    gradient (backward) or the weights themselves (a mini-batch update, .epoch). The sample's e
    (Hp,) stays in registers, ``width`` units at a time (one pass over the entries per ``width``
    units, as in sum_rows)."""
    lanes = lane_count(rows)
    V = width // lanes
    if V == 1:
        for t in range(0, Hp, width):
            _add_rows_1(rows, e, t, lo, hi, idx, val, Hp)
        return
    for t in range(0, Hp, width):
        d0, d1 = vload(e, t), vload(e, t + lanes)
        d2 = vload(e, t + 2 * lanes) if V > 2 else d0
        d3 = vload(e, t + 3 * lanes) if V > 3 else d0
        for k in range(lo, hi):
            p = at(idx, k) * Hp + t
            v = vbroadcast(rows, at(val, k))
            vstore(rows, p, vfma(d0, v, vload(rows, p)))
            vstore(rows, p + lanes, vfma(d1, v, vload(rows, p + lanes)))
            if V > 2:
                vstore(rows, p + 2 * lanes, vfma(d2, v, vload(rows, p + 2 * lanes)))
            if V > 3:
                vstore(rows, p + 3 * lanes, vfma(d3, v, vload(rows, p + 3 * lanes)))


@njit(**NJIT_SIMD, **INLINE)
def backward(w1t_grad, scaled, n0, nb, deltas, ptr, idx, val, Hp, H, scale):
    """w1t_grad[d * Hp + h] += scale * sum_b deltas[h, b] * x_b[d] over each sample's sparse
    non-zero pixels. ``scaled`` (SAMPLE_TILE, Hp) is scratch: samples' deltas, scaled, sample-major
    (see SAMPLE_TILE), zero from H on. The deltas' columns from nb to the next whole vector must be
    zero (first_layer.backward zeroes them)."""
    width = pass_width(Hp, lane_count(scaled))
    if not _in_tiles(deltas, H, Hp):
        e = scaled[0]
        e[H:] = 0
        for b in range(nb):
            lo, hi = at(ptr, n0 + b), at(ptr, n0 + b + 1)
            if lo != hi:
                for h in range(H):
                    e[h] = deltas[h, b] * scale
                add_rows(w1t_grad, e, lo, hi, idx, val, Hp, width)
        return
    T = scaled.shape[0]
    for b0 in range(0, nb, T):
        n = min(T, nb - b0)
        _store_transposed_deltas(scaled, deltas, b0, n, H, scale)
        for j in range(n):
            lo, hi = at(ptr, n0 + b0 + j), at(ptr, n0 + b0 + j + 1)
            if lo != hi:
                if Hp == lane_count(scaled):
                    _add_rows_1(w1t_grad, scaled[j], 0, lo, hi, idx, val, Hp)
                else:
                    add_rows(w1t_grad, scaled[j], lo, hi, idx, val, Hp, width)


# The two moves in tiles are kernels of their own, not inlined: in first_layer's passes, which
# inline the code above, they made the first step compile ~1 s longer (one thread).
@njit(**NJIT_SIMD)
def _add_transposed_sums(acts, b0, sums, n, H):
    """acts[h, b0 + j] += sums[j, h] for j below n and h below H, both rounded up to whole vectors."""
    lanes = lane_count(acts)
    for j0 in range(0, n, lanes):
        for h0 in range(0, H, lanes):
            vadd_transposed(acts, h0, b0 + j0, sums, j0, h0)


@njit(**NJIT_SIMD)
def _store_transposed_deltas(scaled, deltas, b0, n, H, scale):
    """scaled[j, h] = deltas[h, b0 + j] * scale for j below n and h below H, and 0 from H on."""
    lanes = lane_count(scaled)
    for j0 in range(0, n, lanes):
        for h0 in range(0, H, lanes):
            vstore_transposed(scaled, j0, h0, deltas, h0, b0 + j0, scale)
    for j in range(n):
        scaled[j, H:] = 0  # the last vector's values past H are the next layer's deltas
