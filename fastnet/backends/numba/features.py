"""The prepared features: a dataset's pixels split once (per dataset and dtype) into dense and
sparse pixels, in the layouts the layer-1 kernels read.

- **Dense pixels**, non-zero in at least flags.DENSE_PIXEL_FRACTION of the samples (on MNIST the
  ~200 central ones), stored as they are, block by block: ``dense[blk, j, b]`` is dense pixel
  ``dense_pixels[j]`` of row blk * B + b, zero past the last row (read by .dense_pixels).
- **Sparse pixels**, the rest, as compressed sparse rows: row n's non-zero ones are
  ``idx[ptr[n]:ptr[n + 1]]``, in pixel order, with values ``val[...]`` (read by .sparse_pixels).
- **Sample order.** The samples are stored sorted by how many sparse entries they have (``order``;
  ``row_of`` is its inverse): the sparse kernels loop over a sample's entries, and when
  consecutive samples have as many, the CPU predicts where each loop ends. A pass sums the same
  gradients in another order; the kernels read labels and write probabilities through ``order``.
  What it bought: README, *Toward the hardware floor*.

uint8 pixels stay uint8 (``scale`` = 1/255 is applied to the sums), float pixels keep the
network's dtype (``scale`` = 1): every pixel of X is held exactly once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnet.backends.numba import flags


class Features(NamedTuple):
    """A dataset as the kernels read it (the kernels take it with ``dense`` flattened)."""

    dense: np.ndarray  # (blocks, P, B) values of the P dense pixels, block by block
    dense_pixels: np.ndarray  # (P,) int64: which pixels are dense
    ptr: np.ndarray  # (N + 1,) int64: row n's sparse entries are [ptr[n], ptr[n + 1])
    idx: np.ndarray  # (nnz,) pixel of each entry: uint16 (int32 if D > 65,536)
    val: np.ndarray  # (nnz,) its value: uint8 stays uint8, or floats of the network's dtype
    scale: np.generic  # 1/255 for uint8 pixels, 1 for floats, in the network's dtype
    order: np.ndarray  # (N,) int64: row r of all the above holds sample order[r]
    row_of: np.ndarray  # (N,) int64: sample n is in row row_of[n] (order's inverse)

    @property
    def n_samples(self):
        return len(self.ptr) - 1

    def for_kernels(self):
        """These features with ``dense`` as one flat array (the layer-1 kernels index it by hand)."""
        return self._replace(dense=self.dense.reshape(-1))


def _blocked(values, dtype):
    """(N, P) values -> (blocks, P, B), zero past the last sample."""
    B = flags.BLOCK
    blocks = -(-len(values) // B)
    padded = np.zeros((blocks * B, values.shape[1]), dtype)
    padded[:len(values)] = values
    return np.ascontiguousarray(padded.reshape(blocks, B, values.shape[1]).transpose(0, 2, 1))


def compressed_rows(X, nonzero, dtype, counts=None):
    """(ptr, idx, val, scale): the entries of X where ``nonzero``, row by row, pixels in order;
    sample n's are [ptr[n], ptr[n + 1]). Values stay uint8 for uint8 pixels (scale 1/255), else
    the network's dtype (scale 1). ``counts``: nonzero's row sums, if already known."""
    N, D = X.shape
    ptr = np.zeros(N + 1, np.int64)
    np.cumsum(nonzero.sum(axis=1) if counts is None else counts, out=ptr[1:])
    columns = np.arange(D, dtype=np.uint16 if D <= 1 << 16 else np.int32)
    idx = np.broadcast_to(columns, X.shape)[nonzero]  # row-major: sample by sample, pixels in order
    values_dtype = np.uint8 if X.dtype == np.uint8 else dtype
    scale = dtype.type(1 / 255 if X.dtype == np.uint8 else 1)
    return ptr, idx, X[nonzero].astype(values_dtype, copy=False), scale


def take_rows(ptr, idx, val, rows):
    """(ptr, idx, val) of the compressed rows ``rows`` (copied, in that order)."""
    starts, counts = ptr[rows], ptr[rows + 1] - ptr[rows]
    new_ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=new_ptr[1:])
    take = np.repeat(starts - new_ptr[:-1], counts) + np.arange(new_ptr[-1])
    return new_ptr, idx[take], val[take]


def prepare_features(X, dtype):
    """Features of validated pixels X (N, D) for a network of this dtype: pixels non-zero in at
    least flags.DENSE_PIXEL_FRACTION of the samples as they are, the others' non-zero entries row
    by row; the samples sorted by their number of those entries (ties keep their order)."""
    nonzero = X != 0
    is_dense = nonzero.sum(axis=0) >= flags.DENSE_PIXEL_FRACTION * len(X)
    dense_pixels = np.flatnonzero(is_dense).astype(np.int64)
    nonzero[:, is_dense] = False
    counts = nonzero.sum(axis=1)
    order = np.argsort(counts, kind="stable")
    X, nonzero = X[order], nonzero[order]  # whole rows: faster than sorting the parts (measured)
    ptr, idx, val, scale = compressed_rows(X, nonzero, dtype, counts[order])
    return Features(_blocked(X[:, dense_pixels], val.dtype), dense_pixels, ptr, idx, val, scale, order,
                    _inverse(order))


def _inverse(order):
    """The inverse of the permutation ``order``."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse


def subset_features(f, samples):
    """Features of the samples ``samples`` (indices into the dataset, in the subset's order; a
    mini-batch) of already prepared features, sorted as prepare_features sorts: their values are
    copied, no new pass over the pixels; the dense pixels stay those of the whole dataset."""
    held = f.row_of[samples]  # the parent's rows holding them
    order = np.argsort(np.diff(f.ptr)[held], kind="stable")
    held = held[order]
    B = f.dense.shape[2]
    dense = _blocked(f.dense[held // B, :, held % B], f.dense.dtype)
    return Features(dense, f.dense_pixels, *take_rows(f.ptr, f.idx, f.val, held), f.scale, order, _inverse(order))
