"""What a user would pick instead of fastnet, written the way its own users write it: the same
network and the same training step in PyTorch and in JAX, for the benchmark suite and
``python -m fastnet.bench``.

Both are optional (``pip install -e ".[peers]"``); :func:`available` says which are installed.
Each peer starts from a fastnet :class:`~fastnet.network.Network`'s parameters, so that its step
can be checked against the numpy reference before it is timed, and hands its parameters back as
a Network afterwards.

- ``torch``: ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``, ``nn.CrossEntropyLoss``,
  ``torch.optim.SGD``: ``zero_grad(); loss.backward(); step()``; mini-batches by indexing the
  prepared tensors with the shuffled order (faster than a ``DataLoader`` of a ``TensorDataset``).
- ``jax``: a pure loss function of a list of ``(W, b)``, ``jax.value_and_grad``, the update in the
  same ``jax.jit``-compiled function.
"""

from __future__ import annotations

import importlib.util

import numpy as np

PEERS = ("torch", "jax")
EXTRA_HINT = 'pip install -e ".[peers]"'


def available():
    """The peers whose library is installed."""
    return [name for name in PEERS if importlib.util.find_spec(name) is not None]


def missing_reason(name):
    """Why a peer cannot run here (None when it can, or when ``name`` is not a peer)."""
    if name not in PEERS or name in available():
        return None
    return f"{name} is not installed ({EXTRA_HINT} installs the optional peers)"


def _pixels(X, dtype):
    return np.ascontiguousarray(X, dtype=dtype) / dtype.type(255) if X.dtype == np.uint8 else X.astype(dtype)


class TorchNet:
    """The network as ``torch.nn.Sequential``, trained with ``torch.optim.SGD``."""

    def __init__(self, net, X, y, lr=0.1):
        import torch

        self.torch, self.sizes, self.dtype = torch, net.sizes, net.dtype
        layers = []
        for i, (W, b) in enumerate(net.params):
            linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=getattr(torch, net.dtype.name))
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W))
                linear.bias.copy_(torch.from_numpy(b))
            layers += [linear] if i == len(net.params) - 1 else [linear, torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers)
        self.loss = torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.X = torch.from_numpy(_pixels(X, net.dtype))
        self.y = torch.from_numpy(np.asarray(y, np.int64))

    def _train_on(self, X, y):
        self.optimizer.zero_grad()
        loss = self.loss(self.model(X), y)
        loss.backward()
        self.optimizer.step()
        return loss

    def step(self):
        """One full-batch gradient-descent step."""
        return self._train_on(self.X, self.y)

    def epoch(self, order, batch_size):
        """One epoch of mini-batch SGD over the samples in ``order``."""
        order = self.torch.from_numpy(np.asarray(order, np.int64))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            self._train_on(self.X[rows], self.y[rows])

    def network(self):
        from fastnet.network import Network

        linears = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        flat = np.concatenate([p.detach().numpy().ravel() for m in linears for p in (m.weight, m.bias)])
        return Network(self.sizes, flat.astype(self.dtype))


class JaxNet:
    """The network as a list of (W, b) jax arrays and a jitted value-and-grad step."""

    def __init__(self, net, X, y, lr=0.1):
        import jax
        import jax.numpy as jnp

        if net.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.jnp, self.sizes, self.dtype = jnp, net.sizes, net.dtype
        self.params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in net.params]
        self.X = jnp.asarray(_pixels(X, net.dtype))
        self.y = jnp.asarray(np.asarray(y, np.int32))

        def loss(params, X, y):
            a = X
            for W, b in params[:-1]:
                a = jax.nn.relu(a @ W.T + b)
            W, b = params[-1]
            logp = jax.nn.log_softmax(a @ W.T + b)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        @jax.jit
        def step(params, X, y):
            value, grads = jax.value_and_grad(loss)(params, X, y)
            return [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads)], value

        self._step = step

    def step(self):
        """One full-batch gradient-descent step (waits for the result: JAX dispatches asynchronously)."""
        self.params, value = self._step(self.params, self.X, self.y)
        value.block_until_ready()
        return value

    def network(self):
        from fastnet.network import Network

        flat = np.concatenate([np.asarray(p).ravel() for pair in self.params for p in pair])
        return Network(self.sizes, flat.astype(self.dtype))


PEER_CLASSES = {"torch": TorchNet, "jax": JaxNet}


def make_peer(name, net, X, y, lr=0.1):
    """The peer ``name`` set up with ``net``'s parameters on (X, y); ImportError naming the extra
    when it is not installed."""
    reason = missing_reason(name)
    if reason:
        raise ImportError(reason)
    return PEER_CLASSES[name](net, X, y, lr)
