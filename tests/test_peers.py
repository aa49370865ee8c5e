"""The optional peers (torch, JAX) compute the reference's step, so the benchmark compares like
with like; without them installed, the reason names the extra to install."""

import numpy as np
import pytest

import fastnet
from fastnet import peers
from fastnet.tolerances import TOLERANCES
from tests.helpers import random_problem


@pytest.mark.parametrize("name", peers.PEERS)
def test_a_peer_step_and_epoch_match_the_reference(name):
    if peers.missing_reason(name):
        pytest.skip(peers.missing_reason(name))
    X, y = random_problem(300, (784, 12, 10), seed=0)
    net = fastnet.Network.init((784, 12, 10), seed=0, dtype="float32")
    reference = fastnet.Network.init((784, 12, 10), seed=0)
    peer = peers.make_peer(name, net, X, y)
    for _ in range(3):
        peer.step()
        fastnet.get_backend("numpy").step(reference, X, y, lr=0.1)
    np.testing.assert_allclose(peer.network().flat, reference.flat, **TOLERANCES["float32"])
    if hasattr(peer, "epoch"):
        order = np.random.default_rng(0).permutation(len(X))
        peer.epoch(order, 64)
        fastnet.get_backend("numpy").epoch(reference, X, y, lr=0.1, batch_size=64, order=order)
        np.testing.assert_allclose(peer.network().flat, reference.flat, **TOLERANCES["float32"])


def test_a_missing_peer_is_named_with_the_extra(monkeypatch):
    monkeypatch.setattr(peers, "available", lambda: [])
    assert peers.missing_reason("numba") is None  # not a peer: nothing is missing
    with pytest.raises(ImportError, match=r'torch is not installed \(pip install -e "\.\[peers\]"'):
        peers.make_peer("torch", fastnet.Network.init(), np.zeros((1, 784), np.uint8), [0])
