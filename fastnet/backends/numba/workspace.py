"""The buffers the kernels work in, allocated once per (layer sizes, dtype) and reused by every
call; and the layout invariants the kernels rely on, asserted here where the layout is built.

Shape letters as in the package docstring (C is flags.N_CHUNKS here, B flags.pass_block, a pass's
block: flags.BLOCK is .epoch's; Hp is set by :func:`padded_units`), and R rows of a block's
activations (every layer's units stacked, see .layers), T threads (numba.config.NUMBA_NUM_THREADS).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from fastnet.backends.numba import flags
from fastnet.backends.numba.dense_pixels import UNIT_TILE, lane_sums_size, tiled_units
from fastnet.backends.numba.epoch import EpochBuffers
from fastnet.backends.numba.sparse_pixels import SAMPLE_TILE
from fastnet.backends.numba.layers import ACT_AT, N_OUT, layer_table, n_activations
from fastnet.backends.numba.vector import dtype_lane_count
from fastnet.network import n_params


class Buffers(NamedTuple):
    """What chunks.chunk_pass reads and writes besides the features, the labels y and the
    parameters."""

    layers: np.ndarray  # (layers, COLUMNS) int64: the layer table (.layers)
    Hp: int  # layer 1's units padded to whole vectors
    # (D * Hp,) layer 1's weights pixel-major: W1T[d * Hp + h] = W1[h, d], filled by
    # first_layer.gather_weights before every pass; an epoch keeps its threads' slabs here (.epoch)
    W1T: np.ndarray
    # (tiled_units(H) * D,) and by tile of units: W1U[(t * D + d) * UNIT_TILE + u] = W1[t * UNIT_TILE + u, d]
    W1U: np.ndarray
    flat_grads: np.ndarray  # (C, P) chunk c's gradient sums of b1 and layers 2..L, laid out like net.flat
    w1t_grads: np.ndarray  # (C, D * Hp) chunk c's gradient sums of W1, pixel-major like W1T
    lane_sums: np.ndarray  # (T, >= lane_sums_size) per thread: the dense pixels' W1 gradient, lane by lane
    stats: np.ndarray  # (C, 2) float64: chunk c's loss sum and number of correct predictions
    acts: np.ndarray  # (C, R + UNIT_TILE, B) chunk c's activations of its current block, feature-major
    deltas: np.ndarray  # (C, R + UNIT_TILE, B) their deltas, d(loss)/d(pre-activation)
    unit_sums: np.ndarray  # (C, SAMPLE_TILE, Hp) samples' layer-1 sums (forward) or scaled deltas (backward)
    softmax_scratch: np.ndarray  # (C, 3, B) the softmax's running max, total and exp values
    best_class: np.ndarray  # (C, B) int64: the softmax's argmax
    labels: np.ndarray  # (C, B) int64: the labels of chunk c's current block


def padded_units(H, dtype):
    """H rounded up for the sparse-pixel kernels, which take 1 to 4 vectors of units per pass over a
    sample's entries (sparse_pixels.pass_width): up to 3 vectors, else a multiple of 4."""
    lanes = dtype_lane_count(dtype)
    vectors = -(-H // lanes)
    return lanes * (vectors if vectors <= 3 else -(-vectors // 4) * 4)


def _zeros_aligned(shape, dtype, alignment=64):
    """np.zeros(shape, dtype) starting on a cache-line boundary (np.zeros promises 16 bytes). Every
    buffer of Buffers and EpochBuffers but the layer table is made so: for those whose rows are
    whole vectors (layer 1's Hp units; a block's B samples) no vector load or store then
    straddles two cache lines, whatever place a process's allocations happen to get. What it
    bought: README, *Toward the hardware floor*."""
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(size + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + size].view(dtype).reshape(shape)


def block_rows(sizes, dtype):
    """R + UNIT_TILE: the rows of a block's activations (and deltas): every layer's units,
    UNIT_TILE rows of slack, and at least layer 1's units up to a whole vector."""
    H, lanes = sizes[1], dtype_lane_count(dtype)
    return max(n_activations(sizes) + UNIT_TILE, -(-H // lanes) * lanes)


class Workspace:
    """The buffers for one (sizes, dtype). ``mean_grad`` (P,) receives the reduced gradient."""

    def __init__(self, sizes, dtype):
        C, B, D, H = flags.N_CHUNKS, flags.pass_block(dtype), sizes[0], sizes[1]
        self.lanes = lanes = dtype_lane_count(dtype)
        Hp = padded_units(H, dtype)
        rows = block_rows(sizes, dtype)
        # dense_pixels.forward and upper_layers._products write 2 vectors of samples at a time: a
        # block is whole pairs of vectors
        assert B % (2 * lanes) == 0 and flags.BLOCK % (2 * lanes) == 0, "blocks must be whole pairs of vectors"
        # sparse_pixels.forward/backward take pass_width (1 to 4 vectors of) units at a time
        assert Hp >= H and Hp % lanes == 0 and (Hp // lanes <= 3 or Hp // lanes % 4 == 0), Hp
        self.buffers = Buffers(
            layers=layer_table(sizes),
            Hp=Hp,
            # gather_weights sets its padding units to 0 (an epoch's slabs fill them): the sparse-pixel
            # sums of padding units (computed, then discarded) stay finite
            W1T=_zeros_aligned((D * Hp,), dtype),
            W1U=_zeros_aligned((tiled_units(H) * D,), dtype),  # zeroed: its padding units stay 0 (never written)
            flat_grads=_zeros_aligned((C, n_params(sizes)), dtype),
            w1t_grads=_zeros_aligned((C, D * Hp), dtype),
            lane_sums=_zeros_aligned((numba.config.NUMBA_NUM_THREADS, 0), dtype),
            stats=_zeros_aligned((C, 2), np.dtype(np.float64)),
            acts=_zeros_aligned((C, rows, B), dtype),
            deltas=_zeros_aligned((C, rows, B), dtype),
            unit_sums=_zeros_aligned((C, SAMPLE_TILE, Hp), dtype),
            softmax_scratch=_zeros_aligned((C, 3, B), dtype),
            best_class=_zeros_aligned((C, B), np.dtype(np.int64)),
            labels=_zeros_aligned((C, B), np.dtype(np.int64)),
        )
        # dense_pixels.forward/backward compute whole tiles of units, up to tiled_units(H): for every
        # block they write acts and read deltas, up to UNIT_TILE - 1 units past H (W1U holds them, as
        # zeros); upper_layers._products writes up to UNIT_TILE - 1 rows past each layer's units, in
        # acts and deltas (hence the slack rows in both)
        assert self.buffers.acts.shape[1] >= tiled_units(H)
        # sparse_pixels.forward/backward move SAMPLE_TILE samples' sums and deltas in square tiles of
        # vectors: whole vectors of samples, and layer 1's units up to a whole vector, in acts and deltas
        assert SAMPLE_TILE % lanes == 0 and self.buffers.acts.shape[1] >= -(-H // lanes) * lanes
        table = self.buffers.layers
        assert all(table[l, ACT_AT] + tiled_units(table[l, N_OUT]) <= rows for l in range(len(table)))
        self.mean_grad = np.zeros(n_params(sizes), dtype)
        self.no_probs = np.zeros((0, sizes[-1]), dtype)  # "no probabilities wanted"
        self.epoch_buffers = None

    def for_epoch(self, blocks, parts):
        """EpochBuffers for batches of up to ``blocks`` blocks of flags.BLOCK samples, run by ``parts``
        threads (kept for the largest of each yet). Like the pass's, each block's rows run past
        the units by UNIT_TILE (block_rows)."""
        e = self.epoch_buffers
        if e is None or e.acts.shape[0] < blocks or e.unit_sums.shape[0] < parts:
            b = self.buffers
            dtype, rows, B, Hp = b.acts.dtype, b.acts.shape[1], flags.BLOCK, b.Hp
            blocks = max(blocks, 0 if e is None else e.acts.shape[0])
            parts = max(parts, 0 if e is None else e.unit_sums.shape[0])
            self.epoch_buffers = e = EpochBuffers(
                acts=_zeros_aligned((blocks, rows, B), dtype), deltas=_zeros_aligned((blocks, rows, B), dtype),
                labels=_zeros_aligned((blocks, B), np.dtype(np.int64)), softmax_scratch=_zeros_aligned((3, B), dtype),
                best_class=_zeros_aligned((B,), np.dtype(np.int64)), unit_sums=_zeros_aligned((parts, Hp), dtype),
                unit_deltas=_zeros_aligned((parts, Hp), dtype), flat_grad=_zeros_aligned(self.mean_grad.shape, dtype))
        return e

    def for_pass(self, n_slots):
        """The buffers, with lane sums for a dataset of n_slots pixels dense in some block (grown when a
        dataset has more of them than any before)."""
        b = self.buffers
        size = lane_sums_size(n_slots, b.layers[0, N_OUT], self.lanes)
        if b.lane_sums.shape[1] < size:
            size = -(-size // 16) * 16  # whole cache lines per thread: no false sharing
            lane_sums = _zeros_aligned((b.lane_sums.shape[0], size), b.lane_sums.dtype)
            self.buffers = b = b._replace(lane_sums=lane_sums)
        return b
