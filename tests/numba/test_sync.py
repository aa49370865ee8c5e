"""The spin barrier the numba epoch's threads meet at (.sync): what one thread wrote before a
barrier, the other reads after it, round after round, and every thread leaves every barrier."""

import threading

import numpy as np
from numba import njit

from fastnet.backends.numba.sync import wait_all


@njit(nogil=True)
def _rounds(sync, part, parts, written, rounds):
    """Each round: write this thread's round number, meet, check every other thread's; the first
    round where one was not seen (0: none). Every barrier is met even then: a thread that left
    early would leave the others waiting for ever."""
    missed = 0
    for k in range(1, rounds + 1):
        written[part] = k
        wait_all(sync, (2 * k - 1) * parts)
        for other in range(parts):
            if written[other] != k and missed == 0:
                missed = k
        wait_all(sync, 2 * k * parts)  # nobody writes round k + 1 before everyone has read round k
    return missed


def test_two_threads_see_each_others_writes_at_every_barrier():
    rounds, parts = 20_000, 2
    sync, written = np.zeros(2, np.int64), np.zeros(parts, np.int64)
    _rounds(np.zeros(2, np.int64), 0, 1, np.zeros(1, np.int64), 1)  # compile outside the threads
    missed = [None] * parts

    def run(part):
        missed[part] = _rounds(sync, part, parts, written, rounds)

    helper = threading.Thread(target=run, args=(1,), daemon=True)  # never holds pytest up
    helper.start()
    run(0)
    helper.join(timeout=60)
    assert not helper.is_alive(), "a thread is still waiting at a barrier"
    assert missed == [0, 0]
    assert sync[0] == 2 * rounds * parts  # every thread counted in at every barrier
