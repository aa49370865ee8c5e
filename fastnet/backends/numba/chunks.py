"""One pass over the data, chunk by chunk; then the chunks' gradient buffers summed in chunk
order, and the update.

A pass splits the features' N rows (the samples, in the features' order: .features) into blocks
of B (block ``blk``: rows blk * B ...) and the blocks into C fixed chunks (flags.n_chunks) of about
the same predicted cost (:func:`chunk_blocks`). :func:`chunk_pass`
runs one chunk: per block, layer 1 forward (.first_layer), layers 2..L forward (.upper_layers),
softmax and loss (.softmax), then, on a backward pass, layers L..2 backward and layer 1 backward.
The backend runs the chunks on its worker threads (the kernels release the GIL). Each chunk
writes only its own buffers (see .workspace.Buffers), and the buffers are summed in chunk order,
so results do not depend on the number of threads.

Why threads of our own instead of Numba's ``prange``: a ``parallel=True`` kernel took 12 s of the
first run's compilation (of ~14 s) and is slower to load from the cache; a serial kernel called
from a thread pool computes the same and compiles in a fraction of that.
"""

from __future__ import annotations

from numba import njit

from fastnet.backends.numba import dense_pixels, first_layer, upper_layers
from fastnet.backends.numba.compiling import KernelCalls
from fastnet.backends.numba.flags import DENSE_UNIT_COST, INLINE, NJIT, SAMPLE_COST, SPARSE_UNIT_COST, UNIT_COST
from fastnet.backends.numba.layers import ACT_AT, B_AT, N_IN, N_OUT, W_AT
from fastnet.backends.numba.softmax import softmax_xent
from fastnet.backends.numba.vector import lane_count


@njit(**NJIT)
def chunk_pass(c, n_chunks, buffers, lane_sums, probs, features, flat, y, backward):
    """Forward (and, if ``backward``, gradient accumulation) over chunk c of n_chunks.

    ``buffers`` (.workspace.Buffers) receives stats[c] = (loss sum, number correct) and, when
    ``backward``, chunk c's gradient sums (not yet divided by N) in w1t_grads[c] (W1, pixel-major)
    and flat_grads[c] (the rest); lane_sums is the calling worker's own (see .dense_pixels). probs
    (N, K) is filled when it has N rows. ``features`` (.features.Features, its dense values
    flattened) and the labels y (N,), -1 for none, are read; ``buffers.W1T`` and ``W1U`` must hold
    layer 1's weights (first_layer.gather_weights). Blocks are of the features' rows, which hold the samples
    in features.order: labels are read, and probabilities written, through it.
    """
    layers, Hp, W1T = buffers.layers, buffers.Hp, buffers.W1T
    N = features.ptr.shape[0] - 1
    n_layers = layers.shape[0]
    K, o = layers[n_layers - 1, N_OUT], layers[n_layers - 1, ACT_AT]
    block = buffers.acts.shape[2]
    H = layers[0, N_OUT]
    acts, deltas = buffers.acts[c], buffers.deltas[c]  # feature-major, (rows, B)
    unit_sums = buffers.unit_sums[c]  # a sample's layer-1 sums (forward) or deltas (backward)
    top, total, e = buffers.softmax_scratch[c, 0], buffers.softmax_scratch[c, 1], buffers.softmax_scratch[c, 2]
    best, labels = buffers.best_class[c], buffers.labels[c]
    flat_grad, w1t_grad = buffers.flat_grads[c], buffers.w1t_grads[c]
    if backward:
        flat_grad[layers[0, B_AT]:] = 0  # from b1 on: W1's gradient goes to w1t_grad, its part here is unused
        w1t_grad[:] = 0
        lane_sums[:dense_pixels.lane_sums_size(features.slot_pixels.shape[0], H, lane_count(W1T))] = 0
    loss = 0.0
    correct = 0
    first, end = chunk_blocks(c, n_chunks, features, block, H, Hp)
    for blk in range(first, end):
        n0 = blk * block
        nb = min(block, N - n0)
        for b in range(nb):
            labels[b] = y[features.order[n0 + b]]
        first_layer.forward(acts, unit_sums, blk, nb, features, W1T, Hp, buffers.W1U, flat, layers)
        upper_layers.forward(acts, nb, flat, layers)
        block_loss, block_correct = softmax_xent(acts, nb, layers, labels, best, top, total, e)
        loss += block_loss
        correct += block_correct
        if probs.shape[0] == N:
            for b in range(nb):
                for j in range(K):
                    probs[features.order[n0 + b], j] = acts[o + j, b]
        if backward:
            upper_layers.backward(flat_grad, deltas, acts, nb, labels, flat, layers)
            first_layer.backward(flat_grad, w1t_grad, lane_sums, unit_sums, blk, nb, deltas, features, Hp, layers)
    if backward:
        dense_pixels.fold_lane_sums(w1t_grad, Hp, lane_sums, features.slot_pixels, H, features.scale)
    buffers.stats[c, 0] = loss
    buffers.stats[c, 1] = correct


@njit(**NJIT, **INLINE)
def chunk_blocks(c, n_chunks, features, block, H, Hp):
    """Chunk c's blocks [first, end) of n_chunks: each block goes to the chunk whose equal share of
    the total predicted cost (:func:`_block_cost`) holds the block's midpoint, so that the chunks
    take about as long (and n_chunks blocks of equal cost make one chunk each). A function of the
    features, the layer sizes and n_chunks alone, as a pass's sums must be (.flags)."""
    N = features.ptr.shape[0] - 1
    n_blocks = (N + block - 1) // block
    total = 0
    for blk in range(n_blocks):
        total += _block_cost(features, blk, block, N, H, Hp)
    first, end, before = n_blocks, n_blocks, 0  # before: the cost of the blocks before blk
    for blk in range(n_blocks):
        cost = _block_cost(features, blk, block, N, H, Hp)
        share = (2 * before + cost) * n_chunks // (2 * total)  # the chunk of the block's midpoint
        if share >= c and first == n_blocks:
            first = blk
        if share > c:
            end = blk
            break
        before += cost
    return first, end


@njit(**NJIT, **INLINE)
def _block_cost(features, blk, block, N, H, Hp):
    """Block blk's predicted cost for H units in layer 1 (Hp padded), in flags.SAMPLE_COST's units:
    a positive integer, so that every chunk sums it exactly alike."""
    n0 = blk * block
    nb = min(block, N - n0)
    dense = features.block_ptr[blk + 1] - features.block_ptr[blk]
    entries = features.ptr[n0 + nb] - features.ptr[n0]
    per_sample = DENSE_UNIT_COST * H * dense + SAMPLE_COST + UNIT_COST * H
    return nb * per_sample + SPARSE_UNIT_COST * Hp * entries


def kernel_calls(c, n_chunks, buffers, lane_sums, probs, features, flat, y, backward):
    """chunk_pass with these arguments, and the kernels it calls with arguments of the types it
    gives them, the two costliest to compile at the two ends (.compiling). Keep in step with
    chunk_pass: a test checks that compiling these leaves nothing else for chunk_pass to compile."""
    acts, deltas, unit_sums = buffers.acts[c], buffers.deltas[c], buffers.unit_sums[c]
    layers, Hp, nb = buffers.layers, buffers.Hp, 0
    flat_grad, w1t_grad, scratch = buffers.flat_grads[c], buffers.w1t_grads[c], buffers.softmax_scratch[c]
    labels = buffers.labels[c]
    return KernelCalls(
        top=(chunk_pass, (c, n_chunks, buffers, lane_sums, probs, features, flat, y, backward)),
        calls=[(first_layer.forward, (acts, unit_sums, 0, nb, features, buffers.W1T, Hp, buffers.W1U, flat, layers)),
               (softmax_xent, (acts, nb, layers, labels, buffers.best_class[c], *scratch)),
               (upper_layers.forward, (acts, nb, flat, layers)),
               (upper_layers.backward, (flat_grad, deltas, acts, nb, labels, flat, layers)),
               (dense_pixels.fold_lane_sums, (w1t_grad, Hp, lane_sums, features.slot_pixels, layers[0, N_OUT],
                                              features.scale)),
               (first_layer.backward, (flat_grad, w1t_grad, lane_sums, unit_sums, 0, nb, deltas, features, Hp,
                                       layers))])


@njit(**NJIT)
def reduce_gradients(mean_grad, flat_grads, w1t_grads, inv_n, layers):
    """mean_grad = (the chunks' sums, added in chunk order) * inv_n, laid out like net.flat: W1's
    from the pixel-major w1t_grads (C, D * Hp), the rest from flat_grads (C, P). The chunks are
    added into chunk 0's buffers (in order, so each sum is ((g0 + g1) + g2) + ...), read in
    memory order."""
    C = flat_grads.shape[0]
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_AT]
    Hp = w1t_grads.shape[1] // D
    total_w1t, total_flat = w1t_grads[0], flat_grads[0]
    for c in range(1, C):
        w1t = w1t_grads[c]
        for i in range(total_w1t.shape[0]):
            total_w1t[i] += w1t[i]
        rest = flat_grads[c]
        for p in range(w0 + H * D, total_flat.shape[0]):
            total_flat[p] += rest[p]
    for d in range(D):
        for h in range(H):
            mean_grad[w0 + h * D + d] = total_w1t[d * Hp + h] * inv_n
    for p in range(w0 + H * D, mean_grad.shape[0]):
        mean_grad[p] = total_flat[p] * inv_n


@njit(**NJIT)
def update(flat, grad, lr):
    """Gradient descent: flat -= lr * grad."""
    for p in range(flat.shape[0]):
        flat[p] -= lr * grad[p]
