"""The numba softmax's vectorisable exp, alone against numpy's (the softmax itself is checked
stage by stage in test_agreement.py, saturated logits included)."""

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
