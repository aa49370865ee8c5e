"""Helpers shared by tests and benchmarks."""

import os
from pathlib import Path

import numpy as np

REFERENCE = "numpy"  # the backend that defines what is correct; every other one is compared with it
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def backends_under_test():
    """Every registered backend, or those named in $FASTNET_TEST_BACKENDS (comma-separated)."""
    import fastnet

    chosen = os.environ.get("FASTNET_TEST_BACKENDS")
    return chosen.split(",") if chosen else fastnet.available_backends()


def real_mnist_dir(folder):
    """A folder with the real MNIST: ``folder`` filled with links to the shared official copy (so
    caches land there, not in the read-only share), else the data directory if it holds MNIST
    (say, fetched by `python -m fastnet.train`), else None."""
    from fastnet.data import data_dir, find_source

    if SHARED_MNIST.is_dir():
        for f in SHARED_MNIST.glob("*.gz"):
            os.symlink(f, Path(folder) / f.name)
        return Path(folder)
    root = data_dir()
    return root if find_source(root, "train") else None


def random_problem(n, sizes, seed, kind="uint8", zero_rows=0):
    """(X, y) of n samples for a network of these sizes: uint8 pixels (mostly zero, like MNIST),
    "mixed" uint8 pixels (the first D // 3 non-zero 90% of the time, the others 10%, like MNIST's
    centre and edges) or floats in [0, 1]; the first ``zero_rows`` images are all zero."""
    rng = np.random.default_rng(seed)
    D, K = sizes[0], sizes[-1]
    if kind == "uint8":
        X = rng.integers(0, 256, (n, D)).astype(np.uint8)
        X[rng.random((n, D)) < 0.8] = 0
    elif kind == "mixed":
        X = rng.integers(1, 256, (n, D)).astype(np.uint8)
        X[rng.random((n, D)) > np.where(np.arange(D) < D // 3, 0.9, 0.1)] = 0
    else:
        X = rng.random((n, D))
    X[:zero_rows] = 0
    y = rng.integers(0, K, n)
    return X, y
