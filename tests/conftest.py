"""Shared fixtures: real MNIST from ../shared/data/mnist, and small seeded random problems."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fastnet.data import load_mnist, split_dev

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A data directory holding links to the shared official MNIST (so caches land in tmp)."""
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    root = tmp_path_factory.mktemp("mnist")
    for f in SHARED_MNIST.glob("*.gz"):
        os.symlink(f, root / f.name)
    return root


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return load_mnist(mnist_dir, download=False, progress=False)


@pytest.fixture(scope="session")
def seed_split(mnist):
    """The seed notebook's split: shuffled with seed 0, 1,000 dev images, 59,000 for training."""
    return split_dev(mnist.train_images, mnist.train_labels, seed=0)
