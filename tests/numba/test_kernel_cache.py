"""The numba backend's kernel cache (fastnet.backends.numba.kernel_cache): compiled kernels are
cached, stamped with every kernel source; a read-only install without a writable home still
works; damaged cache files are a miss; and Numba's own settings are never changed."""

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastnet
from fastnet.backends.numba import kernel_cache

STEP = ("import numpy as np, fastnet\n"
        "X = np.random.default_rng(0).integers(0, 256, (100, 784)).astype(np.uint8)\n"
        "print(fastnet.get_backend('numba').step(fastnet.Network.init(), X, np.arange(100) % 10, lr=0.1).loss)\n")
# the same, and then Numba's own cache folder setting, which fastnet must leave as it found it
STEP_AND_NUMBA_CACHE_DIR = STEP + "import numba\nprint(repr(numba.config.CACHE_DIR))\n"


def test_fallback_folder_order(monkeypatch, tmp_path):
    monkeypatch.setattr(kernel_cache.os, "access", lambda path, mode: str(path).startswith(str(tmp_path / "tmp")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(kernel_cache.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert kernel_cache.fallback_cache_dir() == str(tmp_path / "tmp" / f"fastnet-numba-{os.getuid()}")
    monkeypatch.setattr(kernel_cache.os, "access", lambda path, mode: True)
    assert kernel_cache.fallback_cache_dir() == str(tmp_path / "xdg" / "fastnet" / "numba")


def test_numbas_own_places_come_first():
    """$NUMBA_CACHE_DIR (the user's own choice) wins, then __pycache__ beside a writable install;
    fastnet's folder only when neither is usable."""
    from numba.core import caching

    order = [c.__mro__[1] for c in kernel_cache.KernelCache._impl_class._locator_classes]
    numbas = caching.FunctionCache._impl_class._locator_classes
    assert order[:3] == [numbas[0], numbas[1], kernel_cache.FallbackLocator]


def test_importing_the_backend_changes_no_numba_setting():
    done = subprocess.run([sys.executable, "-c", "import numba; before = dict(vars(numba.config)); "
                           "import fastnet.backends.numba; "
                           "print(sorted(k for k, v in vars(numba.config).items() if before.get(k, v) != v))"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a read-only mount")
def test_read_only_install_without_writable_home_trains_and_caches(tmp_path):
    pkg, tmp = tmp_path / "site", tmp_path / "tmp"
    shutil.copytree(Path(fastnet.__file__).parent, pkg / "fastnet",
                    ignore=shutil.ignore_patterns("__pycache__"))
    tmp.mkdir()
    env = dict(os.environ, HOME=str(pkg), XDG_CACHE_HOME=str(pkg), PYTHONPATH=str(pkg), TMPDIR=str(tmp))
    env.pop("NUMBA_CACHE_DIR", None)
    script = (f"mount --bind {pkg} {pkg} && mount -o remount,bind,ro {pkg} || exit 77\n"
              f"touch {pkg}/probe 2>/dev/null && exit 78\n"
              f"exec {sys.executable} -c \"$STEP\"")
    env["STEP"] = STEP_AND_NUMBA_CACHE_DIR
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)  # not the checkout: it would be imported first
    if done.returncode == 77 or "Operation not permitted" in done.stderr:
        pytest.skip(f"no private read-only mount here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    loss, numba_cache_dir = done.stdout.split()
    assert float(loss) > 0
    assert numba_cache_dir == "''", "fastnet changed numba.config.CACHE_DIR, which the user's own kernels would inherit"
    cached = list((tmp / f"fastnet-numba-{os.getuid()}").rglob("*.nbi"))
    assert cached, "no kernels were cached in the fallback folder"


def test_a_change_to_any_kernel_source_invalidates_every_cached_kernel(tmp_path):
    """Numba stamps a cached kernel with its own file only; fastnet's kernels span several files."""
    from numba.core.dispatcher import Dispatcher

    import fastnet.backends.numba as package

    copy = tmp_path / "fastnet"
    shutil.copytree(Path(fastnet.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert kernel_cache.fingerprint(copy) == kernel_cache.STAMP
    for name in kernel_cache.SOURCES:
        path = copy / name
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        assert kernel_cache.fingerprint(copy) != kernel_cache.STAMP, f"an edit of {name} goes unnoticed"
        path.write_text(text)
    modules = [importlib.import_module(m.name) for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    kernels = [k for m in modules for k in vars(m).values() if isinstance(k, Dispatcher)]
    assert len(kernels) > 10
    for kernel in kernels:
        assert kernel._cache._impl.locator.get_source_stamp() == kernel_cache.STAMP, kernel.py_func.__name__
    # every module that defines a kernel or holds what they read is stamped
    sources = {f"backends/numba/{Path(m.__file__).name}" for m in modules
               if any(isinstance(k, Dispatcher) and k.py_func.__module__ == m.__name__ for k in vars(m).values())}
    assert sources <= set(kernel_cache.SOURCES)


DAMAGES = {
    "garbage": lambda data: b"not a pickle at all" * 3,
    "empty": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
}


def _fresh_kernel(module):
    """A dispatcher with nothing compiled in memory: its first call loads from disk or compiles."""
    import numba

    from fastnet.backends.numba.kernel_cache import KernelCache

    kernel = numba.njit(cache=True)(module.triple)
    kernel._cache = KernelCache(module.triple)
    return kernel


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("suffix", [".nbi", ".nbc"])
def test_a_damaged_cache_file_is_a_miss_and_is_replaced(tmp_path, suffix, damage):
    import importlib.util

    name = f"tiny_kernel_{suffix[1:]}_{damage}"  # its own module and cache files per case
    (tmp_path / f"{name}.py").write_text("def triple(x):\n    return 3 * x\n")
    spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = _fresh_kernel(module)
    assert first(2) == 6
    files = list(Path(first.stats.cache_path).glob(f"{name}*{suffix}"))
    assert files, f"nothing cached: no {suffix} file"
    for path in files:
        path.write_bytes(DAMAGES[damage](path.read_bytes()))

    again = _fresh_kernel(module)
    assert again(2) == 6  # compiled again instead of UnpicklingError / EOFError
    assert sum(again.stats.cache_hits.values()) == 0
    third = _fresh_kernel(module)
    assert third(2) == 6
    assert sum(third.stats.cache_hits.values()) == 1, "the damaged cache was not rewritten"


@pytest.mark.slow
def test_training_survives_every_numba_cache_file_damaged(tmp_path):
    """End to end, fastnet's own kernels: compile into an empty cache, damage it all, run again."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    first = subprocess.run([sys.executable, "-c", STEP], env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    files = sorted((tmp_path / "cache").rglob("*.nb[ic]"))
    assert files
    for i, path in enumerate(files):  # every kind of damage, on index and data files alike
        path.write_bytes(list(DAMAGES.values())[i % len(DAMAGES)](path.read_bytes()))
    second = subprocess.run([sys.executable, "-c", STEP], env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


TWO_WRITERS = """
import numpy as np
from fastnet.backends.numba import chunks
from fastnet.backends.numba.compiling import signature
kernel, cache = chunks.update, chunks.update._cache
f32 = signature((np.zeros(3, np.float32), np.zeros(3, np.float32), np.float32(1)))
f64 = signature((np.zeros(3), np.zeros(3), 1.0))
print(cache.holds(f32, kernel.targetctx))
order = []
for name in ("_save_data", "_save_index"):
    write = getattr(cache._cache_file, name)
    setattr(cache._cache_file, name, lambda *a, _write=write, _name=name: (order.append(_name), _write(*a)))
kernel.compile(f32)
print(cache.holds(f32, kernel.targetctx), order)
# two writers that chose one data file for two signatures: the float64 entry names float32's data
index, codegen = cache._cache_file._load_index(), kernel.targetctx.codegen()
index[cache._index_key(f64, codegen)] = index[cache._index_key(f32, codegen)]
cache._cache_file._save_index(index)
print(cache.holds(f64, kernel.targetctx), cache.load_overload(f64, kernel.targetctx))
"""


def test_a_new_entry_is_written_data_first_and_a_mixed_up_entry_is_a_miss(tmp_path):
    done = subprocess.run([sys.executable, "-c", TWO_WRITERS], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["False", "True ['_save_data', '_save_index']", "True None"]



OTHER_WIDTH = """
import numpy as np
from fastnet.backends.numba import chunks, vector
from fastnet.backends.numba.compiling import signature
kernel, cache = chunks.update, chunks.update._cache
f64 = signature((np.zeros(3), np.zeros(3), 1.0))
kernel.compile(f64)
print(cache.holds(f64, kernel.targetctx))
vector.VECTOR_BITS = 768 - vector.VECTOR_BITS  # the other width: 256 <-> 512
print(cache.holds(f64, kernel.targetctx), cache.load_overload(f64, kernel.targetctx))
"""


def test_a_kernel_compiled_for_one_vector_width_is_never_loaded_for_the_other(tmp_path):
    """The width is fixed at import from Numba's CPU features (.vector); the cache keys on it too."""
    done = subprocess.run([sys.executable, "-c", OTHER_WIDTH], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True", "False None"]
