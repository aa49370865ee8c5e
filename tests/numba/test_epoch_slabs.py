"""The numba epoch's threads keep their units' weights of layer 1 in slabs of their own (.epoch,
run_epoch): the slabs split the units into contiguous whole passes, and an epoch that changes
nothing (lr 0) gives back every weight bit for bit through them, on one thread or two."""

import math

import numpy as np
import pytest

import fastnet
from fastnet.backends.numba import sparse_pixels
from fastnet.backends.numba.epoch import part_units
from fastnet.backends.numba.vector import dtype_lane_count
from fastnet.backends.numba.workspace import padded_units


@pytest.mark.parametrize("hidden", [1, 10, 24, 64, 96, 200, 1024])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_slabs_are_contiguous_whole_passes_covering_every_unit(hidden, dtype):
    Hp = padded_units(hidden, np.dtype(dtype))
    passes = sparse_pixels.passes(Hp, dtype_lane_count(np.dtype(dtype)))
    width = Hp // passes
    for parts in range(1, min(passes, 3) + 1):  # the backend runs at most one thread per pass
        slabs = [part_units.py_func(Hp, width, part, parts) for part in range(parts)]
        assert slabs[0][0] == 0 and slabs[-1][1] == Hp
        assert all(a[1] == b[0] for a, b in zip(slabs, slabs[1:])), slabs
        sizes = [u1 - u0 for u0, u1 in slabs]
        assert all(size % width == 0 and size > 0 for size in sizes), sizes
        assert max(sizes) - min(sizes) <= width, sizes


@pytest.mark.parametrize("hidden, dtype", [(64, "float32"), (200, "float64")])
@pytest.mark.parametrize("threads", [1, 2])
def test_an_epoch_at_lr_0_gives_back_every_weight_bit_for_bit(hidden, dtype, threads, seed_split):
    """Through the backend's own epoch call (the public epoch refuses lr 0): the slabs are filled
    from the parameters and written back into them."""
    backend = fastnet.get_backend("numba")
    X, y = seed_split.X_train[:500], seed_split.y_train[:500]
    net = fastnet.Network.init((784, hidden, 10), seed=1, dtype=dtype)
    data = fastnet.Dataset(X, y)
    start = net.flat.copy()
    try:
        backend.set_threads(threads)
        result = backend._fused_epoch(net, data, data.y, 0.0, 64, np.arange(len(y)), None, math.inf, checked=False)
    finally:
        backend.set_threads(2)
    assert len(result.losses) == 8 and np.all(np.isfinite(result.losses))
    np.testing.assert_array_equal(net.flat, start)
