"""Mini-batch SGD throughput: one epoch over the seed split's 59,000 training images, batches of 64,
256 and 4,096, hidden 64 and 10, float32: numba against the numpy reference and (when the optional peers
are installed) torch. Each case first runs one epoch on 2,000 images and is compared with the
float64 reference's epoch; then whole epochs are timed, in the same shuffled order."""

import pytest

from fastnet.benchmarks import EPOCH_CASES, check_epoch_agreement, epoch_order, make_epoch, settle
from fastnet.peers import missing_reason

ROUNDS = {64: 5, 10: 7}  # per hidden width: epochs timed


@pytest.mark.parametrize("case", EPOCH_CASES, ids=lambda c: f"{c.group}-{c.label}")
def test_epoch(benchmark, train_split, case):
    if missing_reason(case.backend):
        pytest.skip(missing_reason(case.backend))
    X, y = train_split
    check_epoch_agreement(case, X, y)
    benchmark.group, benchmark.name = case.group, case.label
    _, epoch = make_epoch(case, X, y, epoch_order(X))
    epoch()  # warm-up: compilation, the dataset's preparation, first touch of buffers
    if not benchmark.disabled:
        settle()
    benchmark.pedantic(epoch, rounds=ROUNDS[case.hidden], iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(backend=case.backend, hidden=case.hidden, batch=case.batch, samples=len(X))
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        benchmark.extra_info["samples_per_s"] = len(X) / median
