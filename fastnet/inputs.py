"""Checking what user code hands to a backend, once, before any kernel sees it.

``X`` is (N, D), sample-major: uint8 pixels 0-255 (scaled by 1/255 inside, as the seed does), any
other integer type holding 0-255, or floats already in [0, 1]. ``y`` is (N,) integer labels 0..K-1.
Awkward but valid arrays (non-contiguous, read-only, memory-mapped) are accepted and never written to.

A :class:`Dataset` validates once and keeps each backend's one-time preparation of the features
(a scaled float copy for numpy, a sparse layout for numba), so training loops pay for it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import xxhash

PIXEL_MAX = 255


def check_features(X, n_inputs):
    """Return X as a C-contiguous (N, D) uint8 or floating array, or raise TypeError/ValueError.

    Integer pixels are range-checked and become uint8 (a copy unless already uint8); float
    pixels must be finite and in [0, 1] and keep their dtype (float32 or float64). Arrays in
    another memory order are copied to row order, so every layout gives the very same results
    (BLAS sums in another order for a Fortran-order operand).
    """
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"X must be array-like of numbers: {exc}") from None
    kind = X.dtype.kind
    if kind not in "uif":
        raise TypeError(f"X must hold integer or float pixels, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (N samples, {n_inputs} inputs), got shape {X.shape}")
    if X.shape[1] != n_inputs:
        raise ValueError(f"X has {X.shape[1]} columns but the network takes {n_inputs} inputs")
    if X.shape[0] == 0:
        raise ValueError("X has no samples")
    if kind == "f":
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        lo, hi = np.min(X), np.max(X)  # min/max propagate NaN
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("X contains NaN or infinite values")
        if lo < 0 or hi > 1:
            raise ValueError(
                f"float pixels must lie in [0, 1] (scale 0-255 images by 1/255 or pass uint8); "
                f"got values in [{lo:g}, {hi:g}]"
            )
        return np.ascontiguousarray(X)
    if X.dtype != np.uint8:
        lo, hi = int(np.min(X)), int(np.max(X))
        if lo < 0 or hi > PIXEL_MAX:
            raise ValueError(f"integer pixels must lie in 0-{PIXEL_MAX}, got values in [{lo}, {hi}]")
        X = X.astype(np.uint8, order="C")
    return np.ascontiguousarray(X)


def check_labels(y, n_samples, n_classes):
    """Return y as an (N,) int64 array of labels in 0..K-1, or raise TypeError/ValueError."""
    if y is None:
        raise ValueError("labels y are required")
    y = np.asarray(y)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError("labels y must be whole numbers")
    elif y.dtype.kind not in "ui":
        raise TypeError(f"labels y must be integers, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"labels y must be 1-D, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0-{n_classes - 1}, got values in [{y.min():g}, {y.max():g}]")
    return y.astype(np.int64)


class Dataset:
    """Validated features (and optional labels) plus each backend's cached preparation of them.

    Backends accept a Dataset wherever they accept ``X``; when ``y`` is omitted, its labels are used.
    Treat it as immutable: the cached preparations are not refreshed if the arrays change.
    """

    def __init__(self, X, y=None, n_inputs=None, n_classes=10):
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        n_inputs = X.shape[1] if (n_inputs is None and X.ndim == 2) else n_inputs
        self.X = check_features(X, n_inputs)
        self.y = None if y is None else check_labels(y, self.X.shape[0], n_classes)
        self.n_classes = n_classes
        self._prepared = {}
        self._parent = None  # (Dataset, row indices) for a subset

    def __len__(self):
        return self.X.shape[0]

    @property
    def n_inputs(self):
        return self.X.shape[1]

    def subset(self, rows):
        """The samples at ``rows`` (an index array), already validated; backends derive their
        preparation from this dataset's instead of starting again (mini-batches)."""
        child = object.__new__(Dataset)
        child.X = self.X[rows]
        child.y = None if self.y is None else self.y[rows]
        child.n_classes = self.n_classes
        child._prepared = {}
        child._parent = (self, rows)
        return child

    @property
    def is_subset(self):
        """Whether this dataset was cut from another (:meth:`subset`)."""
        return self._parent is not None

    def with_labels(self, y):
        """This dataset with the (already checked) labels ``y``, sharing X and its preparations."""
        twin = object.__new__(Dataset)
        twin.__dict__.update(self.__dict__)
        twin.y = y
        return twin

    def prepared(self, key, make, take=None):
        """The backend preparation stored under ``key``: ``make(X)`` on first use or, for a subset
        when ``take`` is given, ``take(parent's preparation, rows)``."""
        if key not in self._prepared:
            if self._parent is not None and take is not None:
                parent, rows = self._parent
                self._prepared[key] = take(parent.prepared(key, make, take), rows)
            else:
                self._prepared[key] = make(self.X)
        return self._prepared[key]


class RecentArrays:
    """Datasets made from plain arrays, found again by the arrays' content.

    A loop of ``step(net, X, y, lr=...)`` on the same arrays would otherwise validate and prepare X
    on every call. Instead X's bytes are hashed (XXH3-128: ~1.5 ms for MNIST's 46 MB of uint8, a
    fraction of a step) and the Dataset made for the same content is used again, with its backend
    preparations. Keyed by content, not identity: a caller who changes X in place between calls
    gets a new key, so a preparation of old values is never used for new ones. The newest
    ``size`` datasets are kept (a training set and a dev set).
    """

    def __init__(self, size=2):
        self.size = size
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def dataset(self, X, n_inputs, n_classes):
        if not isinstance(X, np.ndarray) or X.dtype.kind not in "uif" or X.ndim != 2:
            return Dataset(X, None, n_inputs=n_inputs, n_classes=n_classes)  # let Dataset say why
        key = (X.dtype.str, X.shape, n_inputs, n_classes, xxhash.xxh3_128_intdigest(np.ascontiguousarray(X)))
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        if found is None:
            data = Dataset(X, None, n_inputs=n_inputs, n_classes=n_classes)
            with self._lock:
                self._entries[key] = (data, data.X is not X)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return data
        data, private = found
        if not private:  # it held an array of the caller's, which may have changed since: use this one
            data.X = X
        return data

    def clear(self):
        with self._lock:
            self._entries.clear()


RECENT_ARRAYS = RecentArrays()


def as_dataset(X, y, net, need_labels):
    """Turn a backend call's (X, y) into a Dataset checked against the network's shape.

    A Dataset carries its own labels: passing labels besides it is refused (it is also what a
    learning rate passed by position, ``step(net, data, 0.1)``, would look like).
    """
    n_inputs, n_classes = net.sizes[0], net.sizes[-1]
    if isinstance(X, Dataset):
        if y is not None:
            raise TypeError("labels given twice: a Dataset carries its labels, so pass no y with it "
                            "(and pass the learning rate by name: lr=...)")
        if X.n_inputs != n_inputs:
            raise ValueError(f"dataset has {X.n_inputs} inputs but the network takes {n_inputs}")
        if need_labels and X.y is None:
            raise ValueError("labels y are required (the dataset has none)")
        if X.y is not None and X.y.size and X.y.max() >= n_classes:
            raise ValueError(f"labels must lie in 0-{n_classes - 1} for this network")
        return X, X.y
    data = RECENT_ARRAYS.dataset(X, n_inputs, n_classes)
    if y is None:
        if need_labels:
            raise ValueError("labels y are required")
        return data, None
    return data, check_labels(y, len(data), n_classes)
