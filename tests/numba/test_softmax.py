"""The numba softmax on its own: its vectorisable exp against numpy's, and a block's softmax and
loss against numpy with logits far apart, unlabelled samples, tied logits at many classes and a
NaN logit (the softmax is also checked stage by stage in test_agreement.py, saturated logits
included)."""

import numpy as np
import pytest

from fastnet.backends.numba.softmax import exp_nonpositive


def test_vectorised_exp_is_accurate_over_the_whole_nonpositive_range():
    x = np.concatenate([-np.linspace(0, 70, 10001), [-64.0, -64.5, -100.0, -745.0, -1000.0]])
    out = np.empty_like(x)
    exp_nonpositive(out, x, len(x))
    np.testing.assert_allclose(out, np.exp(x), rtol=3e-14, atol=0)
    x32 = x.astype(np.float32)
    out32 = np.empty_like(x32)
    exp_nonpositive(out32, x32, len(x32))
    np.testing.assert_allclose(out32, np.exp(x32.astype(np.float64)), rtol=2e-5, atol=1e-45)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_stays_nan(dtype):
    x = np.array([0.0, np.nan, -1.0], dtype)
    out = np.empty_like(x)
    exp_nonpositive(out, x, 3)
    assert np.isnan(out[1]) and out[0] == 1.0


@pytest.mark.parametrize("nb, K", [(256, 17), (128, 300), (256, 1000)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_loss_of_a_block_of_tied_logits_is_finite_at_any_class_count(nb, K, dtype):
    """Tied logits give every sample the largest softmax total there is, K: the block's loss is
    nb * log K. Multiplied before one log, K^nb overflowed float64 (17^256, 300^128)."""
    from fastnet.backends.numba.layers import ACT_AT, layer_table
    from fastnet.backends.numba.softmax import softmax_xent

    layers = layer_table((3, K))
    acts = np.zeros((layers[-1, ACT_AT] + K, nb), dtype)
    labels = np.arange(nb) % K
    scratch = [np.empty(nb, dtype) for _ in range(3)]
    loss, correct = softmax_xent(acts, nb, layers, labels, np.empty(nb, np.int64), *scratch)
    assert loss == pytest.approx(nb * np.log(K), rel=1e-6)
    assert correct == np.count_nonzero(labels == 0)  # a tie goes to the first class, as np.argmax
    np.testing.assert_allclose(acts[layers[-1, ACT_AT]:], 1 / K, rtol=1e-6)


@pytest.mark.parametrize("K", [1, 3, 10])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_softmax_of_a_block_is_numpys_with_logits_far_apart_and_unlabelled_samples(K, dtype):
    """Probabilities, loss and correct count against numpy's log-softmax, on logits spread far
    beyond the exp polynomial's range (so that some values are redone with np.exp), a partial
    block, and samples without a label (labels < 0: no loss, never counted)."""
    from fastnet.backends.numba.layers import ACT_AT, layer_table
    from fastnet.backends.numba.softmax import softmax_xent

    nb, B = 37, 64
    layers = layer_table((3, K))
    o = layers[-1, ACT_AT]
    rng = np.random.default_rng(K)
    acts = np.zeros((o + K, B), dtype)
    logits = rng.normal(scale=3, size=(K, nb))
    logits[:, ::4] *= 40  # differences of hundreds: exp(z - max) far below exp(-64)
    acts[o:, :nb] = logits
    labels = rng.integers(-1, K, B)
    scratch = [np.empty(B, dtype) for _ in range(3)]
    loss, correct = softmax_xent(acts, nb, layers, labels, np.empty(B, np.int64), *scratch)
    z = logits.astype(dtype).astype(np.float64)
    log_p = z - z.max(axis=0) - np.log(np.exp(z - z.max(axis=0)).sum(axis=0))
    mine = labels[:nb] >= 0
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert loss == pytest.approx(-log_p[labels[:nb][mine], np.flatnonzero(mine)].sum(), rel=tol)
    assert correct == np.count_nonzero(z.argmax(axis=0)[mine] == labels[:nb][mine])
    np.testing.assert_allclose(acts[o:, :nb], np.exp(log_p), rtol=10 * tol, atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_nan_logit_makes_its_samples_probabilities_and_the_loss_nan(dtype):
    from fastnet.backends.numba.layers import ACT_AT, layer_table
    from fastnet.backends.numba.softmax import softmax_xent

    layers = layer_table((3, 4))
    o = layers[-1, ACT_AT]
    acts = np.zeros((o + 4, 8), dtype)
    acts[o + 2, 5] = np.nan
    scratch = [np.empty(8, dtype) for _ in range(3)]
    loss, _ = softmax_xent(acts, 8, layers, np.zeros(8, np.int64), np.empty(8, np.int64), *scratch)
    assert np.isnan(loss)
    assert np.isnan(acts[o:, 5]).all() and np.isfinite(np.delete(acts[o:], 5, axis=1)).all()
