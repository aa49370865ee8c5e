"""The vector extension (fastnet.backends.numba.vector), each operation against numpy; and the
vectors' width, which follows the CPU Numba compiles for."""

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit
from numba.core import config

from fastnet.backends.numba import vector
from fastnet.backends.numba.vector import (dtype_lane_count, lane_count, vadd, vadd_transposed, vbroadcast, vfma, vload,
                                           vload4, vload_as, vsplat, vstore, vstore_transposed, vsum_lanes,
                                           vzero)

def numba_compiles_for_avx512():
    from numba.core.registry import cpu_target

    return "+avx512f" in cpu_target.target_context.codegen().magic_tuple()[2].split(",")  # what Numba compiles for


LANES = {np.float32: 16, np.float64: 8} if numba_compiles_for_avx512() else {np.float32: 8, np.float64: 4}


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
    assert L == LANES[dtype]
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiles_move_transposed_and_touch_nothing_else(dtype):
    @njit
    def kernel(added, stored, src, r, c, s, t, scale):
        vadd_transposed(added, r, c, src, s, t)
        vstore_transposed(stored, r, c, src, s, t, scale)

    rng = np.random.default_rng(1)
    L = dtype_lane_count(np.dtype(dtype))
    src = rng.standard_normal((L + 3, L + 5)).astype(dtype)
    added, stored = rng.standard_normal((2, L + 2, 2 * L)).astype(dtype)
    r, c, s, t = 1, L - 1, 2, 3  # tiles away from every edge and from the vectors' alignment
    want_added, want_stored = added.copy(), stored.copy()
    want_added[r:r + L, c:c + L] += src[s:s + L, t:t + L].T
    want_stored[r:r + L, c:c + L] = src[s:s + L, t:t + L].T * dtype(0.5)
    kernel(added, stored, src, r, c, s, t, dtype(0.5))
    np.testing.assert_array_equal(added, want_added)
    np.testing.assert_array_equal(stored, want_stored)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lanes_of_consecutive_vectors_are_added_up_one_sum_per_lane(dtype):
    @njit
    def kernel(out, a, i):
        vstore(out, 1, vsum_lanes(a, i))

    L = dtype_lane_count(np.dtype(dtype))
    a = np.random.default_rng(2).standard_normal(L * L + 9).astype(dtype)
    out = np.zeros(L + 2, dtype)
    kernel(out, a, 5)  # away from the vectors' alignment
    rows = a[5:5 + L * L].astype(np.float64).reshape(L, L)
    # a sum of L values in any order is within L * eps * (the sum of their magnitudes) of the exact one
    bound = L * np.finfo(dtype).eps * np.abs(rows).sum(axis=1)
    assert np.all(np.abs(out[1:L + 1] - rows.sum(axis=1)) <= bound)
    assert out[0] == out[L + 1] == 0


def test_vectors_are_512_bits_exactly_where_numbas_target_has_avx512():
    assert vector.VECTOR_BITS == (512 if numba_compiles_for_avx512() else 256)


# an explicit +avx512f decides (other AVX-512 extensions imply it in LLVM, but do not count here:
# 256 bits are never wrong); "" is Numba's setting for NUMBA_CPU_NAME=generic
@pytest.mark.parametrize("features, wide", [("+avx2,+avx512f,+fma", True), ("+avx2,-avx512f,+fma", False),
                                            ("+avx2,+avx512fp16", False), ("", False)])
def test_numba_cpu_features_decide_the_width(monkeypatch, features, wide):
    monkeypatch.setattr(config, "CPU_FEATURES", features)
    assert vector._compiles_for_avx512() is wide


# The 256-bit layouts on a host with AVX-512, where Numba is told to compile without it (as for a
# cache shared with older CPUs): 8 and 4 lanes, and the same results as the reference.
AT_256_BITS = """
import numpy as np
import fastnet
from fastnet.backends.numba.vector import dtype_lane_count
from fastnet.tolerances import TOLERANCES
from tests.agreement import assert_awkward_case_agrees, assert_float32_awkward_cases_agree
from tests.helpers import random_problem
assert dtype_lane_count(np.dtype("float32")) == 8 and dtype_lane_count(np.dtype("float64")) == 4
numba = fastnet.get_backend("numba")
for case in ["hidden width 20 (3 vectors of 8 lanes, 5 of 4)", "dense and sparse pixels, a partial last block"]:
    assert_awkward_case_agrees(numba, case)
assert_float32_awkward_cases_agree(numba)
X, y = random_problem(300, (57, 24, 10), seed=5, kind="mixed")
order = np.random.default_rng(0).permutation(300)
for dtype in ["float64", "float32"]:
    net = fastnet.Network.init((57, 24, 10), seed=1, dtype=dtype)
    ref = fastnet.Network.init((57, 24, 10), seed=1)
    numba.epoch(net, X, y, lr=0.1, batch_size=32, order=order)
    fastnet.get_backend("numpy").epoch(ref, X, y, lr=0.1, batch_size=32, order=order)
    np.testing.assert_allclose(net.flat, ref.flat, **TOLERANCES[dtype])
"""


@pytest.mark.skipif(vector.VECTOR_BITS != 512, reason="Numba compiles for a CPU without AVX-512 here: "
                    "the 256-bit vectors are the ones every other test runs")
def test_256_bit_vectors_on_an_avx512_host_agree_with_the_reference():
    features = vector.get_host_cpu_features().split(",")
    without = ",".join("-" + f[1:] if f.startswith("+avx512") else f for f in features)
    env = dict(os.environ, NUMBA_CPU_FEATURES=without)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", AT_256_BITS], capture_output=True, text=True, env=env, cwd=root,
                          timeout=900)
    assert done.returncode == 0, done.stderr
