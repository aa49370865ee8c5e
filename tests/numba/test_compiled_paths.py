"""A run compiles only the kernels its path needs: training in mini-batches (and evaluating the
dev set on the way, as the command line does) uses the epoch kernel and never the full-batch pass;
full-batch training, and mini-batches too large for the epoch kernel's budget, the pass and never
the epoch kernel, even where the dev set alone would fit it. Each in a fresh process, where no
other test has used a kernel yet."""

import subprocess
import sys

import pytest

RUN = """
import numpy as np, fastnet
from fastnet.backends.numba import chunks, epoch, flags
flags.FUSED_EPOCH_MAX_BYTES = {budget}
rng = np.random.default_rng(0)
X = rng.integers(0, 256, (700, 784)).astype(np.uint8); y = rng.integers(0, 10, 700)
net = fastnet.Network.init((784, 64, 10), dtype="float32")
fastnet.fit(net, X[:600], y[:600], iterations=2, batch_size={batch_size}, backend="numba", progress=False,
            dev=(X[600:], y[600:]), eval_every=1)
print(len(chunks.chunk_pass.signatures), len(epoch.run_epoch.signatures))
"""


# 784-64-10 float32 keeps 81 KB of activations and deltas per block of 128 samples: with a budget of
# 200 KB, a batch of 512 (4 blocks) is stepped; the 100-image dev set (1 block) would fit alone.
SMALL_BUDGET = 200_000


@pytest.mark.parametrize("batch_size, budget, used", [(64, 64 * 2**20, (0, 1)), (None, 64 * 2**20, (1, 0)),
                                                      (512, SMALL_BUDGET, (1, 0))])
def test_a_run_uses_only_the_kernel_of_its_path(batch_size, budget, used):
    done = subprocess.run([sys.executable, "-c", RUN.format(batch_size=batch_size, budget=budget)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    pass_kernels, epoch_kernels = map(int, done.stdout.split())
    assert (pass_kernels, epoch_kernels) == used
