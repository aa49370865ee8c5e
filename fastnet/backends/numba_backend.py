"""The ``numba`` backend: the reference's mathematics as fused, parallel ``@njit`` kernels.

One training step is one pass over the data: for each block of samples, the forward pass, the
softmax / cross-entropy gradient and the backward pass, accumulating parameter gradients per fixed
chunk of samples; then the chunk buffers are summed in a fixed order and the update applied. Loss
and accuracy come out of the same pass (see :mod:`fastnet.backends._numba_kernels`).

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


class Features(NamedTuple):
    """Features as the kernels read them, made once per (dataset, dtype); see _numba_kernels."""

    X: np.ndarray  # (N, D) C-contiguous: uint8 stays uint8 (the 1/255 is applied inside), or floats
    scale: np.generic  # 1/255 for uint8 pixels, 1 for floats
    perm: np.ndarray  # (D,) column order: most often non-zero first
    span: np.ndarray  # (N,) 1 + position of each row's last non-zero pixel in that order
    order: np.ndarray  # (N,) the caller's row of each prepared row


def kernel_features(X, dtype):
    """Prepare validated features for the kernels: reorder pixel columns by how often they are
    non-zero, and within each fixed chunk order samples by span, so loops can stop early."""
    N, D = X.shape
    nonzero = X != 0
    perm = np.argsort(-np.count_nonzero(nonzero, axis=0), kind="stable")
    nonzero = nonzero[:, perm]
    span = np.where(nonzero.any(axis=1), D - np.argmax(nonzero[:, ::-1], axis=1), 0)
    order = np.empty(N, np.int64)
    C = config.N_CHUNKS
    for c in range(C):  # within a chunk only: chunks stay the same size and equally costly
        lo, hi = c * N // C, (c + 1) * N // C
        order[lo:hi] = lo + np.argsort(-span[lo:hi], kind="stable")
    rows = X[order][:, perm]
    if X.dtype == np.uint8:
        return Features(np.ascontiguousarray(rows), dtype.type(1 / 255), perm, span[order], order)
    return Features(np.ascontiguousarray(rows, dtype=dtype), dtype.type(1), perm, span[order], order)


class Workspace:
    """Buffers for one (sizes, dtype), allocated once and reused by every call."""

    def __init__(self, sizes, dtype):
        rows, offset, act_offset = [], 0, 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            rows.append([n_in, n_out, offset, offset + n_in * n_out, act_offset])
            offset += n_in * n_out + n_out
            act_offset += n_out
        self.layers = np.array(rows, np.int64)
        self.act_size = act_offset
        self.grads = np.zeros((config.N_CHUNKS, offset), dtype)
        self.W1p = np.zeros((sizes[1], sizes[0]), dtype)
        self.grad = np.zeros(offset, dtype)
        self.stats = np.zeros((config.N_CHUNKS, 2), np.float64)
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
        features = data.prepared(("numba", net.dtype.name), lambda X: kernel_features(X, net.dtype))
        if y is None:
            y = np.full(len(features.X), -1, np.int64)  # "no label": forward only
        return features, y

    def _pass(self, net, f, y, ws, backward, probs=None):
        K._gather_first_layer(ws.W1p, net.flat, f.perm, ws.layers)
        K._chunked_pass(ws.grads, ws.stats, ws.no_probs if probs is None else probs, net.flat, ws.W1p,
                        f.X, f.scale, f.span, f.order, y, ws.layers, ws.act_size, config.BLOCK,
                        backward)
        n = len(f.X)
        return StepResult(float(ws.stats[:, 0].sum() / n), float(ws.stats[:, 1].sum() / n))

    def forward(self, net, X):
        features, y = self._inputs(net, X, None, need_labels=False)
        probs = np.empty((len(y), net.sizes[-1]), net.dtype)
        self._pass(net, features, y, self._workspace(net), backward=False, probs=probs)
        return probs

    def evaluate(self, net, X, y=None):
        features, y = self._inputs(net, X, y, need_labels=True)
        return self._pass(net, features, y, self._workspace(net), backward=False)

    def gradients(self, net, X, y=None):
        features, y = self._inputs(net, X, y, need_labels=True)
        ws = self._workspace(net)
        self._pass(net, features, y, ws, backward=True)
        grad = np.empty_like(net.flat)
        K._reduce_gradients(grad, ws.grads, net.dtype.type(1 / len(y)), features.perm, ws.layers)
        return unflatten(grad, net.sizes)

    def update(self, net, grads, lr):
        K._update(net.flat, check_gradients(net, grads), net.dtype.type(check_lr(lr)))

    def step(self, net, X, y=None, lr=0.1):
        lr = net.dtype.type(check_lr(lr))
        features, y = self._inputs(net, X, y, need_labels=True)
        ws = self._workspace(net)
        result = self._pass(net, features, y, ws, backward=True)
        K._reduce_gradients(ws.grad, ws.grads, net.dtype.type(1 / len(y)), features.perm, ws.layers)
        K._update(net.flat, ws.grad, lr)
        return result


BACKEND = NumbaBackend()
