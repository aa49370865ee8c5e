"""The training loop shared by the CLI and user code: gradient descent with progress and a guard.

Full-batch by default (the seed's experiment); with ``batch_size`` it runs mini-batch SGD,
reshuffling every epoch, one backend call per epoch. Every step (every mini-batch) is checked: on
a NaN/inf loss or parameter, or a loss blown up past DIVERGENCE_LOSS_RATIO times the first, the
last sound parameters are restored and :class:`Diverged` is raised, naming the iteration.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from fastnet.backends import get_backend
from fastnet.backends.base import ParameterOverflow
from fastnet.inputs import Dataset

# Training stops as diverged when the loss or a parameter is NaN/inf, or when the loss exceeds this
# multiple of the first step's loss: with the stable softmax, a too-large learning rate (say 1e4)
# blows the loss up to ~1e12 without ever producing NaN, and gradient descent does not come back.
DIVERGENCE_LOSS_RATIO = 100.0


class Diverged(RuntimeError):
    """Training produced NaN/inf; the network holds the last finite parameters."""

    def __init__(self, iteration, message):
        super().__init__(message)
        self.iteration = iteration


@dataclass
class History:
    """Per-step loss and training accuracy (of the predictions before each update), and timing.

    An iteration is a full-batch step, or an epoch of mini-batches (``unit``); each mini-batch is
    a step of its own in ``loss`` and ``accuracy``.
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    dev_accuracy: list = field(default_factory=list)  # (step, accuracy) pairs
    unit: str = "step"
    iterations: int = 0  # completed
    first_seconds: float = 0.0  # the first iteration, which may include JIT compilation
    seconds: float = 0.0  # the iterations after the first

    @property
    def steps(self):
        return len(self.loss)

    @property
    def ms_per_iteration(self):
        """Mean wall time of the iterations after the first."""
        return 1e3 * self.seconds / max(self.iterations - 1, 1)

    def timed(self, seconds):
        """Record one more completed iteration that took ``seconds``."""
        if self.iterations == 0:
            self.first_seconds = seconds
        else:
            self.seconds += seconds
        self.iterations += 1


def fit(net, X, y=None, iterations=500, lr=0.1, backend=None, batch_size=None, seed=0,
        dev=None, eval_every=0, progress=True, should_stop=None):
    """Train ``net`` in place and return its :class:`History`.

    ``iterations`` counts gradient steps in full-batch mode and epochs when ``batch_size`` is set
    (mini-batch SGD: each epoch takes the batches of a new permutation, drawn with ``seed``).
    ``dev`` is an optional (X, y) evaluated every ``eval_every`` iterations (0: never).
    ``should_stop()`` is polled after each iteration (used for Ctrl-C handling).
    """
    iterations = _count("iterations", iterations)
    batch_size = None if batch_size is None else _count("batch_size", batch_size)
    eval_every = _count("eval_every", eval_every, minimum=0)
    backend = get_backend(backend)
    data = X if isinstance(X, Dataset) else Dataset(X, y, n_inputs=net.sizes[0], n_classes=net.sizes[-1])
    if dev is not None and not isinstance(dev, Dataset):
        dev = Dataset(*dev, n_inputs=net.sizes[0], n_classes=net.sizes[-1])
    mini_batch = trains_in_mini_batches(batch_size, len(data))
    dev_batch = batch_size if mini_batch else None  # evaluate as it trains (numba: the same kernel)
    run = _Epochs(backend, net, data, lr, batch_size, seed) if mini_batch else _Steps(backend, net, data, lr)
    history = History(unit="epoch" if mini_batch else "step")
    bar = _bar(iterations, progress, backend.name)
    try:
        for it in range(1, iterations + 1):
            start = time.perf_counter()
            with np.errstate(all="ignore"), _slow_start_note(backend, net, bar, it == 1):
                run(it, history)
            history.timed(time.perf_counter() - start)
            if dev is not None and eval_every and (it % eval_every == 0 or it == iterations):
                history.dev_accuracy.append((history.steps, backend.evaluate(net, dev, batch_size=dev_batch).accuracy))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history.loss[-1]:.4f}", acc=f"{history.accuracy[-1]:.4f}")
            if should_stop is not None and should_stop():
                break
    finally:
        if bar is not None:
            bar.close()
    return history


def trains_in_mini_batches(batch_size, n_samples):
    """Whether fit trains in mini-batches (epochs) rather than full-batch steps: a batch size
    below the number of samples."""
    return batch_size is not None and batch_size < n_samples


def _loss_limit(history):
    return DIVERGENCE_LOSS_RATIO * history.loss[0] if history.loss else math.inf


class _Steps:
    """Full-batch gradient descent: one step an iteration, checked after each step."""

    def __init__(self, backend, net, data, lr):
        self.backend, self.net, self.data, self.lr = backend, net, data, lr
        self.good = net.flat.copy()  # the newest parameters whose loss was seen to be sound
        self.before = net.flat.copy()

    def __call__(self, it, history):
        net = self.net
        self.before[:] = net.flat
        overflow = None
        try:
            result = self.backend.step(net, self.data, lr=self.lr)  # the loss of `before`; net moves on
        except ParameterOverflow as exc:  # the step was undone: net holds `before` again
            result, overflow = exc.result, exc
        if not (math.isfinite(result.loss) and result.loss <= _loss_limit(history)):
            net.flat[:] = self.good
            raise Diverged(it, _diverged(it, f"loss {result.loss:.4g}", max(history.steps - 1, 0)))
        self.good[:] = self.before
        if overflow is not None:
            raise Diverged(it, _diverged(it, "a parameter became NaN/inf", history.steps))
        history.loss.append(result.loss)
        history.accuracy.append(result.accuracy)


class _Epochs:
    """Mini-batch SGD: one ``backend.epoch`` call an iteration, on a new permutation.

    The backend stops at the first unsound batch. The last sound parameters are then rebuilt
    exactly, by replaying the epoch's sound batches from the parameters it started with (an epoch
    is deterministic), so no copy of the parameters is taken per batch.
    """

    def __init__(self, backend, net, data, lr, batch_size, seed):
        self.backend, self.net, self.data, self.lr, self.batch_size = backend, net, data, lr, batch_size
        self.rng = np.random.default_rng(seed)
        self.start = self.previous = None  # (parameters, order) at the start of this and the last epoch

    def epoch(self, order, **guard):
        return self.backend.epoch(self.net, self.data, lr=self.lr, batch_size=self.batch_size, order=order, **guard)

    def replay(self, start, batches):
        """Set the network to the parameters after the first ``batches`` batches of an epoch."""
        flat, order = start
        self.net.flat[:] = flat
        if batches:
            self.epoch(order[:batches * self.batch_size])

    def __call__(self, it, history):
        order = self.rng.permutation(len(self.data))
        self.previous, self.start = self.start, (self.net.flat.copy(), order)
        first = history.loss[0] if history.loss else None
        result = self.epoch(order, first_loss=first, max_ratio=DIVERGENCE_LOSS_RATIO)
        sound = len(result.losses) - (result.stopped is not None)
        history.loss.extend(result.losses[:sound].tolist())
        history.accuracy.extend(result.accuracies[:sound].tolist())
        if result.stopped == "params":  # keep the parameters before the update that overflowed
            self.replay(self.start, sound)
            raise Diverged(it, _diverged(it, "a parameter became NaN/inf", history.steps))
        if result.stopped == "loss":  # keep the parameters before the last sound batch's update
            t = len(result.losses) - 1
            if t > 0:
                self.replay(self.start, t - 1)
            elif self.previous is not None:
                self.replay(self.previous, -(-len(self.previous[1]) // self.batch_size) - 1)
            else:
                self.net.flat[:] = self.start[0]
            raise Diverged(it, _diverged(it, f"loss {result.losses[t]:.4g}", max(history.steps - 1, 0)))


# When the first step has not finished after this long, say why (compiling kernels), once.
SLOW_START_SECONDS = 1.5


@contextlib.contextmanager
def _slow_start_note(backend, net, bar, first):
    """Around the first step: if it is still running after SLOW_START_SECONDS, print the backend's
    note on what it is doing (the numba backend compiles its kernels on a first run)."""
    note = backend.first_run_note(net) if first and bar is not None else None
    if note is None:
        yield
        return
    timer = threading.Timer(SLOW_START_SECONDS, lambda: bar.write(f"fastnet: {note}", file=sys.stderr))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


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


def _bar(total, progress, name):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"training ({name})", unit=" it")
