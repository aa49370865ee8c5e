"""A cold kernel cache compiled on two cores (fastnet.backends.numba.compiling): the helper
process compiles every kernel the top kernel calls, with the very types the top kernel calls them
with (else the lists beside chunk_pass and run_epoch have drifted from the kernels), a helper
starts only when the cache is cold, and nothing breaks when it cannot."""

import os
import subprocess
import sys
from types import SimpleNamespace

import numba
import pytest

from fastnet.backends.numba import compiling

# A run of PATH in a fresh process on one thread (so no helper of its own), printing every fastnet
# kernel it compiled rather than found compiled in the cache.
WATCH = """
import numpy as np, fastnet
from numba.core import event
from fastnet.backends.numba.backend import BACKEND
BACKEND.set_threads(1)
rng = np.random.default_rng(0)
X = rng.random((300, 784)); X[X < 0.8] = 0
X = (X * 255).astype(np.uint8) if "{pixels}" == "uint8" else X.astype("{pixels}")
y = rng.integers(0, 10, 300)
net = fastnet.Network.init((784, 24, 10), dtype="{dtype}")
with event.install_recorder("numba:compile") as recorded:
    if "{path}" == "pass":
        BACKEND.step(net, X, y, lr=0.1)
    else:
        BACKEND.epoch(net, X, y, lr=0.1, batch_size=64, order=rng.permutation(300))
kernels = {{e.data["dispatcher"].py_func for _, e in recorded.buffer
           if e.is_start and "dispatcher" in (e.data or {{}})}}
print(sorted(f.__module__.rsplit(".", 1)[1] + "." + f.__name__ for f in kernels if f.__module__.startswith("fastnet")))
"""


def _run(code, cache, timeout=600):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("path, dtype, pixels, top", [
    ("pass", "float32", "uint8", "chunks.chunk_pass"),
    ("pass", "float64", "float64", "chunks.chunk_pass"),
    ("epoch", "float32", "uint8", "epoch.run_epoch"),
    ("epoch", "float64", "float64", "epoch.run_epoch"),
])
def test_the_helper_leaves_only_the_top_kernel_to_compile(tmp_path, path, dtype, pixels, top):
    helper = "from fastnet.backends.numba.backend import compile_as_helper; compile_as_helper({!r}, {!r}, {!r}, {!r})"
    _run(helper.format(path, "784", dtype, pixels), tmp_path)
    assert _run(WATCH.format(path=path, dtype=dtype, pixels=pixels), tmp_path) == repr([top])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one thread: no helper")
def test_a_cold_run_starts_one_helper_and_a_warm_run_none(tmp_path):
    run = """
import numpy as np, fastnet
from fastnet.backends.numba import compiling
X = np.random.default_rng(0).integers(0, 256, (200, 784)).astype(np.uint8)
fastnet.get_backend("numba").step(fastnet.Network.init(), X, np.arange(200) % 10, lr=0.1)
print(compiling.wait_for_helpers())
"""
    assert _run(run, tmp_path) == "[0]"  # one helper, and it succeeded
    assert _run(run, tmp_path) == "[]"


class _Kernel:
    """A stand-in for a Numba dispatcher: compiled in this process, cached, or neither."""

    def __init__(self, log, name, compiled=False, cached=False):
        self.log, self.name = log, name
        self.overloads = {compiling.signature((1,)): None} if compiled else {}
        self._cache = SimpleNamespace(holds=lambda sig, ctx: cached)
        self.targetctx = None

    def compile(self, sig):
        self.log.append(self.name)


@pytest.fixture
def started(monkeypatch):
    """The helper_args of every helper prepare starts (none is started for real)."""
    started = []
    monkeypatch.setattr(compiling, "_start_helper", started.append)
    monkeypatch.setattr(compiling, "_prepared", set())
    return started


def _calls(log, top=(), first=(), second=()):
    return compiling.KernelCalls((_Kernel(log, "top", *top), (1,)),
                                 [(_Kernel(log, "first", *first), (1,)), (_Kernel(log, "second", *second), (1,))])


def test_cold_cache_starts_the_helper_and_compiles_the_list_in_order(started):
    log = []
    compiling.prepare(("pass", 784), lambda: _calls(log), threads=2)
    assert started == [("pass", 784)] and log == ["first", "second"]
    compiling.prepare(("pass", 784), lambda: _calls(log), threads=2)  # once per path and types, per process
    assert started == [("pass", 784)] and log == ["first", "second"]


@pytest.mark.parametrize("why", ["top cached", "top compiled", "list ready", "one thread"])
def test_no_helper(started, why):
    log = []
    top = {"top cached": (False, True), "top compiled": (True, False)}.get(why, ())
    ready = (True, False) if why == "list ready" else ()
    compiling.prepare(("pass", 784), lambda: _calls(log, top, ready, ready), threads=1 if why == "one thread" else 2)
    assert started == []
    assert log == ([] if why.startswith("top") else ["first", "second"])


def test_an_error_while_preparing_is_left_to_the_call(started):
    def broken():
        raise TypeError("a list that has drifted")

    compiling.prepare(("pass", 784), broken, threads=2)  # no error: the path's own call will meet it, if real


@pytest.mark.parametrize("why", ["cannot start", "no executable", "frozen"])
def test_without_a_helper_this_process_compiles_everything(monkeypatch, why):
    popens = []

    def popen(*args, **kwargs):
        popens.append(args)
        raise OSError("no processes left")

    monkeypatch.setattr(compiling.subprocess, "Popen", popen)
    monkeypatch.setattr(compiling, "_prepared", set())
    monkeypatch.setattr(compiling.sys, "executable", "" if why == "no executable" else sys.executable)
    monkeypatch.setattr(compiling.sys, "frozen", why == "frozen", raising=False)
    log = []
    compiling.prepare(("pass", 784), lambda: _calls(log), threads=2)
    assert log == ["first", "second"]
    assert len(popens) == (why == "cannot start")  # never tried without a Python to start
