"""Layer 1, the only layer that touches the pixels and most of a step's work: its weights
gathered pixel-major, and its forward and backward pass over one block of samples.

The pixels of a block are split (see .features) between :mod:`.dense_pixels` and
:mod:`.sparse_pixels`; this module adds up their parts, applies the 1/255 scale, the bias and the
ReLU, and sums layer 1's bias gradient. uint8 pixels stay uint8 in both parts; the scale is applied
to the sums. Each sample's values are read from memory once per step: forward, then, once its
block's deltas are known, backward from cache.

Activations and deltas are feature-major, ``acts[h, b]`` and ``deltas[h, b]``, like the upper
layers' (.upper_layers); layer 1's units are their first H rows.
"""

from __future__ import annotations

from numba import njit

from fastnet.backends.numba import dense_pixels, sparse_pixels
from fastnet.backends.numba.dense_pixels import UNIT_TILE, tiled_units
from fastnet.backends.numba.flags import INLINE, NJIT
from fastnet.backends.numba.layers import B_AT, N_IN, N_OUT, W_AT
from fastnet.backends.numba.vector import lane_count


@njit(**NJIT)
def gather_weights(W1T, Hp, W1U, flat, layers):
    """Layer 1's weights, copied in the two layouts its kernels read: pixel-major, W1T[d * Hp + h]
    = W1[h, d] (.sparse_pixels), its padding units (h >= H) set to 0 (an epoch leaves its slabs in
    W1T, .epoch), and by tile of units, W1U[(t * D + d) * UNIT_TILE + u] = W1[t * UNIT_TILE + u, d]
    (.dense_pixels; its padding units stay 0 from the allocation)."""
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_AT]
    gather_pixel_major(W1T, Hp, 0, flat, layers)
    for h in range(H):
        at_unit = (h - h % UNIT_TILE) * D + h % UNIT_TILE
        for d in range(D):
            W1U[at_unit + d * UNIT_TILE] = flat[w0 + h * D + d]


@njit(**NJIT)
def gather_pixel_major(rows, row_units, u0, flat, layers):
    """rows[d * row_units + j] = W1[u0 + j, d] for j below row_units, 0 for the padding units from
    H on: all of layer 1's units (W1T: u0 = 0, row_units Hp) or a thread's slab of them (.epoch)."""
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_AT]
    for d in range(D):
        for j in range(row_units):
            h = u0 + j
            rows[d * row_units + j] = flat[w0 + h * D + d] if h < H else 0


@njit(**NJIT, **INLINE)
def _activate(acts, nb, flat, layers, scale):
    """acts[h, b] = relu(scale * acts[h, b] + b1[h]) for the block's samples (loops over samples
    vectorise)."""
    H, b0 = layers[0, N_OUT], layers[0, B_AT]
    for h in range(H):
        a, bias = acts[h], flat[b0 + h]
        for b in range(nb):
            s = a[b] * scale + bias
            a[b] = s if s > 0 else 0 * s  # ReLU; 0 * s keeps the dtype (and a NaN stays NaN)


@njit(**NJIT)
def forward(acts, unit_sums, blk, nb, features, W1T, Hp, W1U, flat, layers):
    """acts[:H, :nb] = layer 1's activations of block ``blk`` (rows blk * B ...), from the weights
    gathered pixel-major (W1T, for the sparse pixels) and by tile of units (W1U, for the dense ones:
    gather_weights);
    unit_sums (SAMPLE_TILE, Hp) is scratch."""
    H = layers[0, N_OUT]
    B = acts.shape[1]
    lo, hi = features.block_ptr[blk], features.block_ptr[blk + 1]
    dense_pixels.forward(acts, nb, features.dense, lo * B, features.pixels[lo:hi], W1U, layers[0, N_IN], H)
    sparse_pixels.forward(acts, unit_sums, blk * B, nb, features.ptr, features.idx, features.val, W1T, Hp, H)
    _activate(acts, nb, flat, layers, features.scale)


@njit(**NJIT)
def backward(flat_grad, w1t_grad, lane_sums, unit_deltas, blk, nb, deltas, features, Hp, layers):
    """Block ``blk``'s layer-1 gradients from its deltas[:H, :nb]: W1's into lane_sums (dense
    pixels, see .dense_pixels) and w1t_grad (sparse pixels), b1's into flat_grad."""
    H = layers[0, N_OUT]
    B = deltas.shape[1]
    lanes = lane_count(lane_sums)
    for h in range(tiled_units(H)):  # past the last sample (a last, partial block): no delta
        for b in range(nb, min(-(-nb // lanes) * lanes, B)):
            deltas[h, b] = 0
    lo, hi = features.block_ptr[blk], features.block_ptr[blk + 1]
    dense_pixels.backward(lane_sums, nb, features.dense, lo * B, features.slots[lo:hi], deltas, H)
    sparse_pixels.backward(w1t_grad, unit_deltas, blk * B, nb, deltas, features.ptr, features.idx, features.val,
                           Hp, H, features.scale)
    add_bias_gradient(flat_grad, deltas, nb, layers)


@njit(**NJIT, **INLINE)
def add_bias_gradient(flat_grad, deltas, nb, layers):
    """b1's entries of flat_grad += the block's deltas[:H, :nb] summed over its samples."""
    H, b0 = layers[0, N_OUT], layers[0, B_AT]
    for h in range(H):
        s = flat_grad[b0 + h]
        for b in range(nb):
            s += deltas[h, b]
        flat_grad[b0 + h] = s
