"""The vector extension (fastnet.backends.numba.vector), each operation against numpy."""

import numpy as np
import pytest
from numba import njit

from fastnet.backends.numba.vector import (dtype_lane_count, lane_count, vadd, vbroadcast, vfma, vload, vload4,
                                           vload_as, vsplat, vstore, vzero)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectors_compute_what_numpy_computes(dtype):
    @njit
    def kernel(out, a, b, pixels, many, scalar):
        lanes = lane_count(a)
        vstore(out, 0, vfma(vload(a, 0), vload(b, lanes), vzero(a)))  # a[:lanes] * b[lanes:2 lanes]
        vstore(out, lanes, vadd(vload(a, lanes), vbroadcast(a, scalar)))  # a[lanes:2 lanes] + scalar
        x = vload4(a, pixels, 1)  # pixels[1:5] as floats, lanes 0-3
        vstore(out, 2 * lanes, vsplat(x, 3))  # every lane = pixels[4]
        vstore(out, 3 * lanes, vload4(a, a, 0))  # float input: a[:4] unchanged in lanes 0-3
        vstore(out, 4 * lanes, vload_as(a, many, 3))  # many[3 : 3 + lanes] as floats

    rng = np.random.default_rng(0)
    L = dtype_lane_count(np.dtype(dtype))
    assert L == 32 // np.dtype(dtype).itemsize
    a, b = rng.random(2 * L).astype(dtype), rng.random(2 * L).astype(dtype)
    pixels = np.array([9, 200, 0, 17, 255, 3], np.uint8)
    out = np.zeros(5 * L, dtype)
    many = np.arange(250, 250 - 2 * L, -1).astype(np.uint8)
    kernel(out, a, b, pixels, many, 7)
    np.testing.assert_allclose(out[:L], a[:L] * b[L:], rtol=1e-6)
    np.testing.assert_array_equal(out[L:2 * L], a[L:] + dtype(7))
    np.testing.assert_array_equal(out[2 * L:3 * L], np.full(L, 255, dtype))
    np.testing.assert_array_equal(out[3 * L:3 * L + 4], a[:4])
    np.testing.assert_array_equal(out[4 * L:], many[3:3 + L].astype(dtype))
