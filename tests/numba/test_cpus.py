"""The numba backend's workers each on a CPU of their own while a pass runs (.cpus), their own
CPU sets given back after it, and nothing pinned where that cannot be done."""

import os
import threading
import time

import numpy as np
import pytest

import fastnet
from fastnet.backends.numba import cpus
from fastnet.backends.numba.backend import NumbaBackend

CAN_PIN = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2
needs_two_cpus = pytest.mark.skipif(not CAN_PIN, reason="needs CPU affinity and two CPUs")


def on_thread(function):
    """function() on a new thread (whose CPU set the test may change); its result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function()))
    thread.start()
    thread.join()
    return result[0]


@needs_two_cpus
def test_workers_get_distinct_allowed_cpus_the_first_the_callers():
    allowed = os.sched_getaffinity(0)
    chosen = cpus.worker_cpus(2)
    assert len(set(chosen)) == 2 and set(chosen) <= allowed
    assert cpus.worker_cpus(len(allowed) + 1)[-1] == chosen[0]  # more workers than CPUs: round again

    def pinned_then_asked():
        os.sched_setaffinity(0, {max(allowed)})
        return cpus.worker_cpus(2)
    assert on_thread(pinned_then_asked) is None  # a thread held to one CPU: nothing to spread over
    assert cpus.worker_cpus(1) is None


@needs_two_cpus
def test_each_worker_of_a_pass_runs_on_its_own_cpu_and_gets_its_cpu_set_back():
    backend = NumbaBackend()
    backend.set_threads(2)
    before = os.sched_getaffinity(0)
    seen = {}

    def run(c, worker):
        seen.setdefault(worker, set()).add(frozenset(os.sched_getaffinity(0)))
        time.sleep(0.002)  # long enough that neither worker takes all the chunks

    backend._run_chunks(8, run)
    assert set(seen) == {0, 1}
    (cpu0,), (cpu1,) = seen[0], seen[1]  # each worker held to one CPU for the whole pass
    assert len(cpu0) == len(cpu1) == 1 and cpu0 != cpu1
    assert os.sched_getaffinity(0) == before  # the calling thread's
    assert backend._pool.submit(os.sched_getaffinity, 0).result() == before  # the helper's


@needs_two_cpus
def test_a_cpu_that_cannot_be_had_leaves_the_step_unpinned(monkeypatch):
    def refuse(pid, mask):
        raise OSError(22, "Invalid argument")
    X = np.random.default_rng(0).integers(0, 256, (600, 784), dtype=np.uint8)
    y = np.arange(600) % 10
    expected = fastnet.Network.init((784, 10, 10), seed=0, dtype="float32")
    fastnet.get_backend("numba").step(expected, X, y, lr=0.1)
    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    net = fastnet.Network.init((784, 10, 10), seed=0, dtype="float32")
    fastnet.get_backend("numba").step(net, X, y, lr=0.1)
    np.testing.assert_array_equal(net.flat, expected.flat)
