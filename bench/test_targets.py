"""The speed targets' and goals' ratios (bench/conftest.py), measured with the cases of a group
(fastnet.benchmarks.timing_groups: one network, or the scaling series) timed in turns
(time_interleaved), so that a slow spell of the machine falls on both sides of a ratio alike. One
test per group: its cases are checked against the float64 reference, warmed up, then timed;
pytest-benchmark's figure for the test is the whole measurement, and each case's median goes into
``extra_info`` and into the targets printed at the end of the run. Untimed (--benchmark-disable),
one round is run after the agreement checks, so that the timing code runs too."""

import statistics

import pytest

from bench.conftest import GOALS, INTERLEAVED, TARGETS
from fastnet.benchmarks import SCALING_CASES, checked_run, time_interleaved, timing_groups
from fastnet.peers import missing_reason

# rounds in a timed run, per hidden width of the targets' cases (the scaling series' is 10)
ROUNDS = {10: 11, 128: 5, 64: 3}
# the targets' and goals' cases, and the scaling series (its cost per sample is a target too)
CASES = list(dict.fromkeys([case for fast, slow, _, _ in TARGETS + GOALS for case in (fast, slow)] + SCALING_CASES))


def group_id(group):
    """784-128-10, epoch 784-64-10 batch 64, ..., or scaling 784-10-10 float32."""
    name = group[0].group.rsplit(" ", 1)[0]
    return f"scaling {name}" if getattr(group[0], "n", None) is not None else name


@pytest.mark.parametrize("group", timing_groups(CASES), ids=group_id)
def test_cases_in_turns(benchmark, train_split, group):
    runs = {case: checked_run(case, *train_split) for case in group if not missing_reason(case.backend)}
    rounds = 1 if benchmark.disabled else ROUNDS[group[0].hidden]
    times = {}
    benchmark.group = "cases timed in turns"
    benchmark.pedantic(lambda: times.update(time_interleaved(runs, rounds)), rounds=1, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        medians = {case: statistics.median(t) for case, t in times.items()}
        INTERLEAVED.update(medians)
        skipped = sorted({c.backend for c in group if missing_reason(c.backend)})
        benchmark.extra_info.update(rounds=rounds, skipped=skipped,
                                    **{f"{c.label} {c.dtype} ms": m * 1e3 for c, m in medians.items()})
