"""Full-batch step throughput on the CPU: numpy reference, the seed notebook's numpy layout, numba,
and the optional peers (torch, JAX; skipped with the reason when not installed).

Each benchmark first checks that its step agrees with the float64 reference, then warms up (JIT
compilation) outside the timed region, then times whole steps. Run:
    pytest bench/ --benchmark-only          # times everything (under 5 minutes on 2 cores)
    pytest bench/ --benchmark-disable       # agreement checks only (each case also run, untimed)
"""

import pytest

from fastnet.benchmarks import (MAIN_CASES, PEER_CASES, SCALING_CASES, WIDE_CASES, check_agreement, floor_seconds,
                                make_step, samples, settle)
from fastnet.peers import missing_reason
from bench.conftest import FLOORS, RESULTS

ROUNDS = {10: 30, 128: 7}  # per hidden width: a median robust to this shared VM's slow spells, in the time budget
SCALING_ROUNDS = {10_000: 60, 59_000: 20, 236_000: 8}


def run_case(benchmark, case, X, y, rounds):
    if missing_reason(case.backend):
        pytest.skip(missing_reason(case.backend))
    check_agreement(case, X, y)
    benchmark.group = case.group
    benchmark.name = case.label
    _, step = make_step(case, X, y)
    step()  # warm-up: JIT compilation and first-touch of buffers stay outside the timing
    if not benchmark.disabled:
        settle()  # the agreement check's reference step leaves BLAS threads spinning on a core
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
    n = len(samples(X, y, case.n)[0])
    benchmark.extra_info.update(backend=case.backend, dtype=case.dtype, hidden=case.hidden, samples=n)
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median  # robust to the odd slow round on a shared VM
        benchmark.extra_info["samples_per_s"] = n / median
        RESULTS[case] = median
        floor = floor_seconds(case, X)
        if floor is not None:
            benchmark.extra_info["floor_seconds"] = floor
            benchmark.extra_info["floor_fraction"] = FLOORS[case] = floor / median


@pytest.mark.parametrize("case", MAIN_CASES + WIDE_CASES + PEER_CASES, ids=lambda c: f"{c.group}-{c.label}")
def test_step(benchmark, train_split, case):
    run_case(benchmark, case, *train_split, rounds=ROUNDS[case.hidden])


@pytest.mark.parametrize("case", SCALING_CASES, ids=lambda c: c.group)
def test_scaling(benchmark, train_split, case):
    run_case(benchmark, case, *train_split, rounds=SCALING_ROUNDS[case.n])
