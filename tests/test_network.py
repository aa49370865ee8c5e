import numpy as np
import pytest

import fastnet
from fastnet.network import n_params


def test_init_matches_seed_shapes_and_range():
    net = fastnet.Network.init((784, 10, 10), seed=0)
    (W1, b1), (W2, b2) = net.params
    assert W1.shape == (10, 784) and b1.shape == (10,) and W2.shape == (10, 10) and b2.shape == (10,)
    assert net.flat.min() >= -0.5 and net.flat.max() < 0.5
    assert net.dtype == np.float64


def test_same_seed_same_weights_and_float32_is_rounded_float64():
    a = fastnet.Network.init((5, 4, 3), seed=3)
    b = fastnet.Network.init((5, 4, 3), seed=3)
    c = fastnet.Network.init((5, 4, 3), seed=4)
    f32 = fastnet.Network.init((5, 4, 3), seed=3, dtype="float32")
    np.testing.assert_array_equal(a.flat, b.flat)
    assert not np.array_equal(a.flat, c.flat)
    np.testing.assert_array_equal(f32.flat, a.flat.astype(np.float32))


def test_he_init_scale_and_zero_bias():
    net = fastnet.Network.init((784, 256, 10), seed=0, init="he")
    W1, b1 = net.params[0]
    assert abs(W1.std() - np.sqrt(2 / 784)) < 0.002
    assert not b1.any()


def test_params_are_views_into_flat():
    net = fastnet.Network.init((3, 2, 2))
    net.params[0][0][0, 0] = 42.0
    assert net.flat[0] == 42.0
    assert net.flat.size == n_params((3, 2, 2)) == 3 * 2 + 2 + 2 * 2 + 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(sizes=(784,)), "at least an input"),
    (dict(sizes=(784, 0, 10)), "at least 1"),
    (dict(dtype="float16"), "dtype must be one of"),
    (dict(init="xavier"), "init must be one of"),
])
def test_bad_init_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fastnet.Network.init(**kwargs)


def test_registry_lists_backends_and_rejects_unknown_names():
    names = fastnet.available_backends()
    assert names == sorted(names) and {"numba", "numpy"} <= set(names)
    for name in names:
        assert fastnet.get_backend(name).name == name
    with pytest.raises(ValueError, match=f"known backends: {', '.join(names)}"):
        fastnet.get_backend("torch")


def test_default_backend_comes_from_environment(monkeypatch, backend_name):
    monkeypatch.setenv("FASTNET_BACKEND", backend_name)
    assert fastnet.get_backend().name == backend_name
