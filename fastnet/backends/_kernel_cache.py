"""Numba's on-disk kernel cache, made to notice a change in any of the kernels' source files and to
survive damaged cache files.

Numba stamps a cached kernel with its own source file only. fastnet's kernels call kernels and
vector intrinsics defined in other files and take their flags from config.py, so after an edit,
or a ``git pull`` of an editable install, that changed only one of those files, Numba would load
stale machine code. Here every kernel's stamp is a hash of all of them instead.

Numba also unpickles its index (``.nbi``) and data (``.nbc``) files unguarded: a garbage, empty or
truncated file (a full disk, a killed process, a bad copy) raises ``UnpicklingError``/``EOFError``
on every later run. A cache only saves time, so here a file that cannot be read is a miss: the
kernel is compiled again and the cache rewritten.
"""

from __future__ import annotations

import hashlib
import contextlib
import os
from pathlib import Path

from numba.core import caching
from numba.core.dispatcher import Dispatcher

PACKAGE = Path(__file__).parents[1]
SOURCES = ("config.py", "backends/_simd.py", "backends/_numba_first_layer.py", "backends/_numba_kernels.py",
           "backends/_numba_epoch.py")


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

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception:  # a damaged index or data file: compile again
            self._forget_index()
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception:  # a damaged index (or no room): the next run compiles again, nothing is lost
            self._forget_index()

    def _forget_index(self):
        """Remove the index; the next save writes a fresh one (and overwrites the numbered data files)."""
        with contextlib.suppress(OSError):
            os.remove(self._cache_file._index_path)


def use_for(*modules):
    """Give every cached kernel of these modules a KernelCache (before the kernel's first call)."""
    for module in modules:
        for kernel in vars(module).values():
            if isinstance(kernel, Dispatcher) and isinstance(kernel._cache, caching.FunctionCache):
                kernel._cache = KernelCache(kernel.py_func)
