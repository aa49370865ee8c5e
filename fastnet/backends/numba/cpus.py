"""Each of a pass's worker threads on a CPU of its own while the pass runs (Linux).

Why: on a 2-vCPU VM (Linux 6.18), a step that came after the process had been idle for 0.2 s or
more often found both workers on the same CPU, the other one idle. Their chunks then ran by turns,
one scheduler slice (~5 ms) at a time, and the step took as long as on one thread (11-13 ms
against 5.7 ms at 784-10-10 float32); the scheduler moved a thread only after a slice or more.
(A mini-batch epoch starts threads of its own, which new threads' placement spreads: not seen
there, and not pinned.)

So, for the duration of a pass, worker 0 (the calling thread) is held to the CPU it is on, and
worker w to the w-th CPU after it among those the process may use; each thread's own CPU set is
given back when its part of the pass ends. With one CPU allowed (or no CPU affinity on this OS),
nothing is pinned. Where several processes pin their workers, each starts from the CPU its
calling thread is on, so they spread the way the scheduler would have placed them.
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager

_CAN_PIN = hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")
try:
    _sched_getcpu = ctypes.CDLL(None, use_errno=True).sched_getcpu
except (AttributeError, OSError):  # no C library function for it: start from the lowest CPU
    _sched_getcpu = None


def worker_cpus(workers):
    """The CPU of each of ``workers`` workers, worker 0 the calling thread's current CPU, or None
    when threads are not pinned here (fewer than two CPUs allowed, or no CPU affinity)."""
    if not _CAN_PIN or workers < 2:
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    current = _sched_getcpu() if _sched_getcpu is not None else -1
    start = allowed.index(current) if current in allowed else 0
    return [allowed[(start + w) % len(allowed)] for w in range(workers)]


@contextmanager
def pinned(cpus, worker):
    """The calling thread held to worker ``worker``'s CPU of ``cpus`` (worker_cpus) inside the
    block, its own CPU set given back after it; nothing when ``cpus`` is None."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cpus[worker]})
    except OSError:  # the CPU was taken away since (a cgroup's cpuset): run where the scheduler says
        before = None
    try:
        yield
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
