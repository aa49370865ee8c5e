"""The numba backend's prepared features (fastnet.backends.numba.features): pixels split once per
dataset, block by block, into dense ones (stored as they are) and sparse ones (non-zero entries,
row by row), in either layout (each block its own dense pixels, or one set for all). Together they
must hold every pixel of X exactly once."""

import numpy as np
import pytest

from fastnet.backends.numba import flags
from fastnet.backends.numba.features import prepare_features, subset_features
from tests.helpers import random_problem

B = flags.pass_block(np.dtype(np.float32))  # the float32 features' block (two_kinds, the backend's)


def decode(f, D):
    """X (N, D) as float64, rebuilt from its features (row r holds sample f.order[r])."""
    N, B = f.n_samples, f.block
    rows = np.zeros((-(-N // B) * B, D))
    for blk in range(len(f.block_ptr) - 1):
        lo, hi = f.block_ptr[blk], f.block_ptr[blk + 1]
        rows[blk * B:(blk + 1) * B, f.pixels[lo:hi]] = f.dense[lo * B:hi * B].reshape(hi - lo, B).T
    rows[np.repeat(np.arange(N), np.diff(f.ptr)), f.idx] = f.val
    assert not rows[N:].any(), "a value past the last row"
    X = np.empty((N, D))
    X[f.order] = rows[:N]
    return X


def assert_sorted_by_entry_count(f, per_block):
    """f.order is a permutation and row_of its inverse, and the rows' numbers of sparse entries
    never decrease (within each block, if ``per_block``)."""
    np.testing.assert_array_equal(np.sort(f.order), np.arange(f.n_samples))
    np.testing.assert_array_equal(f.row_of[f.order], np.arange(f.n_samples))
    counts = np.diff(f.ptr)
    steps = np.diff(counts)
    if per_block:
        steps = np.delete(steps, np.arange(f.block - 1, len(steps), f.block))  # from one block to the next: any
    assert (steps >= 0).all(), "rows not sorted by their number of sparse entries"


def dense_sets(f):
    """Each block's dense pixels, as a list of arrays."""
    return [f.pixels[f.block_ptr[blk]:f.block_ptr[blk + 1]] for blk in range(len(f.block_ptr) - 1)]


CASES = {  # name: (N, D, kind, all-zero images)
    "MNIST-like: dense centre, sparse edges, a partial last block": (300, 57, "mixed", 3),
    "mostly zero": (37, 784, "uint8", 0),
    "one image": (1, 784, "uint8", 0),
    "only all-zero images": (9, 50, "uint8", 9),
    "float pixels (all dense)": (33, 40, "float", 0),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per_block", [True, False], ids=["per-block", "one-set"])
def test_features_hold_every_pixel_exactly_once(case, dtype, per_block):
    N, D, kind, zeros = CASES[case]
    X, _ = random_problem(N, (D, 1), seed=N, kind=kind, zero_rows=zeros)
    f = prepare_features(X, np.dtype(dtype), per_block)
    B = f.block
    assert B == flags.pass_block(np.dtype(dtype))
    rows = (X[f.order] != 0)
    for blk, pixels in enumerate(dense_sets(f)):
        block = rows[blk * B:(blk + 1) * B] if per_block else rows
        expected = np.flatnonzero(block.mean(axis=0) >= flags.DENSE_PIXEL_FRACTION)
        np.testing.assert_array_equal(pixels, expected, err_msg=f"block {blk}'s dense pixels")
        for r in range(blk * B, min((blk + 1) * B, N)):
            assert not np.isin(f.idx[f.ptr[r]:f.ptr[r + 1]], pixels).any(), "a dense pixel also stored sparsely"
    np.testing.assert_array_equal(f.slot_pixels[f.slots], f.pixels)
    np.testing.assert_array_equal(f.slot_pixels, np.unique(f.pixels))
    assert (f.val != 0).all(), "a zero stored sparsely"
    assert f.dense.shape == (len(f.pixels) * B,)
    assert f.dense.dtype == f.val.dtype == (np.uint8 if kind != "float" else dtype)
    np.testing.assert_array_equal(decode(f, D), X.astype(dtype) if kind == "float" else X)
    assert_sorted_by_entry_count(f, per_block)


def test_mnist_like_data_has_both_kinds_of_pixel():
    X, _ = random_problem(300, (57, 1), seed=0, kind="mixed")
    f = prepare_features(X, np.dtype(np.float32), per_block=False)
    assert len(f.slot_pixels) == 57 // 3 and len(f.slot_pixels) % 2 == 1  # an odd count: a lone last pixel too
    assert len(f.idx) > 0


def two_kinds():
    """4 blocks of images of two kinds, alternating: non-zero in pixels 0-19 or in 20-39."""
    N = 4 * B
    X = np.zeros((N, 40), np.uint8)
    rng = np.random.default_rng(0)
    X[0::2, :20] = rng.integers(1, 256, (N // 2, 20))
    X[1::2, 20:] = rng.integers(1, 256, (N // 2, 20))
    return X


def test_similar_samples_share_a_block():
    """In the given order every block holds both kinds, and all 40 pixels would be dense (half
    zeros); ordered by similarity, each block holds one kind and has only that kind's 20 pixels
    dense, and nothing is left sparse."""
    X = two_kinds()
    assert all(len(pixels) == 40 for pixels in dense_sets(prepare_features(X, np.dtype(np.float32), False)))
    f = prepare_features(X, np.dtype(np.float32))
    assert sorted(tuple(p) for p in dense_sets(f)) == [tuple(range(20))] * 2 + [tuple(range(20, 40))] * 2
    assert len(f.idx) == 0
    np.testing.assert_array_equal(decode(f, X.shape[1]), X)


def test_a_subset_holds_its_rows():
    X, _ = random_problem(300, (57, 1), seed=1, kind="mixed")
    f = prepare_features(X, np.dtype(np.float64), per_block=False)
    rows = np.random.default_rng(2).permutation(300)[:77]
    rows = np.r_[rows, rows[:5]]  # a sample twice, as a batch may hold it
    sub = subset_features(f, rows)
    assert all((pixels == f.slot_pixels).all() for pixels in dense_sets(sub))
    np.testing.assert_array_equal(decode(sub, 57), X[rows])
    assert_sorted_by_entry_count(sub, per_block=False)


def test_subsets_are_cut_only_from_one_set_of_dense_pixels():
    with pytest.raises(ValueError, match="one set of dense pixels"):
        subset_features(prepare_features(two_kinds(), np.dtype(np.float64)), np.arange(10))


@pytest.mark.parametrize("per_block", [True, False], ids=["per-block", "one-set"])
def test_samples_with_as_many_sparse_entries_keep_their_order(per_block):
    X = np.zeros((6, 6), np.uint8)
    X[:, 0] = 9  # a dense pixel; the others are non-zero in at most 2 of 6 samples: sparse
    X[[1, 4], 1:4] = 7  # three sparse entries
    X[[0, 3], 4] = X[5, 5] = 5  # one
    f = prepare_features(X, np.dtype(np.float32), per_block)
    np.testing.assert_array_equal(f.order, [2, 0, 3, 5, 1, 4])


@pytest.mark.parametrize("min_samples", [0, 4 * B + 1])
def test_the_backend_prepares_large_datasets_per_block_and_batches_in_one_set(monkeypatch, min_samples):
    """A dataset of flags.PER_BLOCK_MIN_SAMPLES samples or more gets each block's own dense pixels,
    a smaller one one set; a mini-batch of it (a subset) is cut from the one-set layout, prepared
    once for all its batches."""
    import fastnet
    from fastnet.backends.numba.backend import NumbaBackend

    monkeypatch.setattr(flags, "PER_BLOCK_MIN_SAMPLES", min_samples)
    backend, net = NumbaBackend(), fastnet.Network.init((40, 5, 2), seed=0, dtype="float32")
    data = fastnet.Dataset(two_kinds(), np.zeros(4 * B, np.int64), n_classes=2)
    whole = backend._features(net, data, None)[0]
    assert len({tuple(p) for p in dense_sets(whole)}) == (2 if len(data) >= min_samples else 1)
    batches = [backend._features(net, data.subset(np.arange(start, 4 * B, 3)), None)[0] for start in range(2)]
    for batch in batches:
        assert all((pixels == batch.slot_pixels).all() for pixels in dense_sets(batch))
        np.testing.assert_array_equal(batch.slot_pixels, np.arange(40))
    assert sum(key[-1] is False for key in data._prepared) == 1, "the one-set layout prepared more than once"
