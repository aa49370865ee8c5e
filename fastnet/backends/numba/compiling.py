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

Nothing depends on the helper, and nothing waits for it: if it cannot start, fails or is late,
this process compiles what is missing, as it would have anyway. No helper starts when the cache
holds the top kernel or every kernel of the list, when the top kernel is compiled in this process
already, or with one thread (``set_threads(1)``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import NamedTuple

from numba import typeof, types
from numba.core.typing.typeof import Purpose


class KernelCalls(NamedTuple):
    """A path's kernels, each as (kernel, arguments), the arguments of the types it is called with."""

    top: tuple  # the kernel the backend calls, with its arguments
    calls: list  # the kernels it calls, compiled first: by this process in this order, the helper in reverse


def signature(args):
    """The argument types Numba compiles a kernel for when it is called with ``args``; an argument
    may be a Numba type itself (a kernel called with a constant, say, is compiled for that
    constant: ``types.literal(0)``)."""
    return tuple(arg if isinstance(arg, types.Type) else typeof(arg, Purpose.argument) for arg in args)


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
_helpers = []  # started helper processes, reaped when the next one starts
_in_helper = False  # True in the helper process: prepare compiles the list, then stops the run
HELPER_ENTRY = "fastnet.backends.numba.backend"  # its compile_as_helper runs in the helper process


class _HelperDone(Exception):
    """Raised by prepare in the helper process: the list is compiled, the run it was part of ends."""


def prepare(key, make_calls, helper_args, threads):
    """Before the first call of a path in this process (``key`` names the path and what decides
    its kernels' types): compile the kernels it calls, on two cores if the cache is cold.
    make_calls() -> KernelCalls; helper_args (path, layer sizes, dtype, pixel dtype) let the
    helper process make the same calls (backend.compile_as_helper)."""
    if _in_helper:
        compile_all(reversed(make_calls().calls))
        raise _HelperDone
    if key in _prepared:
        return
    with _lock:
        if key in _prepared:
            return
        calls = make_calls()
        if not _ready(*calls.top):
            if threads > 1 and not all(_ready(kernel, args) for kernel, args in calls.calls):
                _start_helper(helper_args)
            compile_all(calls.calls)
        _prepared.add(key)


def _start_helper(helper_args):
    """Start the helper process, unless it cannot start."""
    _helpers[:] = [helper for helper in _helpers if helper.poll() is None]
    if not sys.executable:
        return
    env = dict(os.environ)
    package_root = str(Path(__file__).parents[3])  # the folder this fastnet is imported from
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
    command = f"from {HELPER_ENTRY} import compile_as_helper; compile_as_helper(*{tuple(map(str, helper_args))!r})"
    try:
        _helpers.append(subprocess.Popen([sys.executable, "-c", command], env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    except OSError:
        pass


def run_as_helper(run):
    """The helper process's side: run() starts a path on a sample of zeros, whose prepare compiles
    the path's list, last first, and ends the run."""
    global _in_helper
    _in_helper = True
    try:
        run()
    except _HelperDone:
        pass
