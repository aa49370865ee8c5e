"""Start-up of the numba backend: a fresh process, from start to its first float32 full-batch step
done, with an empty kernel cache (compiling) and with a warm one, and the same to the end of its
first mini-batch epoch. Reported in extra_info and the summary, not asserted: they are absolute
times, which depend on the machine."""

import tempfile

import pytest

from bench.conftest import STARTS
from fastnet.bench import startup_seconds


@pytest.mark.parametrize("path", ["step", "epoch"])
def test_startup(benchmark, path):
    with tempfile.TemporaryDirectory() as cache:
        cold = startup_seconds(cache_dir=cache, path=path)
        benchmark.group, benchmark.name = "start-up, process start to first result (float32)", f"{path}, warm cache"
        benchmark.pedantic(startup_seconds, kwargs=dict(cache_dir=cache, path=path), rounds=3, iterations=1)
    benchmark.extra_info["cold_seconds"] = cold
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["warm_seconds"] = benchmark.stats.stats.median
        STARTS[path] = (cold, benchmark.stats.stats.median)
