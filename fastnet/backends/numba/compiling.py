"""A cold kernel cache compiled on two cores.

With an empty cache, the first call of a path (a full-batch pass, .chunks; a mini-batch epoch,
.epoch) compiles its top kernel and every kernel that one calls, one after another: Numba compiles
under one lock, mostly in Python, so one core works for seconds while the other waits. Here the
kernels a top kernel calls are listed beside it (chunks.kernel_calls, epoch.kernel_calls) with
arguments of the types it calls them with. This process compiles them in the list's order while
a helper process (backend.compile_as_helper) compiles them in the opposite order, into the shared on-disk
cache (.kernel_cache); each loads from the cache what the other has compiled already (Numba looks
there before compiling), so they meet somewhere in the list, having split it by the time each
kernel took. The top kernel's own compilation, next, finds every kernel it calls compiled. The
helper starts the same path on one sample of zeros: the same code makes the same calls, with
arguments of the same types.

Nothing depends on the helper, and this process never waits for it: if it cannot start, fails
or is late, this process compiles what is missing, as it would have anyway; an error here is left
for the path's own call to meet. No helper starts when the cache holds the top kernel or every
kernel of the list, when the top kernel is compiled in this process already, with one thread
(``set_threads(1)``), or from a frozen application (whose executable is not Python).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import NamedTuple

import numba
from numba import typeof
from numba.core.typing.typeof import Purpose


# A helper still compiling after this many seconds is stopped.
HELPER_TIMEOUT = 120


class KernelCalls(NamedTuple):
    """A path's kernels, each as (kernel, arguments), the arguments of the types it is called with."""

    top: tuple  # the kernel the backend calls, with its arguments
    calls: list  # compiled before it (those it calls, and the path's others): here in order, the helper last first


def signature(args):
    """The argument types Numba compiles a kernel for when it is called with ``args`` (kernels
    never call each other with constants, see .flags, so no argument is a literal)."""
    return tuple(typeof(arg, Purpose.argument) for arg in args)


def compile_all(calls):
    """Compile (or load from the cache) every kernel of ``calls`` for its arguments' types."""
    for kernel, args in calls:
        kernel.compile(signature(args))


def _ready(kernel, args):
    """Whether the kernel is compiled for these arguments in this process or in the cache."""
    sig = signature(args)
    return sig in kernel.overloads or kernel._cache.holds(sig, kernel.targetctx)


_prepared = set()
_lock = threading.Lock()
_helpers = []  # the helper processes started
_in_helper = False  # True in the helper process: prepare compiles the list, then stops the run
HELPER_ENTRY = "fastnet.backends.numba.backend"  # its compile_as_helper runs in the helper process


class _HelperDone(Exception):
    """Raised by prepare in the helper process: the list is compiled, the run it was part of ends."""


def prepare(helper_args, make_calls, threads):
    """Before a path's first call in this process: compile the kernels it calls, on two cores if
    the cache is cold. ``helper_args`` (path, inputs, dtype, pixel dtype) name the path and what
    decides its kernels' types, and let the helper make the same calls (backend.compile_as_helper);
    make_calls() -> KernelCalls."""
    if _in_helper:
        compile_all(reversed(make_calls().calls))
        raise _HelperDone
    if helper_args in _prepared or numba.config.DISABLE_JIT:
        return
    with _lock:
        if helper_args in _prepared:
            return
        _prepared.add(helper_args)
        try:
            calls = make_calls()
            if not _ready(*calls.top):
                if threads > 1 and not all(_ready(kernel, args) for kernel, args in calls.calls):
                    _start_helper(helper_args)
                compile_all(calls.calls)
        except Exception:  # only time was to be saved: the path's own call compiles what it needs, or says why not
            pass


def _start_helper(helper_args):
    """Start the helper process (unless this is a frozen application, or it cannot start), with
    this process's import path; a thread reaps it, or stops it after HELPER_TIMEOUT seconds."""
    if not sys.executable or getattr(sys, "frozen", False):
        return
    command = (f"import sys; sys.path[:] = {sys.path!r}; from {HELPER_ENTRY} import compile_as_helper; "
               f"compile_as_helper(*{tuple(map(str, helper_args))!r})")
    try:
        helper = subprocess.Popen([sys.executable, "-c", command], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return
    _helpers.append(helper)
    threading.Thread(target=_reap, args=(helper,), name="fastnet-compiling-helper", daemon=True).start()


def _reap(helper):
    try:
        helper.wait(HELPER_TIMEOUT)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()


def wait_for_helpers(timeout=HELPER_TIMEOUT):
    """Wait for every helper this process started; their exit codes."""
    return [helper.wait(timeout) for helper in _helpers]


def run_as_helper(run):
    """The helper process's side: run() starts a path on a sample of zeros, whose prepare compiles
    the path's list, last first, and ends the run."""
    global _in_helper
    _in_helper = True
    try:
        run()
    except _HelperDone:
        pass
