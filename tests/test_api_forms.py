"""The public API in the forms the README shows, plain arrays included, on every backend: the
learning rate cannot be mistaken for labels, plain arrays give exactly what a Dataset gives (also
after the caller changes them in place), bad arguments are refused naming the argument, and
concurrent calls on one network are safe."""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastnet
from fastnet.training import fit
from tests.helpers import REFERENCE, random_problem

SIZES = (784, 12, 10)

def problem(n=300, seed=0):
    return random_problem(n, SIZES, seed=seed)


# ------------------------------------------------------------------ the learning rate


def test_a_positional_learning_rate_is_refused_not_read_as_labels(backend):
    X, y = problem()
    net = fastnet.Network.init(SIZES)
    before = net.flat.copy()
    with pytest.raises(TypeError, match="lr"):
        backend.step(net, fastnet.Dataset(X, y), 0.1)
    with pytest.raises(TypeError, match="pass the learning rate by name"):
        backend.step(net, fastnet.Dataset(X, y), 0.1, lr=0.1)
    with pytest.raises(TypeError):
        backend.step(net, X, y, 0.1)
    with pytest.raises(TypeError):
        backend.step(net, X, y)  # no learning rate at all
    np.testing.assert_array_equal(net.flat, before)


def test_a_dataset_and_separate_labels_together_are_refused(backend):
    X, y = problem()
    net = fastnet.Network.init(SIZES)
    for call in (lambda: backend.step(net, fastnet.Dataset(X, y), y, lr=0.1),
                 lambda: backend.evaluate(net, fastnet.Dataset(X, y), y),
                 lambda: backend.gradients(net, fastnet.Dataset(X), y)):
        with pytest.raises(TypeError, match="Dataset"):
            call()


@pytest.mark.parametrize("lr, error, message", [
    (True, TypeError, "lr must be a number"),
    ("0.1", TypeError, "lr must be a number"),
    (None, TypeError, "lr must be a number"),
    (0.0, ValueError, "lr must be finite and > 0"),
    (-0.1, ValueError, "lr must be finite and > 0"),
    (float("nan"), ValueError, "lr must be finite and > 0"),
    (float("inf"), ValueError, "lr must be finite and > 0"),
])
def test_bad_learning_rates_are_refused_naming_lr(backend, lr, error, message):
    X, y = problem(50)
    net = fastnet.Network.init(SIZES)
    with pytest.raises(error, match=message):
        backend.step(net, X, y, lr=lr)
    with pytest.raises(error, match=message):
        backend.update(net, backend.gradients(net, X, y), lr=lr)


@pytest.mark.parametrize("lr, message", [(1e300, "overflows float32"), (1e-50, "rounds to 0 in float32")])
def test_a_learning_rate_float32_cannot_hold_is_refused(backend, lr, message):
    X, y = problem(50)
    net = fastnet.Network.init(SIZES, dtype="float32")
    before = net.flat.copy()
    with pytest.raises(ValueError, match=message):
        backend.step(net, X, y, lr=lr)
    np.testing.assert_array_equal(net.flat, before)


def test_a_step_that_overflows_the_parameters_changes_nothing(backend):
    X, y = problem(50)
    net = fastnet.Network.init(SIZES)
    with np.errstate(all="ignore"):
        backend.step(net, X, y, lr=1e300)  # parameters near 1e299: finite, but the next forward overflows
        before = net.flat.copy()
        with pytest.raises(ValueError, match="NaN or inf"):
            backend.step(net, X, y, lr=1e300)
    np.testing.assert_array_equal(net.flat, before)


def test_numpy_scalars_are_fine_learning_rates(backend):
    X, y = problem(50)
    results = []
    for lr in (0.1, np.float32(0.1), np.float64(0.1)):
        net = fastnet.Network.init(SIZES, dtype="float32")
        backend.step(net, X, y, lr=lr)
        results.append(net.flat)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


# ------------------------------------------------------------------ plain arrays


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_plain_arrays_give_exactly_what_a_dataset_gives(backend, dtype):
    X, y = problem()
    a, b = fastnet.Network.init(SIZES, dtype=dtype), fastnet.Network.init(SIZES, dtype=dtype)
    data = fastnet.Dataset(X, y)
    for _ in range(3):
        assert backend.step(a, X, y, lr=0.1) == backend.step(b, data, lr=0.1)
    np.testing.assert_array_equal(a.flat, b.flat)
    np.testing.assert_array_equal(backend.forward(a, X), backend.forward(b, data))


def test_arrays_changed_in_place_between_calls_are_seen(backend):
    """The caller owns X: a cached preparation of the old values must never be used for new ones."""
    X, y = problem()
    reference = fastnet.get_backend(REFERENCE)
    net, ref = fastnet.Network.init(SIZES), fastnet.Network.init(SIZES)
    rng = np.random.default_rng(1)
    for step in range(4):
        assert backend.step(net, X, y, lr=0.1) == pytest.approx(reference.step(ref, X.copy(), y, lr=0.1), rel=1e-9)
        if step == 0:
            X[17, 400] ^= 1  # one pixel of one image
        elif step == 1:
            X[:] = rng.permutation(X)  # same values, other rows
        else:
            y[3] = (y[3] + 1) % 10  # the labels change too
    np.testing.assert_allclose(net.flat, ref.flat, rtol=1e-10, atol=1e-12)


def test_a_copy_of_the_array_gives_the_same_results(backend):
    X, y = problem()
    a, b = fastnet.Network.init(SIZES), fastnet.Network.init(SIZES)
    backend.step(a, X, y, lr=0.1)
    backend.step(b, X.copy(), y.copy(), lr=0.1)
    np.testing.assert_array_equal(a.flat, b.flat)


# ------------------------------------------------------------------ other arguments


@pytest.mark.parametrize("sizes, message", [
    ((784, 10.5, 10), "whole numbers"),
    ((784, 0, 10), "at least 1"),
    ((784,), "at least an input and an output"),
    ((784, True, 10), "whole numbers"),
])
def test_network_sizes_must_be_whole_positive_numbers(sizes, message):
    with pytest.raises((TypeError, ValueError), match=message):
        fastnet.Network.init(sizes)


@pytest.mark.parametrize("kwargs, error", [
    (dict(batch_size=-1), ValueError), (dict(batch_size=0), ValueError), (dict(batch_size=2.5), TypeError),
    (dict(iterations=-3), ValueError), (dict(iterations=0), ValueError), (dict(iterations=True), TypeError),
])
def test_fit_refuses_counts_that_would_train_nothing(backend, kwargs, error):
    X, y = problem(50)
    net = fastnet.Network.init(SIZES)
    before = net.flat.copy()
    with pytest.raises(error, match=next(iter(kwargs))):
        fit(net, X, y, backend=backend, progress=False, **kwargs)
    np.testing.assert_array_equal(net.flat, before)


# ------------------------------------------------------------------ threads


def test_two_threads_stepping_one_network_give_the_sequential_result(backend):
    X, y = problem(2000)
    data = fastnet.Dataset(X, y)
    shared, alone = fastnet.Network.init(SIZES), fastnet.Network.init(SIZES)
    backend.step(shared, data, lr=0.1)  # prepare and compile outside the threads

    def steps():
        for _ in range(10):
            backend.step(shared, data, lr=0.1)

    threads = [threading.Thread(target=steps) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(21):
        backend.step(alone, data, lr=0.1)
    np.testing.assert_array_equal(shared.flat, alone.flat)


def test_concurrent_steps_survive_the_workqueue_threading_layer(backend):
    code = textwrap.dedent(f"""
        import threading, fastnet
        from tests.helpers import random_problem
        X, y = random_problem(3000, (784, 12, 10), seed=0)
        backend = fastnet.get_backend({backend.name!r})
        nets = [fastnet.Network.init((784, 12, 10), seed=s) for s in range(2)]
        def run(net):
            for _ in range(20):
                backend.step(net, X, y, lr=0.1)
        threads = [threading.Thread(target=run, args=(n,)) for n in nets]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "NUMBA_THREADING_LAYER": "workqueue"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_readme_code_runs_as_written(mnist_dir, tmp_path, monkeypatch):
    """The README's 'In your own code' block, run as it stands (500 steps cut to 3, MNIST from the
    test data directory instead of ./data)."""
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = readme.split("**In your own code**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "backend.step(net, X, y, lr=0.1)" in code and "fastnet.fit(" in code
    code = code.replace("range(500)", "range(3)").replace("load_mnist()", f"load_mnist({str(mnist_dir)!r})")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["history"].iterations == 2 and len(namespace["history"].dev_accuracy) == 2
    assert fastnet.Network.load(tmp_path / "model.npz").sizes == (784, 10, 10)
