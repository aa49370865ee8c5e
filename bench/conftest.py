"""Benchmark fixtures, and the speed targets checked at the end of a timed run.

Targets are ratios of medians measured in the same run, never absolute times: the cases of one
network, and the scaling series, timed in turns (bench/test_targets.py; a run without that file
checks only the cost per sample, from the scaling cases timed one after another). After a timed run
(`--benchmark-only`) the summary prints every ratio; a missed target fails the run, and a target
whose peer is not installed is listed as not timed. Untimed runs (`--benchmark-disable`) check
agreement.
"""

from __future__ import annotations

import os

import pytest

from fastnet.benchmarks import SCALING_CASES, Case, EpochCase
from fastnet.peers import missing_reason
from fastnet.data import load_mnist, split_dev
from tests.helpers import real_mnist_dir

RESULTS = {}  # Case -> median seconds per step, filled by each timed benchmark
INTERLEAVED = {}  # Case or EpochCase of the targets and scaling series -> its median seconds, a group's timed in turns
FLOORS = {}  # Case -> the hardware floor's share of its median step (fastnet.benchmarks.floor_seconds)
STARTS = {}  # "step" | "epoch" -> (cold, warm) seconds of a fresh process to its first result

TARGETS = [  # (faster case, slower case, minimum speed-up, what it is)
    (Case("numba", "float32"), Case("numpy", "float64"), 8.0, "numba f32 vs numpy f64, 784-10-10"),
    (Case("numba", "float64"), Case("numpy", "float64"), 4.0, "numba f64 vs numpy f64, 784-10-10"),
    (Case("numba", "float32"), Case("seed", "float32"), 1.0, "numba f32 vs seed-layout numpy f32"),
    (Case("numba", "float64"), Case("seed", "float64"), 1.0, "numba f64 vs seed-layout numpy f64"),
    (Case("numba", "float64", 128), Case("numpy", "float64", 128), 1.0, "numba f64 vs numpy f64, hidden 128"),
    (Case("numba", "float32", 128), Case("numpy", "float32", 128), 1.0, "numba f32 vs numpy f32, hidden 128"),
]
TARGETS += [  # mini-batch SGD, one epoch, batch 64, 784-64-10 float32
    (EpochCase("numba"), EpochCase("numpy"), 4.0, "numba vs numpy epoch, batch 64, 784-64-10 f32"),
    (EpochCase("numba"), EpochCase("torch"), 5.0, "numba vs torch epoch, batch 64, 784-64-10 f32"),
]
TARGETS += [  # large mini-batches, one epoch, batch 4,096, 784-10-10 float32 (once slower than numpy: README)
    (EpochCase("numba", 10, 4096), EpochCase("numpy", 10, 4096), 1.5,
     "numba vs numpy epoch, batch 4096, 784-10-10 f32"),
    (EpochCase("numba", 10, 4096), EpochCase("torch", 10, 4096), 1.0,
     "numba vs torch epoch, batch 4096, 784-10-10 f32"),
]
# Goals beyond the targets, printed beside them, never failing the run: the four set for full-batch
# training and the project's own float32 >= 9x JAX (how each host fared: README, Performance).
GOALS = [
    (Case("numba", "float32"), Case("numpy", "float64"), 16.0, "numba f32 vs numpy f64, 784-10-10"),
    (Case("numba", "float32"), Case("torch", "float32"), 9.0, "numba f32 vs torch f32, 784-10-10"),
    (Case("numba", "float32"), Case("jax", "float32"), 9.0, "numba f32 vs jax f32, 784-10-10"),
    (Case("numba", "float64"), Case("numpy", "float64"), 10.0, "numba f64 vs numpy f64, 784-10-10"),
    (Case("numba", "float32", 128), Case("torch", "float32", 128), 3.5, "numba f32 vs torch f32, hidden 128"),
]
LINEARITY_SLACK = 1.5  # per-sample cost across N = 10k..236k may differ by this factor (caches, noise)


@pytest.fixture(scope="session")
def train_split(tmp_path_factory):
    """X, y of the seed split's training part: $FASTNET_DATA_DIR, else ../shared, else data/ (fetched
    there if missing)."""
    source = os.environ.get("FASTNET_DATA_DIR") or real_mnist_dir(tmp_path_factory.mktemp("mnist"))
    mnist = load_mnist(source, progress=False)
    split = split_dev(mnist.train_images, mnist.train_labels, seed=0)
    return split.X_train, split.y_train


def target_report(targets=TARGETS, scaling=True):
    """[(line, met)] for every target whose two cases were timed in this run: the ratios, and the
    cost per sample of the scaling series, from the cases timed in turns (bench/test_targets.py;
    the cost per sample from test_scaling's one-after-another medians in a run without it); met is
    None for a target left out because its peer is not installed."""
    rows = []
    for fast, slow, minimum, what in targets:
        missing = missing_reason(fast.backend) or missing_reason(slow.backend)
        if missing and INTERLEAVED:  # the targets were timed, without this peer
            rows.append((f"{what}: not timed ({missing})", None))
        if fast in INTERLEAVED and slow in INTERLEAVED:
            speedup = INTERLEAVED[slow] / INTERLEAVED[fast]
            rows.append((f"{what}: {speedup:.2f}x (target >= {minimum:g}x)", speedup >= minimum))
    timed = INTERLEAVED if all(c in INTERLEAVED for c in SCALING_CASES) else RESULTS
    if scaling and all(c in timed for c in SCALING_CASES):
        per_sample = [timed[c] / c.n * 1e6 for c in SCALING_CASES]
        spread = max(per_sample) / min(per_sample)
        text = ", ".join(f"N={c.n:,}: {p:.2f} us" for c, p in zip(SCALING_CASES, per_sample))
        rows.append((f"cost per sample {text} (spread {spread:.2f}, target <= {LINEARITY_SLACK})",
                     spread <= LINEARITY_SLACK))
    return rows


def pytest_terminal_summary(terminalreporter):
    rows = target_report()
    if rows:
        terminalreporter.section("fastnet speed targets (ratios of medians in this run)")
        for line, met in rows:
            terminalreporter.line({True: "met     ", False: "MISSED  ", None: "skipped "}[met] + line)
    if STARTS:
        terminalreporter.section("numba start-up, process start to first float32 result (not asserted)")
        for path, (cold, warm) in STARTS.items():
            terminalreporter.line(f"first {path}: {cold:.1f} s with an empty kernel cache, {warm:.2f} s warm "
                                  f"(goals: <= 6 s cold, <= 1 s warm)")
    if FLOORS:
        terminalreporter.section("share of the hardware floor reached (floor / median step; not asserted)")
        for case, fraction in FLOORS.items():
            if case.n is None:
                terminalreporter.line(f"{case.group} {case.label}: {fraction:.0%}")
    goals = target_report(GOALS, scaling=False)
    if goals:
        terminalreporter.section("goals beyond the targets (reported, not failing the run)")
        for line, met in goals:
            terminalreporter.line({True: "met     ", False: "not yet ", None: "skipped "}[met] + line)


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and any(met is False for _, met in target_report()):
        session.exitstatus = 1
