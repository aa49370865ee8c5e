"""Layer 1's kernels one by one against a numpy expression (as llm.c checks each kernel alone
against its CPU reference): the weights gathered pixel-major, the dense-pixel and sparse-pixel
parts of the forward and backward pass, and the whole layer, on one block of samples, in buffers
laid out by Workspace. Widths cover 1, 2, 3 and 4 vectors of units per pass (1 and 2 by the
inlined narrow loops, sparse_pixels.SAMPLE_TILE), partial unit tiles and partial blocks."""

import numpy as np
import pytest

import fastnet
from fastnet.backends.numba import dense_pixels, first_layer, sparse_pixels
from fastnet.backends.numba.features import prepare_features
from fastnet.backends.numba.workspace import Workspace
from tests.helpers import random_problem

D = 57
WIDTHS = [1, 5, 13, 20, 37, 129]
# (block, samples): a whole block (None), and a partial second one
CASES = [(H, dtype, blk, nb) for H in WIDTHS for dtype in ("float32", "float64") for blk, nb in ((0, None), (1, 37))]
TOL = {"float32": dict(rtol=2e-5, atol=1e-3), "float64": dict(rtol=1e-12, atol=1e-10)}


class Block:
    """Block ``blk`` (of nb samples, None: a whole block) of a dataset of blk * B + nb mixed uint8
    images, prepared for a D-H-3 network; X the block's pixels as floats, W1 and b1 the layer's
    parameters."""

    def __init__(self, H, dtype, blk, nb):
        self.sizes, self.dtype = (D, H, 3), np.dtype(dtype)
        self.ws = Workspace(self.sizes, self.dtype)
        self.B = self.ws.buffers.acts.shape[2]
        nb = self.B if nb is None else nb
        X, _ = random_problem(blk * self.B + nb, self.sizes, seed=H + nb, kind="mixed", zero_rows=1)
        self.features = prepare_features(X, self.dtype)
        f = self.features
        lo, hi = f.block_ptr[blk], f.block_ptr[blk + 1]
        self.dense, self.base = f.dense, lo * self.B  # the block's dense values start at base
        self.dp, self.slots = f.pixels[lo:hi], f.slots[lo:hi]  # its dense pixels, and their slots
        assert 0 < len(self.dp) < D, "the block must have both kinds of pixel"
        self.net = fastnet.Network.init(self.sizes, seed=H, dtype=dtype)
        (self.W1, self.b1), _ = self.net.params
        self.X = X[self.features.order][blk * self.B:].astype(np.float64)  # (nb, D): the block's rows
        self.sparse_X = self.X.copy()
        self.sparse_X[:, self.dp] = 0
        self.blk, self.nb, self.H = blk, nb, H
        b = self.ws.buffers
        self.W1T, self.Hp = b.W1T, b.Hp
        self.W1U = b.W1U
        first_layer.gather_weights(self.W1T, self.Hp, self.W1U, self.net.flat, b.layers)
        self.acts = np.zeros(b.acts.shape[1:], self.dtype)
        self.deltas = np.zeros(b.deltas.shape[1:], self.dtype)
        self.deltas[:H, :nb] = np.random.default_rng(nb).standard_normal((H, nb))
        self.scale = float(self.features.scale)
        # the sparse kernels' scratch, as the workspace lays it out, full of what a previous block left
        self.scratch = np.random.default_rng(H).standard_normal(b.unit_sums.shape[1:]).astype(self.dtype)

    def w1t(self, flat_w1t):
        """A pixel-major (D * Hp,) W1 gradient as (H, D)."""
        return flat_w1t.reshape(D, self.Hp)[:, :self.H].T


@pytest.fixture(params=CASES, ids=lambda c: f"H{c[0]}-{c[1]}-block{c[2]}-nb{c[3] or 'B'}")
def block(request):
    return Block(*request.param)


def test_gather_weights_is_w1_transposed_and_padded_with_zeros(block):
    W1T = block.W1T[:D * block.Hp].reshape(D, block.Hp)
    np.testing.assert_array_equal(W1T[:, :block.H], block.W1.T)
    assert not W1T[:, block.H:].any()


def test_gather_weights_by_tile_of_units_too_padded_with_zeros(block):
    tiles = block.W1U.reshape(-1, D, dense_pixels.UNIT_TILE)  # (tile, pixel, unit in the tile)
    units = tiles.transpose(0, 2, 1).reshape(-1, D)  # (unit, pixel)
    np.testing.assert_array_equal(units[:block.H], block.W1)
    assert not units[block.H:].any() and len(units) == dense_pixels.tiled_units(block.H)


def test_dense_pixels_forward(block):
    b = block
    dense_pixels.forward(b.acts, b.nb, b.dense, b.base, b.dp, b.W1U, D, b.H)
    expected = b.W1[:, b.dp].astype(np.float64) @ b.X[:, b.dp].T  # unscaled
    np.testing.assert_allclose(b.acts[:b.H, :b.nb], expected, **TOL[b.dtype.name])


def test_sparse_pixels_forward(block):
    b = block
    f = b.features
    sparse_pixels.forward(b.acts, b.scratch, b.blk * b.B, b.nb, f.ptr, f.idx, f.val, b.W1T, b.Hp, b.H)
    np.testing.assert_allclose(b.acts[:b.H, :b.nb], b.W1.astype(np.float64) @ b.sparse_X.T, **TOL[b.dtype.name])
    assert not b.acts[b.H:].any() and not b.acts[:, b.nb:].any(), "padding units and absent samples got non-zero sums"


def test_first_layer_forward_is_relu_of_scaled_sum_plus_bias(block):
    b = block
    first_layer.forward(b.acts, b.scratch, b.blk, b.nb, b.features, b.W1T, b.Hp, b.W1U, b.net.flat,
                        b.ws.buffers.layers)
    expected = np.maximum(b.scale * (b.W1.astype(np.float64) @ b.X.T) + b.b1[:, None], 0)
    np.testing.assert_allclose(b.acts[:b.H, :b.nb], expected, **TOL[b.dtype.name])


def test_dense_pixels_backward_then_fold(block):
    b = block
    slot_pixels = b.features.slot_pixels
    lane_sums = np.zeros(dense_pixels.lane_sums_size(len(slot_pixels), b.H, b.ws.lanes), b.dtype)
    dense_pixels.backward(lane_sums, b.nb, b.dense, b.base, b.slots, b.deltas, b.H)
    before = np.random.default_rng(1).standard_normal(D * b.Hp).astype(b.dtype)  # the sparse pixels' part, say
    w1t_grad = before.copy()
    dense_pixels.fold_lane_sums(w1t_grad, b.Hp, lane_sums, slot_pixels, b.H, b.dtype.type(b.scale))
    added = b.w1t(w1t_grad).astype(np.float64) - b.w1t(before)  # the fold adds, it does not overwrite
    expected = b.scale * b.deltas[:b.H, :b.nb].astype(np.float64) @ b.X[:, b.dp]
    np.testing.assert_allclose(added[:, b.dp], expected, **TOL[b.dtype.name])
    np.testing.assert_array_equal(np.delete(b.w1t(w1t_grad), b.dp, axis=1), np.delete(b.w1t(before), b.dp, axis=1),
                                  err_msg="a row of a pixel not dense in the block changed")


def test_sparse_pixels_backward(block):
    b = block
    w1t_grad = np.zeros(D * b.Hp, b.dtype)
    f = b.features
    b.deltas[b.H:] = 1  # the next layers' deltas, which must not leak into layer 1's gradient
    sparse_pixels.backward(w1t_grad, b.scratch, b.blk * b.B, b.nb, b.deltas, f.ptr, f.idx, f.val, b.Hp, b.H, f.scale)
    expected = b.scale * b.deltas[:b.H, :b.nb].astype(np.float64) @ b.sparse_X
    np.testing.assert_allclose(b.w1t(w1t_grad), expected, **TOL[b.dtype.name])
    assert not w1t_grad.reshape(D, b.Hp)[:, b.H:].any(), "the next layers' deltas leaked into the padding units"


def test_first_layer_backward_gives_w1_and_b1_gradients(block):
    b = block
    f = b.features
    buffers = b.ws.for_pass(len(f.slot_pixels))
    flat_grad, w1t_grad = np.zeros_like(b.net.flat), np.zeros(D * b.Hp, b.dtype)
    lane_sums = np.zeros_like(buffers.lane_sums[0])
    first_layer.backward(flat_grad, w1t_grad, lane_sums, b.scratch, b.blk, b.nb, b.deltas, f, b.Hp, buffers.layers)
    dense_pixels.fold_lane_sums(w1t_grad, b.Hp, lane_sums, f.slot_pixels, b.H, f.scale)
    deltas = b.deltas[:b.H, :b.nb].astype(np.float64)
    np.testing.assert_allclose(b.w1t(w1t_grad), b.scale * deltas @ b.X, **TOL[b.dtype.name], err_msg="dW1")
    (_, db1), _ = fastnet.network.unflatten(flat_grad, b.sizes)
    np.testing.assert_allclose(db1, deltas.sum(axis=1), **TOL[b.dtype.name], err_msg="db1")
