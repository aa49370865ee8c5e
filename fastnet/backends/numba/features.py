"""The prepared features: a dataset's pixels split once (per dataset and dtype) into dense and
sparse pixels, block by block (``block`` rows: flags.pass_block), in the layouts the layer-1
kernels read.

- **Dense pixels** of a block, non-zero in at least flags.DENSE_PIXEL_FRACTION of its samples,
  stored as they are: block blk's are ``pixels[block_ptr[blk]:block_ptr[blk + 1]]``, and
  ``dense[(block_ptr[blk] + j) * B + b]`` is the j-th of them in the block's row b (zero past
  the last row; read by .dense_pixels). Each pixel dense in some block has a *slot*, where the
  backward pass sums its gradient (``slots``, ``slot_pixels``).
- **Sparse pixels**, a row's other non-zero ones, as compressed sparse rows: row n's are
  ``idx[ptr[n]:ptr[n + 1]]``, in pixel order, with values ``val[...]`` (read by .sparse_pixels).
  A dense pixel computes all of a block's samples, zeros included, at ~1.5 cycles a sample; a
  sparse entry costs ~4.9 (.flags), so the more a block's samples share their non-zero pixels,
  the cheaper its pass.

Two layouts:

- **A whole dataset** (``per_block``; the backend uses it for datasets of at least
  flags.PER_BLOCK_MIN_SAMPLES samples, as it takes longer to prepare): the samples are ordered so
  that similar ones are neighbours (.similar), and each block has its own dense pixels: on MNIST 167
  per block on average (26% of their values zero), with 27 sparse entries per sample left, where one
  set for all has 195 (45% zero) and 42. Within a block, the rows are sorted by their number of
  sparse entries: the sparse kernels loop over a row's entries, and when consecutive rows have as
  many, the CPU predicts where each loop ends.
- **One set of dense pixels for all blocks** (the pixels dense in the whole dataset), the rows
  sorted by their number of sparse entries. Mini-batches are cut from it (:func:`subset_features`)
  by copying values, without a new pass over the pixels: a mini-batch's samples are drawn at
  random, and a similarity order would not carry over to it. Smaller datasets use it too.

Row r holds sample ``order[r]`` (``row_of`` is its inverse): a pass sums the same gradients in
another order, and the kernels read labels and write probabilities through ``order``. What each
layout bought: README, *Toward the hardware floor*.

uint8 pixels stay uint8 (``scale`` = 1/255 is applied to the sums), float pixels keep the
network's dtype (``scale`` = 1): every pixel of X is held exactly once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnet.backends.numba import flags
from fastnet.backends.numba.similar import similarity_order


class Features(NamedTuple):
    """A dataset as the kernels read it."""

    dense: np.ndarray  # (total * B,) the blocks' dense values: block blk's from block_ptr[blk] * B, pixel by pixel
    block_ptr: np.ndarray  # (blocks + 1,) int64: block blk's dense pixels: [block_ptr[blk], block_ptr[blk + 1])
    pixels: np.ndarray  # (total,) int64: the pixel of each block's each dense pixel
    slots: np.ndarray  # (total,) int64: its slot, where the backward pass sums its gradient (.dense_pixels)
    slot_pixels: np.ndarray  # (S,) int64: the pixel of each slot (the pixels dense in some block)
    ptr: np.ndarray  # (N + 1,) int64: row n's sparse entries are [ptr[n], ptr[n + 1])
    idx: np.ndarray  # (nnz,) pixel of each entry: uint16 (int32 if D > 65,536)
    val: np.ndarray  # (nnz,) its value: uint8 stays uint8, or floats of the network's dtype
    scale: np.generic  # 1/255 for uint8 pixels, 1 for floats, in the network's dtype
    order: np.ndarray  # (N,) int64: row r of all the above holds sample order[r]
    row_of: np.ndarray  # (N,) int64: sample n is in row row_of[n] (order's inverse)
    block: int  # B, the rows of a block (flags.pass_block of the network's dtype)

    @property
    def n_samples(self):
        return len(self.ptr) - 1


def compressed_rows(X, nonzero, dtype, counts=None):
    """(ptr, idx, val, scale): the entries of X where ``nonzero``, row by row, pixels in order;
    row n's are [ptr[n], ptr[n + 1]). Values stay uint8 for uint8 pixels (scale 1/255), else
    the network's dtype (scale 1). ``counts``: nonzero's row sums, if already known."""
    N, D = X.shape
    ptr = np.zeros(N + 1, np.int64)
    np.cumsum(nonzero.sum(axis=1) if counts is None else counts, out=ptr[1:])
    columns = np.arange(D, dtype=np.uint16 if D <= 1 << 16 else np.int32)
    idx = np.broadcast_to(columns, X.shape)[nonzero]  # row-major: sample by sample, pixels in order
    scale = dtype.type(1 / 255 if X.dtype == np.uint8 else 1)
    return ptr, idx, X[nonzero].astype(_values_dtype(X, dtype), copy=False), scale


def _values_dtype(X, dtype):
    """The dtype the features keep X's values in: uint8 stays uint8, floats take the network's."""
    return np.dtype(np.uint8) if X.dtype == np.uint8 else dtype


def take_rows(ptr, idx, val, rows):
    """(ptr, idx, val) of the compressed rows ``rows`` (copied, in that order)."""
    starts, counts = ptr[rows], ptr[rows + 1] - ptr[rows]
    new_ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=new_ptr[1:])
    take = np.repeat(starts - new_ptr[:-1], counts) + np.arange(new_ptr[-1])
    return new_ptr, idx[take], val[take]


def prepare_features(X, dtype, per_block=True):
    """Features of validated pixels X (N, D) for a network of this dtype, in one of the two
    layouts (see above): ``per_block``, for a whole dataset, or one set of dense pixels, for a
    dataset that mini-batches are cut from."""
    B = flags.pass_block(dtype)
    N, D = X.shape
    blocks = -(-N // B)
    block_of = np.arange(N) // B
    nonzero = X != 0
    if per_block:
        grouped = similarity_order(X) if N > B else np.arange(N)
        nonzero = nonzero[grouped]
        in_block = np.minimum(B, N - np.arange(0, N, B))
        is_dense = _block_sums(nonzero, B) >= flags.DENSE_PIXEL_FRACTION * in_block[:, None]  # (blocks, D)
    else:
        grouped = np.arange(N)
        is_dense = np.broadcast_to(nonzero.sum(axis=0) >= flags.DENSE_PIXEL_FRACTION * N, (blocks, D))
    nonzero &= ~is_dense[block_of]  # from here on: the sparse entries
    counts = nonzero.sum(axis=1)
    # by their number of sparse entries (ties keep their order), per_block: within each block
    sort = np.lexsort((counts, block_of)) if per_block else np.argsort(counts, kind="stable")
    order = grouped[sort]
    padded = np.zeros((blocks * B, D), _values_dtype(X, dtype))
    _gather_rows(X, order, padded[:N])  # whole rows: faster than sorting the parts (measured)
    nonzero, counts = nonzero[sort], counts[sort]
    ptr, idx, val, scale = compressed_rows(padded[:N], nonzero, dtype, counts)
    dense = padded.reshape(blocks, B, D).transpose(0, 2, 1)[is_dense]  # (total, B): block by block, pixels in order
    block_ptr = np.zeros(blocks + 1, np.int64)
    np.cumsum(is_dense.sum(axis=1), out=block_ptr[1:])
    pixels = np.nonzero(is_dense)[1].astype(np.int64)
    slot_pixels = np.flatnonzero(is_dense.any(axis=0)).astype(np.int64)
    slot_of = np.zeros(D, np.int64)
    slot_of[slot_pixels] = np.arange(len(slot_pixels))
    return Features(dense.reshape(-1), block_ptr, pixels, slot_of[pixels], slot_pixels, ptr, idx, val, scale, order,
                    _inverse(order), B)


def _gather_rows(X, rows, out, at_once=4096):
    """out[i] = X[rows[i]], converted to out's dtype, at_once rows at a time: no temporary copy of
    the whole of X (370 MB for MNIST as float64), and ~0.85x the time of out[:] = X[rows]."""
    for start in range(0, len(rows), at_once):
        out[start:start + at_once] = X[rows[start:start + at_once]]


def _block_sums(nonzero, B):
    """(blocks, D): how many rows of each block (B rows; the last may have fewer) are non-zero in
    each pixel. Summed as uint8 into uint16: ~10x faster than np.add.reduceat on bools."""
    N, D = nonzero.shape
    whole = N // B
    counts = np.empty((-(-N // B), D), np.uint16 if B < 1 << 16 else np.int64)
    counts[:whole] = nonzero[:whole * B].view(np.uint8).reshape(whole, B, D).sum(axis=1, dtype=counts.dtype)
    if N > whole * B:
        counts[whole] = nonzero[whole * B:].sum(axis=0)
    return counts


def _inverse(order):
    """The inverse of the permutation ``order``."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse


def subset_features(f, samples):
    """Features of the samples ``samples`` (indices into the dataset, in the subset's order; a
    mini-batch) of features with one set of dense pixels (``per_block=False``), sorted as
    prepare_features sorts them: their values are copied, no new pass over the pixels."""
    B = f.block
    S = len(f.slot_pixels)  # the one set's pixels (each its own slot)
    if len(f.pixels) != S * (len(f.block_ptr) - 1):
        raise ValueError("mini-batches are cut from features with one set of dense pixels (per_block=False)")
    held = f.row_of[samples]  # the parent's rows holding them
    order = np.argsort(np.diff(f.ptr)[held], kind="stable")
    held = held[order]
    blocks = -(-len(held) // B)
    dense = np.zeros((blocks * B, S), f.dense.dtype)
    if S:
        dense[:len(held)] = f.dense.reshape(-1, S, B)[held // B, :, held % B]
    dense = dense.reshape(blocks, B, S).transpose(0, 2, 1)
    block_ptr = np.arange(blocks + 1, dtype=np.int64) * S
    slots = np.tile(np.arange(S, dtype=np.int64), blocks)
    return Features(dense.reshape(-1), block_ptr, np.tile(f.slot_pixels, blocks), slots, f.slot_pixels,
                    *take_rows(f.ptr, f.idx, f.val, held), f.scale, order, _inverse(order), B)
