"""Helpers shared by tests and benchmarks."""

import numpy as np


def random_problem(n, sizes, seed, kind="uint8", zero_rows=0):
    """(X, y) of n samples for a network of these sizes: uint8 pixels (mostly zero, like MNIST)
    or floats in [0, 1]; the first ``zero_rows`` images are all zero."""
    rng = np.random.default_rng(seed)
    D, K = sizes[0], sizes[-1]
    if kind == "uint8":
        X = rng.integers(0, 256, (n, D)).astype(np.uint8)
        X[rng.random((n, D)) < 0.8] = 0
    else:
        X = rng.random((n, D))
    X[:zero_rows] = 0
    y = rng.integers(0, K, n)
    return X, y
