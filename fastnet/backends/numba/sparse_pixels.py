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

from fastnet.backends.numba.flags import INLINE, NJIT_SIMD
from fastnet.backends.numba.vector import (at, lane_count, vadd, vadd_transposed, vbroadcast, vfma, vload, vload4,
                                          vsplat, vstore, vstore_transposed, vzero)

# The kernels work per sample, on its units' sums (forward) or deltas (backward) held contiguous,
# while a block's activations and deltas are feature-major (.upper_layers): SAMPLE_TILE samples'
# are stored sample-major and moved in square tiles of vectors (vector.vadd_transposed,
# vstore_transposed). Rows of one or two vectors have their loops over a sample's entries inlined
# there (_sum_rows_narrow, _add_rows_narrow), the wider ones call _sum_rows_wide and add_rows.
#
# Until these measurements, one sample's H values were moved at a time where a block's H rows took
# at most flags.L1_ROWS_BYTES. Tiles against that, on MNIST, both passes over all blocks, one
# thread, cycles per image:
# - while tiles called sum_rows and add_rows per sample: slower at hidden 10 and 20, faster from
#   48 on (0.74x at 128 float32, where one sample's H values at a time touch H cache lines of the
#   block's rows, 64 KiB; README, *Toward the hardware floor*);
# - with the narrow loops inlined (a znver4 host, 3 fresh processes a side, alternated): float32 at
#   hidden 10 (one vector of 16 lanes), the sparse forward 117-125 -> 67-70, the backward 116-120
#   -> 94-105, a whole pass 526-555 -> 507-523; float64 at hidden 10 (two vectors of 8), forward
#   165-171 -> 104-107, backward 199-202 -> 158-162, a pass 1077-1087 -> 947-979;
# - with 256-bit vectors (the same host, NUMBA_CPU_FEATURES without AVX-512), where the rule still
#   chose one sample at a time for three or four vectors: a pass at float32 hidden 20 (three
#   vectors) 0.97-1.01x, hidden 32 (four) 0.99x, float64 hidden 10 (three) 1.00-1.04x.
# So every width moves in tiles: the other way's code, compiled into every pass, made the first
# step with an empty cache 7.2-7.3 s against 6.4-6.9 s (float32, this host, fresh processes).
SAMPLE_TILE = 16


@njit(**NJIT_SIMD, **INLINE)
def pass_width(Hp, lanes):
    """The units one pass over a sample's entries takes in a full-batch pass, rows of Hp units: all
    of them up to three vectors, else four vectors (Hp is then a multiple of four vectors: asserted
    in .workspace). Plain arithmetic, so that Python code can call its py_func (.epoch)."""
    return min(Hp // lanes, 4) * lanes


@njit(**NJIT_SIMD, **INLINE)
def _sum_rows_narrow(z, t, V, lo, hi, idx, val, W1T, Hp):
    """z[t : t + V lanes] = sum over entries k in [lo, hi) of val[k] * W1T[idx[k] * Hp + t : ...],
    for V = 1 or 2 vectors of units (a constant: its branches fold away).

    Entries are taken four at a time into four independent sums per vector: an FMA takes 4 cycles,
    and a single chain of sums would wait on each one. Inlined into the forward pass's tiles for
    rows of one or two vectors (as _add_rows_narrow into the backward's), called through
    _sum_rows_1 and _sum_rows_2 elsewhere. Measured: see SAMPLE_TILE.
    """
    lanes = lane_count(W1T)
    s0 = s1 = s2 = s3 = u0 = u1 = u2 = u3 = vzero(W1T)  # s: units t.., u: units t + lanes..
    k = lo
    while k + 4 <= hi:
        p0, p1 = at(idx, k) * Hp + t, at(idx, k + 1) * Hp + t
        p2, p3 = at(idx, k + 2) * Hp + t, at(idx, k + 3) * Hp + t
        x = vload4(W1T, val, k)  # four pixel values, converted at once
        v = vsplat(x, 0)
        s0 = vfma(vload(W1T, p0), v, s0)
        if V > 1:
            u0 = vfma(vload(W1T, p0 + lanes), v, u0)
        v = vsplat(x, 1)
        s1 = vfma(vload(W1T, p1), v, s1)
        if V > 1:
            u1 = vfma(vload(W1T, p1 + lanes), v, u1)
        v = vsplat(x, 2)
        s2 = vfma(vload(W1T, p2), v, s2)
        if V > 1:
            u2 = vfma(vload(W1T, p2 + lanes), v, u2)
        v = vsplat(x, 3)
        s3 = vfma(vload(W1T, p3), v, s3)
        if V > 1:
            u3 = vfma(vload(W1T, p3 + lanes), v, u3)
        k += 4
    while k < hi:
        p0 = at(idx, k) * Hp + t
        v = vbroadcast(W1T, at(val, k))
        s0 = vfma(vload(W1T, p0), v, s0)
        if V > 1:
            u0 = vfma(vload(W1T, p0 + lanes), v, u0)
        k += 1
    vstore(z, t, vadd(vadd(s0, s1), vadd(s2, s3)))
    if V > 1:
        vstore(z, t + lanes, vadd(vadd(u0, u1), vadd(u2, u3)))


@njit(**NJIT_SIMD)
def _sum_rows_1(z, t, lo, hi, idx, val, W1T, Hp):
    """_sum_rows_narrow for one vector, compiled on its own (sum_rows' one-vector passes)."""
    _sum_rows_narrow(z, t, 1, lo, hi, idx, val, W1T, Hp)


@njit(**NJIT_SIMD)
def _sum_rows_2(z, t, lo, hi, idx, val, W1T, Hp):
    """_sum_rows_narrow for two vectors, compiled on its own (sum_rows' two-vector passes)."""
    _sum_rows_narrow(z, t, 2, lo, hi, idx, val, W1T, Hp)


@njit(**NJIT_SIMD)
def _sum_rows_wide(z, t, V, lo, hi, idx, val, W1T, Hp):
    """As _sum_rows_narrow for V = 3 or 4 vectors of units: two entries at a time (2V sums in
    registers already hide the FMA latency)."""
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
    units (a thread's slab of layer 1's, .epoch): one pass over the entries per ``width`` units (1
    to 4 vectors, .epoch's shares), the sums held in registers. A full-batch pass (:func:`forward`)
    calls the variants itself: one call of sum_rows there compiled all three into every pass, and
    the first step with an empty cache took 6.8-7.8 s against 6.5-7.2 s (float32, a znver4 host,
    fresh processes alternated, 6 rounds)."""
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
    registers, then stored in ``sums`` (SAMPLE_TILE, Hp), scratch, and moved into acts a tile at a
    time (see SAMPLE_TILE): the rows from H up to a whole vector get the padding units' sums, zero."""
    lanes = lane_count(W1T)
    width = pass_width(Hp, lanes)
    T = sums.shape[0]
    for b0 in range(0, nb, T):
        n = min(T, nb - b0)
        for j in range(T):  # an empty row's sums are zeros, and so are those past the last sample
            lo = at(ptr, n0 + b0 + j) if j < n else 0
            hi = at(ptr, n0 + b0 + j + 1) if j < n else 0
            if Hp == lanes:
                _sum_rows_narrow(sums[j], 0, 1, lo, hi, idx, val, W1T, Hp)
            elif Hp == 2 * lanes:
                _sum_rows_narrow(sums[j], 0, 2, lo, hi, idx, val, W1T, Hp)
            else:  # 3 or 4 vectors a pass (pass_width): sum_rows' wide passes, without its others
                for t in range(0, Hp, width):
                    _sum_rows_wide(sums[j], t, width // lanes, lo, hi, idx, val, W1T, Hp)
        _add_transposed_sums(acts, b0, sums, n, H)


@njit(**NJIT_SIMD, **INLINE)
def _add_rows_narrow(rows, e, t, V, lo, hi, idx, val, Hp):
    """add_rows for V = 1 or 2 vectors of units from t (a constant: its branches fold away), four
    entries at a time: inlined into add_rows (one-vector shares, .epoch), and into the backward
    pass's tiles for rows of one or two vectors (what that bought: SAMPLE_TILE). Inlining add_rows
    itself (so the epoch's calls too) made a pass 1.1x slower (measured one sample at a time,
    before the tiles)."""
    d = vload(e, t)
    f = vload(e, t + lane_count(rows)) if V > 1 else d
    k = lo
    while k + 4 <= hi:
        x = vload4(rows, val, k)  # four values, converted at once
        p0, p1 = at(idx, k) * Hp + t, at(idx, k + 1) * Hp + t
        p2, p3 = at(idx, k + 2) * Hp + t, at(idx, k + 3) * Hp + t
        _add_row(rows, p0, vsplat(x, 0), d, f, V)
        _add_row(rows, p1, vsplat(x, 1), d, f, V)
        _add_row(rows, p2, vsplat(x, 2), d, f, V)
        _add_row(rows, p3, vsplat(x, 3), d, f, V)
        k += 4
    while k < hi:
        _add_row(rows, at(idx, k) * Hp + t, vbroadcast(rows, at(val, k)), d, f, V)
        k += 1


@njit(**NJIT_SIMD, **INLINE)
def _add_row(rows, p, v, d, f, V):
    """rows[p : p + lanes] += d * v, and the next vector += f * v if V > 1."""
    vstore(rows, p, vfma(d, v, vload(rows, p)))
    if V > 1:
        p += lane_count(rows)
        vstore(rows, p, vfma(f, v, vload(rows, p)))


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
            _add_rows_narrow(rows, e, t, 1, lo, hi, idx, val, Hp)
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
    (see SAMPLE_TILE), zero from H on."""
    lanes = lane_count(scaled)
    width = pass_width(Hp, lanes)
    T = scaled.shape[0]
    for b0 in range(0, nb, T):
        n = min(T, nb - b0)
        _store_transposed_deltas(scaled, deltas, b0, n, H, scale)
        for j in range(n):
            lo, hi = at(ptr, n0 + b0 + j), at(ptr, n0 + b0 + j + 1)
            if lo != hi:
                if Hp == lanes:
                    _add_rows_narrow(w1t_grad, scaled[j], 0, 1, lo, hi, idx, val, Hp)
                elif Hp == 2 * lanes:
                    _add_rows_narrow(w1t_grad, scaled[j], 0, 2, lo, hi, idx, val, Hp)
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
