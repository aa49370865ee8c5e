"""How closely results must agree, in one place: the tests and the benchmarks' agreement checks
(fastnet.benchmarks) read these, each loose one with the reason it is that loose.

Tolerances are keyword arguments for ``numpy.testing.assert_allclose``: relative (rtol) and
absolute (atol).
"""

from __future__ import annotations

TOLERANCES = {
    # a backend in float64 vs the numpy reference in float64: the same mathematics, summed in
    # another order (per chunk, skipping zero pixels, reassociated); differences are rounding only.
    "float64": dict(rtol=1e-10, atol=1e-12),
    # float32 anything vs the float64 reference: float32 has 24 bits (~6e-8 relative); a
    # gradient is a sum of ~59,000 terms of both signs, so its relative error can grow to ~1e-3
    # for small entries; atol covers entries that are nearly zero.
    "float32": dict(rtol=2e-3, atol=2e-5),
    # finite differences: central differences in float64 with eps=1e-6 are accurate to ~1e-8
    # of the gradient scale; ReLU kinks are avoided by the test's choice of data.
    "gradcheck": dict(rtol=1e-5, atol=1e-7),
    # an exported ONNX model in onnxruntime vs fastnet's forward, both float32: the same products
    # summed in another order (onnxruntime's GEMM blocks them), ~1e-7 relative per layer, and
    # exp() implementations that differ in the last bits; 1e-5 leaves room for wide, deep nets.
    "onnx": dict(rtol=1e-5, atol=1e-5),
}

# The 500-iteration seed run in float32 must end within this many percentage points of the
# float64 reference's dev accuracy (the requirement).
FLOAT32_DEV_ACCURACY_POINTS = 0.5
