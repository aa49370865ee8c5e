"""Mini-batch SGD epochs on every backend (the contract) against the reference's: the same losses per batch
and the same parameters after several epochs, on every batch size from 1 to the whole set, with a
last partial batch, any depth and width; the same stop, at the same batch, with the same kept
parameters, when a batch diverges; and the same result for any thread count."""

import threading

import numpy as np
import pytest

import fastnet
from fastnet.backends.numba import flags
from fastnet.tolerances import TOLERANCES
from tests.helpers import REFERENCE, random_problem

REF = fastnet.get_backend(REFERENCE)

# The numba backend steps batches too large for its compiled epoch with its full-batch pass; here with
# its budget set to 0, so that every batch is stepped.
STEPPED = "batches stepped with the full-batch pass (numba: flags.FUSED_EPOCH_MAX_BYTES = 0)"
CASES = {  # name: (samples, sizes, batch size, pixels)
    "seed network, batch 64, partial last batch": (2000, (784, 10, 10), 64, "mnist"),
    "hidden 64": (1500, (784, 64, 10), 64, "mnist"),
    "hidden 200, batch 256 (two blocks)": (1000, (784, 200, 10), 256, "mnist"),
    "batch 1": (150, (784, 10, 10), 1, "mnist"),
    "batch 200 (two blocks), deeper": (1000, (784, 13, 7, 10), 200, "mnist"),
    "float pixels, batch 33": (700, (784, 20, 10), 33, "float"),
    "random pixels, odd widths": (500, (100, 3, 5), 17, "random"),
    "whole set in one batch": (600, (784, 10, 10), 600, "mnist"),
    "large batch (2,049: 17 blocks), partial last batch": (2749, (784, 10, 10), 2049, "mnist"),
    STEPPED: (2749, (784, 10, 10), 2049, "mnist"),
}


def problem(kind, n, sizes, seed_split):
    if kind == "random":
        return random_problem(n, sizes, seed=3)
    X, y = seed_split.X_train[:n], seed_split.y_train[:n]
    return (X / 255.0 if kind == "float" else X), y


def epochs(backend, net, data, batch_size, count, lr=0.1, seed=0):
    """``count`` epochs of fit's kind (a new permutation each); their EpochResults."""
    rng = np.random.default_rng(seed)
    return [backend.epoch(net, data, lr=lr, batch_size=batch_size, order=rng.permutation(len(data)))
            for _ in range(count)]


@pytest.mark.parametrize("name", CASES)
def test_float64_epochs_match_the_reference(backend, backend_name, name, seed_split, monkeypatch):
    if name == STEPPED:
        if backend_name != "numba":
            pytest.skip("the numba backend's own path")
        monkeypatch.setattr(flags, "FUSED_EPOCH_MAX_BYTES", 0)
    n, sizes, batch_size, kind = CASES[name]
    X, y = problem(kind, n, sizes, seed_split)
    data = fastnet.Dataset(X, y, n_inputs=sizes[0], n_classes=sizes[-1])
    net, ref = fastnet.Network.init(sizes, seed=1), fastnet.Network.init(sizes, seed=1)
    tol = TOLERANCES["float64"]
    for e, (mine, theirs) in enumerate(zip(epochs(backend, net, data, batch_size, 2),
                                           epochs(REF, ref, data, batch_size, 2))):
        assert mine.stopped is theirs.stopped is None
        np.testing.assert_allclose(mine.losses, theirs.losses, **tol, err_msg=f"losses of epoch {e + 1}")
        # the same number correct; the kernel divides by multiplying with 1/n (fastmath 'arcp')
        np.testing.assert_allclose(mine.accuracies, theirs.accuracies, rtol=1e-15, err_msg=f"accuracies, epoch {e + 1}")
    for i, ((W, b), (rW, rb)) in enumerate(zip(net.params, ref.params)):
        np.testing.assert_allclose(W, rW, **tol, err_msg=f"W{i + 1} after 2 epochs")
        np.testing.assert_allclose(b, rb, **tol, err_msg=f"b{i + 1} after 2 epochs")


def test_float32_epoch_matches_the_float64_reference(backend, seed_split):
    X, y = seed_split.X_train[:2000], seed_split.y_train[:2000]
    data = fastnet.Dataset(X, y)
    net64 = fastnet.Network.init((784, 32, 10), seed=0)
    net32 = net64.astype("float32")
    [mine], [theirs] = epochs(backend, net32, data, 64, 1), epochs(REF, net64, data, 64, 1)
    np.testing.assert_allclose(mine.losses, theirs.losses, **TOLERANCES["float32"], err_msg="losses")
    np.testing.assert_allclose(net32.flat, net64.flat, **TOLERANCES["float32"], err_msg="parameters")


# hidden 64: the numba epoch's threads share the first layer, and both must stop at the same batch.
# Float64 only there: in float32 a few blown-up parameters differ from the reference's by up to
# 0.24% (lr 1e4) or 1.8% (3e37), past the float32 tolerance: float32 rounding amplified by the
# divergence, the same with one thread or two and before the threads shared the work.
@pytest.mark.parametrize("dtype, lr, hidden", [("float64", 1e4, 16), ("float32", 1e4, 16), ("float32", 3e37, 16),
                                               ("float64", 1e4, 64)])
def test_a_diverging_epoch_stops_where_the_reference_stops(backend, dtype, lr, hidden, seed_split):
    """lr 1e4: the loss blows up (a "loss" stop); 3e37 in float32: an update overflows."""
    X, y = seed_split.X_train[:640], seed_split.y_train[:640]
    data = fastnet.Dataset(X, y)
    net, ref = (fastnet.Network.init((784, hidden, 10), seed=0, dtype=dtype) for _ in range(2))
    order = np.random.default_rng(0).permutation(len(X))
    with np.errstate(all="ignore"):
        mine = backend.epoch(net, data, lr=lr, batch_size=32, order=order, max_ratio=100.0)
        theirs = REF.epoch(ref, data, lr=lr, batch_size=32, order=order, max_ratio=100.0)
    assert theirs.stopped is not None
    assert (mine.stopped, len(mine.losses)) == (theirs.stopped, len(theirs.losses))
    assert np.array_equal(np.isfinite(net.flat), np.isfinite(ref.flat))
    finite = np.isfinite(ref.flat)
    np.testing.assert_allclose(net.flat[finite], ref.flat[finite], **TOLERANCES[dtype])


# 24: one pass of 3 vectors over a sample's entries (one thread works; one pass of 2 vectors at 16
# lanes, cut in two shares); 32 and 10 (and float64's 16): one pass of 4 or 2 vectors, cut in two
# shares (10 float32 at 16 lanes: one vector, one thread); 64 and 200: the numba epoch shares the
# passes out between its threads (200 in float64: 13 passes of 4-lane vectors or 7 of 8-lane, an
# odd share either way)
@pytest.mark.parametrize("hidden, dtype", [(24, "float32"), (32, "float32"), (10, "float32"), (16, "float64"),
                                           (64, "float32"), (200, "float64")])
def test_an_epoch_gives_the_same_bits_for_one_and_two_threads(backend, hidden, dtype, seed_split):
    X, y = seed_split.X_train[:3000], seed_split.y_train[:3000]
    data = fastnet.Dataset(X, y)
    results = []
    try:
        for threads in (1, 2):
            backend.set_threads(threads)
            net = fastnet.Network.init((784, hidden, 10), seed=0, dtype=dtype)
            losses = [r.losses for r in epochs(backend, net, data, 64, 2)]
            results.append((net.flat, np.concatenate(losses)))
    finally:
        backend.set_threads(2)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_fit_in_mini_batches_matches_the_reference_after_two_epochs(backend_name, seed_split):
    """The user's form: fit(..., batch_size=64, iterations=2) on plain arrays, float64."""
    X, y = seed_split.X_train[:3000], seed_split.y_train[:3000]
    net, ref = fastnet.Network.init(seed=0), fastnet.Network.init(seed=0)
    history = fastnet.fit(net, X, y, iterations=2, batch_size=64, backend=backend_name, progress=False)
    reference = fastnet.fit(ref, X, y, iterations=2, batch_size=64, backend=REFERENCE, progress=False)
    assert history.steps == reference.steps == 2 * 47
    np.testing.assert_allclose(history.loss, reference.loss, **TOLERANCES["float64"])
    np.testing.assert_allclose(net.flat, ref.flat, **TOLERANCES["float64"])


def test_epochs_of_two_networks_in_two_threads_give_their_results_alone(backend, seed_split):
    """Hidden 64: each numba epoch runs its own threads, which meet at barriers; two callers at once
    must neither wait on each other for ever nor change each other's results."""
    X, y = seed_split.X_train[:2000], seed_split.y_train[:2000]
    data = fastnet.Dataset(X, y)
    order = np.random.default_rng(5).permutation(len(X))
    nets = [fastnet.Network.init((784, 64, 10), seed=seed, dtype="float32") for seed in (1, 2)]
    alone = [net.copy() for net in nets]
    for net in alone:
        backend.epoch(net, data, lr=0.1, batch_size=64, order=order)
    threads = [threading.Thread(target=backend.epoch, args=(net, data), kwargs=dict(lr=0.1, batch_size=64, order=order),
                                daemon=True) for net in nets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    for net, expected in zip(nets, alone):
        np.testing.assert_array_equal(net.flat, expected.flat)
