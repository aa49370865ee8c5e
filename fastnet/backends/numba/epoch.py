"""One epoch of mini-batch SGD in one compiled call: every batch's forward, backward and update,
with no Python between batches.

Why a kernel of its own: a batch of 64 is ~15 µs of arithmetic, while going back to Python for it
(choosing its rows, checks, a parallel launch, the divergence check) costs several times that.
Batches are sequential by nature (each starts from the previous one's parameters). Within a batch,
the first layer (~90% of the time at hidden 64) is shared out by units: the kernel runs on up to as
many threads as there are shares of units, each a pass over a sample's entries
(sparse_pixels.sum_rows: 2 to 4 vectors of units per pass; share_width), each thread summing and
updating the units of a contiguous run of shares, whose weights it keeps in a slab of its own
(run_epoch), and the threads meet twice per batch at a spin barrier (.sync) around the rest, which
thread 0 runs. A unit is computed by the same code in the same order whichever thread runs it, so
the result does not depend on the thread count.

Layout. The samples are read in the caller's ``order`` straight from the dataset's compressed
sparse rows of *all* non-zero pixels (``EpochFeatures``): a sample has ~150 of 784, and per sample
the first layer is a sum of weight rows (forward) and an update of the same rows (backward), the
idiom of :mod:`.sparse_pixels`, whose row sums it reuses. A batch is cut into blocks of up to
flags.BLOCK samples (``Bk``), each with its own feature-major activations and deltas, so the upper
layers (:mod:`.upper_layers`) and the softmax (:mod:`.softmax`) are the full-batch pass's own.

Per batch: forward and backward of every block, with the upper layers' and b1's gradients summed
in ``grad``; then the update of those parameters; then W1's update, applied sample by sample
straight into the pixel-major weights, each thread's slab (W1 -= lr / n * x_b outer d_b summed
over the batch: the reference's mathematics, its sum taken in another order). All of a batch's
forward passes finish before any of its updates, as in the reference.

Memory, not arithmetic, sets the pace: samples come in random order from all over the dataset,
where the hardware prefetcher does not look, so the forward pass asks for the entries of the
sample PREFETCH_AHEAD places ahead while it computes this one (2.4x faster at hidden 10); the
update then finds them in cache.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from fastnet.backends.numba import upper_layers
from fastnet.backends.numba.compiling import KernelCalls
from fastnet.backends.numba.features import compressed_rows, take_rows
from fastnet.backends.numba.first_layer import _activate, add_bias_gradient, gather_pixel_major
from fastnet.backends.numba.flags import INLINE, NJIT, NJIT_SIMD
from fastnet.backends.numba.layers import B_AT, N_IN, N_OUT, W_AT
from fastnet.backends.numba.softmax import softmax_xent
from fastnet.backends.numba.sparse_pixels import add_rows, pass_width, sum_rows
from fastnet.backends.numba.sync import wait_all
from fastnet.backends.numba.vector import prefetch

PREFETCH_AHEAD = 2  # samples: far enough for their entries to arrive, near enough to stay in cache

# Why an epoch stopped (the kernel's second result).
RAN = 0  # every batch ran
BAD_LOSS = 1  # a batch's loss was NaN/inf or above max_ratio * first_loss (its update was applied)
BAD_PARAMS = 2  # a batch's update made a parameter NaN/inf (only found when ``checked``)


class EpochFeatures(NamedTuple):
    """Every non-zero pixel of every sample, row by row, made once per (dataset, dtype)."""

    ptr: np.ndarray  # (N + 1,) int64: sample n's entries are [ptr[n], ptr[n + 1])
    idx: np.ndarray  # (nnz,) pixel of each entry: uint16 (int32 if D > 65,536)
    val: np.ndarray  # (nnz,) its value: uint8 stays uint8 (the 1/255 is applied inside), or floats
    scale: np.generic  # 1/255 for uint8 pixels, 1 for floats


class EpochBuffers(NamedTuple):
    """Scratch for one (sizes, dtype, blocks per batch), allocated once (.workspace) and reused."""

    acts: np.ndarray  # (blocks, R + UNIT_TILE, Bk) each block's activations, feature-major (as chunks')
    deltas: np.ndarray  # (blocks, R + UNIT_TILE, Bk) their deltas
    labels: np.ndarray  # (blocks, Bk) int64: each block's labels
    softmax_scratch: np.ndarray  # (3, Bk) the softmax's running max, total and exp values
    best_class: np.ndarray  # (Bk,) int64: the softmax's argmax
    unit_sums: np.ndarray  # (parts, Hp) per thread: one sample's layer-1 sums (its slab's units first)
    unit_deltas: np.ndarray  # (parts, Hp) per thread: one sample's layer-1 deltas, scaled (run_epoch zeroes them)
    flat_grad: np.ndarray  # (P,) the batch's gradient sums of b1 and layers 2..L (W1's region unused)


def epoch_features(X, dtype):
    """EpochFeatures of validated features X (N, D)."""
    return EpochFeatures(*compressed_rows(X, X != 0, dtype))


def subset_epoch_features(f, rows):
    """EpochFeatures of rows ``rows`` of an already prepared dataset."""
    return EpochFeatures(*take_rows(f.ptr, f.idx, f.val, rows), f.scale)


@njit(**NJIT_SIMD, **INLINE)
def _prefetch_rows(f, sample):
    """Ask for the sample's entries (idx and val) to be brought into cache; a hint only."""
    lo, hi = f.ptr[sample], f.ptr[sample + 1]
    for k in range(lo, hi, 64 // f.idx.itemsize):
        prefetch(f.idx, k)
    for k in range(lo, hi, 64 // f.val.itemsize):
        prefetch(f.val, k)


@njit(**NJIT_SIMD)
def _first_layer_sums(A, z, order, n0, nb, f, W1S, Hs, width, u0, H):
    """A[h, b] = sum over the entries k of sample order[n0 + b] of val[k] * W1[h, idx[k]]
    (unscaled), for b < nb and this thread's units h = u0 .. u0 + Hs (below H), whose weights are
    its slab W1S (see run_epoch), one pass over the entries per share of ``width`` units; z (Hs,)
    is scratch."""
    last = order.shape[0] - 1
    for b in range(nb):
        _prefetch_rows(f, order[min(n0 + b + PREFETCH_AHEAD, last)])
        sample = order[n0 + b]
        sum_rows(z, f.ptr[sample], f.ptr[sample + 1], f.idx, f.val, W1S, Hs, width)
        for h in range(u0, min(u0 + Hs, H)):
            A[h, b] = z[h - u0]


@njit(**NJIT, **INLINE)
def _all_finite(a):
    """Whether a holds no NaN/inf (a sum of each value times 0 is NaN otherwise)."""
    check = a.dtype.type(0)
    for i in range(a.shape[0]):
        check += a[i] * a.dtype.type(0)
    return check == 0


@njit(**NJIT)
def _upper_layers(flat, f, y, order, s, n, lr, layers, buffers, train):
    """Batch order[s : s + n] from its first-layer sums on: activation, upper layers, softmax and,
    if ``train``, the backward pass down to the first layer's deltas and the update of b1 and
    layers 2..L. Returns (loss sum, number correct)."""
    b0 = layers[0, B_AT]
    Bk = buffers.acts.shape[2]
    flat_grad = buffers.flat_grad
    top, total, ex = buffers.softmax_scratch[0], buffers.softmax_scratch[1], buffers.softmax_scratch[2]
    flat_grad[b0:] = 0
    loss = 0.0
    correct = 0
    for blk in range(-(-n // Bk)):
        n0, nb = s + blk * Bk, min(Bk, n - blk * Bk)
        acts, deltas, labels = buffers.acts[blk], buffers.deltas[blk], buffers.labels[blk]
        for b in range(nb):
            labels[b] = y[order[n0 + b]]
        _activate(acts, nb, flat, layers, f.scale)
        upper_layers.forward(acts, nb, flat, layers)
        block_loss, block_correct = softmax_xent(acts, nb, layers, labels, buffers.best_class, top, total, ex)
        loss += block_loss
        correct += block_correct
        if not train:
            continue
        upper_layers.backward(flat_grad, deltas, acts, nb, labels, flat, layers)
        add_bias_gradient(flat_grad, deltas, nb, layers)
    if train:
        t = flat.dtype.type
        step = t(lr) * t(1 / n)
        for p in range(b0, flat.shape[0]):  # b1 and layers 2..L
            flat[p] -= step * flat_grad[p]
    return loss, correct


@njit(**NJIT)
def _first_layer_update(W1S, e, f, order, s, n, lr, deltas_by_block, Hs, width, u0, H):
    """W1 -= lr / n * sum over the batch's samples of x_b outer d_b, sample by sample straight into
    this thread's slab W1S (units u0 .. u0 + Hs, see run_epoch; a pass per share of ``width``
    units); e (Hs,) is scratch, zero from unit H on."""
    Bk = deltas_by_block.shape[2]
    t = W1S.dtype.type
    c = -(t(lr) * t(1 / n)) * f.scale
    for blk in range(-(-n // Bk)):
        n0, nb = s + blk * Bk, min(Bk, n - blk * Bk)
        deltas = deltas_by_block[blk]
        for b in range(nb):
            sample = order[n0 + b]
            for h in range(u0, min(u0 + Hs, H)):
                e[h - u0] = deltas[h, b] * c  # its deltas * -lr/n * scale
            add_rows(W1S, e, f.ptr[sample], f.ptr[sample + 1], f.idx, f.val, Hs, width)


def share_width(Hp, lanes):
    """How many of the first layer's Hp units make one share of them between the epoch's threads
    (from Python; run_epoch takes it), each share one pass over a sample's entries: a full-batch
    pass's (sparse_pixels.pass_width), except that a single pass of 2 or 4 vectors is cut into two
    shares of half as many, for two threads. The shares depend on Hp alone, never on the thread
    count: a unit is summed in the same order by one thread or two.

    Why the cut: such an epoch ran on one thread. Measured against the one pass, batch 64, two
    threads, in fresh processes alternated (README, *On an Intel host: CPUs of their own*): 4
    vectors (hidden 25-32 at 8 lanes) 0.70-0.88x the time; 2 vectors: hidden 32 float32 at 16
    lanes 0.88x, hidden 10 float64 at 8 lanes 0.86x, hidden 10 float32 at 8 lanes 0.87x."""
    width = Hp // 2 if Hp in (2 * lanes, 4 * lanes) else pass_width.py_func(Hp, lanes)
    assert Hp % width == 0 and width // lanes in (1, 2, 3, 4), (Hp, lanes)  # what sum_rows and add_rows take
    return width


@njit(**NJIT, **INLINE)
def part_units(Hp, width, part, parts):
    """The units (u0, u1) of thread ``part``'s slab: a contiguous run of the shares of ``width``
    units each, the first threads taking one more when they do not divide evenly. parts must be at
    most Hp // width (the backend runs no more threads than shares)."""
    count_all = Hp // width
    first = part * (count_all // parts) + min(part, count_all % parts)
    count = count_all // parts + (1 if part < count_all % parts else 0)
    return first * width, (first + count) * width


@njit(**NJIT)
def run_epoch(flat, W1T, Hp, f, y, order, batch_size, lr, first_loss, max_ratio, layers, buffers, losses, accuracies,
              checked, width, part, parts, sync, train):
    """Batches order[0:batch_size], order[batch_size:2 * batch_size], ... until the end or the
    first unsound batch. losses and accuracies get one entry per batch run; a NaN first_loss means
    "this epoch's first batch's".

    Run by ``parts`` threads at once, thread ``part`` each (sync: their shared barrier, zeroed; see
    .sync). The first layer's units are shared out in shares of ``width`` units (share_width), each
    a pass over a sample's entries (sparse_pixels.sum_rows): thread p takes a contiguous run of them
    (part_units) and keeps its units' weights in a slab of its own, W1S[d * Hs + h - u0] = W1[h, d],
    D * Hs values of the buffer W1T (D * Hp) from D * u0 on, filled from flat here
    (first_layer.gather_pixel_major) and written back at the end. Thread 0 alone runs the rest of
    each batch (the upper layers, the softmax, the divergence guard) between two barriers. Every
    unit is computed by the same code in the same order whoever runs it: the result is bit-identical
    for any number of threads.

    Why slabs: with the units of one pixel-major W1T interleaved between the threads (each thread
    128 bytes of every 256-byte row at hidden 64), two threads took 1.2-1.8x as long as one on an
    Intel host (hidden 64 to 256, batch 64), where the hardware prefetchers bring the lines next
    to a thread's own into its cache, lines the other thread writes. The slabs leave W1T's
    pixel-major layout behind them: every pass gathers it again (first_layer.gather_weights).

    The parameters are checked for NaN/inf after every batch only when ``checked`` (one thread
    only): a check of all of W1 per batch would cost as much as the batch. Unchecked, an
    overflowing update of W1 shows in the next batch's loss (NaN), which stops the epoch; the
    caller checks the parameters once at the end and, if one is NaN/inf, runs the epoch again from
    the same start, checked, to find the batch. Returns (batches run, RAN | BAD_LOSS | BAD_PARAMS).

    Not ``train``: every batch's forward pass only, its loss and accuracy recorded, nothing
    changed and nothing stopped (an evaluation: the backend's evaluate in batches)."""
    N = order.shape[0]
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_AT]
    Bk = buffers.acts.shape[2]
    u0, u1 = part_units(Hp, width, part, parts)
    Hs = u1 - u0
    W1S = W1T[D * u0:D * u1]
    z, e = buffers.unit_sums[part, :Hs], buffers.unit_deltas[part, :Hs]
    gather_pixel_major(W1S, Hs, u0, flat, layers)
    e[:] = 0
    stopped = RAN
    i = 0
    met = 0  # barriers met
    for s in range(0, N, batch_size):
        n = min(batch_size, N - s)
        for blk in range(-(-n // Bk)):
            n0, nb = s + blk * Bk, min(Bk, n - blk * Bk)
            _first_layer_sums(buffers.acts[blk], z, order, n0, nb, f, W1S, Hs, width, u0, H)
        if parts > 1:
            met += 1
            wait_all(sync, met * parts)
        if part == 0:
            loss_sum, correct = _upper_layers(flat, f, y, order, s, n, lr, layers, buffers, train)
            loss = loss_sum / n
            losses[i] = loss
            accuracies[i] = correct / n
            if first_loss != first_loss:
                first_loss = loss
            if train and not (np.isfinite(loss) and loss <= max_ratio * first_loss):
                stopped = BAD_LOSS
            sync[1] = stopped
        if parts > 1:
            met += 1
            wait_all(sync, met * parts)
            stopped = sync[1]
        if train:
            _first_layer_update(W1S, e, f, order, s, n, lr, buffers.deltas, Hs, width, u0, H)
        i += 1
        if stopped != RAN:  # the unsound batch's update is applied, as the generic epoch's
            break
        if checked and not (_all_finite(W1S) and _all_finite(flat[layers[0, B_AT]:])):
            stopped = BAD_PARAMS
            break
    if train:  # W1 back into flat, each thread its own units
        for h in range(u0, min(u1, H)):
            for d in range(D):
                flat[w0 + h * D + d] = W1S[d * Hs + h - u0]
    return i, stopped


def kernel_calls(*args):
    """run_epoch with these arguments, and the kernels it calls with arguments of the types it gives
    them (with those _upper_layers calls), the costliest to compile at the two ends (.compiling).
    Keep in step with run_epoch (a test checks it, as for chunks.kernel_calls)."""
    (flat, W1T, Hp, f, y, order, batch_size, lr, first_loss, max_ratio, layers, buffers, losses, accuracies,
     checked, width, part, parts, sync, train) = args
    H, s, n = layers[0, N_OUT], 0, 0
    acts, deltas, labels = buffers.acts[0], buffers.deltas[0], buffers.labels[0]
    return KernelCalls(
        top=(run_epoch, args),
        calls=[(softmax_xent, (acts, n, layers, labels, buffers.best_class, *buffers.softmax_scratch)),
               (upper_layers.forward, (acts, n, flat, layers)),
               (upper_layers.backward, (buffers.flat_grad, deltas, acts, n, labels, flat, layers)),
               (_upper_layers, (flat, f, y, order, s, n, lr, layers, buffers, train)),
               (gather_pixel_major, (W1T, Hp, 0, flat, layers)),
               (_first_layer_update, (W1T, buffers.unit_deltas[part], f, order, s, n, lr, buffers.deltas, Hp, width,
                                      0, H)),
               (_first_layer_sums, (acts, buffers.unit_sums[part], order, s, n, f, W1T, Hp, width, 0, H))])
