"""Every backend against the numpy reference, stage by stage: probabilities, loss, every gradient
by name, parameters after 1 and 100 steps; on real MNIST and on awkward shapes, float64 and float32."""

import pytest

import fastnet
from fastnet.tolerances import TOLERANCES
from tests.agreement import (AWKWARD_CASES, assert_awkward_case_agrees, assert_float32_awkward_cases_agree,
                             assert_stages_agree, assert_steps_agree)
from tests.helpers import random_problem

# ------------------------------------------------------------------ real MNIST, float64


def test_float64_stages_on_the_seed_training_split(backend, seed_split):
    net = fastnet.Network.init(seed=0)
    assert_stages_agree(backend, net, seed_split.X_train, seed_split.y_train, TOLERANCES["float64"])


def test_float64_parameters_after_1_and_100_steps_on_mnist(backend, seed_split):
    X, y = seed_split.X_train[:5000], seed_split.y_train[:5000]
    assert_steps_agree(backend, fastnet.Network.init(seed=0), X, y, 1, TOLERANCES["float64"])
    assert_steps_agree(backend, fastnet.Network.init(seed=0), X, y, 100, TOLERANCES["float64"])


@pytest.mark.parametrize("min_samples", [0, 10**9], ids=["per-block", "one-set"])
def test_numba_stages_in_either_layout_of_its_features(monkeypatch, seed_split, min_samples):
    """The numba backend reads datasets of flags.PER_BLOCK_MIN_SAMPLES samples or more from
    features with each block's own dense pixels, smaller ones from one set for all blocks: every
    stage in each layout, on MNIST and on the awkward shapes (all below that size)."""
    from fastnet.backends.numba import flags

    monkeypatch.setattr(flags, "PER_BLOCK_MIN_SAMPLES", min_samples)
    backend = fastnet.get_backend("numba")
    assert_stages_agree(backend, fastnet.Network.init(seed=0), seed_split.X_train, seed_split.y_train,
                        TOLERANCES["float64"])
    for case in AWKWARD_CASES:
        assert_awkward_case_agrees(backend, case)


# ------------------------------------------------------------------ awkward shapes, float64


@pytest.mark.parametrize("case", list(AWKWARD_CASES))
def test_float64_stages_on_awkward_shapes(backend, case):
    assert_awkward_case_agrees(backend, case)


def test_float64_agreement_with_saturated_softmax(backend):
    sizes = (784, 10, 10)
    X, y = random_problem(45, sizes, seed=3)
    net = fastnet.Network.init(sizes, seed=2)
    net.flat *= 40  # logits hundreds apart: probabilities underflow, exp inputs far below -64
    assert_stages_agree(backend, net, X, y, TOLERANCES["float64"])


# ------------------------------------------------------------------ float32


def test_float32_matches_float64_reference(backend, seed_split):
    X, y = seed_split.X_train[:5000], seed_split.y_train[:5000]
    net64 = fastnet.Network.init(seed=0)
    assert_stages_agree(backend, net64.astype("float32"), X, y, TOLERANCES["float32"], ref_net=net64)


def test_float32_awkward_shapes_match_float64_reference(backend):
    assert_float32_awkward_cases_agree(backend)

