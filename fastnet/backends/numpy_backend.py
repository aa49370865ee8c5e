"""The reference backend: plain numpy, short and naive on purpose. It defines what is correct.

The mathematics of the seed notebook, sample-major (X is N x D), with two deliberate fixes: an
exact, numerically stable softmax (no ``+ 1e-5`` in the denominator) and a per-unit bias gradient.
Hidden layers use ReLU; the output is softmax with the mean cross-entropy loss.
"""

from __future__ import annotations

import numpy as np

from fastnet.backends.base import Backend, StepResult


def relu(Z):
    return np.maximum(Z, 0)


def relu_backward(dA, Z):
    return dA * (Z > 0)


def log_softmax(Z):
    """log of softmax(Z) row by row, via the max-shifted log-sum-exp so nothing overflows."""
    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))


def features(X, dtype):
    """Pixels as floats in [0, 1]: uint8 is divided by 255 like the seed does."""
    if X.dtype == np.uint8:
        return X.astype(dtype) / dtype.type(255)
    return X.astype(dtype, copy=False)


def forward_layers(params, A0):
    """Pre-activations Zs and activations As of every layer; As[0] is the input, As[-1] the logits."""
    Zs, As = [], [A0]
    for i, (W, b) in enumerate(params):
        Z = (W @ As[-1].T).T + b  # same as As[-1] @ W.T; this operand order is faster in OpenBLAS
        Zs.append(Z)
        As.append(Z if i == len(params) - 1 else relu(Z))
    return Zs, As


def cross_entropy(logp, y):
    return -np.mean(logp[np.arange(len(y)), y])


def backward_layers(params, Zs, As, y):
    """[(dW, db), ...] of the mean cross-entropy, from the cached forward pass."""
    N = len(y)
    dZ = np.exp(log_softmax(Zs[-1]))  # softmax probabilities
    dZ[np.arange(N), y] -= 1  # d(loss)/d(logits) = P - one_hot(y), per sample
    dZ /= N
    grads = []
    for i in reversed(range(len(params))):
        grads.append((dZ.T @ As[i], dZ.sum(axis=0)))
        if i:
            dZ = relu_backward(dZ @ params[i][0], Zs[i - 1])
    return grads[::-1]


class NumpyBackend(Backend):
    name = "numpy"

    def _features(self, net, data):
        return data.prepared(("numpy", net.dtype.name), lambda X: features(X, net.dtype),
                             take=lambda A, rows: A[rows])

    def _forward(self, net, data):
        Zs, _ = forward_layers(net.params, self._features(net, data))
        return np.exp(log_softmax(Zs[-1]))

    def _gradients(self, net, data, labels):
        Zs, As = forward_layers(net.params, self._features(net, data))
        return backward_layers(net.params, Zs, As, labels)

    def _update(self, net, flat_grads, lr):
        net.flat -= net.dtype.type(lr) * flat_grads

    def _evaluate(self, net, data, labels):
        Zs, _ = forward_layers(net.params, self._features(net, data))
        logp = log_softmax(Zs[-1])
        return StepResult(float(cross_entropy(logp, labels)), float(np.mean(logp.argmax(axis=1) == labels)))

    def _step(self, net, data, labels, lr):
        params = net.params
        Zs, As = forward_layers(params, self._features(net, data))
        logp = log_softmax(Zs[-1])
        result = StepResult(float(cross_entropy(logp, labels)), float(np.mean(logp.argmax(axis=1) == labels)))
        grads = backward_layers(params, Zs, As, labels)
        for (W, b), (dW, db) in zip(params, grads):
            W -= lr * dW
            b -= lr * db
        return result


BACKEND = NumpyBackend()
