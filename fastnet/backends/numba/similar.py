"""An order of a dataset's samples in which similar ones are neighbours, so that the samples of a
block (flags.pass_block consecutive ones) share most of their non-zero pixels (see .features).

k-means on the samples' leading principal components: the components and the centres come from
an evenly spaced subsample of at most SUBSAMPLE rows, every sample is assigned to its nearest
centre, and the clusters are laid out by their centres' first component, each cluster's samples
by their own. No random numbers; ~60 ms on MNIST's 59,000 images. The projections are float32
products, whose last bits may differ with another BLAS or CPU: there, near-ties may be ordered
differently, which changes the order in which a pass sums, never what it computes.
"""

from __future__ import annotations

import numpy as np

SUBSAMPLE = 2048  # rows the components and centres are fitted on, at most
COMPONENTS = 16  # principal components the samples are compared on
CLUSTERS = 32  # k-means centres
ITERATIONS = 10  # k-means (Lloyd) iterations on the subsample, and power iterations for the components
# Rows converted to float32 at a time when projecting: 2048 MNIST rows (6 MiB) stay in cache for the
# product; 8192 at a time took ~2x as long (measured).
ROWS_AT_ONCE = 2048


def similarity_order(X):
    """A permutation of X's rows (N, D) that puts similar rows next to each other."""
    N = len(X)
    if N <= 1:
        return np.arange(N)
    sample = X[::-(-N // SUBSAMPLE)].astype(np.float32)
    mean = sample.mean(axis=0)
    sample -= mean
    axes = _leading_components(sample, min(COMPONENTS, *sample.shape))
    projected = np.empty((N, axes.shape[1]), np.float32)
    for start in range(0, N, ROWS_AT_ONCE):
        projected[start:start + ROWS_AT_ONCE] = X[start:start + ROWS_AT_ONCE].astype(np.float32) @ axes
    projected -= mean @ axes
    centres = _kmeans((sample @ axes).astype(np.float64), min(CLUSTERS, len(sample)))
    cluster = _nearest(projected.astype(np.float64), centres)
    rank = np.argsort(np.argsort(centres[:, 0], kind="stable"), kind="stable")
    return np.lexsort((projected[:, 0], rank[cluster]))


def _leading_components(centred, k):
    """(D, k): an orthonormal basis of the k leading principal axes of ``centred`` (n, D; rows
    centred), by subspace iteration, started from k of its rows (coordinate axes could be pixels
    that are always zero). The covariance is never formed: D x D would not fit for wide inputs."""
    basis = centred[np.linspace(0, len(centred) - 1, k).astype(np.int64)].T
    for _ in range(ITERATIONS):
        basis = np.linalg.qr(centred.T @ (centred @ basis))[0]
    return basis


def _nearest(points, centres):
    """The index of the nearest centre of each point."""
    distances = (centres ** 2).sum(axis=1) - 2 * points @ centres.T  # + |point|^2, the same for every centre
    return distances.argmin(axis=1)


def _kmeans(points, k):
    """k centres of ``points`` by Lloyd's iterations, started from k evenly spaced points."""
    centres = points[np.linspace(0, len(points) - 1, k).astype(np.int64)].copy()
    for _ in range(ITERATIONS):
        cluster = _nearest(points, centres)
        sums = np.zeros_like(centres)
        np.add.at(sums, cluster, points)
        counts = np.bincount(cluster, minlength=k)
        kept = counts > 0  # an empty cluster keeps its centre
        centres[kept] = sums[kept] / counts[kept, None]
    return centres
