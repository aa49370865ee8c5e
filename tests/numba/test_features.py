"""The numba backend's prepared features (fastnet.backends.numba.features): pixels split once per
dataset into dense ones (stored as they are, block by block) and sparse ones (non-zero entries, row
by row). Together they must hold every pixel of X exactly once."""

import numpy as np
import pytest

from fastnet.backends.numba import flags
from fastnet.backends.numba.features import prepare_features, subset_features
from tests.helpers import random_problem


def decode(f, D):
    """X (N, D) as float64, rebuilt from its features (row r holds sample f.order[r])."""
    N = f.n_samples
    rows = np.zeros((N, D))
    blocks, P, B = f.dense.shape
    rows[:, f.dense_pixels] = f.dense.transpose(0, 2, 1).reshape(blocks * B, P)[:N]
    rows[np.repeat(np.arange(N), np.diff(f.ptr)), f.idx] = f.val
    X = np.empty_like(rows)
    X[f.order] = rows
    return X


def assert_sorted_by_entry_count(f):
    """f.order is a permutation and row_of its inverse, and the rows' numbers of sparse entries
    never decrease."""
    np.testing.assert_array_equal(np.sort(f.order), np.arange(f.n_samples))
    np.testing.assert_array_equal(f.row_of[f.order], np.arange(f.n_samples))
    assert (np.diff(np.diff(f.ptr)) >= 0).all(), "rows not sorted by their number of sparse entries"


CASES = {  # name: (N, D, kind, all-zero images)
    "MNIST-like: dense centre, sparse edges, a partial last block": (300, 57, "mixed", 3),
    "mostly zero": (37, 784, "uint8", 0),
    "one image": (1, 784, "uint8", 0),
    "only all-zero images": (9, 50, "uint8", 9),
    "float pixels (all dense)": (33, 40, "float", 0),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_features_hold_every_pixel_exactly_once(case, dtype):
    N, D, kind, zeros = CASES[case]
    X, _ = random_problem(N, (D, 1), seed=N, kind=kind, zero_rows=zeros)
    f = prepare_features(X, np.dtype(dtype))
    density = (X != 0).mean(axis=0)
    np.testing.assert_array_equal(f.dense_pixels, np.flatnonzero(density >= flags.DENSE_PIXEL_FRACTION))
    assert not np.isin(f.idx, f.dense_pixels).any(), "a dense pixel also stored sparsely"
    assert (f.val != 0).all(), "a zero stored sparsely"
    assert f.dense.shape == (-(-N // flags.BLOCK), len(f.dense_pixels), flags.BLOCK)
    assert f.dense.dtype == f.val.dtype == (np.uint8 if kind != "float" else dtype)
    np.testing.assert_array_equal(decode(f, D), X.astype(dtype) if kind == "float" else X)
    assert_sorted_by_entry_count(f)


def test_mnist_like_data_has_both_kinds_of_pixel():
    X, _ = random_problem(300, (57, 1), seed=0, kind="mixed")
    f = prepare_features(X, np.dtype(np.float32))
    assert len(f.dense_pixels) == 57 // 3 and len(f.dense_pixels) % 2 == 1  # an odd count: a lone last pixel too
    assert len(f.idx) > 0


def test_a_subset_holds_its_rows():
    X, _ = random_problem(300, (57, 1), seed=1, kind="mixed")
    f = prepare_features(X, np.dtype(np.float64))
    rows = np.random.default_rng(2).permutation(300)[:77]
    rows = np.r_[rows, rows[:5]]  # a sample twice, as a batch may hold it
    sub = subset_features(f, rows)
    np.testing.assert_array_equal(sub.dense_pixels, f.dense_pixels)
    np.testing.assert_array_equal(decode(sub, 57), X[rows])
    assert_sorted_by_entry_count(sub)


def test_samples_with_as_many_sparse_entries_keep_their_order():
    X = np.zeros((6, 6), np.uint8)
    X[:, 0] = 9  # a dense pixel; the others are non-zero in at most 2 of 6 samples: sparse
    X[[1, 4], 1:4] = 7  # three sparse entries
    X[[0, 3], 4] = X[5, 5] = 5  # one
    f = prepare_features(X, np.dtype(np.float32))
    np.testing.assert_array_equal(f.order, [2, 0, 3, 5, 1, 4])
