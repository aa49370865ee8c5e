"""The ``numba`` backend: the reference's mathematics as fused, parallel ``@njit`` kernels.

One training step is one pass over the data: for each sample, the forward pass, the softmax /
cross-entropy gradient and the backward pass, accumulating parameter gradients per fixed chunk of
samples; then the chunk buffers are summed in a fixed order and the update applied. Loss and
accuracy come out of the same pass. The features are converted once per dataset to a sparse
layout that skips zero pixels (see :mod:`fastnet.backends._numba_kernels`).

This module validates everything; the kernels never see unchecked input.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numba
import numpy as np

from fastnet import config
from fastnet.backends.base import Backend, StepResult, as_dataset, check_gradients, check_lr
from fastnet.network import unflatten

_cache_dir = config.numba_cache_dir()
if _cache_dir:  # read-only install: cache compiled kernels in the user's cache instead
    numba.config.CACHE_DIR = _cache_dir

from fastnet.backends import _numba_kernels as K  # noqa: E402  (after the cache location is set)


class SparseRows(NamedTuple):
    """Features in CSR form, made once per (dataset, dtype)."""

    indptr: np.ndarray
    idx: np.ndarray
    vals: np.ndarray
    scale: np.generic  # 1/255 for uint8 pixels, 1 for floats

    @property
    def n(self):
        return self.indptr.shape[0] - 1


def sparse_rows(X, dtype):
    """The non-zero pixels of X (validated, uint8 or float) in CSR form for the kernels."""
    counts = np.count_nonzero(X, axis=1)
    indptr = np.zeros(X.shape[0] + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    idx_type = np.uint16 if X.shape[1] <= np.iinfo(np.uint16).max else np.int32
    val_type = np.uint8 if X.dtype == np.uint8 else dtype
    idx = np.empty(indptr[-1], idx_type)
    vals = np.empty(indptr[-1], val_type)
    K._csr_rows(X, indptr, idx, vals)
    scale = dtype.type(1 / 255) if X.dtype == np.uint8 else dtype.type(1)
    return SparseRows(indptr, idx, vals, scale)


class Workspace:
    """Buffers for one (sizes, dtype), allocated once and reused by every call."""

    def __init__(self, sizes, dtype):
        D, H = sizes[0], sizes[1]
        Hp = -(-H // config.LANES) * config.LANES
        widths = [Hp, *sizes[2:]]
        rows, offset, act_offset = [], 0, 0
        for (n_in, n_out), width in zip(zip(sizes[:-1], sizes[1:]), widths):
            rows.append([n_in, n_out, offset, offset + n_in * n_out, act_offset])
            offset += n_in * n_out + n_out
            act_offset += width
        self.layers = np.array(rows, np.int64)
        self.act_size = act_offset
        C = config.N_CHUNKS
        self.W1T = np.zeros((D, Hp), dtype)
        self.g1T = np.zeros((C, D, Hp), dtype)
        self.grest = np.zeros((C, offset - D * H), dtype)
        self.grad = np.zeros(offset, dtype)
        self.stats = np.zeros((C, 2), np.float64)
        self.no_probs = np.zeros((0, sizes[-1]), dtype)


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
        key = (net.sizes, net.dtype.name)
        if key not in spaces:
            spaces[key] = Workspace(net.sizes, net.dtype)
        return spaces[key]

    def _inputs(self, net, X, y, need_labels):
        data, y = as_dataset(X, y, net, need_labels)
        rows = data.prepared(("numba", net.dtype.name), lambda X: sparse_rows(X, net.dtype))
        if y is None:
            y = np.full(rows.n, -1, np.int64)
        return rows, y

    def _pass(self, net, rows, y, ws, backward, probs=None):
        K._transpose_first_layer(ws.W1T, net.flat, ws.layers)
        K._chunked_pass(ws.g1T, ws.grest, ws.stats, ws.no_probs if probs is None else probs,
                        net.flat, ws.W1T, rows.indptr, rows.idx, rows.vals, rows.scale, y,
                        ws.layers, ws.act_size, backward)
        return StepResult(float(ws.stats[:, 0].sum() / rows.n), float(ws.stats[:, 1].sum() / rows.n))

    def forward(self, net, X):
        rows, y = self._inputs(net, X, None, need_labels=False)
        probs = np.empty((rows.n, net.sizes[-1]), net.dtype)
        self._pass(net, rows, y, self._workspace(net), backward=False, probs=probs)
        return probs

    def evaluate(self, net, X, y=None):
        rows, y = self._inputs(net, X, y, need_labels=True)
        return self._pass(net, rows, y, self._workspace(net), backward=False)

    def gradients(self, net, X, y=None):
        rows, y = self._inputs(net, X, y, need_labels=True)
        ws = self._workspace(net)
        self._pass(net, rows, y, ws, backward=True)
        grad = np.empty_like(net.flat)
        K._reduce_gradients(grad, ws.g1T, ws.grest, net.dtype.type(1 / rows.n), ws.layers)
        return unflatten(grad, net.sizes)

    def update(self, net, grads, lr):
        K._update(net.flat, check_gradients(net, grads), net.dtype.type(check_lr(lr)))

    def step(self, net, X, y=None, lr=0.1):
        lr = net.dtype.type(check_lr(lr))
        rows, y = self._inputs(net, X, y, need_labels=True)
        ws = self._workspace(net)
        result = self._pass(net, rows, y, ws, backward=True)
        K._reduce_gradients(ws.grad, ws.g1T, ws.grest, net.dtype.type(1 / rows.n), ws.layers)
        K._update(net.flat, ws.grad, lr)
        return result


BACKEND = NumbaBackend()
