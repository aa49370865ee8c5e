"""The ``numba`` backend: the reference's mathematics as fused, parallel ``@njit`` kernels.

One training step is one pass over the data: for each block of samples, the forward pass, the
softmax / cross-entropy gradient and the backward pass, accumulating parameter gradients per fixed
chunk of samples; then the chunk buffers are summed in a fixed order and the update applied. Loss
and accuracy come out of the same pass (see :mod:`fastnet.backends._numba_kernels`).

This module validates everything; the kernels never see unchecked input.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import numba
import numpy as np

from fastnet import config
from fastnet.backends.base import Backend, EpochResult, StepResult
from fastnet.network import layer_offsets, n_params, unflatten

_cache_dir = config.numba_cache_dir()
if _cache_dir:  # read-only install: cache compiled kernels in the user's cache instead
    numba.config.CACHE_DIR = _cache_dir

from fastnet.backends import _kernel_cache, _simd  # noqa: E402  (after the cache location is set)
from fastnet.backends import _numba_first_layer as FL  # noqa: E402
from fastnet.backends import _numba_epoch as E  # noqa: E402
from fastnet.backends import _numba_kernels as K  # noqa: E402

_kernel_cache.use_for(FL, K, E)

# One parallel kernel at a time in this process: Numba's workqueue threading layer aborts the
# process when two threads launch parallel kernels at once, and on the others two launches only
# fight over the same cores.
_PARALLEL = threading.Lock()


class Features(NamedTuple):
    """Features as the kernels read them, made once per (dataset, dtype): the often non-zero pixels
    block by block, the others as compressed sparse rows; see _numba_first_layer."""

    dense: np.ndarray  # (blocks, P, BLOCK): dense[k, j, b] = pixel pixels[j] of sample k * BLOCK + b
    pixels: np.ndarray  # (P,) int64: the dense pixels
    ptr: np.ndarray  # (N + 1,) int64: sample n's sparse entries are [ptr[n], ptr[n + 1])
    idx: np.ndarray  # (nnz,) pixel of each entry: uint16 (int32 if D > 65,536)
    val: np.ndarray  # (nnz,) its value: uint8 stays uint8 (the 1/255 is applied inside), or floats
    scale: np.generic  # 1/255 for uint8 pixels, 1 for floats


def _blocked(values, dtype):
    """(N, P) values -> (blocks, P, BLOCK), zero past the last sample."""
    B = config.BLOCK
    blocks = -(-len(values) // B)
    padded = np.zeros((blocks * B, values.shape[1]), dtype)
    padded[:len(values)] = values
    return np.ascontiguousarray(padded.reshape(blocks, B, values.shape[1]).transpose(0, 2, 1))


def kernel_features(X, dtype):
    """Prepare validated features (N, D) for the kernels: pixels non-zero in at least
    config.DENSE_PIXEL_FRACTION of the samples as they are, the others' non-zero entries row by row."""
    N, D = X.shape
    values_dtype = np.uint8 if X.dtype == np.uint8 else dtype
    nonzero = X != 0
    is_dense = nonzero.sum(axis=0) >= config.DENSE_PIXEL_FRACTION * N
    pixels = np.flatnonzero(is_dense).astype(np.int64)
    dense = _blocked(X[:, pixels], values_dtype)
    nonzero[:, is_dense] = False
    ptr = np.zeros(N + 1, np.int64)
    np.cumsum(nonzero.sum(axis=1), out=ptr[1:])
    columns = np.arange(D, dtype=np.uint16 if D <= 1 << 16 else np.int32)
    idx = np.broadcast_to(columns, X.shape)[nonzero]  # row-major: sample by sample, pixels in order
    scale = dtype.type(1 / 255 if X.dtype == np.uint8 else 1)
    return Features(dense, pixels, ptr, idx, X[nonzero].astype(values_dtype, copy=False), scale)


def subset_features(f, rows):
    """Features of the caller's rows ``rows`` of an already prepared dataset (a mini-batch): their
    values are copied, no new pass over the pixels."""
    B = f.dense.shape[2]
    dense = _blocked(f.dense[rows // B, :, rows % B], f.dense.dtype)
    starts, counts = f.ptr[rows], f.ptr[rows + 1] - f.ptr[rows]
    ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    take = np.repeat(starts - ptr[:-1], counts) + np.arange(ptr[-1])
    return Features(dense, f.pixels, ptr, f.idx[take], f.val[take], f.scale)


def padded_units(H, dtype):
    """H rounded up for the first-layer kernels, which take 2, 3 or 4 vectors of units per pass
    over a sample's pixels (see _numba_kernels._pass_vectors)."""
    lanes = _simd.dtype_lanes(dtype)
    vectors = -(-H // lanes)
    return lanes * (max(vectors, 2) if vectors <= 3 else -(-vectors // 4) * 4)


def _zeros_aligned(shape, dtype, alignment=64):
    """np.zeros(shape, dtype) starting on a cache-line boundary. First-layer rows are whole vectors
    (Hp units, 32 bytes each), so no vector load or store then straddles two cache lines."""
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(size + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + size].view(dtype).reshape(shape)


class Workspace:
    """Buffers for one (sizes, dtype), allocated once and reused by every call."""

    def __init__(self, sizes, dtype):
        act_offsets = np.cumsum([0, *sizes[1:]])  # each layer's activations, stacked
        self.layers = np.array([[n_in, n_out, w, b, a] for n_in, n_out, (w, b), a in
                                zip(sizes[:-1], sizes[1:], layer_offsets(sizes), act_offsets)], np.int64)
        offset, act_offset = n_params(sizes), act_offsets[-1]
        C, B, D, H = config.N_CHUNKS, config.BLOCK, sizes[0], sizes[1]
        self.Hp, self.lanes = padded_units(H, dtype), _simd.dtype_lanes(dtype)
        assert B % (2 * self.lanes) == 0, "config.BLOCK must be a whole number of pairs of vectors"
        tile = FL.UNIT_TILE  # the dense-pixel kernels compute units up to a whole tile past H
        self.grads = np.zeros((C, offset), dtype)
        self.g1s = _zeros_aligned((C, D * self.Hp), dtype)
        self.W1T = _zeros_aligned((D * self.Hp + tile,), dtype)  # padding units stay zero
        # per-chunk scratch of the kernels (see _chunked_pass)
        self.rows = np.zeros((C, self.Hp), dtype)  # entries from H on stay zero
        self.As = np.zeros((C, act_offset + tile, B), dtype)
        self.Dls = np.zeros((C, act_offset + tile, B), dtype)
        self.vecs = np.zeros((C, 3, B), dtype)
        self.bests = np.zeros((C, B), np.int64)
        self.grad = np.zeros(offset, dtype)
        self.stats = np.zeros((C, 2), np.float64)
        self.no_probs = np.zeros((0, sizes[-1]), dtype)
        self._dense_grads = np.zeros((numba.config.NUMBA_NUM_THREADS, 0), dtype)

    def epoch_work(self, blocks):
        """EpochWork for batches of up to ``blocks`` blocks of BLOCK samples (kept for the largest yet)."""
        work = getattr(self, "_epoch_work", None)
        if work is None or work.As.shape[0] < blocks:
            dtype, (_, units, B) = self.As.dtype, self.As.shape
            work = self._epoch_work = E.EpochWork(
                np.zeros((blocks, units, B), dtype), np.zeros((blocks, units, B), dtype),
                np.zeros((blocks, B), np.int64), np.zeros((3, B), dtype), np.zeros(B, np.int64),
                np.zeros(self.Hp, dtype), np.zeros(self.Hp, dtype), np.zeros_like(self.grad))
        return work

    def dense_grads(self, n_pixels, H):
        """Per-thread buffers for the gradient lanes of n_pixels dense pixels (see _chunked_pass),
        grown when a dataset has more dense pixels than any before."""
        size = FL.dense_grads_size(n_pixels, H, self.lanes)
        if self._dense_grads.shape[1] < size:
            size = -(-size // 16) * 16  # whole cache lines per thread: no false sharing
            self._dense_grads = _zeros_aligned((numba.config.NUMBA_NUM_THREADS, size), self._dense_grads.dtype)
        return self._dense_grads


class NumbaBackend(Backend):
    name = "numba"

    def __init__(self):
        self._local = threading.local()  # workspaces per thread: concurrent calls never share buffers

    def set_threads(self, n):
        limit = numba.config.NUMBA_NUM_THREADS
        if not 1 <= int(n) <= limit:
            raise ValueError(f"threads must be between 1 and {limit} (NUMBA_NUM_THREADS), got {n}")
        numba.set_num_threads(int(n))

    def _workspace(self, net):
        spaces = self._local.__dict__.setdefault("spaces", {})
        key = (net.sizes, net.dtype.name, config.BLOCK)
        if key not in spaces:
            spaces[key] = Workspace(net.sizes, net.dtype)
        return spaces[key]

    def _features(self, net, data, labels):
        features = data.prepared(("numba", net.dtype.name, config.BLOCK), lambda X: kernel_features(X, net.dtype),
                                 take=subset_features)
        if labels is None:
            labels = np.full(len(features.ptr) - 1, -1, np.int64)  # "no label": forward only
        return features, labels

    def _pass(self, net, f, y, ws, backward, probs=None):
        n = len(f.ptr) - 1
        C = config.n_chunks(n)
        FL.gather_weights(ws.W1T, ws.Hp, net.flat, ws.layers)
        dense_grads = ws.dense_grads(len(f.pixels), net.sizes[1])
        with _PARALLEL:
            K._chunked_pass(ws.grads[:C], ws.g1s[:C], dense_grads, ws.stats[:C],
                            ws.no_probs if probs is None else probs, ws.rows, ws.As, ws.Dls, ws.vecs, ws.bests,
                            net.flat, ws.W1T, ws.Hp, f.dense.reshape(-1), f.pixels, f.ptr, f.idx, f.val, f.scale, y,
                            ws.layers, backward)
        return StepResult(float(ws.stats[:C, 0].sum() / n), float(ws.stats[:C, 1].sum() / n))

    def _reduce(self, grad, ws, net, features):
        n = len(features.ptr) - 1
        C = config.n_chunks(n)
        with _PARALLEL:
            K._reduce_gradients(grad, ws.grads[:C], ws.g1s[:C], net.dtype.type(1 / n), ws.layers)

    def _epoch(self, net, data, lr, batch_size, order, first_loss, max_ratio):
        """Mini-batch SGD in one compiled call (see _numba_epoch); batches above
        config.FUSED_EPOCH_MAX_BATCH are stepped one by one with the parallel full-batch kernels."""
        if batch_size > config.FUSED_EPOCH_MAX_BATCH:
            return super()._epoch(net, data, lr, batch_size, order, first_loss, max_ratio)
        start = net.flat.copy()
        result = self._fused_epoch(net, data, lr, batch_size, order, first_loss, max_ratio, checked=False)
        if not np.all(np.isfinite(net.flat)):  # find the update that overflowed, then undo it
            net.flat[:] = start
            result = self._fused_epoch(net, data, lr, batch_size, order, first_loss, max_ratio, checked=True)
            net.flat[:] = start  # as the generic epoch: the parameters before the unsound update
            sound = len(result.losses) - 1
            if sound:
                self._fused_epoch(net, data, lr, batch_size, order[:sound * batch_size], None, math.inf, checked=False)
        return result

    def _fused_epoch(self, net, data, lr, batch_size, order, first_loss, max_ratio, checked):
        dtype = net.dtype
        features = data.prepared(("numba-epoch", dtype.name), lambda X: E.epoch_features(X, dtype),
                                 take=E.subset_epoch_features)
        ws = self._workspace(net)
        work = ws.epoch_work(-(-min(batch_size, len(order)) // config.BLOCK))
        FL.gather_weights(ws.W1T, ws.Hp, net.flat, ws.layers)
        batches = -(-len(order) // batch_size)
        losses, accuracies = np.empty(batches), np.empty(batches)
        ran, stopped = E.run_epoch(net.flat, ws.W1T, ws.Hp, features, data.y, order, batch_size, lr,
                                   math.nan if first_loss is None else float(first_loss), float(max_ratio),
                                   ws.layers, work, losses, accuracies, checked)
        return EpochResult(losses[:ran], accuracies[:ran], {E.RAN: None, E.BAD_LOSS: "loss", E.BAD_PARAMS: "params"}[stopped])

    def first_run_note(self, net):
        return f"compiling the numba kernels for {net.dtype.name} (first run only; cached after)"

    def _forward(self, net, data):
        features, y = self._features(net, data, None)
        probs = np.empty((len(y), net.sizes[-1]), net.dtype)
        self._pass(net, features, y, self._workspace(net), backward=False, probs=probs)
        return probs

    def _evaluate(self, net, data, labels):
        features, y = self._features(net, data, labels)
        return self._pass(net, features, y, self._workspace(net), backward=False)

    def _gradients(self, net, data, labels):
        features, y = self._features(net, data, labels)
        ws = self._workspace(net)
        self._pass(net, features, y, ws, backward=True)
        grad = np.empty_like(net.flat)
        self._reduce(grad, ws, net, features)
        return unflatten(grad, net.sizes)

    def _update(self, net, flat_grads, lr):
        K._update(net.flat, flat_grads, net.dtype.type(lr))

    def _step(self, net, data, labels, lr):
        features, y = self._features(net, data, labels)
        ws = self._workspace(net)
        result = self._pass(net, features, y, ws, backward=True)
        self._reduce(ws.grad, ws, net, features)
        K._update(net.flat, ws.grad, net.dtype.type(lr))
        return result


BACKEND = NumbaBackend()
