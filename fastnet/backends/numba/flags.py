"""Every setting of the numba backend, in one place: how the kernels are compiled and how the work
is cut up. Every ``@njit`` of the package takes its options from here.

Compiled kernels are cached on disk by :mod:`.kernel_cache`, not by Numba's ``cache=True``: that
would choose its folder from Numba's global configuration, which fastnet leaves alone.
"""

from __future__ import annotations

from fastnet.backends.numba.vector import dtype_lane_count

# fastmath *subset*: reassociation (lets LLVM vectorise float reductions), FMA contraction, no
# signed zeros, reciprocal approximations. Not 'nnan'/'ninf': with those, NaN/inf checks are
# silently compiled away, and fastnet must see divergence.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
NJIT = dict(fastmath=FASTMATH, nogil=True, error_model="numpy", boundscheck=False)
# Kernels vectorised by hand (.vector) need no fastmath: nothing is left for LLVM to vectorise, and
# without reassociation their sums are added exactly in the order written.
NJIT_SIMD = dict(NJIT, fastmath=False)
# Helpers that only kernels call and that are small or called from one place are inlined by Numba
# into their caller (``@njit(**NJIT, **INLINE)``) instead of being compiled on their own: every
# function compiled on its own pays for its own type inference, Python and C wrappers, LLVM
# optimisation and machine code, even when LLVM then inlines it. Measured on the first float32
# step with an empty cache: 7.1 s -> 5.4 s. The kernels with the hot inner loops (sum_rows'
# variants, add_rows, the dense-pixel passes, softmax_xent) stay separate: inlining those made the
# first step compile up to 3 s longer. (The sparse pixels' loops for one or two vectors of units
# are inlined into the pass's tiles: what that bought and cost, sparse_pixels.SAMPLE_TILE. The
# upper layers' _products, later, was kept separate too: the forward and the backward pass share
# its one compilation.) The kernels a top kernel calls directly (the first and upper layers'
# passes, and the epoch's stages) stay separate too: .compiling compiles them on two cores.
INLINE = dict(inline="always")

# Constant arguments: a kernel compiled on its own is never called from another with a constant argument
# (``f(x, 0)``): Numba types a constant as a literal and compiles the kernel once more for it, so two
# paths calling it with 0 and with a variable compiled it twice. Such a call passes ``np.int64(0)``.

# Samples are processed in blocks (block k: rows k * B ... of .features): the upper layers' and
# the softmax's loops run over a block's samples, so a longer block spreads each loop's fixed cost
# over more samples. An epoch in one compiled call (.epoch) takes blocks of BLOCK samples (128
# measured 12% faster per step than 32 on 784-10-10 float32; 256 no better than 128; at 784-64-10
# float32, batches of 4,096, 256 took 1.23-1.36x the time of 128 on a znver4 host). A full-batch
# pass's (and so an epoch's too large for one call, stepped batch by batch) are pass_block(dtype):
# BLOCK, or PASS_BLOCK_VECTORS vectors of samples where that is more (256 float32 samples with
# AVX-512's 16 lanes). Measured in one process, alternated, two threads, 256 against 128 float32
# samples: on an Intel AVX-512 host 0.90-0.94x the time of a step at 784-10-10; on a znver4 host
# 0.91-0.97x at 784-10-10 and 0.95x at 784-128-10; float64 (8 lanes) 1.05-1.08x and 1.02x, so it
# stays at 128. Then whole steps there, fresh processes alternated, 4 rounds: 784-10-10 0.73-1.06x
# (0.87, 0.73, 1.06, 0.96), 10,000 images 0.89-0.94x, 784-128-10 0.82-1.00x. 512 against 256, in
# one process: 1.24-1.29x and 1.10x. A whole number of pairs of vectors: asserted in .workspace.
BLOCK = 128
PASS_BLOCK_VECTORS = 16


def pass_block(dtype):
    """The samples per block of a full-batch pass for a network of this numpy dtype (see BLOCK)."""
    return max(BLOCK, PASS_BLOCK_VECTORS * dtype_lane_count(dtype))


# The bytes of a block's rows (a row: one unit's values for the block's B samples) that a kernel
# keeps its working set within: half of Zen 3's 32 KiB L1 data cache (.dense_pixels).
L1_ROWS_BYTES = 16384

# Blocks are split into fixed chunks, each with its own gradient buffers, summed in a fixed order.
# The split depends only on the data and the layer sizes (chunks.chunk_blocks), never on the thread
# count, so results are bit-identical for any number of threads. At most N_CHUNKS (keeps up to 16
# cores busy), and MIN_CHUNK_SAMPLES samples per chunk or more on average (the chunks are cut by
# cost, not by count), so a small dataset does not pay for zeroing, folding and summing 16 buffers
# (a chunk's lane sums alone are ~140 KB at 784-10-10 float32), in an even number (two threads get
# equal shares) and two from two blocks on, so that two cores work: tuned for 2 cores, where a
# dataset of 4,096-32,767 samples keeps at most 2-14 of them busy. MIN_CHUNK_SAMPLES was 512 (no
# floor of two, any count); against that, a float32 step at 784-10-10 took 0.93x the time at 2,000
# samples (3 chunks -> 2), 0.92x at 4,000 (7 -> 2), 0.89x at 10,000 (16 -> 4), 1.00x at 20,000
# (16 -> 9, before the count was made even), the same 16 from 32,768 on; the final rule against
# 512: 0.99x at 6,000 (11 -> 2), 0.95x at 12,000 (16 -> 4) and at 20,000 (16 -> 8) (an Intel host,
# two threads, medians of 11 alternated in one process).
N_CHUNKS = 16
MIN_CHUNK_SAMPLES = 2048

# A block's predicted cost, to cut a pass's blocks into chunks of about the same cost
# (chunks.chunk_blocks), in hundredths of a cycle: per sample, DENSE_UNIT_COST per dense pixel and
# unit of layer 1, SPARSE_UNIT_COST per sparse entry and padded unit, and SAMPLE_COST + UNIT_COST
# per unit for the rest (the upper layers, the softmax). Fitted to one thread's stages on a znver4
# host, float32 (float64's are about twice each, in the same proportions): at 784-10-10, both passes
# of the dense pixels took 270 cycles per image for 167 pixels, of the sparse ones 163 for 27
# entries, the rest ~80 (130 fitted: the chunks came out more even than with 80); at 784-128-10,
# 3176, 1240 and 476. Cut into equal numbers of blocks instead, as before, the chunks' costs
# followed the similarity order (.features): the 4 chunks of 10,000 images took 0.30, 0.38, 0.40
# and 0.39 ms (now 0.34-0.40), and the two threads finished 0.12 ms apart (now 0.04-0.05; medians
# of 30 steps); at hidden 128, 3.2 to 6.7 ms a chunk (5.0 to 5.8 with the first rule below).
# Steps, fresh processes alternated, 4 rounds, with a first rule that cut where the running cost
# passed each share: 10,000 images 0.84-0.98x the time, 59,000 0.98-1.07x, hidden 128 0.97-1.02x.
DENSE_UNIT_COST = 15
SPARSE_UNIT_COST = 37
SAMPLE_COST = 10_000
UNIT_COST = 300


def n_chunks(n_samples, block):
    """How many chunks a pass over ``n_samples`` samples in blocks of ``block`` uses: up to
    N_CHUNKS of MIN_CHUNK_SAMPLES or more on average, an even number, at least two from two blocks
    on, never more than blocks."""
    blocks = -(-n_samples // block)
    count = min(N_CHUNKS, n_samples // MIN_CHUNK_SAMPLES, blocks)
    return max(min(2, blocks), count - count % 2)


# Mini-batch epochs run in one compiled call (.epoch) while a batch's activations and deltas (kept
# for its update) fit in this many bytes: 12 MB for all of MNIST's 59,000 images in one batch at
# 784-10-10 float32, 68 MB at hidden 128. Larger batches are stepped one by one with the
# full-batch kernels, which cut each batch's features from the dataset's (~1.7 us per sample).
# This replaced a cap of 2,048 samples, beyond which an epoch was no faster than numpy's; what it
# bought: README, *Large batches*.
FUSED_EPOCH_MAX_BYTES = 64 * 2**20

# Datasets of at least PER_BLOCK_MIN_SAMPLES samples get features with each block's own dense pixels,
# the samples ordered by similarity; smaller ones, one set of dense pixels for all blocks (.features).
# The first take longer to prepare and make every pass ~0.9x as long. Measured, preparing (one set
# against per block): 256 samples 0.4 against 4.9 ms, 2,048 3.2 against 24 ms, 8,192 20 against 42
# ms, 59,000 140 against 190 ms. Small arrays are often passed once each (a loop of steps over
# slices of an array), where only the preparation counts. A function of the data alone, so that a
# dataset's results never depend on how it was used before.
PER_BLOCK_MIN_SAMPLES = 8192

# Pixels non-zero in at least this fraction of a block's samples are its *dense pixels*, stored and
# computed as they are; the others are *sparse pixels*, stored as their non-zero entries (see
# .features). Measured single-threaded, forward + backward, per sample: ~1.5 cycles per dense pixel,
# ~4.9 per sparse non-zero one, so the break-even is near 1/3. With one set for the whole of MNIST,
# 0.4 picks the 195 central pixels, and 0.25 to 0.5 gave the same step time; with a set per block
# of similar samples, 0.25 and 0.3 were within noise of 0.4 too.
DENSE_PIXEL_FRACTION = 0.4
