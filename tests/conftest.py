"""Shared fixtures: every registered backend, and real MNIST from ../shared/data/mnist (or the data
directory) with its seed split.

**The backend contract.** A test that takes the ``backend`` (or ``backend_name``) fixture runs once
for every name in ``fastnet.available_backends()``, so a new backend is tested by registering it,
never by editing tests (as tensorly runs its whole suite once per backend). Those tests are the
contract every backend must meet: interface behaviour (test_backend_contract.py), validation
(test_api_forms.py, test_reliability.py), agreement with the reference on real data and awkward
shapes (test_agreement.py), fuzzing (test_fuzz.py) and the command-line tools. Tests of one
backend's internals live in a folder named for it (tests/numba/). ``FASTNET_TEST_BACKENDS=numba``
(a comma-separated list) runs the contract for some backends only.
"""

from __future__ import annotations

import pytest

import fastnet
from fastnet.data import load_mnist, split_dev
from tests.helpers import SHARED_MNIST, backends_under_test, real_mnist_dir

@pytest.fixture(params=backends_under_test())
def backend_name(request):
    """The name of each registered backend in turn."""
    return request.param


@pytest.fixture
def backend(backend_name):
    """Each registered backend in turn."""
    return fastnet.get_backend(backend_name)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A data directory with the real MNIST: links to the shared copy, else ./data if it has one."""
    root = real_mnist_dir(tmp_path_factory.mktemp("mnist"))
    if root is None:
        pytest.skip(f"real MNIST found neither at {SHARED_MNIST} nor in the data directory")
    return root


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return load_mnist(mnist_dir, download=False, progress=False)


@pytest.fixture(scope="session")
def seed_split(mnist):
    """The seed notebook's split: shuffled with seed 0, 1,000 dev images, 59,000 for training."""
    return split_dev(mnist.train_images, mnist.train_labels, seed=0)


@pytest.fixture(scope="session")
def trained_model(seed_split, tmp_path_factory):
    """A model file of a 784-64-10 network after one epoch of mini-batch SGD on the seed split
    (about 0.9 test accuracy, a few seconds): good enough that its mistakes mean something."""
    import fastnet
    from fastnet.training import fit

    net = fastnet.Network.init((784, 64, 10), seed=0)
    fit(net, seed_split.X_train, seed_split.y_train, iterations=1, batch_size=64, lr=0.1, backend="numba",
        progress=False)
    path = tmp_path_factory.mktemp("trained-model") / "model.npz"
    net.save(path)
    return path
