"""The numba backend against the numpy reference, stage by stage: probabilities, loss, every
gradient by name, parameters after 1 and 100 steps; and bit-identical results for 1 and 2 threads."""

import numba
import numpy as np
import pytest

import fastnet
from fastnet import config
from fastnet.config import TOLERANCES
from tests.helpers import random_problem

REF, FAST = fastnet.get_backend("numpy"), fastnet.get_backend("numba")


def assert_stages_agree(net, X, y, tol, ref_net=None):
    """Forward, loss/accuracy and every gradient of numba on ``net`` vs numpy on ``ref_net``."""
    ref_net = ref_net or net
    np.testing.assert_allclose(FAST.forward(net, X), REF.forward(ref_net, X), **tol, err_msg="probabilities")
    fast, ref = FAST.evaluate(net, X, y), REF.evaluate(ref_net, X, y)
    np.testing.assert_allclose(fast.loss, ref.loss, **tol, err_msg="loss")
    # float32 can flip an argmax whose top two probabilities tie to 7 digits: allow one sample
    assert abs(fast.accuracy - ref.accuracy) <= (0 if net.dtype == ref_net.dtype else 1 / len(y))
    for i, ((dW, db), (rW, rb)) in enumerate(zip(FAST.gradients(net, X, y), REF.gradients(ref_net, X, y))):
        np.testing.assert_allclose(dW, rW, **tol, err_msg=f"dW{i + 1}")
        np.testing.assert_allclose(db, rb, **tol, err_msg=f"db{i + 1}")


def assert_steps_agree(net, X, y, steps, tol, lr=0.1):
    fast, ref = net.copy(), net.copy()
    data = fastnet.Dataset(X, y, n_inputs=net.sizes[0], n_classes=net.sizes[-1])
    for s in range(steps):
        rf, rr = FAST.step(fast, data, lr=lr), REF.step(ref, data, lr=lr)
        np.testing.assert_allclose(rf.loss, rr.loss, **tol, err_msg=f"loss at step {s + 1}")
    for i, ((W, b), (rW, rb)) in enumerate(zip(fast.params, ref.params)):
        np.testing.assert_allclose(W, rW, **tol, err_msg=f"W{i + 1} after {steps} steps")
        np.testing.assert_allclose(b, rb, **tol, err_msg=f"b{i + 1} after {steps} steps")


# ------------------------------------------------------------------ real MNIST, float64

def test_float64_stages_on_the_seed_training_split(seed_split):
    net = fastnet.Network.init(seed=0)
    assert_stages_agree(net, seed_split.X_train, seed_split.y_train, TOLERANCES["float64"])


def test_float64_parameters_after_1_and_100_steps_on_mnist(seed_split):
    X, y = seed_split.X_train[:5000], seed_split.y_train[:5000]
    assert_steps_agree(fastnet.Network.init(seed=0), X, y, 1, TOLERANCES["float64"])
    assert_steps_agree(fastnet.Network.init(seed=0), X, y, 100, TOLERANCES["float64"])


# ------------------------------------------------------------------ awkward shapes, float64

ODD_CASES = {
    "N=37 (not a multiple of the chunk count)": (37, (784, 10, 10), "uint8", 0),
    "N=5 (fewer samples than chunks)": (5, (784, 10, 10), "uint8", 0),
    "N=1": (1, (784, 10, 10), "uint8", 0),
    "all-zero images among others": (40, (784, 10, 10), "uint8", 13),
    "only all-zero images": (9, (50, 7, 3), "uint8", 9),
    "float pixels": (33, (784, 10, 10), "float", 0),
    "hidden width 1": (29, (30, 1, 4), "uint8", 0),
    "hidden width 13, two hidden layers": (41, (64, 13, 9, 10), "float", 2),
    "hidden width 512": (23, (784, 512, 10), "uint8", 0),
    # the first layer runs 2, 3 or 4 vectors of units per pass (8 float32 or 4 float64 lanes each)
    "hidden width 20 (3 float32 vectors, 5 float64)": (31, (100, 20, 10), "uint8", 1),
    "hidden width 129 (a mostly padded last pass)": (17, (300, 129, 10), "uint8", 0),
    "three hidden layers": (19, (20, 16, 8, 5, 3), "uint8", 0),
    # MNIST-like: an odd number of dense pixels (the centre) and sparse ones (the edges)
    "dense and sparse pixels, a partial last block": (300, (57, 10, 10), "mixed", 3),
}


@pytest.fixture
def many_chunks(monkeypatch):
    """Blocks of 16 samples, chunks of one block: small N then really is split into up to N_CHUNKS
    chunks (the last block usually partial)."""
    monkeypatch.setattr(config, "MIN_CHUNK_SAMPLES", 1)
    monkeypatch.setattr(config, "BLOCK", 16)


@pytest.mark.parametrize("case", list(ODD_CASES))
def test_float64_stages_on_awkward_shapes(case, many_chunks):
    n, sizes, kind, zeros = ODD_CASES[case]
    X, y = random_problem(n, sizes, seed=n, kind=kind, zero_rows=zeros)
    net = fastnet.Network.init(sizes, seed=1)
    assert_stages_agree(net, X, y, TOLERANCES["float64"])
    assert_steps_agree(net, X, y, 3, TOLERANCES["float64"])


# ------------------------------------------------------------------ float32

def test_float32_numba_matches_float64_reference(seed_split):
    X, y = seed_split.X_train[:5000], seed_split.y_train[:5000]
    net64 = fastnet.Network.init(seed=0)
    assert_stages_agree(net64.astype("float32"), X, y, TOLERANCES["float32"], ref_net=net64)


def test_float32_awkward_shapes_match_float64_reference(many_chunks):
    for case in ("N=37 (not a multiple of the chunk count)", "hidden width 13, two hidden layers",
                 "dense and sparse pixels, a partial last block",
                 "hidden width 20 (3 float32 vectors, 5 float64)", "hidden width 129 (a mostly padded last pass)"):
        n, sizes, kind, zeros = ODD_CASES[case]
        X, y = random_problem(n, sizes, seed=n, kind=kind, zero_rows=zeros)
        net64 = fastnet.Network.init(sizes, seed=1)
        assert_stages_agree(net64.astype("float32"), X, y, TOLERANCES["float32"], ref_net=net64)


# ------------------------------------------------------------------ determinism

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bit_identical_for_one_and_two_threads(seed_split, dtype):
    X, y = seed_split.X_train[:7919], seed_split.y_train[:7919]
    data = fastnet.Dataset(X, y)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2, 1):
            FAST.set_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            net = fastnet.Network.init(seed=0, dtype=dtype)
            losses = [FAST.step(net, data, lr=0.1).loss for _ in range(20)]
            results.append((net.flat, losses))
    finally:
        numba.set_num_threads(before)
    for flat, losses in results[1:]:
        np.testing.assert_array_equal(flat, results[0][0])
        assert losses == results[0][1]


def test_threads_outside_the_pool_are_refused():
    with pytest.raises(ValueError, match="threads must be between 1 and"):
        FAST.set_threads(0)
    with pytest.raises(ValueError, match="threads must be between 1 and"):
        FAST.set_threads(numba.config.NUMBA_NUM_THREADS + 1)


# ------------------------------------------------------------------ kernel pieces

def test_vectorised_exp_is_accurate_over_the_whole_nonpositive_range():
    from fastnet.backends._numba_kernels import _exp_nonpositive

    x = np.concatenate([-np.linspace(0, 70, 10001), [-64.0, -64.5, -100.0, -745.0, -1000.0]])
    out = np.empty_like(x)
    _exp_nonpositive(out, x, len(x))
    np.testing.assert_allclose(out, np.exp(x), rtol=3e-14, atol=0)
    x32 = x.astype(np.float32)
    out32 = np.empty_like(x32)
    _exp_nonpositive(out32, x32, len(x32))
    np.testing.assert_allclose(out32, np.exp(x32.astype(np.float64)), rtol=2e-5, atol=1e-45)


def test_float64_agreement_with_saturated_softmax():
    sizes = (784, 10, 10)
    X, y = random_problem(45, sizes, seed=3)
    net = fastnet.Network.init(sizes, seed=2)
    net.flat *= 40  # logits hundreds apart: probabilities underflow, exp inputs far below -64
    assert_stages_agree(net, X, y, TOLERANCES["float64"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simd_vectors_compute_what_numpy_computes(dtype):
    from numba import njit

    from fastnet.backends._simd import lanes, vadd, vbroadcast, vfma, vload, vload4, vload_as, vsplat, vstore, vzero

    @njit
    def kernel(out, a, b, pixels, many, scalar):
        L = lanes(a)
        vstore(out, 0, vfma(vload(a, 0), vload(b, L), vzero(a)))  # a[:L] * b[L:2L]
        vstore(out, L, vadd(vload(a, L), vbroadcast(a, scalar)))  # a[L:2L] + scalar
        x = vload4(a, pixels, 1)  # pixels[1:5] as floats, lanes 0-3
        vstore(out, 2 * L, vsplat(x, 3))  # every lane = pixels[4]
        vstore(out, 3 * L, vload4(a, a, 0))  # float input: a[:4] unchanged in lanes 0-3
        vstore(out, 4 * L, vload_as(a, many, 3))  # many[3 : 3 + L] as floats

    rng = np.random.default_rng(0)
    L = 32 // np.dtype(dtype).itemsize
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
