"""The seed notebook's experiment on real MNIST: 784-10-10, uniform init, lr 0.1, 500 full-batch
iterations, 1,000 dev images. The notebook reports 86.4% on its own random split; this split
lands at 84-85% across init seeds 0-4."""

import pytest

import fastnet
from fastnet.tolerances import FLOAT32_DEV_ACCURACY_POINTS
from fastnet.training import fit
from tests.helpers import REFERENCE

SEED_DEV_ACCURACY_FLOOR = 0.83


def train_seed_run(split, backend, dtype):
    net = fastnet.Network.init((784, 10, 10), seed=0, dtype=dtype)
    fit(net, split.X_train, split.y_train, iterations=500, lr=0.1, backend=backend, progress=False)
    return fastnet.get_backend(backend).evaluate(net, split.X_dev, split.y_dev).accuracy


@pytest.fixture(scope="module")
def reference_dev_accuracy(seed_split):
    return train_seed_run(seed_split, REFERENCE, "float64")


@pytest.mark.slow
def test_numpy_reference_reproduces_the_seed_notebook(reference_dev_accuracy):
    assert reference_dev_accuracy >= SEED_DEV_ACCURACY_FLOOR


@pytest.mark.slow
def test_float32_ends_within_half_a_point_of_the_reference(backend_name, seed_split, reference_dev_accuracy):
    fast = train_seed_run(seed_split, backend_name, "float32")
    assert abs(fast - reference_dev_accuracy) * 100 <= FLOAT32_DEV_ACCURACY_POINTS, (fast, reference_dev_accuracy)
