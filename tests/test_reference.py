"""The numpy reference is checked against finite differences: it is what everything else matches."""

import numpy as np
import pytest

import fastnet
from fastnet.backends.numpy_backend import log_softmax
from fastnet.tolerances import TOLERANCES
from tests.helpers import REFERENCE, random_problem

EPS = 1e-6  # central-difference step in float64


def numerical_gradient(net, X, y):
    backend = fastnet.get_backend(REFERENCE)
    grad = np.zeros_like(net.flat)
    for p in range(net.flat.size):
        saved = net.flat[p]
        net.flat[p] = saved + EPS
        up = backend.evaluate(net, X, y).loss
        net.flat[p] = saved - EPS
        down = backend.evaluate(net, X, y).loss
        net.flat[p] = saved
        grad[p] = (up - down) / (2 * EPS)
    return grad


@pytest.mark.parametrize("sizes", [(6, 3), (6, 5, 3), (6, 5, 4, 3), (7, 4, 4, 4, 2)])
@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_gradients_match_finite_differences(sizes, kind):
    X, y = random_problem(9, sizes, seed=len(sizes), kind=kind)
    net = fastnet.Network.init(sizes, seed=1, init="he")
    net.flat += 0.01  # biases off zero so no ReLU sits exactly on its kink
    analytic = np.concatenate([g.ravel() for pair in fastnet.get_backend(REFERENCE).gradients(net, X, y)
                               for g in pair])
    np.testing.assert_allclose(analytic, numerical_gradient(net, X, y), **TOLERANCES["gradcheck"])


def test_float32_gradients_agree_with_float64():
    sizes = (20, 8, 5)
    X, y = random_problem(30, sizes, seed=2)
    net64 = fastnet.Network.init(sizes, seed=0)
    backend = fastnet.get_backend(REFERENCE)
    g64 = backend.gradients(net64, X, y)
    g32 = backend.gradients(net64.astype("float32"), X, y)
    for i, ((a, b), (c, d)) in enumerate(zip(g64, g32)):
        assert c.dtype == np.float32
        np.testing.assert_allclose(c, a, **TOLERANCES["float32"], err_msg=f"dW{i + 1}")
        np.testing.assert_allclose(d, b, **TOLERANCES["float32"], err_msg=f"db{i + 1}")


def test_softmax_is_exact_and_stable_for_huge_logits():
    Z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    P = np.exp(log_softmax(Z))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(P[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-15)
    assert np.isfinite(log_softmax(Z)).all()


def test_step_reports_pre_update_loss_and_applies_gradient_descent():
    sizes = (12, 6, 4)
    X, y = random_problem(25, sizes, seed=5)
    backend = fastnet.get_backend(REFERENCE)
    net = fastnet.Network.init(sizes, seed=0)
    before = backend.evaluate(net, X, y)
    grads = backend.gradients(net, X, y)
    expected = net.copy()
    backend.update(expected, grads, lr=0.5)
    result = backend.step(net, X, y, lr=0.5)
    assert result == before
    np.testing.assert_array_equal(net.flat, expected.flat)
    assert backend.evaluate(net, X, y).loss < before.loss


def test_uint8_pixels_equal_floats_scaled_by_255():
    sizes = (10, 4, 3)
    X, y = random_problem(8, sizes, seed=7)
    net = fastnet.Network.init(sizes)
    backend = fastnet.get_backend(REFERENCE)
    np.testing.assert_array_equal(backend.forward(net, X), backend.forward(net, X / 255.0))
