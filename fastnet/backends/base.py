"""The one interface every backend implements, written down once.

A backend is stateless: it holds no network and no data, only code. Every method takes the
network and the inputs explicitly. ``X`` may be an array (validated on every call) or a
:class:`fastnet.Dataset` (validated once, with the backend's one-time preparation cached),
so a training loop hands the same Dataset to ``step`` 500 times and prepares it once.
"""

from __future__ import annotations

import functools
import math
import numbers
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from fastnet.inputs import as_dataset
from fastnet.network import layer_shapes


class StepResult(NamedTuple):
    """Cross-entropy loss and accuracy of the predictions made *before* the update."""

    loss: float
    accuracy: float


class EpochResult(NamedTuple):
    """Loss and accuracy of each mini-batch of an epoch (of the parameters before its update).

    ``stopped`` is None when every batch was applied. Otherwise the epoch stopped at its last
    batch: "loss" when that batch's loss was NaN/inf or too large, "params" when its update made
    a parameter NaN/inf; the network's parameters are then left as they are (see fastnet.training,
    which rebuilds the last sound ones).
    """

    losses: np.ndarray
    accuracies: np.ndarray
    stopped: str | None = None


class ParameterOverflow(ValueError):
    """An update made finite parameters NaN/inf (a learning rate far too large); it was undone.

    ``result`` is the step's StepResult (the loss before the update), None for ``update``.
    """

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class Backend(ABC):
    """Forward, backward and update for a :class:`fastnet.Network`.

    The public methods are written once, here: they check every argument the same way on every
    backend, hold the network's lock (two threads stepping one network take turns) and call the
    backend's ``_forward`` / ``_gradients`` / ``_update`` / ``_step`` / ``_evaluate`` with a
    :class:`fastnet.Dataset`, checked labels and a float learning rate. The learning rate is
    keyword-only everywhere, so it can never be read as labels.
    """

    name: str

    def forward(self, net, X):
        """Class probabilities, shaped (N, K), in the network's dtype."""
        data, _ = as_dataset(X, None, net, need_labels=False)
        with net.lock:
            return self._forward(net, data)

    def gradients(self, net, X, y=None):
        """[(dW, db), ...] shaped like ``net.params``: the gradient of the mean cross-entropy."""
        data, labels = as_dataset(X, y, net, need_labels=True)
        with net.lock:
            return self._gradients(net, data, labels)

    def update(self, net, grads, *, lr):
        """Gradient descent in place: every parameter ``p -= lr * dp``."""
        lr = check_lr(lr, net.dtype)
        flat = check_gradients(net, grads)
        with net.lock:
            before = net.flat.copy()
            self._update(net, flat, lr)
            _undo_overflow(net, before, None)

    def step(self, net, X, y=None, *, lr):
        """One full-batch gradient-descent step in place; returns the :class:`StepResult`
        (loss and accuracy of the predictions made before the update)."""
        lr = check_lr(lr, net.dtype)
        data, labels = as_dataset(X, y, net, need_labels=True)
        with net.lock:
            before = net.flat.copy()
            result = self._step(net, data, labels, lr)
            _undo_overflow(net, before, result)
        return result

    def evaluate(self, net, X, y=None, *, batch_size=None):
        """:class:`StepResult` (loss, accuracy) of the network on (X, y), changing nothing.

        With ``batch_size``, the samples are taken that many at a time: the same mean loss and
        accuracy (up to the order of the float sums), with memory bounded by the batch, and on the
        numba backend through the kernel that training in mini-batches compiles (so a mini-batch
        run compiles nothing more to evaluate)."""
        data, labels = as_dataset(X, y, net, need_labels=True)
        batch_size = None if batch_size is None else check_batch_size(batch_size)
        with net.lock:
            if batch_size is None:
                return self._evaluate(net, data, labels)
            return self._evaluate_in_batches(net, data, labels, batch_size)

    def predict(self, net, X):
        """Predicted class per sample, shaped (N,)."""
        return np.argmax(self.forward(net, X), axis=1)

    # What each backend implements: arguments already checked, the network's lock held.
    @abstractmethod
    def _forward(self, net, data):
        """Probabilities (N, K) for a Dataset."""

    @abstractmethod
    def _gradients(self, net, data, labels):
        """[(dW, db), ...] for a Dataset and its (N,) int64 labels."""

    @abstractmethod
    def _update(self, net, flat_grads, lr):
        """net.flat -= lr * flat_grads."""

    @abstractmethod
    def _step(self, net, data, labels, lr):
        """One step; the StepResult before the update."""

    @abstractmethod
    def _evaluate(self, net, data, labels):
        """The StepResult of the network as it is."""

    def _evaluate_in_batches(self, net, data, labels, batch_size):
        """The generic version: _evaluate batch by batch, the results weighted by the batch sizes."""
        n = len(data)
        loss = correct = 0.0
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            result = self._evaluate(net, data.subset(rows), labels[rows])
            loss += result.loss * len(rows)
            correct += result.accuracy * len(rows)
        return StepResult(loss / n, correct / n)

    def epoch(self, net, X, y=None, *, lr, batch_size, order, first_loss=None, max_ratio=math.inf):
        """One epoch of mini-batch SGD in place; returns its :class:`EpochResult`.

        The batches are ``order[0:batch_size]``, ``order[batch_size:2 * batch_size]``, ... (the last
        may be shorter). Stops at the first batch whose loss is NaN/inf or above ``max_ratio`` times
        ``first_loss`` (default: this epoch's first batch's loss), or whose update makes a
        parameter NaN/inf. This generic version steps batch by batch; a backend may fuse it.
        """
        data, labels = as_dataset(X, y, net, need_labels=True)
        data = data if data.y is labels else data.with_labels(labels)
        lr = check_lr(lr, net.dtype)
        order, batch_size = check_order(order, len(data)), check_batch_size(batch_size)
        with net.lock:
            return self._epoch(net, data, lr, batch_size, order, first_loss, max_ratio)

    def _epoch(self, net, data, lr, batch_size, order, first_loss, max_ratio):
        """The generic epoch: step by step (each batch a subset of ``data``, which has labels)."""
        losses, accuracies, stopped = [], [], None
        for start in range(0, len(order), batch_size):
            try:
                result = self.step(net, data.subset(order[start:start + batch_size]), lr=lr)
            except ParameterOverflow as overflow:  # its update was undone
                result, stopped = overflow.result, "params"
            losses.append(result.loss)
            accuracies.append(result.accuracy)
            first_loss = result.loss if first_loss is None else first_loss
            if not (math.isfinite(result.loss) and result.loss <= max_ratio * first_loss):
                stopped = "loss"  # checked first: an unsound loss outranks the overflow it caused
            if stopped:
                break
        return EpochResult(np.array(losses), np.array(accuracies), stopped)

    def first_run_note(self, net):
        """What a slow first call on ``net`` is doing, for progress output (None: nothing to say)."""
        return None

    def set_threads(self, n):
        """Use at most ``n`` threads. Backends without a thread pool of their own ignore it."""

    def __repr__(self):
        return f"<fastnet backend {self.name!r}>"


def _undo_overflow(net, before, result):
    """If an update made the finite parameters ``before`` NaN/inf, put them back and raise
    ParameterOverflow (a copy and a check of the parameters: small beside a step)."""
    if not np.all(np.isfinite(net.flat)) and np.all(np.isfinite(before)):
        net.flat[:] = before
        raise ParameterOverflow("the update made parameters NaN or inf (is the learning rate far "
                                "too large?); the network is unchanged", result)


def check_lr(lr, dtype=None):
    """Return lr as a float, or raise TypeError (not a real number: True, "0.1", None) or
    ValueError (not finite and > 0, or not representable in ``dtype``: 1e300 overflows float32,
    1e-50 rounds to 0 there)."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"lr must be a number (the learning rate, passed by name: lr=0.1), got {lr!r}")
    value = float(lr)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"lr must be finite and > 0, got {lr!r}")
    if dtype is not None:
        problem = _unrepresentable(value, np.dtype(dtype))
        if problem:
            raise ValueError(f"lr={lr!r} {problem}")
    return value


@functools.lru_cache(maxsize=64)
def _unrepresentable(value, dtype):
    """Why the float ``value`` cannot be held in ``dtype``, or "". Cached: a training loop passes
    one learning rate thousands of times, and the check (numpy's cast and dtype name) took ~20 us
    of a step's ~100 us of Python."""
    with np.errstate(over="ignore", under="ignore"):
        cast = dtype.type(value)
    if not np.isfinite(cast):
        return f"overflows {dtype.name} (largest {np.finfo(dtype).max:.3g})"
    if cast == 0:
        return f"rounds to 0 in {dtype.name}"
    return ""


def check_order(order, n):
    """Return ``order`` as a 1-D int64 array of sample indices in 0..n-1, or raise."""
    order = np.asarray(order)
    if order.ndim != 1 or (order.size and order.dtype.kind not in "iu"):
        raise TypeError(f"order must be a 1-D array of sample indices, got {order.dtype} of shape {order.shape}")
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order holds indices outside 0-{n - 1}")
    return order.astype(np.int64, copy=False)


def check_batch_size(batch_size):
    """Return batch_size as an int >= 1, or raise TypeError/ValueError naming it."""
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be a whole number, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return int(batch_size)


def check_gradients(net, grads):
    """Return ``grads`` as one flat vector in the network's dtype, or raise ValueError."""
    shapes = layer_shapes(net.sizes)
    try:
        pairs = [(np.asarray(dW), np.asarray(db)) for dW, db in grads]
    except (TypeError, ValueError):
        raise ValueError("grads must be a list of (dW, db) pairs like net.params") from None
    if len(pairs) != len(shapes):
        raise ValueError(f"grads has {len(pairs)} layers, the network has {len(shapes)}")
    for i, ((dW, db), (w_shape, b_shape)) in enumerate(zip(pairs, shapes)):
        if dW.shape != w_shape or db.shape != b_shape:
            raise ValueError(
                f"layer {i}: gradient shapes {dW.shape}, {db.shape} do not match {w_shape}, {b_shape}"
            )
    flat = np.concatenate([p.ravel() for pair in pairs for p in pair]).astype(net.dtype, copy=False)
    if not np.all(np.isfinite(flat)):
        raise ValueError("grads contain NaN or infinite values")
    return flat


__all__ = ["Backend", "EpochResult", "ParameterOverflow", "StepResult", "as_dataset", "check_batch_size", "check_gradients", "check_lr",
           "check_order"]
