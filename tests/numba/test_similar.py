"""The similarity order of a dataset's samples (fastnet.backends.numba.similar): a permutation,
the same every time, that puts samples of the same kind next to each other."""

import numpy as np
import pytest

from fastnet.backends.numba.similar import similarity_order


@pytest.mark.parametrize("N", [0, 1, 2, 31, 300])
def test_the_order_is_a_permutation_and_the_same_every_time(N):
    X = np.random.default_rng(N).integers(0, 256, (N, 40), dtype=np.uint8)
    order = similarity_order(X)
    np.testing.assert_array_equal(np.sort(order), np.arange(N))
    np.testing.assert_array_equal(similarity_order(X.copy()), order)


def test_identical_samples_are_a_permutation_too():
    order = similarity_order(np.full((100, 20), 7, np.uint8))
    np.testing.assert_array_equal(np.sort(order), np.arange(100))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_samples_of_one_kind_end_up_together(dtype):
    """Three kinds of sample (non-zero in pixels 0-9, 10-19 or 20-29), shuffled: ordered, each kind
    is one run, so the kind changes exactly twice along the order."""
    rng = np.random.default_rng(0)
    kind = rng.integers(0, 3, 600)
    X = np.zeros((600, 30), dtype)
    for k in range(3):
        X[kind == k, 10 * k:10 * k + 10] = rng.integers(1, 256, ((kind == k).sum(), 10))
    assert np.count_nonzero(np.diff(kind[similarity_order(X)])) == 2


def test_wide_samples_need_no_pixels_by_pixels_matrix():
    """200,000 inputs: a covariance matrix of them would take 160 GB."""
    X = np.zeros((40, 200_000), np.uint8)
    X[:20, :5], X[20:, -5:] = 9, 9
    order = similarity_order(X)
    assert np.count_nonzero(np.diff(order < 20)) == 1
