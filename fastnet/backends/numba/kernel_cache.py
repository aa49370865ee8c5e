"""The on-disk cache of the compiled kernels: Numba's function cache, made to notice a change in
any kernel source file, to find a folder even in a read-only install, and to survive damaged
cache files. Numba's global configuration is never touched.

**Stamps.** Numba stamps a cached kernel with its own source file only. fastnet's kernels call
kernels and vector intrinsics defined in other files and take their flags from flags.py, so after
an edit, or a ``git pull`` of an editable install, that changed only one of those files, Numba
would load stale machine code. Here every kernel's stamp is a hash of all of them (SOURCES).

**Where.** As Numba would: ``$NUMBA_CACHE_DIR`` if set, else ``__pycache__`` beside the source.
A read-only install has no such place, and without a writable home Numba fails with "no locator
available"; fastnet's kernels then cache in ``~/.cache/fastnet/numba`` (``$XDG_CACHE_HOME``), else
in ``fastnet-numba-<uid>`` in the temp dir (:func:`fallback_cache_dir`). Only fastnet's kernels
get this locator: a user's own Numba code keeps Numba's behaviour.

**Damage.** Numba unpickles its index (``.nbi``) and data (``.nbc``) files unguarded: a garbage,
empty or truncated file (a full disk, a killed process, a bad copy) raises
``UnpicklingError``/``EOFError`` on every later run. A cache only saves time, so here a file that
cannot be read is a miss: the kernel is compiled again and the cache rewritten.

**Two writers.** A cold cache is filled by two processes at once (.compiling), so a new entry's
data file is written before the index names it, and a loaded entry compiled for other argument
types than asked (two processes that chose one data file name for two signatures) is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import tempfile
from pathlib import Path

from numba.core import caching, sigutils
from numba.core.dispatcher import Dispatcher

from fastnet.backends.numba import vector

PACKAGE = Path(__file__).parents[2]  # fastnet/
# Every module of this package is a kernel source (a new kernel module is stamped without an
# edit here) except these, which hold Python only: editing them need not recompile anything.
PYTHON_ONLY = ("__init__.py", "backend.py", "compiling.py", "features.py", "kernel_cache.py", "workspace.py")
SOURCES = tuple(f"backends/numba/{path.name}" for path in sorted(Path(__file__).parent.glob("*.py"))
                if path.name not in PYTHON_ONLY)


def fingerprint(package=PACKAGE):
    """A hash of every file the compiled kernels depend on."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((Path(package) / name).read_bytes())
    return digest.hexdigest()


STAMP = fingerprint()


def fallback_cache_dir():
    """The first writable of ``~/.cache/fastnet/numba`` and the temp dir's ``fastnet-numba-<uid>``
    (made if missing), or None."""
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastnet" / "numba"
    shared_tmp = Path(tempfile.gettempdir()) / f"fastnet-numba-{os.getuid() if hasattr(os, 'getuid') else 0}"
    for candidate in (user_cache, shared_tmp):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return str(candidate)
    return None


_NUMBAS = caching.FunctionCache._impl_class._locator_classes  # $NUMBA_CACHE_DIR, __pycache__, user-wide, ...


class FallbackLocator(_NUMBAS[0]):
    """Numba's locator for a user-given folder, given :func:`fallback_cache_dir` instead of
    numba.config.CACHE_DIR."""

    def __init__(self, py_func, py_file, root):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(root, self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        root = fallback_cache_dir()
        if root is None or not os.path.exists(py_file):
            return None
        self = cls(py_func, py_file, root)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self


def _stamped(locator):
    return type(locator.__name__, (locator,), {"get_source_stamp": lambda self: STAMP})


class _StampedImpl(caching.FunctionCache._impl_class):
    # fastnet's folder before Numba's user-wide one: where fastnet cached before, kept
    _locator_classes = [_stamped(c) for c in (*_NUMBAS[:2], FallbackLocator, *_NUMBAS[2:])]


class _DataFirstFile(caching.IndexDataCacheFile):
    """Numba's index and data files, with a new entry's data written before the index names it.
    Numba writes the index first: a process reading between the two writes would load a data file
    that is not there yet or, after a source change, left by the old source. With two processes
    compiling into one cache (.compiling), that moment is no longer rare."""

    def save(self, key, data):
        overloads = self._load_index()
        data_name = overloads.get(key)
        if data_name is None:
            taken = set(overloads.values())
            data_name = next(name for name in map(self._data_name, itertools.count(1)) if name not in taken)
        self._save_data(data_name, data)
        if overloads.get(key) != data_name:
            overloads[key] = data_name
            self._save_index(overloads)


class KernelCache(caching.FunctionCache):
    """Numba's function cache, stamped with STAMP, with the fallback folder, reading damaged
    files as a miss, and writing a new entry's data before its index entry."""

    _impl_class = _StampedImpl

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _DataFirstFile(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                          source_stamp=self._impl.locator.get_source_stamp())

    def load_overload(self, sig, target_context):
        try:
            loaded = super().load_overload(sig, target_context)
        except Exception:  # a damaged index or data file: compile again
            self._forget_index()
            return None
        if loaded is not None and tuple(loaded.signature.args) != tuple(sigutils.normalize_signature(sig)[0]):
            return None  # two processes saved other signatures under one data file name at once: compile again
        return loaded

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception:  # a damaged index (or no room): the next run compiles again, nothing is lost
            self._forget_index()

    def _index_key(self, sig, codegen):
        """Numba's key (the signature, the target CPU's name and features, the bytecode) and the
        vectors' width: it follows the features (.vector) but is fixed when fastnet is imported, so
        a process whose Numba took other features (NUMBA_CPU_FEATURES changed in between) must not
        load kernels compiled for the other width, whose layout its workspace would not match."""
        return (*super()._index_key(sig, codegen), vector.VECTOR_BITS)

    def holds(self, sig, target_context):
        """Whether the cache has the kernel compiled for ``sig`` (read from its index, nothing loaded)."""
        try:
            return self._index_key(sig, target_context.codegen()) in self._cache_file._load_index()
        except Exception:  # a damaged index is a miss, as in load_overload
            return False

    def _forget_index(self):
        """Remove the index; the next save writes a fresh one (and overwrites the numbered data files)."""
        with contextlib.suppress(OSError):
            os.remove(self._cache_file._index_path)


def use_for(*modules):
    """Give every kernel of these modules a KernelCache (before the kernel's first call)."""
    for module in modules:
        for kernel in vars(module).values():
            if isinstance(kernel, Dispatcher) and not isinstance(kernel._cache, KernelCache):
                kernel._cache = KernelCache(kernel.py_func)
