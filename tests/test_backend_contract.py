"""The interface every backend implements (fastnet/backends/base.py), checked on each registered
backend: what each method returns, how the methods relate, and that nothing is changed that should
not be. Agreement with the reference is in test_agreement.py, validation in test_api_forms.py and
test_reliability.py, fuzzing in test_fuzz.py (see conftest.py)."""

import numpy as np
import pytest

import fastnet
from fastnet.backends.base import EpochResult
from fastnet.tolerances import TOLERANCES
from tests.helpers import random_problem

SIZES = (50, 13, 9, 4)  # two hidden layers, no width a whole number of vectors
DTYPES = ["float32", "float64"]


def problem(n=70, seed=0, kind="mixed"):
    return random_problem(n, SIZES, seed=seed, kind=kind)


def test_the_registry_knows_it_by_its_name(backend, backend_name):
    assert isinstance(backend, fastnet.Backend)
    assert backend.name == backend_name and fastnet.get_backend(backend) is backend
    assert backend_name in repr(backend)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_gives_probabilities_in_the_networks_dtype(backend, dtype):
    X, _ = problem()
    net = fastnet.Network.init(SIZES, dtype=dtype)
    probs = backend.forward(net, X)
    assert probs.shape == (len(X), SIZES[-1]) and probs.dtype == net.dtype
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5 if dtype == "float32" else 1e-12)
    np.testing.assert_array_equal(backend.predict(net, X), probs.argmax(axis=1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_are_shaped_like_the_parameters(backend, dtype):
    X, y = problem()
    net = fastnet.Network.init(SIZES, dtype=dtype)
    grads = backend.gradients(net, X, y)
    assert len(grads) == len(net.params)
    for (dW, db), (W, b) in zip(grads, net.params):
        assert dW.shape == W.shape and db.shape == b.shape and dW.dtype == db.dtype == net.dtype
        assert np.isfinite(dW).all() and np.isfinite(db).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_step_is_evaluate_then_gradients_then_update(backend, dtype):
    X, y = problem()
    net = fastnet.Network.init(SIZES, dtype=dtype)
    expected = net.copy()
    before = backend.evaluate(expected, X, y)
    backend.update(expected, backend.gradients(expected, X, y), lr=0.3)
    assert backend.step(net, X, y, lr=0.3) == before  # the loss and accuracy before the update
    np.testing.assert_array_equal(net.flat, expected.flat)
    assert backend.evaluate(net, X, y).loss < before.loss


def test_evaluate_forward_and_gradients_change_nothing(backend):
    X, y = problem()
    net = fastnet.Network.init(SIZES)
    flat, X_before, y_before = net.flat.copy(), X.copy(), y.copy()
    result = backend.evaluate(net, X, y)
    backend.forward(net, X)
    backend.gradients(net, X, y)
    np.testing.assert_array_equal(net.flat, flat)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    assert 0 <= result.accuracy <= 1 and result.loss > 0
    probs = backend.forward(net, X)
    np.testing.assert_allclose(result.loss, -np.mean(np.log(probs[np.arange(len(y)), y])), rtol=1e-9)
    assert result.accuracy == np.mean(probs.argmax(axis=1) == y)


# 1: every sample alone; 7: a last, shorter batch; 64 and 300 (MNIST-sized, one and three blocks of
# 128 on the numba backend, and two threads there at hidden 64); 5000: above the numba backend's
# fused-epoch limit (the generic batches); 100_000: one batch of everything
@pytest.mark.parametrize("batch_size", [1, 7, 64, 300, 5000, 100_000])
@pytest.mark.parametrize("sizes, dtype", [(SIZES, "float64"), ((784, 64, 10), "float32"), ((784, 64, 10), "float64")])
def test_evaluate_in_batches_is_evaluate(backend, batch_size, sizes, dtype):
    X, y = random_problem(6000, sizes, seed=4, kind="mixed")
    net = fastnet.Network.init(sizes, dtype=dtype, seed=2)
    flat = net.flat.copy()
    whole = backend.evaluate(net, X, y)
    batched = backend.evaluate(net, X, y, batch_size=batch_size)
    np.testing.assert_array_equal(net.flat, flat)  # nothing changed
    np.testing.assert_allclose(batched.loss, whole.loss, **TOLERANCES[dtype])  # only the sums' order differs
    assert batched.accuracy == pytest.approx(whole.accuracy, abs=1 / len(X))  # a tie may fall either way


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_evaluate_refuses_a_batch_size_that_is_not_a_count(backend, batch_size, error):
    X, y = problem()
    with pytest.raises(error, match="batch_size"):
        backend.evaluate(fastnet.Network.init(SIZES), X, y, batch_size=batch_size)


def test_update_is_gradient_descent(backend):
    net = fastnet.Network.init(SIZES)
    grads = [(np.full_like(W, 2.0), np.full_like(b, -1.0)) for W, b in net.params]
    expected = net.flat.copy()
    for (W, b), (dW, db) in zip(fastnet.Network(SIZES, expected).params, grads):
        W -= 0.25 * dW
        b -= 0.25 * db
    backend.update(net, grads, lr=0.25)
    np.testing.assert_array_equal(net.flat, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_epoch_is_its_mini_batches_stepped_in_order(backend, dtype):
    """Same updates as stepping data.subset(batch) batch by batch (to rounding: a fused epoch may
    sum in another order)."""
    X, y = problem(n=70)
    data = fastnet.Dataset(X, y)
    order = np.random.default_rng(1).permutation(70)
    net, steps = fastnet.Network.init(SIZES, dtype=dtype), fastnet.Network.init(SIZES, dtype=dtype)
    result = backend.epoch(net, data, lr=0.1, batch_size=16, order=order)
    assert isinstance(result, EpochResult) and result.stopped is None
    expected = [backend.step(steps, data.subset(order[s:s + 16]), lr=0.1) for s in range(0, 70, 16)]
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(result.losses, [r.loss for r in expected], **tol)
    np.testing.assert_allclose(result.accuracies, [r.accuracy for r in expected], atol=1 / 16)
    np.testing.assert_allclose(net.flat, steps.flat, **tol)


def test_an_epoch_stops_at_an_unsound_batch(backend):
    X, y = problem(n=64)
    net = fastnet.Network.init(SIZES)
    result = backend.epoch(net, X, y, lr=1e4, batch_size=16, order=np.arange(64), max_ratio=100.0)
    assert result.stopped == "loss" and len(result.losses) < 4


@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_uint8_pixels_are_floats_scaled_by_255(backend, kind):
    X, y = problem(kind="uint8")
    net = fastnet.Network.init(SIZES)
    np.testing.assert_allclose(backend.forward(net, X), backend.forward(net, X / 255.0), rtol=1e-12)
    for (a, b), (c, d) in zip(backend.gradients(net, X, y), backend.gradients(net, X / 255.0, y)):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(b, d, rtol=1e-10, atol=1e-14)


def test_a_subset_of_a_prepared_dataset_is_its_rows(backend):
    """A mini-batch taken from a prepared Dataset (a backend may reuse the whole set's preparation)
    gives what its rows given afresh give."""
    X, y = problem(n=90)
    rows = np.random.default_rng(3).permutation(90)[:33]
    data = fastnet.Dataset(X, y)
    backend.evaluate(fastnet.Network.init(SIZES), data)  # the whole dataset prepared first
    a, b = fastnet.Network.init(SIZES), fastnet.Network.init(SIZES)
    ra, rb = backend.step(a, data.subset(rows), lr=0.1), backend.step(b, X[rows], y[rows], lr=0.1)
    np.testing.assert_allclose(ra.loss, rb.loss, rtol=1e-12)
    np.testing.assert_allclose(a.flat, b.flat, rtol=1e-10, atol=1e-12)


def test_the_first_run_note_is_text_or_nothing(backend):
    note = backend.first_run_note(fastnet.Network.init(SIZES))
    assert note is None or isinstance(note, str)
