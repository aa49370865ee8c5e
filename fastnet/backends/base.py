"""The one interface every backend implements, written down once.

A backend is stateless: it holds no network and no data, only code. Every method takes the
network and the inputs explicitly. ``X`` may be an array (validated on every call) or a
:class:`fastnet.Dataset` (validated once, with the backend's one-time preparation cached),
so a training loop hands the same Dataset to ``step`` 500 times and prepares it once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from fastnet.inputs import as_dataset
from fastnet.network import layer_shapes


class StepResult(NamedTuple):
    """Cross-entropy loss and accuracy of the predictions made *before* the update."""

    loss: float
    accuracy: float


class Backend(ABC):
    """Forward, backward and update for a :class:`fastnet.Network`."""

    name: str

    @abstractmethod
    def forward(self, net, X):
        """Class probabilities, shaped (N, K), in the network's dtype."""

    @abstractmethod
    def gradients(self, net, X, y=None):
        """[(dW, db), ...] shaped like ``net.params``: the gradient of the mean cross-entropy."""

    @abstractmethod
    def update(self, net, grads, lr):
        """Gradient descent in place: every parameter ``p -= lr * dp``."""

    @abstractmethod
    def step(self, net, X, y=None, lr=0.1):
        """One full-batch gradient-descent step in place; returns the :class:`StepResult`."""

    @abstractmethod
    def evaluate(self, net, X, y=None):
        """:class:`StepResult` (loss, accuracy) of the network on (X, y), changing nothing."""

    def set_threads(self, n):
        """Use at most ``n`` threads. Backends without a thread pool of their own ignore it."""

    def predict(self, net, X):
        """Predicted class per sample, shaped (N,)."""
        return np.argmax(self.forward(net, X), axis=1)

    def __repr__(self):
        return f"<fastnet backend {self.name!r}>"


def check_lr(lr):
    """Return lr as a float, or raise ValueError unless it is finite and positive."""
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"learning rate must be a number, got {lr!r}") from None
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be finite and > 0, got {lr}")
    return lr


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


__all__ = ["Backend", "StepResult", "as_dataset", "check_gradients", "check_lr"]
