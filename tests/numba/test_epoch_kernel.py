"""The numba backend's compiled epoch (.epoch): which batches it runs (those whose activations and
deltas fit flags.FUSED_EPOCH_MAX_BYTES; larger ones are stepped with the full-batch pass), and its
threads' slabs of layer 1's weights (run_epoch): contiguous whole passes covering every unit, which
give back every weight bit for bit through an epoch that changes nothing (lr 0), on one thread or
two."""

import math

import numpy as np
import pytest

import fastnet
from fastnet.backends.numba import flags, sparse_pixels
from fastnet.backends.numba.epoch import part_units
from fastnet.backends.numba.vector import dtype_lane_count
from fastnet.backends.numba.workspace import padded_units
from fastnet.tolerances import TOLERANCES


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


def test_whole_mnist_batches_run_compiled_at_hidden_10_and_are_stepped_at_hidden_1024():
    """At 784-10-10 a batch of all 59,000 images keeps 12 MB of activations and deltas; at
    784-1024-10, 245 MB, over the budget."""
    backend = fastnet.get_backend("numba")
    small, wide = (fastnet.Network.init((784, h, 10), seed=0, dtype="float32") for h in (10, 1024))
    assert backend._fuses(small, 59_000, 59_000)
    assert backend._fuses(small, 10**9, 100)  # a batch is at most the samples there are
    assert not backend._fuses(wide, 59_000, 59_000)
    assert backend._fuses(wide, 64, 59_000)


def test_a_stepped_epoch_gives_the_compiled_epochs_result(seed_split, monkeypatch):
    """The two ways of running an epoch agree (float64, the reference's tolerance): the budget
    only chooses how, never what."""
    backend = fastnet.get_backend("numba")
    X, y = seed_split.X_train[:3000], seed_split.y_train[:3000]
    data = fastnet.Dataset(X, y)
    order = np.random.default_rng(0).permutation(len(y))
    nets = []
    for budget in (flags.FUSED_EPOCH_MAX_BYTES, 0):
        monkeypatch.setattr(flags, "FUSED_EPOCH_MAX_BYTES", budget)
        net = fastnet.Network.init((784, 64, 10), seed=0)
        result = backend.epoch(net, data, lr=0.1, batch_size=2500, order=order)
        nets.append((net.flat, result.losses))
    np.testing.assert_allclose(nets[0][1], nets[1][1], **TOLERANCES["float64"], err_msg="losses")
    np.testing.assert_allclose(nets[0][0], nets[1][0], **TOLERANCES["float64"], err_msg="parameters")
