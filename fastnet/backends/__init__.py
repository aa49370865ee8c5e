"""The backend registry: every backend is known here by name and imported only when asked for.

The default backend is ``numba`` (the point of fastnet); ``FASTNET_BACKEND`` overrides it.
"""

from __future__ import annotations

import importlib
import os

from fastnet.backends.base import Backend, StepResult

# name -> module defining BACKEND; imported lazily so `numpy` users never pay numba's import.
_MODULES = {
    "numpy": "fastnet.backends.numpy_backend",
    "numba": "fastnet.backends.numba",
}
_loaded = {}
DEFAULT = "numba"


def available_backends():
    """Names accepted by :func:`get_backend`."""
    return sorted(_MODULES)


def get_backend(name=None):
    """The backend called ``name`` (default: ``$FASTNET_BACKEND`` or 'numba').

    Raises ValueError listing the known names when ``name`` is not one of them.
    """
    if isinstance(name, Backend):
        return name
    if name is None:
        name = os.environ.get("FASTNET_BACKEND", DEFAULT)
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(available_backends())}")
    if name not in _loaded:
        _loaded[name] = importlib.import_module(_MODULES[name]).BACKEND
    return _loaded[name]


__all__ = ["Backend", "StepResult", "available_backends", "get_backend"]
