"""One pass over the data, in parallel over fixed chunks of blocks; then the chunks' gradient
buffers summed in chunk order, and the update.

A pass splits the N samples into blocks of B (block ``blk``: samples blk * B ...) and the blocks
into C fixed chunks (flags.n_chunks), processed in parallel with prange. Per block: layer 1
forward (.first_layer), layers 2..L forward (.upper_layers), softmax and loss (.softmax), then, on
a backward pass, layers L..2 backward and layer 1 backward. Each chunk writes only its own buffers
(see .workspace.Buffers), so no thread ever races another, and the buffers are summed in chunk
order, so results do not depend on the number of threads.
"""

from __future__ import annotations

import numba
from numba import njit, prange

from fastnet.backends.numba import dense_pixels, first_layer, upper_layers
from fastnet.backends.numba.flags import NJIT, NJIT_PARALLEL
from fastnet.backends.numba.layers import ACT_AT, B_AT, N_IN, N_OUT, W_AT
from fastnet.backends.numba.softmax import softmax_xent
from fastnet.backends.numba.vector import lane_count


@njit(**NJIT_PARALLEL)
def chunked_pass(buffers, probs, features, flat, y, n_chunks, backward):
    """Forward (and, if ``backward``, gradient accumulation) over n_chunks fixed chunks in parallel.

    ``buffers`` (.workspace.Buffers) receives, per chunk c: stats[c] = (loss sum, number correct);
    when ``backward``, chunk c's gradient sums (not yet divided by N) in w1t_grads[c] (W1,
    pixel-major) and flat_grads[c] (the rest). probs (N, K) is filled when it has N rows.
    ``features`` (.features.Features, its dense values flattened) and the labels y (N,), -1 for
    none, are read; ``buffers.W1T`` must hold layer 1's weights (first_layer.gather_weights).
    """
    # Every array is taken out of the namedtuples before the prange loop: inside it, a write
    # through a namedtuple's field (``buffers.stats[c, 0] = ...``) is silently lost (Numba issues
    # #5872, #7135, open in 0.68).
    layers, Hp, W1T, stats = buffers.layers, buffers.Hp, buffers.W1T, buffers.stats
    all_acts, all_deltas, all_unit_sums = buffers.acts, buffers.deltas, buffers.unit_sums
    softmax_scratch, best_class = buffers.softmax_scratch, buffers.best_class
    flat_grads, w1t_grads, thread_lane_sums = buffers.flat_grads, buffers.w1t_grads, buffers.lane_sums
    N = features.ptr.shape[0] - 1
    C = n_chunks
    n_layers = layers.shape[0]
    K, o = layers[n_layers - 1, N_OUT], layers[n_layers - 1, ACT_AT]
    want_probs = probs.shape[0] == N
    block = all_acts.shape[2]
    n_blocks = (N + block - 1) // block
    H = layers[0, N_OUT]
    lane_sums_size = dense_pixels.lane_sums_size(features.dense_pixels.shape[0], H, lane_count(W1T))
    for c in prange(C):
        acts, deltas = all_acts[c], all_deltas[c]  # feature-major, (rows, B)
        unit_sums = all_unit_sums[c]  # a sample's layer-1 sums (forward) or deltas (backward)
        top, total, e = softmax_scratch[c, 0], softmax_scratch[c, 1], softmax_scratch[c, 2]
        best = best_class[c]
        flat_grad, w1t_grad = flat_grads[c], w1t_grads[c]
        lane_sums = thread_lane_sums[numba.get_thread_id()]
        if backward:
            flat_grad[layers[0, B_AT]:] = 0  # from b1 on: W1's gradient goes to w1t_grad, its part here is unused
            w1t_grad[:] = 0
            lane_sums[:lane_sums_size] = 0
        loss = 0.0
        correct = 0
        for blk in range(c * n_blocks // C, (c + 1) * n_blocks // C):
            n0 = blk * block
            nb = min(block, N - n0)
            first_layer.forward(acts, unit_sums, blk, nb, features, W1T, Hp, flat, layers)
            upper_layers.forward(acts, nb, flat, layers)
            block_loss, block_correct = softmax_xent(acts, nb, layers, y, n0, best, top, total, e)
            loss += block_loss
            correct += block_correct
            if want_probs:
                for b in range(nb):
                    for j in range(K):
                        probs[n0 + b, j] = acts[o + j, b]
            if backward:
                upper_layers.backward(flat_grad, deltas, acts, nb, y, n0, flat, layers)
                first_layer.backward(flat_grad, w1t_grad, lane_sums, unit_sums, blk, nb, deltas, features, Hp, layers)
        if backward:
            dense_pixels.fold_lane_sums(w1t_grad, Hp, lane_sums, features.dense_pixels, H, features.scale)
        stats[c, 0] = loss
        stats[c, 1] = correct


@njit(**NJIT_PARALLEL)
def reduce_gradients(mean_grad, flat_grads, w1t_grads, inv_n, layers):
    """mean_grad = (the chunks' sums, added in chunk order) * inv_n, laid out like net.flat: W1's
    from the pixel-major w1t_grads (C, D * Hp), the rest from flat_grads (C, P)."""
    C = flat_grads.shape[0]
    D, H, w0 = layers[0, N_IN], layers[0, N_OUT], layers[0, W_AT]
    Hp = w1t_grads.shape[1] // D
    for h in prange(H):
        for d in range(D):
            s = w1t_grads[0, d * Hp + h]
            for c in range(1, C):
                s += w1t_grads[c, d * Hp + h]
            mean_grad[w0 + h * D + d] = s * inv_n
    for p in prange(w0 + H * D, mean_grad.shape[0]):
        s = flat_grads[0, p]
        for c in range(1, C):
            s += flat_grads[c, p]
        mean_grad[p] = s * inv_n


@njit(**NJIT)
def update(flat, grad, lr):
    """Gradient descent: flat -= lr * grad."""
    for p in range(flat.shape[0]):
        flat[p] -= lr * grad[p]
