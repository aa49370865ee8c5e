"""The numba backend's compiled epoch (.epoch): which batches it runs (those whose activations and
deltas fit flags.FUSED_EPOCH_MAX_BYTES; larger ones are stepped with the full-batch pass, with the
same results), and its threads' slabs of layer 1's weights (run_epoch): contiguous whole shares
(epoch.share_width) covering every unit, left in the W1T buffer, which the next pass gathers
pixel-major again. (That one thread and two give the same bits: tests/test_epoch.py.)"""

import numba
import numpy as np
import pytest

import fastnet
from fastnet.backends.numba import first_layer, flags
from fastnet.backends.numba.epoch import part_units, share_width
from fastnet.backends.numba.vector import dtype_lane_count
from fastnet.backends.numba.workspace import padded_units
from fastnet.tolerances import TOLERANCES


@pytest.mark.parametrize("hidden", [1, 10, 16, 24, 32, 64, 96, 200, 1024])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_slabs_are_contiguous_whole_shares_covering_every_unit(hidden, dtype):
    lanes = dtype_lane_count(np.dtype(dtype))
    Hp = padded_units(hidden, np.dtype(dtype))
    width = share_width(Hp, lanes)
    assert Hp % width == 0 and width // lanes in (1, 2, 3, 4)  # a pass of sparse_pixels.sum_rows
    if Hp in (2 * lanes, 4 * lanes):  # one full-batch pass of 2 or 4 vectors, cut in two shares for two threads
        assert width == Hp // 2
    for parts in range(1, min(Hp // width, 3) + 1):  # the backend runs at most one thread per share
        slabs = [part_units.py_func(Hp, width, part, parts) for part in range(parts)]
        assert slabs[0][0] == 0 and slabs[-1][1] == Hp
        assert all(a[1] == b[0] for a, b in zip(slabs, slabs[1:])), slabs
        sizes = [u1 - u0 for u0, u1 in slabs]
        assert all(size % width == 0 and size > 0 for size in sizes), sizes
        assert max(sizes) - min(sizes) <= width, sizes


def test_a_pass_after_an_epoch_gathers_w1_pixel_major_again_with_zero_padding(seed_split):
    """An epoch on two threads leaves its slabs in the W1T buffer (784-100-10 float32: 128 units
    padded, two slabs of 64, the second holding units 64..99 where the pixel-major layout has
    padding); the next gather writes every unit, the padding units as zeros again."""
    backend = fastnet.get_backend("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two worker threads")
    X, y = seed_split.X_train[:500], seed_split.y_train[:500]
    net = fastnet.Network.init((784, 100, 10), seed=1, dtype="float32")
    try:
        backend.set_threads(2)
        backend.epoch(net, fastnet.Dataset(X, y), lr=0.1, batch_size=64, order=np.arange(len(y)))
    finally:
        backend.set_threads(numba.config.NUMBA_NUM_THREADS)  # the backend's default
    b = backend._workspace(net).buffers
    assert b.W1T.reshape(784, b.Hp)[:, 100:].any(), "the slabs no longer fill the padding: test the new layout"
    first_layer.gather_weights(b.W1T, b.Hp, b.W1U, net.flat, b.layers)
    W1T = b.W1T.reshape(784, b.Hp)
    np.testing.assert_array_equal(W1T[:, :100], net.params[0][0].T)
    assert not W1T[:, 100:].any()


def test_whole_mnist_batches_run_compiled_at_hidden_10_and_are_stepped_at_hidden_1024():
    """At 784-10-10 a batch of all 59,000 images keeps 12 MB of activations and deltas; at
    784-1024-10, 490 MB, over the budget."""
    backend = fastnet.get_backend("numba")
    small, wide = (fastnet.Network.init((784, h, 10), seed=0, dtype="float32") for h in (10, 1024))
    assert backend._fuses(small, 59_000)
    assert not backend._fuses(wide, 59_000)
    assert backend._fuses(wide, 64)


def test_a_stepped_epoch_gives_the_compiled_epochs_result(seed_split, monkeypatch):
    """The two ways of running an epoch agree (float64, the reference's tolerance): the budget
    only chooses how, never what."""
    backend = fastnet.get_backend("numba")
    X, y = seed_split.X_train[:3000], seed_split.y_train[:3000]
    data = fastnet.Dataset(X, y)
    order = np.random.default_rng(0).permutation(len(y))
    nets = []
    assert backend._fuses(fastnet.Network.init((784, 64, 10)), 2500), "the first epoch must run compiled"
    for budget in (flags.FUSED_EPOCH_MAX_BYTES, 0):
        monkeypatch.setattr(flags, "FUSED_EPOCH_MAX_BYTES", budget)
        net = fastnet.Network.init((784, 64, 10), seed=0)
        result = backend.epoch(net, data, lr=0.1, batch_size=2500, order=order)
        nets.append((net.flat, result.losses))
    np.testing.assert_allclose(nets[0][1], nets[1][1], **TOLERANCES["float64"], err_msg="losses")
    np.testing.assert_allclose(nets[0][0], nets[1][0], **TOLERANCES["float64"], err_msg="parameters")
