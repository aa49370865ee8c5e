"""The numba backend's split of the data into blocks and fixed chunks: with blocks of one pair of
vectors and about one block per chunk, small N really is split into up to N_CHUNKS chunks (the
last block usually partial), and every stage still agrees with the reference; the chunks are cut
to about equal predicted costs; and the split, not the thread count, decides the result
(bit-identical for 1 and 2 threads)."""

import numba
import numpy as np
import pytest

import fastnet
from fastnet.backends.numba import chunks, flags
from fastnet.backends.numba.features import prepare_features
from fastnet.backends.numba.vector import dtype_lane_count
from fastnet.tolerances import TOLERANCES
from tests.agreement import (AWKWARD_CASES, REF, assert_awkward_case_agrees, assert_float32_awkward_cases_agree,
                             assert_stages_agree, assert_steps_agree)
from tests.helpers import random_problem

FAST = fastnet.get_backend("numba")


@pytest.fixture
def many_chunks(monkeypatch):
    """Blocks of one pair of float32 vectors (16 samples, 32 with AVX-512), about one block per
    chunk."""
    monkeypatch.setattr(flags, "MIN_CHUNK_SAMPLES", 1)
    monkeypatch.setattr(flags, "BLOCK", 2 * dtype_lane_count(np.dtype("float32")))
    monkeypatch.setattr(flags, "PASS_BLOCK_VECTORS", 2)


@pytest.mark.parametrize("case", list(AWKWARD_CASES))
def test_float64_stages_on_awkward_shapes_in_many_chunks(case, many_chunks):
    assert_awkward_case_agrees(FAST, case)


def test_float32_awkward_shapes_in_many_chunks_match_float64_reference(many_chunks):
    assert_float32_awkward_cases_agree(FAST)


@pytest.mark.parametrize("block", [128, 256])
def test_chunk_counts(block):
    assert flags.n_chunks(1, block) == 1 and flags.n_chunks(block, block) == 1
    assert flags.n_chunks(59_000, block) == flags.N_CHUNKS
    assert flags.n_chunks(block + 1, block) == 2  # two blocks: two chunks, for two cores
    assert flags.n_chunks(4 * flags.MIN_CHUNK_SAMPLES + 1, block) == 4  # a small dataset pays for few buffers
    assert flags.n_chunks(5 * flags.MIN_CHUNK_SAMPLES, block) == 4  # an even count: equal shares for two threads


def test_a_pass_takes_256_float32_samples_per_block_with_avx512_else_an_epochs_128():
    wide = dtype_lane_count(np.dtype("float32")) == 16
    assert flags.pass_block(np.dtype("float32")) == (256 if wide else 128) and flags.BLOCK == 128
    assert flags.pass_block(np.dtype("float64")) == 128


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("min_samples", [0, 10**9], ids=["per-block", "one-set"])
@pytest.mark.parametrize("hidden", [10, 48])  # 48: rows of three or more vectors (sparse_pixels.pass_width)
def test_bit_identical_for_one_and_two_threads(monkeypatch, seed_split, dtype, min_samples, hidden):
    monkeypatch.setattr(flags, "PER_BLOCK_MIN_SAMPLES", min_samples)  # either layout of the features
    X, y = seed_split.X_train[:7919], seed_split.y_train[:7919]
    data = fastnet.Dataset(X, y)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2, 1):
            FAST.set_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            net = fastnet.Network.init((784, hidden, 10), seed=0, dtype=dtype)
            losses = [FAST.step(net, data, lr=0.1).loss for _ in range(20)]
            results.append((net.flat, losses))
    finally:
        numba.set_num_threads(before)
    for flat, losses in results[1:]:
        np.testing.assert_array_equal(flat, results[0][0])
        assert losses == results[0][1]


def test_threads_outside_the_pool_are_refused():
    with pytest.raises(ValueError, match="threads must be between 1 and"):
        FAST.set_threads(0)
    with pytest.raises(ValueError, match="threads must be between 1 and"):
        FAST.set_threads(numba.config.NUMBA_NUM_THREADS + 1)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two worker threads")
def test_chunks_are_shared_out_and_none_starts_after_a_failure():
    import threading
    import time
    from fastnet.backends.numba.backend import NumbaBackend

    backend = NumbaBackend()
    backend.set_threads(2)
    ran = []

    def run(c, worker):
        ran.append((c, worker))
        time.sleep(0.002)

    backend._run_chunks(12, run)
    assert sorted(c for c, _ in ran) == list(range(12))  # every chunk once
    assert {w for _, w in ran} == {0, 1}  # by both workers

    calling = threading.current_thread()
    started = []

    def fail_on_the_calling_thread(c, worker):
        started.append(c)
        if threading.current_thread() is calling:
            raise KeyboardInterrupt
        time.sleep(0.01)

    with pytest.raises(KeyboardInterrupt):
        backend._run_chunks(16, fail_on_the_calling_thread)
    after = len(started)
    time.sleep(0.05)
    assert len(started) == after < 16  # the helper finished its chunk and took no other


def _block_costs(f, H, Hp):
    """Each block's predicted cost (flags.DENSE_UNIT_COST...), computed here with numpy."""
    B, N = f.block, f.n_samples
    rows = np.minimum(B, N - np.arange(0, N, B))  # each block's samples
    dense = np.diff(f.block_ptr)
    entries = np.add.reduceat(np.diff(f.ptr), np.arange(0, N, B))
    per_sample = flags.DENSE_UNIT_COST * H * dense + flags.SAMPLE_COST + flags.UNIT_COST * H
    return rows * per_sample + flags.SPARSE_UNIT_COST * Hp * entries


@pytest.mark.parametrize("per_block", [True, False], ids=["per-block", "one-set"])
@pytest.mark.parametrize("n_chunks", [2, 4, 16])
def test_chunks_cut_the_blocks_in_order_into_parts_of_about_equal_predicted_cost(seed_split, n_chunks, per_block):
    f = prepare_features(seed_split.X_train[:9000], np.dtype("float32"), per_block)
    H, Hp = 10, 16
    costs = _block_costs(f, H, Hp)
    bounds = [chunks.chunk_blocks(c, n_chunks, f, f.block, H, Hp) for c in range(n_chunks)]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(costs)
    assert all(bounds[c][1] == bounds[c + 1][0] for c in range(n_chunks - 1))  # in order, every block once
    share = costs.sum() / n_chunks
    for first, end in bounds:  # each cut within half a block of its place, so each chunk within a block
        assert first < end and abs(costs[first:end].sum() - share) <= costs.max()


@pytest.mark.parametrize("blocks", [2, 3])
def test_as_many_blocks_as_chunks_make_one_chunk_each(seed_split, blocks):
    """Even when the blocks' costs rise along them (rows sorted by their sparse entries): two or
    three blocks make as many chunks, so that every thread has one."""
    B = flags.pass_block(np.dtype("float32"))
    f = prepare_features(seed_split.X_train[:blocks * B - 7], np.dtype("float32"), per_block=False)
    assert [chunks.chunk_blocks(c, blocks, f, B, 10, 16) for c in range(blocks)] == [(c, c + 1) for c in range(blocks)]


def test_chunks_are_dealt_back_and_forth():
    from fastnet.backends.numba.backend import deal_chunks

    assert deal_chunks(8, 2) == [[0, 3, 4, 7], [1, 2, 5, 6]]
    assert deal_chunks(7, 3) == [[0, 5, 6], [1, 4], [2, 3]]
    assert deal_chunks(3, 1) == [[0, 1, 2]]


@pytest.mark.parametrize("fused", [True, False], ids=["fused-epoch", "epoch-of-steps"])
def test_passes_in_larger_blocks_than_epochs_agree_on_every_path(monkeypatch, fused):
    """Where a pass's blocks are larger than an epoch's (float32 with AVX-512), forced here on any
    host: full-batch stages and steps, epochs (one compiled call, or, too large to fuse, a step per
    batch on the batch's cut features) and evaluation in batches all agree with the reference."""
    monkeypatch.setattr(flags, "pass_block", lambda dtype: 2 * flags.BLOCK)
    if not fused:
        monkeypatch.setattr(flags, "FUSED_EPOCH_MAX_BYTES", 0)
    X, y = random_problem(3 * flags.BLOCK + 41, (784, 12, 10), seed=4, kind="mixed", zero_rows=2)
    net = fastnet.Network.init((784, 12, 10), seed=2)
    tol = TOLERANCES["float64"]
    assert_stages_agree(FAST, net, X, y, tol)
    assert_steps_agree(FAST, net, X, y, 2, tol)
    order = np.random.default_rng(5).permutation(len(y))
    fast, ref = net.copy(), net.copy()
    # batches of 300: a stepped batch spans two pass blocks, a fused one three epoch blocks
    np.testing.assert_allclose(FAST.epoch(fast, X, y, lr=0.1, batch_size=300, order=order).losses,
                               REF.epoch(ref, X, y, lr=0.1, batch_size=300, order=order).losses, **tol)
    np.testing.assert_allclose(fast.flat, ref.flat, **tol, err_msg="parameters after an epoch")
    assert FAST.evaluate(fast, X, y, batch_size=300).loss == pytest.approx(REF.evaluate(ref, X, y).loss, rel=1e-10)
