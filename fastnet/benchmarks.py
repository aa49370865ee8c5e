"""Benchmark cases, shared by the pytest-benchmark suite (``bench/``) and ``python -m fastnet.bench``.

A :class:`Case` is one full-batch training step: a backend, a dtype, a hidden width and a number
of samples. An :class:`EpochCase` is one epoch of mini-batch SGD. Before a case is timed,
:func:`check_agreement` / :func:`check_epoch_agreement` compare its parameter update with the
float64 numpy reference on the same data; a case that disagrees is never timed.

Besides the two backends, the ``seed`` case is the seed notebook's own numpy code layout
(feature-major ``W @ X``), the fastest plain-numpy formulation a user is likely to pick, and the
optional peers (:mod:`fastnet.peers`: ``torch``, ``jax``) are what a user would pick instead.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import numpy as np
from llvmlite import binding as llvm

import fastnet
from fastnet.backends.numba.vector import VECTOR_BITS
from fastnet.peers import PEER_CLASSES, make_peer
from fastnet.tolerances import TOLERANCES

AGREEMENT_SAMPLES = 2000  # agreement is checked on this many samples: enough to catch any bug
# OpenBLAS's worker threads busy-wait for 50-100 ms after their last call (OpenMP's, numba's, for
# a shorter while): a numba step started right after a numpy step took 47 ms instead of 17 ms on
# the project's 2-core machine, its second core taken by a spinning BLAS thread. Before timing a
# case, wait this long so the previous case's threads have gone to sleep.
SETTLE_SECONDS = 0.5
# After such a pause every case runs slower for a while: on an Intel VM (2 vCPUs, 2026-12-02),
# medians of six pauses of 0.5 s, the calls after one took (ms) numba float32 784-10-10: 8.0,
# 7.0, 6.5, 6.3, 6.0, 6.0, 5.9, 5.8, 5.8; numpy float64: 82.8, 79.3, 77.5, 78.2, 77.4; torch
# float32: 36.7, 33.4, 32.3, 32.9, 32.2; JAX: 45.4, 44.3, 43.2, 42.6, 42.8. One untimed call, as
# before, left the short steps' timed call 20% above their loop's and numpy's 3%. So each timed
# call (time_interleaved) follows untimed calls for at least this long.
WARM_SECONDS = 0.1


@dataclass(frozen=True)
class Case:
    backend: str  # "numpy", "numba", "seed", or a peer: "torch", "jax"
    dtype: str = "float64"
    hidden: int = 10
    n: int | None = None  # None: every sample given; else the data tiled or cut to n samples

    @property
    def sizes(self):
        return (784, self.hidden, 10)

    @property
    def group(self):
        shape = "-".join(map(str, self.sizes))
        return f"{shape} {self.dtype}" + ("" if self.n is None else f" N={self.n:,}")

    @property
    def label(self):
        return {"seed": "numpy (seed layout)"}.get(self.backend, self.backend)


@dataclass(frozen=True)
class EpochCase:
    """One epoch of mini-batch SGD (batches of ``batch``, a fixed shuffled order) on all samples."""

    backend: str  # "numpy", "numba" or "torch"
    hidden: int = 64
    batch: int = 64
    dtype: str = "float32"

    @property
    def sizes(self):
        return (784, self.hidden, 10)

    @property
    def group(self):
        return f"epoch {'-'.join(map(str, self.sizes))} batch {self.batch} {self.dtype}"

    @property
    def label(self):
        return self.backend


# The cases of the README table: the 784-10-10 seed network, hidden 128, and a scaling series.
MAIN_CASES = [Case(b, d) for d in ("float64", "float32") for b in ("numpy", "seed", "numba")]
WIDE_CASES = [Case(b, d, hidden=128) for d in ("float64", "float32") for b in ("numpy", "numba")]
SCALING_CASES = [Case("numba", "float32", n=n) for n in (10_000, 59_000, 236_000)]
PEER_CASES = [Case(peer, "float32") for peer in PEER_CLASSES] + [Case("torch", "float32", hidden=128)]
EPOCH_CASES = [EpochCase(b, hidden, batch) for hidden in (64, 10) for batch in (64, 256, 4096)
               for b in ("numpy", "numba", "torch")]


# The hardware floor of a full-batch step: the multiply-adds no implementation can skip -- the
# first layer's forward sums and weight gradient over the non-zero pixels, 2 x nnz x H -- at the
# CPU's peak rate: every core's FMA units on full vectors (as wide as the numba kernels' for the
# dtype, up to the units' datapath: FMA_DATAPATH_BITS), at the clock /proc/cpuinfo reports.
# Everything else (upper layers, softmax, reading the data) is left out: it is a floor.
FMA_UNITS = 2  # fused multiply-add pipes per core (AMD Zen 3 to 5, Intel since Haswell)
# The FMA units' width where it is narrower than the vectors the kernels use, by the CPU's LLVM
# name: AMD's Zen 1 executes a 256-bit operation as two 128-bit halves, Zen 2 to 4 have 256-bit
# units, and Zen 4 executes a 512-bit operation as two halves. (LLVM before 16 names Zen 4
# "znver3".) Measured on a znver4 host (2026-12-02): ten independent chains of 512-bit FMAs ran
# 3.6 G FMAs/s per core, one per cycle of the 3.66 GHz that one 4-cycle chain gave, where an Intel
# AVX-512 host ran 1.8 per cycle; a znver5 host (2026-12-03) 1.93 per cycle of its 3.67 GHz, its
# units 512 bits wide. Elsewhere the units are taken as wide as the vectors.
FMA_DATAPATH_BITS = {"znver1": 128, "znver2": 256, "znver3": 256, "znver4": 256}


def fma_bits(cpu_name=None):
    """How many bits of multiply-adds one FMA unit does per cycle in the numba kernels: their vector
    width, or the datapath of the CPU ``cpu_name`` (LLVM's name; default: this host's) if narrower."""
    if cpu_name is None:
        cpu_name = llvm.get_host_cpu_name()
    return min(VECTOR_BITS, FMA_DATAPATH_BITS.get(cpu_name, VECTOR_BITS))


@functools.cache
def clock_hz():
    """This CPU's clock as /proc/cpuinfo reports it, or None (then no floor is given)."""
    try:
        with open("/proc/cpuinfo") as f:
            return float(next(line.split(":")[1] for line in f if line.startswith("cpu MHz"))) * 1e6
    except (OSError, StopIteration, ValueError):
        return None


def floor_seconds(case, X):
    """The floor of one full-batch step of ``case`` on X (see FMA_UNITS), or None without a clock."""
    clock = clock_hz()
    if clock is None:
        return None
    lanes = fma_bits() // (8 * np.dtype(case.dtype).itemsize)
    peak = (os.cpu_count() or 1) * FMA_UNITS * lanes * clock  # multiply-adds/s
    per_row = np.count_nonzero(X, axis=1)
    nnz = per_row.sum() if case.n is None else np.resize(per_row, case.n).sum()  # samples() keeps each row's count
    return 2 * int(nnz) * case.hidden / peak


# The copies samples() adds to make a larger dataset: images shifted by a pixel (rows, columns).
SHIFTS = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)]


def samples(X, y, n):
    """The first n samples; when n is larger than the data, the images follow again shifted by one
    pixel (SHIFTS; 28 x 28 images), as data augmentation makes a larger dataset. Not exact copies:
    the backend orders samples by similarity, and each copy would share a block with its original,
    making the larger dataset unrealistically cheap. A shift rolls the image's pixels (MNIST's
    border is zero), so each image keeps its number of non-zero pixels."""
    if n is None:
        return X, y
    reps = -(-n // len(X))
    if reps > len(SHIFTS):
        raise ValueError(f"at most {len(SHIFTS)} shifted copies of the data, not {reps}")
    images = X.reshape(len(X), 28, 28)
    copies = [np.roll(images, shift, axis=(1, 2)).reshape(len(X), -1) for shift in SHIFTS[:reps]]
    return np.concatenate(copies)[:n], np.tile(y, reps)[:n]


class SeedLayoutStep:
    """The seed notebook's formulation: features down the rows (D, N), ``W.dot(X)``, one-hot Y.

    Same mathematics as the reference (with its stable softmax), so it must agree with it.
    """

    def __init__(self, net, X, y):
        self.net = net
        self.XT = np.ascontiguousarray(X.T, dtype=net.dtype) / net.dtype.type(255)
        self.Y = np.zeros((net.sizes[-1], len(y)), net.dtype)
        self.Y[y, np.arange(len(y))] = 1

    def __call__(self, lr=0.1):
        (W1, b1), (W2, b2) = self.net.params
        m = self.XT.shape[1]
        Z1 = W1.dot(self.XT) + b1[:, None]
        A1 = np.maximum(Z1, 0)
        Z2 = W2.dot(A1) + b2[:, None]
        E = np.exp(Z2 - Z2.max(axis=0))
        A2 = E / E.sum(axis=0)
        dZ2 = A2 - self.Y
        dW2, db2 = dZ2.dot(A1.T) / m, dZ2.sum(axis=1) / m
        dZ1 = W2.T.dot(dZ2) * (Z1 > 0)
        dW1, db1 = dZ1.dot(self.XT.T) / m, dZ1.sum(axis=1) / m
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2


def make_step(case, X, y, seed=0):
    """(trained, step) for the case: ``step()`` runs one training step in place on the case's
    data, ``trained()`` is the network as it now is."""
    X, y = samples(X, y, case.n)
    net = fastnet.Network.init(case.sizes, seed=seed, dtype=case.dtype)
    if case.backend == "seed":
        return (lambda: net), SeedLayoutStep(net, X, y)
    if case.backend in PEER_CLASSES:
        peer = make_peer(case.backend, net, X, y)
        return peer.network, peer.step
    backend = fastnet.get_backend(case.backend)
    data = fastnet.Dataset(X, y)
    return (lambda: net), lambda: backend.step(net, data, lr=0.1)


def make_epoch(case, X, y, order, seed=0):
    """(trained, epoch) for an EpochCase: ``epoch()`` runs one epoch in ``order`` in place."""
    net = fastnet.Network.init(case.sizes, seed=seed, dtype=case.dtype)
    if case.backend in PEER_CLASSES:
        peer = make_peer(case.backend, net, X, y)
        return peer.network, lambda: peer.epoch(order, case.batch)
    backend = fastnet.get_backend(case.backend)
    data = fastnet.Dataset(X, y)
    return (lambda: net), lambda: backend.epoch(net, data, lr=0.1, batch_size=case.batch, order=order)


def _assert_like_reference(trained, reference, case, what):
    tol = TOLERANCES["float64" if case.dtype == "float64" else "float32"]
    for i, ((W, b), (rW, rb)) in enumerate(zip(trained.params, reference.params)):
        np.testing.assert_allclose(W, rW, **tol, err_msg=f"{case}: W{i + 1} after {what}")
        np.testing.assert_allclose(b, rb, **tol, err_msg=f"{case}: b{i + 1} after {what}")


def check_agreement(case, X, y):
    """Raise AssertionError unless one step of the case updates the parameters like the reference."""
    X, y = X[:AGREEMENT_SAMPLES], y[:AGREEMENT_SAMPLES]
    trained, step = make_step(Case(case.backend, case.dtype, case.hidden), X, y)
    reference = fastnet.Network.init(case.sizes, seed=0, dtype="float64")
    fastnet.get_backend("numpy").step(reference, X, y, lr=0.1)
    step()
    _assert_like_reference(trained(), reference, case, "one step")


def check_epoch_agreement(case, X, y):
    """Raise AssertionError unless one epoch of the case (on AGREEMENT_SAMPLES samples) leaves the
    parameters where the float64 reference's epoch leaves them."""
    X, y = X[:AGREEMENT_SAMPLES], y[:AGREEMENT_SAMPLES]
    order = epoch_order(X)
    trained, epoch = make_epoch(case, X, y, order)
    reference = fastnet.Network.init(case.sizes, seed=0, dtype="float64")
    fastnet.get_backend("numpy").epoch(reference, X, y, lr=0.1, batch_size=case.batch, order=order)
    epoch()
    _assert_like_reference(trained(), reference, case, "one epoch")


def settle():
    """Let the worker threads of whatever ran before (numpy's BLAS, numba) stop spinning."""
    time.sleep(SETTLE_SECONDS)


def time_interleaved(runs, rounds):
    """{key: seconds of each of ``rounds`` calls} of the callables ``runs`` (each warmed up
    already), taken in turns: every round times each once, starting one further along the list
    each round. A slow spell of the machine then falls on all of them alike (what the sequential
    timing gave on the project's VM: README, *Targets*).

    Each timed call comes after a pause (settle) and then untimed calls of the same callable for
    at least WARM_SECONDS: the state a loop of steps is in, its own threads awake and its data in
    cache, whatever ran before. Timed straight after the pause instead, a numba step that followed
    the JAX step took 13.3 ms against 10.7 ms after the seed-layout step (medians of 6)."""
    keys = list(runs)
    times = {key: [] for key in keys}
    for r in range(rounds):
        start_at = r % len(keys)
        for key in keys[start_at:] + keys[:start_at]:
            settle()
            warm_until = time.perf_counter() + WARM_SECONDS
            runs[key]()
            while time.perf_counter() < warm_until:
                runs[key]()
            start = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - start)
    return times


def timing_groups(cases):
    """The cases in the groups a comparison times in turns (time_interleaved), in order of first
    appearance: full-batch steps of the same sizes on all the samples (every dtype and backend);
    the scaling series; epochs of the same sizes and batch size."""
    groups = {}
    for case in cases:
        key = (type(case), case.sizes, getattr(case, "batch", None), getattr(case, "n", None) is not None)
        groups.setdefault(key, []).append(case)
    return list(groups.values())


def epoch_order(X):
    """The shuffled order of X's samples that every epoch case runs in."""
    return np.random.default_rng(0).permutation(len(X))


def checked_run(case, X, y):
    """The case's step (an EpochCase's epoch, in epoch_order) on X, y, once its agreement with the
    reference is checked, and after one untimed call (compilation, the dataset's preparation,
    first touch of buffers): what time_interleaved takes."""
    if isinstance(case, EpochCase):
        check_epoch_agreement(case, X, y)
        run = make_epoch(case, X, y, epoch_order(X))[1]
    else:
        check_agreement(case, X, y)
        run = make_step(case, X, y)[1]
    run()
    return run
