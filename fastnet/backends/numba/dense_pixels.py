"""Layer 1 on a block's dense pixels (those non-zero in many of its samples, see .features): a small
matrix product per block, vectorised over the block's samples by hand (.vector).

Layout read: ``dense[base + j * B + b]`` is the block's j-th dense pixel, ``pixels[j]``, of its
sample b (``base`` = where the block's values start), B samples per block. No padding unit is
computed: units are taken UNIT_TILE at a time, up to tiled_units(H).

Forward: one vector of samples' values of a pixel times a broadcast weight, into register tiles of
UNIT_TILE units x 2 vectors of samples, a tile of units (two with AVX-512: TILES_AT_ONCE) at a
time for all the block's samples. The weights are read by tile of units, ``W1U[(t * D + d) *
UNIT_TILE + u] = W1[t * UNIT_TILE + u, d]`` (first_layer.gather_weights): a tile's weights of all
D pixels take D * UNIT_TILE values (16 KiB at float32), which stay in L1 while the block's samples
are taken. Against the weights read from the pixel-major W1T (D * Hp values, 400 KiB at hidden
128) with the samples taken outermost, as before: 0.82-0.83x the time at hidden 128 float32,
0.93-0.94x at hidden 10, 0.89x and 0.95x in float64 (this forward over MNIST's blocks, one thread,
in one process, alternated; the same sums).

Backward: tiles of 2 pixels x UNIT_TILE units (two tiles at once with AVX-512), each summed over
the block's samples lane by lane into ``lane_sums`` (per thread) at the pixel's slot (one per
pixel dense in any block), whose lanes are added up once per chunk by :func:`fold_lane_sums`; the
units are taken a group at a time (flags.L1_ROWS_BYTES).
"""

from __future__ import annotations

from numba import njit

from fastnet.backends.numba.flags import INLINE, L1_ROWS_BYTES, NJIT, NJIT_SIMD
from fastnet.backends.numba.vector import (VECTOR_REGISTERS, at, lane_count, vadd, vbroadcast, vfma, vload, vload_as,
                                          vstore, vsum_lanes, vzero)

UNIT_TILE = 5  # units per register tile: 2 x 5 vector accumulators (+ 2 inputs) fit AVX2's 16 vector registers
# Tiles computed per loaded vector of pixel values: two where AVX-512's 32 registers hold two tiles'
# accumulators, which halves the pixel values' loads and conversions (these take the FMAs' ports).
# On an Intel AVX-512 host, one thread over MNIST at 784-10-10 float32, against one tile at a time:
# forward 57-62 -> 48-49 cycles per image, backward 71-73 -> 59-63, a whole pass 0.89-0.92x; float64
# 0.92-0.95x; steps on two threads float64 0.93-0.95x, float32 0.97-1.00x, hidden 128 unchanged
# (alternated fresh processes).
TILES_AT_ONCE = 2 if VECTOR_REGISTERS >= 32 else 1
# The backward pass reads all of a block's dense pixels once per group of units whose deltas take at
# most flags.L1_ROWS_BYTES: 30 units at float32 (15 in blocks of 256, flags.pass_block), 15 at
# float64, so at hidden 10 all units at once, as before. Measured on a whole pass over MNIST at
# 784-128-10 float32, against all 128 units' deltas (64 KiB) at once: 0.95-0.96x the time (in one
# process, alternated).


@njit(**NJIT, **INLINE)
def tiled_units(H):
    """H rounded up to whole UNIT_TILEs: the units these kernels compute (those from H on are
    discarded, see .workspace for the slack this needs)."""
    return -(-H // UNIT_TILE) * UNIT_TILE


@njit(**NJIT, **INLINE)
def units_per_group(B, itemsize):
    """How many units' deltas (whole UNIT_TILEs, at least one) :func:`backward` takes at a time: as
    many as fit flags.L1_ROWS_BYTES for B samples."""
    return max(L1_ROWS_BYTES // (B * itemsize) // UNIT_TILE, 1) * UNIT_TILE


@njit(**NJIT, **INLINE)
def lane_sums_size(n_slots, H, lanes):
    """How many entries a chunk's lane sums take (see :func:`backward`)."""
    return n_slots * tiled_units(H) * lanes


@njit(**NJIT_SIMD, **INLINE)
def _weighted(x, u, W1U, w, a0, c0, a1, c1, a2, c2, a3, c3, a4, c4):
    """A tile's accumulators (as store_tile takes them) plus one pixel's values of two vectors of
    samples, x and u, times its UNIT_TILE weights W1U[w : w + UNIT_TILE]."""
    v = vbroadcast(W1U, at(W1U, w))
    a0, c0 = vfma(x, v, a0), vfma(u, v, c0)
    v = vbroadcast(W1U, at(W1U, w + 1))
    a1, c1 = vfma(x, v, a1), vfma(u, v, c1)
    v = vbroadcast(W1U, at(W1U, w + 2))
    a2, c2 = vfma(x, v, a2), vfma(u, v, c2)
    v = vbroadcast(W1U, at(W1U, w + 3))
    a3, c3 = vfma(x, v, a3), vfma(u, v, c3)
    v = vbroadcast(W1U, at(W1U, w + 4))
    a4, c4 = vfma(x, v, a4), vfma(u, v, c4)
    return a0, c0, a1, c1, a2, c2, a3, c3, a4, c4


@njit(**NJIT_SIMD)
def forward(acts, nb, dense, base, pixels, W1U, D, H):
    """acts[h, b] = sum over the block's dense pixels j of x_b[pixels[j]] * W1[h, pixels[j]]
    (unscaled), for the units below tiled_units(H) and the samples below nb rounded up to 2 vectors;
    W1U holds the weights of D pixels by tile of units (see above). With TILES_AT_ONCE = 2, a
    second tile's accumulators (e, f) share each loaded vector of pixel values."""
    lanes = lane_count(W1U)
    B = acts.shape[1]
    for h0 in range(0, H, TILES_AT_ONCE * UNIT_TILE):
        second = TILES_AT_ONCE == 2 and h0 + UNIT_TILE < H
        tile = h0 * D  # where the tile's weights start: (h0 // UNIT_TILE) * D * UNIT_TILE
        for g in range(0, nb, 2 * lanes):
            a0 = a1 = a2 = a3 = a4 = c0 = c1 = c2 = c3 = c4 = vzero(W1U)  # a: samples g.., c: g + lanes..
            e0 = e1 = e2 = e3 = e4 = f0 = f1 = f2 = f3 = f4 = a0  # the same for the second tile
            for j in range(pixels.shape[0]):
                x = vload_as(W1U, dense, base + j * B + g)
                u = vload_as(W1U, dense, base + j * B + g + lanes)
                w = tile + at(pixels, j) * UNIT_TILE
                a0, c0, a1, c1, a2, c2, a3, c3, a4, c4 = _weighted(x, u, W1U, w, a0, c0, a1, c1, a2, c2, a3, c3,
                                                                   a4, c4)
                if second:
                    e0, f0, e1, f1, e2, f2, e3, f3, e4, f4 = _weighted(x, u, W1U, w + D * UNIT_TILE, e0, f0, e1, f1,
                                                                       e2, f2, e3, f3, e4, f4)
            store_tile(acts, h0, g, a0, c0, a1, c1, a2, c2, a3, c3, a4, c4)
            if second:
                store_tile(acts, h0 + UNIT_TILE, g, e0, f0, e1, f1, e2, f2, e3, f3, e4, f4)


@njit(**NJIT_SIMD, **INLINE)
def store_tile(rows, r, g, a0, c0, a1, c1, a2, c2, a3, c3, a4, c4):
    """A register tile into rows r .. r + UNIT_TILE - 1 of ``rows``: at, c_t into columns g.. and
    g + lanes.. of row r + t."""
    lanes = lane_count(rows)
    vstore(rows[r], g, a0)
    vstore(rows[r], g + lanes, c0)
    vstore(rows[r + 1], g, a1)
    vstore(rows[r + 1], g + lanes, c1)
    vstore(rows[r + 2], g, a2)
    vstore(rows[r + 2], g + lanes, c2)
    vstore(rows[r + 3], g, a3)
    vstore(rows[r + 3], g + lanes, c3)
    vstore(rows[r + 4], g, a4)
    vstore(rows[r + 4], g + lanes, c4)


@njit(**NJIT_SIMD, **INLINE)
def _add_tile(lane_sums, i, v0, v1, v2, v3, v4):
    """lane_sums[i + t * lanes : ... + lanes] += vt for the UNIT_TILE vectors of a tile."""
    lanes = lane_count(lane_sums)
    vstore(lane_sums, i, vadd(vload(lane_sums, i), v0))
    vstore(lane_sums, i + lanes, vadd(vload(lane_sums, i + lanes), v1))
    vstore(lane_sums, i + 2 * lanes, vadd(vload(lane_sums, i + 2 * lanes), v2))
    vstore(lane_sums, i + 3 * lanes, vadd(vload(lane_sums, i + 3 * lanes), v3))
    vstore(lane_sums, i + 4 * lanes, vadd(vload(lane_sums, i + 4 * lanes), v4))


@njit(**NJIT_SIMD, **INLINE)
def _by_deltas(x, u, g, d0, d1, d2, d3, d4, a0, c0, a1, c1, a2, c2, a3, c3, a4, c4):
    """A tile's accumulators, a for pixel values x and c for u, plus those values times the
    vector from g of each of the tile's delta rows d0..d4."""
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
    return a0, c0, a1, c1, a2, c2, a3, c3, a4, c4


@njit(**NJIT_SIMD)
def backward(lane_sums, nb, dense, base, slots, deltas, H):
    """lane_sums[(slots[j] * Ht + h) * lanes + l] += lane l of the block's sum of (its j-th dense
    pixel in sample b) * deltas[h, b] (unscaled; Ht = tiled_units(H)). The deltas' columns from nb
    to the next whole vector must be zero (first_layer.backward zeroes them). With TILES_AT_ONCE =
    2, a second tile's accumulators (e, f) share each loaded vector of pixel values."""
    lanes = lane_count(lane_sums)
    B = deltas.shape[1]
    Ht = tiled_units(H)
    group = units_per_group(B, lane_sums.itemsize)
    P = slots.shape[0]
    for first in range(0, H, group):  # a group's deltas stay in L1 while every pixel is read
        last = min(first + group, H)
        for j in range(0, P, 2):
            two = j + 1 < P
            q = j + 1 if two else j  # a lone last pixel is summed twice and kept once
            for h0 in range(first, last, TILES_AT_ONCE * UNIT_TILE):
                second = TILES_AT_ONCE == 2 and h0 + UNIT_TILE < last
                a0 = a1 = a2 = a3 = a4 = c0 = c1 = c2 = c3 = c4 = vzero(lane_sums)  # a: pixel j, c: pixel q
                e0 = e1 = e2 = e3 = e4 = f0 = f1 = f2 = f3 = f4 = a0  # the same for the second tile
                d0, d1, d2, d3, d4 = deltas[h0], deltas[h0 + 1], deltas[h0 + 2], deltas[h0 + 3], deltas[h0 + 4]
                h5 = h0 + UNIT_TILE if second else h0
                d5, d6, d7, d8, d9 = deltas[h5], deltas[h5 + 1], deltas[h5 + 2], deltas[h5 + 3], deltas[h5 + 4]
                for g in range(0, nb, lanes):
                    x = vload_as(lane_sums, dense, base + j * B + g)
                    u = vload_as(lane_sums, dense, base + q * B + g)
                    a0, c0, a1, c1, a2, c2, a3, c3, a4, c4 = _by_deltas(x, u, g, d0, d1, d2, d3, d4, a0, c0, a1, c1,
                                                                        a2, c2, a3, c3, a4, c4)
                    if second:
                        e0, f0, e1, f1, e2, f2, e3, f3, e4, f4 = _by_deltas(x, u, g, d5, d6, d7, d8, d9, e0, f0, e1,
                                                                            f1, e2, f2, e3, f3, e4, f4)
                _add_tile(lane_sums, (at(slots, j) * Ht + h0) * lanes, a0, a1, a2, a3, a4)
                if two:
                    _add_tile(lane_sums, (at(slots, q) * Ht + h0) * lanes, c0, c1, c2, c3, c4)
                if second:
                    _add_tile(lane_sums, (at(slots, j) * Ht + h5) * lanes, e0, e1, e2, e3, e4)
                    if two:
                        _add_tile(lane_sums, (at(slots, q) * Ht + h5) * lanes, f0, f1, f2, f3, f4)


@njit(**NJIT_SIMD)
def fold_lane_sums(w1t_grad, Hp, lane_sums, slot_pixels, H, scale):
    """w1t_grad[slot_pixels[j] * Hp + h] += scale * (the sum of the lanes for (j, h)): the dense
    pixels' part of a chunk's pixel-major W1 gradient. Overwrites lane_sums (the next chunk's pass
    zeroes them).

    The lanes of ``lanes`` pairs (j, h) at a time are added up as a tree (vsum_lanes), the last few
    pairs one by one, and pair p's sum is kept in lane_sums[p], whose lanes have been read by then;
    then the sums are added into w1t_grad. Against one pair at a time, lane by lane: 17.7 -> 7.0 us
    per chunk at 784-10-10 float32 (MNIST's 432 slots), 230 -> 115 us at 784-128-10 (one thread, a
    znver4 host, the fold repeated on one chunk's buffers). Reading each sum back from a small
    vector store right after it was made was no faster than the lanes added one by one."""
    lanes = lane_count(lane_sums)
    Ht = tiled_units(H)
    pairs = slot_pixels.shape[0] * Ht
    whole = pairs - pairs % lanes
    for i in range(0, whole, lanes):
        vstore(lane_sums, i, vsum_lanes(lane_sums, i * lanes))
    for i in range(whole, pairs):
        s = lane_sums[i * lanes]
        for lane in range(1, lanes):
            s += lane_sums[i * lanes + lane]
        lane_sums[i] = s
    for j in range(slot_pixels.shape[0]):
        row = at(slot_pixels, j) * Hp
        for h in range(H):
            w1t_grad[row + h] += lane_sums[j * Ht + h] * scale
