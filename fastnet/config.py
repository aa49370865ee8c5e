"""Every Numba flag and every numerical tolerance of fastnet, in one place.

Kernels read their ``@njit`` options from here; tests and benchmarks read their tolerances from
here, each loose one with the reason it is that loose.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# fastmath *subset*: reassociation (lets LLVM vectorise float reductions), FMA contraction, no
# signed zeros, reciprocal approximations. Not 'nnan'/'ninf': with those, NaN/inf checks are
# silently compiled away, and fastnet must see divergence.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
NJIT = dict(fastmath=FASTMATH, cache=True, nogil=True, error_model="numpy", boundscheck=False)
NJIT_PARALLEL = dict(NJIT, parallel=True)
# Kernels vectorised by hand (fastnet.backends._simd) need no fastmath: nothing is left for LLVM to
# vectorise, and without reassociation their sums are added exactly in the order written.
NJIT_SIMD = dict(NJIT, fastmath=False)
# Samples are processed in blocks of BLOCK (block k: samples k * BLOCK ...): the small layers' and
# the softmax's loops run over a block's samples, so a longer block spreads each loop's fixed cost
# over more samples (128 measured 12% faster per step than 32 on 784-10-10 float32; 256 no better
# than 128). A whole number of pairs of vectors (16 float32 samples).
BLOCK = 128
# Blocks are split into fixed chunks, each with its own gradient buffer, summed in a fixed order.
# The split depends only on N, never on the thread count, so results are bit-identical for any
# number of threads. At most N_CHUNKS (keeps up to 16 cores busy), and at least MIN_CHUNK_SAMPLES
# samples per chunk, so a small mini-batch does not pay for zeroing and summing 16 buffers.
N_CHUNKS = 16
MIN_CHUNK_SAMPLES = 512


def n_chunks(n_samples):
    """How many chunks a pass over ``n_samples`` samples uses (never more than it has blocks)."""
    return max(1, min(N_CHUNKS, n_samples // MIN_CHUNK_SAMPLES, -(-n_samples // BLOCK)))


# Mini-batch epochs run in one serial compiled call (backends/_numba_epoch) for batches up to this
# size; larger batches are stepped one by one with the parallel full-batch kernels, where the two
# cores pay for the Python between batches.
FUSED_EPOCH_MAX_BATCH = 2048

# Pixels non-zero in at least this fraction of a dataset's samples are stored and computed densely,
# the others sparsely (see backends/_numba_first_layer). Measured single-threaded, forward +
# backward, per sample: ~1.5 cycles per dense pixel, ~4.9 per sparse non-zero one, so the break-even
# is near 1/3. On MNIST 0.4 picks the 195 central pixels; 0.25 to 0.5 gave the same step time.
DENSE_PIXEL_FRACTION = 0.4


# Training stops as diverged when the loss or a parameter is NaN/inf, or when the loss exceeds this
# multiple of the first step's loss: with the stable softmax, a too-large learning rate (say 1e4)
# blows the loss up to ~1e12 without ever producing NaN, and gradient descent does not come back.
DIVERGENCE_LOSS_RATIO = 100.0


# Test tolerances: relative tolerance (rtol) and absolute tolerance (atol) for assert_allclose.
TOLERANCES = {
    # numba float64 vs numpy float64: the same mathematics, summed in another order
    # (per-chunk, skipping zero pixels, reassociated); differences are rounding only.
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


def numba_cache_dir():
    """Where compiled kernels are cached when the install folder is read-only, or None.

    Numba caches next to the source (``__pycache__``); a read-only install has no such place and,
    without a writable home, Numba fails with "no locator available". fastnet then uses
    ``$NUMBA_CACHE_DIR`` if set, else ``~/.cache/fastnet/numba``, else ``fastnet-numba-<uid>`` in the
    temp dir.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    here = Path(__file__).parent / "backends"
    if os.access(here, os.W_OK):
        return None
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastnet" / "numba"
    shared_tmp = Path(tempfile.gettempdir()) / f"fastnet-numba-{os.getuid() if hasattr(os, 'getuid') else 0}"
    for candidate in (user_cache, shared_tmp):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return str(candidate)
    return None
