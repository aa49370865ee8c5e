"""Numba's on-disk kernel cache, made to notice a change in any of the kernels' source files.

Numba stamps a cached kernel with its own source file only. fastnet's kernels call kernels and
vector intrinsics defined in other files and take their flags from config.py, so after an edit,
or a ``git pull`` of an editable install, that changed only one of those files, Numba would load
stale machine code. Here every kernel's stamp is a hash of all of them instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core import caching
from numba.core.dispatcher import Dispatcher

PACKAGE = Path(__file__).parents[1]
SOURCES = ("config.py", "backends/_simd.py", "backends/_numba_first_layer.py", "backends/_numba_kernels.py")


def fingerprint(package=PACKAGE):
    """A hash of every file the compiled kernels depend on."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((Path(package) / name).read_bytes())
    return digest.hexdigest()


STAMP = fingerprint()


def _stamped(locator):
    return type(locator.__name__, (locator,), {"get_source_stamp": lambda self: STAMP})


class _StampedImpl(caching.FunctionCache._impl_class):
    _locator_classes = [_stamped(locator) for locator in caching.FunctionCache._impl_class._locator_classes]


class KernelCache(caching.FunctionCache):
    """Numba's function cache, stamped with STAMP."""

    _impl_class = _StampedImpl


def use_for(*modules):
    """Give every cached kernel of these modules a KernelCache (before the kernel's first call)."""
    for module in modules:
        for kernel in vars(module).values():
            if isinstance(kernel, Dispatcher) and isinstance(kernel._cache, caching.FunctionCache):
                kernel._cache = KernelCache(kernel.py_func)
