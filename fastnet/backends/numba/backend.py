"""The ``numba`` backend: the :class:`fastnet.Backend` the registry hands out, and the only part of
the package user calls reach. It validates nothing itself (fastnet.backends.base did), prepares the
features once per dataset (.features), keeps buffers per network shape (.workspace) and runs the
kernels: a pass over the chunks (.chunks) on its worker threads, the chunk sums reduced, the
update applied; or, for mini-batch SGD, a whole epoch in one call (.epoch).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

from fastnet.backends.base import Backend, EpochResult, StepResult
from fastnet.backends.numba import chunks, compiling, cpus, dense_pixels, epoch, first_layer, flags, kernel_cache
from fastnet.backends.numba import softmax, sparse_pixels, upper_layers
from fastnet.backends.numba.epoch import epoch_features, subset_epoch_features
from fastnet.backends.numba.features import prepare_features, subset_features
from fastnet.backends.numba.workspace import Workspace, block_rows
from fastnet.network import Network, unflatten

kernel_cache.use_for(dense_pixels, sparse_pixels, first_layer, upper_layers, softmax, chunks, epoch)
_STOPPED = {epoch.RAN: None, epoch.BAD_LOSS: "loss", epoch.BAD_PARAMS: "params"}


class NumbaBackend(Backend):
    name = "numba"

    def __init__(self):
        self._local = threading.local()  # workspaces per thread: concurrent calls never share buffers
        self._threads = numba.config.NUMBA_NUM_THREADS  # the CPUs, unless NUMBA_NUM_THREADS says fewer
        self._pool = None  # helper threads, started on the first pass that uses two or more workers

    def set_threads(self, n):
        limit = numba.config.NUMBA_NUM_THREADS
        if not 1 <= int(n) <= limit:
            raise ValueError(f"threads must be between 1 and {limit} (NUMBA_NUM_THREADS), got {n}")
        self._threads = int(n)

    def _run_chunks(self, n_chunks, run):
        """run(c, worker) for every chunk c, on min(threads, n_chunks) workers. Each worker has its
        share of the chunks (:func:`deal_chunks`) and runs them in order; a worker done with its own
        takes the last one not yet started from another worker, so that a core slowed by other work
        can run fewer (the chunks are cut to equal predicted costs, chunks.chunk_blocks, but a
        prediction is not a measurement). Taking the next chunk from one shared queue instead left
        one worker a chunk more than the other in 2 of 12 steps at hidden 128 on a quiet machine.
        While the pass runs, each worker is held to a CPU of its own (.cpus). The chunks, not the
        workers, decide what is summed with what."""
        workers = min(self._threads, n_chunks)
        on_cpus = cpus.worker_cpus(workers)
        queues = [deque(share) for share in deal_chunks(n_chunks, workers)]
        lock = threading.Lock()

        def next_chunk(worker):
            with lock:
                if queues[worker]:
                    return queues[worker].popleft()
                longest = max(queues, key=len)
                return longest.pop() if longest else None

        def work(worker):
            with cpus.pinned(on_cpus, worker):
                while (c := next_chunk(worker)) is not None:
                    run(c, worker)

        if workers > 1 and self._pool is None:  # at most NUMBA_NUM_THREADS - 1 helpers are ever needed
            self._pool = ThreadPoolExecutor(numba.config.NUMBA_NUM_THREADS - 1, thread_name_prefix="fastnet-numba")
        helpers = [self._pool.submit(work, w) for w in range(1, workers)]
        try:
            work(0)  # the calling thread is worker 0
        finally:  # even if it failed (or was interrupted): no chunk is started after this returns
            with lock:
                for queue in queues:
                    queue.clear()
            wait(helpers)
        for done in helpers:
            done.result()  # re-raises a helper's exception here

    def first_run_note(self, net):
        return f"compiling the numba kernels for {net.dtype.name} (first run only; cached after)"

    def _workspace(self, net):
        spaces = self._local.__dict__.setdefault("spaces", {})
        key = (net.sizes, net.dtype, flags.BLOCK, flags.pass_block(net.dtype))
        if key not in spaces:
            spaces[key] = Workspace(net.sizes, net.dtype)
        return spaces[key]

    def _features(self, net, data, labels):
        """The prepared features of ``data`` and the labels as int64, -1 for "none" (forward only).
        A mini-batch's are cut from its dataset's features with one set of dense pixels (.features),
        as are those of a dataset below flags.PER_BLOCK_MIN_SAMPLES samples."""
        per_block = not data.is_subset and len(data) >= flags.PER_BLOCK_MIN_SAMPLES
        features = data.prepared(("numba", net.dtype, flags.pass_block(net.dtype), per_block),
                                 lambda X: prepare_features(X, net.dtype, per_block), take=subset_features)
        if labels is None:
            labels = np.full(features.n_samples, -1, np.int64)
        return features, labels

    def _pass(self, net, features, y, ws, backward, probs=None):
        """One pass over the data; the StepResult. With ``backward``, leaves the chunks' gradient
        sums in the workspace for :meth:`_reduce`."""
        n = features.n_samples
        C = flags.n_chunks(n, features.block)
        buffers = ws.for_pass(len(features.slot_pixels))
        probs = ws.no_probs if probs is None else probs

        def args(c, worker):  # chunk_pass's
            return c, C, buffers, buffers.lane_sums[worker], probs, features, net.flat, y, backward

        self._compile_first("pass", net, features.val, lambda: self._pass_calls(net, ws, buffers, backward, args(0, 0)))
        first_layer.gather_weights(buffers.W1T, buffers.Hp, buffers.W1U, net.flat, buffers.layers)
        self._run_chunks(C, lambda c, worker: chunks.chunk_pass(*args(c, worker)))
        stats = buffers.stats[:C]
        return StepResult(float(stats[:, 0].sum() / n), float(stats[:, 1].sum() / n))

    @staticmethod
    def _pass_calls(net, ws, b, backward, chunk_args):
        """compiling.KernelCalls of a pass: chunk_pass's (called with chunk_args, whose buffers are
        b), with the pass's other kernels in the middle (the reduction and the update only for a
        pass that computes gradients)."""
        calls = chunks.kernel_calls(*chunk_args)
        others = [(first_layer.gather_weights, (b.W1T, b.Hp, b.W1U, net.flat, b.layers))]
        if backward:
            others += [(chunks.reduce_gradients, (ws.mean_grad, b.flat_grads, b.w1t_grads, net.dtype.type(1),
                                                  b.layers)),
                       (chunks.update, (net.flat, ws.mean_grad, net.dtype.type(1)))]
        return calls._replace(calls=calls.calls[:-1] + others + calls.calls[-1:])

    def _compile_first(self, path, net, pixels, make_calls):
        """Before a path's first call in this process: compiled on two cores if the cache is cold
        (.compiling). ``pixels``: an array of the dataset's prepared pixel values. The kernels'
        types depend on the dtypes and the number of inputs (uint16 or int32 pixel indices) only."""
        compiling.prepare((path, net.sizes[0], net.dtype, pixels.dtype), make_calls, self._threads)

    def _reduce(self, mean_grad, ws, net, features):
        """mean_grad = the gradient of the mean loss, from the chunk sums of the last pass."""
        n = features.n_samples
        C = flags.n_chunks(n, features.block)
        b = ws.buffers
        chunks.reduce_gradients(mean_grad, b.flat_grads[:C], b.w1t_grads[:C], net.dtype.type(1 / n), b.layers)

    def _forward(self, net, data):
        features, y = self._features(net, data, None)
        probs = np.empty((len(y), net.sizes[-1]), net.dtype)
        self._pass(net, features, y, self._workspace(net), backward=False, probs=probs)
        return probs

    def _evaluate(self, net, data, labels):
        features, y = self._features(net, data, labels)
        return self._pass(net, features, y, self._workspace(net), backward=False)

    def _gradients(self, net, data, labels):
        features, y = self._features(net, data, labels)
        ws = self._workspace(net)
        self._pass(net, features, y, ws, backward=True)
        mean_grad = np.empty_like(net.flat)
        self._reduce(mean_grad, ws, net, features)
        return unflatten(mean_grad, net.sizes)

    def _update(self, net, flat_grads, lr):
        chunks.update(net.flat, flat_grads, net.dtype.type(lr))

    def _step(self, net, data, labels, lr):
        features, y = self._features(net, data, labels)
        ws = self._workspace(net)
        result = self._pass(net, features, y, ws, backward=True)
        self._reduce(ws.mean_grad, ws, net, features)
        chunks.update(net.flat, ws.mean_grad, net.dtype.type(lr))
        return result

    @staticmethod
    def _fuses(net, batch_size):
        """Whether epochs of ``batch_size`` run in one compiled call (.epoch): while a batch's
        activations and deltas, which it keeps until its update, fit flags.FUSED_EPOCH_MAX_BYTES.
        The batch size alone decides (not the data's size), so that a run's training and its
        evaluation in batches take one path and compile one kernel."""
        B = flags.BLOCK
        block_bytes = block_rows(net.sizes, net.dtype) * B * net.dtype.itemsize
        return 2 * -(-batch_size // B) * block_bytes <= flags.FUSED_EPOCH_MAX_BYTES

    def _epoch(self, net, data, lr, batch_size, order, first_loss, max_ratio):
        """Mini-batch SGD in one compiled call (.epoch); batches too large for it (_fuses) are
        stepped one by one with the full-batch pass, on the worker threads."""
        if not self._fuses(net, batch_size):
            return super()._epoch(net, data, lr, batch_size, order, first_loss, max_ratio)
        start = net.flat.copy()
        result = self._fused_epoch(net, data, data.y, lr, batch_size, order, first_loss, max_ratio, checked=False)
        if not np.all(np.isfinite(net.flat)):  # find the update that overflowed, then undo it
            net.flat[:] = start
            result = self._fused_epoch(net, data, data.y, lr, batch_size, order, first_loss, max_ratio, checked=True)
            net.flat[:] = start  # as the generic epoch: the parameters before the unsound update
            sound = len(result.losses) - 1
            if sound:
                self._fused_epoch(net, data, data.y, lr, batch_size, order[:sound * batch_size], None, math.inf,
                                  checked=False)
        return result

    def _evaluate_in_batches(self, net, data, labels, batch_size):
        """Through the mini-batch kernel (.epoch), forward only: a run training in mini-batches has
        compiled it already, and need not compile the full-batch pass as well to evaluate."""
        if not self._fuses(net, batch_size):  # runs with such batches train with the full-batch pass
            return super()._evaluate_in_batches(net, data, labels, batch_size)
        n = len(data)
        result = self._fused_epoch(net, data, labels, 0.0, batch_size, np.arange(n), None, math.inf, checked=False,
                                   train=False)
        sizes = np.full(len(result.losses), batch_size)
        sizes[-1] = n - batch_size * (len(sizes) - 1)
        return StepResult(float(result.losses @ sizes / n), float(result.accuracies @ sizes / n))

    def _fused_epoch(self, net, data, labels, lr, batch_size, order, first_loss, max_ratio, checked, train=True):
        dtype = net.dtype
        features = data.prepared(("numba-epoch", dtype), lambda X: epoch_features(X, dtype),
                                 take=subset_epoch_features)
        ws = self._workspace(net)
        b = ws.buffers
        width = epoch.share_width(b.Hp, ws.lanes)  # the first layer's units are shared out among the threads
        parts = 1 if checked else min(self._threads, b.Hp // width)
        buffers = ws.for_epoch(-(-min(batch_size, len(order)) // flags.BLOCK), parts)
        batches = -(-len(order) // batch_size)
        losses, accuracies = np.empty(batches), np.empty(batches)
        sync = np.zeros(2, np.int64)
        results = [None] * parts

        def args(part):  # run_epoch's
            return (net.flat, b.W1T, b.Hp, features, labels, order, batch_size, lr,
                    math.nan if first_loss is None else float(first_loss), float(max_ratio), b.layers, buffers,
                    losses, accuracies, checked, width, part, parts, sync, train)

        def run(part):
            results[part] = epoch.run_epoch(*args(part))

        self._compile_first("epoch", net, features.val, lambda: epoch.kernel_calls(*args(0)))
        _run_together(parts, run)
        ran, stopped = results[0]
        return EpochResult(losses[:ran], accuracies[:ran], _STOPPED[stopped])


def deal_chunks(n_chunks, workers):
    """Each worker's chunks, dealt in rounds of one chunk per worker, every other round backwards:
    0, 3, 4, 7, ... and 1, 2, 5, 6, ... for two. With the rows of a mini-batch sorted by their
    number of sparse entries (.features), a later chunk costs more; dealt w, w + workers, ..., the
    second worker got the dearer chunk of every round. What it bought: README, *Toward the
    hardware floor*. (Since then the chunks are cut to about equal predicted costs,
    chunks.chunk_blocks: what is left of such a trend is the prediction's error.)"""
    shares = [[] for _ in range(workers)]
    for c in range(n_chunks):
        r, i = divmod(c, workers)
        shares[i if r % 2 == 0 else workers - 1 - i].append(c)
    return shares


def _run_together(parts, run):
    """run(part) for every part at the same time, each on a thread of its own (part 0 on the
    calling thread), as parts that meet at a barrier (.sync) need: never queued behind other work
    on the shared pool, where a part waiting at a barrier could hold up the one it waits for."""
    errors = []

    def helper(part):
        try:
            run(part)
        except BaseException as error:  # re-raised in the calling thread below
            errors.append(error)

    helpers = [threading.Thread(target=helper, args=(part,), name=f"fastnet-epoch-{part}", daemon=True)
               for part in range(1, parts)]
    for thread in helpers:
        thread.start()
    run(0)
    for thread in helpers:
        thread.join()
    if errors:
        raise errors[0]


BACKEND = NumbaBackend()


def compile_as_helper(path, inputs, dtype, pixels):
    """The helper process of .compiling: compile, last first, the kernels that the top kernel of
    ``path`` ("pass" or "epoch") calls, for a network of ``inputs`` inputs and ``dtype`` and
    pixels of dtype ``pixels``, by starting that path on one sample of zeros (with the smallest
    network of those inputs: the other sizes do not change the kernels' types)."""
    net = Network.init((int(inputs), 1, 1), dtype=dtype)
    X, y = np.zeros((1, net.sizes[0]), pixels), np.zeros(1, np.int64)
    if path == "pass":
        compiling.run_as_helper(lambda: BACKEND.step(net, X, y, lr=0.1))
    else:
        compiling.run_as_helper(lambda: BACKEND.epoch(net, X, y, lr=0.1, batch_size=1, order=np.zeros(1, np.int64)))
