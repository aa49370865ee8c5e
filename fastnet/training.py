"""The training loop shared by the CLI and user code: gradient descent with progress and a guard.

Full-batch by default (the seed's experiment); with ``batch_size`` it runs mini-batch SGD,
reshuffling every epoch. After every step the loss and parameters are checked: on NaN/inf, or a
loss blown up past DIVERGENCE_LOSS_RATIO times the first, the last sound parameters are restored
and :class:`Diverged` is raised, naming the iteration.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from fastnet.backends import get_backend
from fastnet.config import DIVERGENCE_LOSS_RATIO
from fastnet.inputs import Dataset


class Diverged(RuntimeError):
    """Training produced NaN/inf; the network holds the last finite parameters."""

    def __init__(self, iteration, message):
        super().__init__(message)
        self.iteration = iteration


@dataclass
class History:
    """Per-step loss and training accuracy (of the predictions before each update), and timing."""

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    dev_accuracy: list = field(default_factory=list)  # (step, accuracy) pairs
    first_step_seconds: float = 0.0
    seconds: float = 0.0  # all steps after the first

    @property
    def steps(self):
        return len(self.loss)

    @property
    def ms_per_step(self):
        """Mean wall time of the steps after the first (which may include JIT compilation)."""
        return 1e3 * self.seconds / max(self.steps - 1, 1)


def fit(net, X, y=None, iterations=500, lr=0.1, backend=None, batch_size=None, seed=0,
        dev=None, eval_every=0, progress=True, should_stop=None):
    """Train ``net`` in place and return its :class:`History`.

    ``iterations`` counts gradient steps in full-batch mode and epochs when ``batch_size`` is set.
    ``dev`` is an optional (X, y) evaluated every ``eval_every`` iterations (0: never).
    ``should_stop()`` is polled after each step (used for Ctrl-C handling).
    """
    iterations = _count("iterations", iterations)
    batch_size = None if batch_size is None else _count("batch_size", batch_size)
    eval_every = _count("eval_every", eval_every, minimum=0)
    backend = get_backend(backend)
    data = X if isinstance(X, Dataset) else Dataset(X, y, n_inputs=net.sizes[0], n_classes=net.sizes[-1])
    if dev is not None and not isinstance(dev, Dataset):
        dev = Dataset(*dev, n_inputs=net.sizes[0], n_classes=net.sizes[-1])
    history = History()
    batches = _batches(data, batch_size, seed)
    bar = _bar(iterations, progress, backend.name)
    good = net.flat.copy()  # the newest parameters whose loss was seen to be sound
    before = net.flat.copy()
    start = time.perf_counter()
    try:
        for it in range(1, iterations + 1):
            for batch in batches():
                before[:] = net.flat
                with np.errstate(all="ignore"):  # overflow is checked for just below
                    result = backend.step(net, batch, lr=lr)  # the loss of `before`; net moves on
                limit = DIVERGENCE_LOSS_RATIO * history.loss[0] if history.loss else math.inf
                if not (math.isfinite(result.loss) and result.loss <= limit):
                    net.flat[:] = good
                    raise Diverged(it, _diverged(it, f"loss {result.loss:.4g}", max(history.steps - 1, 0)))
                good[:] = before
                if not np.all(np.isfinite(net.flat)):
                    net.flat[:] = good
                    raise Diverged(it, _diverged(it, "a parameter became NaN/inf", history.steps))
                history.loss.append(result.loss)
                history.accuracy.append(result.accuracy)
                now = time.perf_counter()
                if history.steps == 1:
                    history.first_step_seconds, start = now - start, now
            history.seconds = time.perf_counter() - start
            if dev is not None and eval_every and (it % eval_every == 0 or it == iterations):
                history.dev_accuracy.append((history.steps, backend.evaluate(net, dev).accuracy))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history.loss[-1]:.4f}", acc=f"{history.accuracy[-1]:.4f}")
            if should_stop is not None and should_stop():
                break
    finally:
        if bar is not None:
            bar.close()
    return history


def _count(name, value, minimum=1):
    """``value`` as an int >= minimum, or TypeError/ValueError naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _diverged(iteration, what, kept_steps):
    return (f"training diverged at iteration {iteration} ({what}); kept the parameters after "
            f"{kept_steps} good step{'s' if kept_steps != 1 else ''}. Try a smaller learning rate.")


def _batches(data, batch_size, seed):
    """A function yielding the batches of one pass: the whole Dataset, or shuffled mini-batches."""
    if batch_size is None or batch_size >= len(data):
        return lambda: (data,)
    rng = np.random.default_rng(seed)

    def epoch():
        order = rng.permutation(len(data))
        for start in range(0, len(data), batch_size):
            yield data.subset(order[start:start + batch_size])

    return epoch


def _bar(total, progress, name):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"training ({name})", unit=" it")
