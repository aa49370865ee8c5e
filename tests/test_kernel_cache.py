"""Compiled kernels are cached; a read-only install without a writable home still works."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastnet
from fastnet import config

STEP = ("import numpy as np, fastnet\n"
        "X = np.random.default_rng(0).integers(0, 256, (100, 784)).astype(np.uint8)\n"
        "print(fastnet.get_backend('numba').step(fastnet.Network.init(), X, np.arange(100) % 10, lr=0.1).loss)\n")


def test_cache_dir_fallback_order(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert config.numba_cache_dir() is None  # a writable install: numba's own __pycache__
    monkeypatch.setattr(config.os, "access", lambda path, mode: str(path).startswith(str(tmp_path / "tmp")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(config.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert config.numba_cache_dir() == str(tmp_path / "tmp" / f"fastnet-numba-{os.getuid()}")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert config.numba_cache_dir() is None  # the user's own choice wins


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
    env["STEP"] = STEP
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)  # not the checkout: it would be imported first
    if done.returncode == 77 or "Operation not permitted" in done.stderr:
        pytest.skip(f"no private read-only mount here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip()) > 0
    cached = list((tmp / f"fastnet-numba-{os.getuid()}").rglob("*.nbi"))
    assert cached, "no kernels were cached in the fallback folder"


def test_a_change_to_any_kernel_source_invalidates_every_cached_kernel(tmp_path):
    """Numba stamps a cached kernel with its own file only; fastnet's kernels span several files."""
    from numba.core.dispatcher import Dispatcher

    from fastnet.backends import _kernel_cache, _numba_first_layer, _numba_kernels, numba_backend  # noqa: F401

    copy = tmp_path / "fastnet"
    shutil.copytree(Path(fastnet.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _kernel_cache.fingerprint(copy) == _kernel_cache.STAMP
    for name in _kernel_cache.SOURCES:
        path = copy / name
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        assert _kernel_cache.fingerprint(copy) != _kernel_cache.STAMP, f"an edit of {name} goes unnoticed"
        path.write_text(text)
    kernels = [k for m in (_numba_first_layer, _numba_kernels) for k in vars(m).values() if isinstance(k, Dispatcher)]
    assert len(kernels) > 10
    for kernel in kernels:
        assert kernel._cache._impl.locator.get_source_stamp() == _kernel_cache.STAMP, kernel.py_func.__name__


DAMAGES = {
    "garbage": lambda data: b"not a pickle at all" * 3,
    "empty": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
}


def _fresh_kernel(module):
    """A dispatcher with nothing compiled in memory: its first call loads from disk or compiles."""
    import numba

    from fastnet.backends._kernel_cache import KernelCache

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
