"""The network: layer sizes and parameters, nothing more.

Shape letters used throughout fastnet:
    N  samples            D  inputs (784 for MNIST)
    H  hidden units       K  classes (10 for MNIST)

Parameters follow the seed notebook: each layer has ``W`` shaped (out, in) and ``b`` shaped (out,).
All parameters live in one flat vector and ``params`` are views into it, so a backend can update
every layer with one operation and a compiled kernel can take the whole network as one array.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from fastnet import model_file

DTYPES = ("float32", "float64")
INITS = ("uniform", "he")


def layer_shapes(sizes):
    """[(W shape, b shape), ...] for a network with these layer sizes."""
    return [((n_out, n_in), (n_out,)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def n_params(sizes):
    """Number of scalars in all W and b of a network with these layer sizes."""
    return sum(o * i + o for (o, i), _ in layer_shapes(sizes))


def check_sizes(sizes):
    """Return ``sizes`` as a tuple of ints, or raise ValueError saying what is wrong.

    Each size must be a whole number (an int, a numpy integer, or a float such as 10.0 with no
    fraction); 10.5 or True are refused, never truncated.
    """
    try:
        items = tuple(sizes)
    except TypeError:
        raise ValueError(f"sizes must be a sequence of whole numbers, got {sizes!r}") from None
    whole = [isinstance(s, (int, np.integer, float, np.floating)) and not isinstance(s, (bool, np.bool_))
             and float(s).is_integer() for s in items]
    if not all(whole):
        raise ValueError(f"layer sizes must be whole numbers, got {sizes!r}")
    sizes = tuple(int(s) for s in items)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output size, got {sizes!r}")
    if min(sizes) < 1:
        raise ValueError(f"every layer size must be at least 1, got {sizes!r}")
    return sizes


def check_dtype(dtype):
    """Return the numpy dtype for 'float32'/'float64' (or the dtype objects), else raise ValueError."""
    name = np.dtype(dtype).name if _is_dtype_like(dtype) else str(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return np.dtype(name)


def _is_dtype_like(obj):
    try:
        np.dtype(obj)
        return True
    except TypeError:
        return False


_new_lock = threading.RLock


@dataclass
class Network:
    """A fully connected ReLU network with a softmax output.

    ``sizes`` is (D, H1, ..., K); ``flat`` holds every parameter, layer by layer, W then b.
    """

    sizes: tuple
    flat: np.ndarray

    def __post_init__(self):
        self.sizes = check_sizes(self.sizes)
        if not isinstance(self.flat, np.ndarray) or self.flat.ndim != 1:
            raise ValueError("flat must be a 1-D numpy array")
        check_dtype(self.flat.dtype)
        if self.flat.size != n_params(self.sizes):
            raise ValueError(
                f"sizes {self.sizes} need {n_params(self.sizes)} parameters, flat has {self.flat.size}"
            )
        self.flat = np.ascontiguousarray(self.flat)

    @classmethod
    def init(cls, sizes=(784, 10, 10), seed=0, init="uniform", dtype="float64"):
        """A new network with seeded random weights.

        ``init="uniform"`` is the seed notebook's ``rand - 0.5`` for W and b; ``"he"`` draws W from
        N(0, 2/fan_in) and sets b to zero. Values are drawn in float64 and then cast, so a float32
        and a float64 network made with the same seed start from the same (rounded) numbers.
        """
        sizes = check_sizes(sizes)
        dtype = check_dtype(dtype)
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        rng = np.random.default_rng(seed)
        parts = []
        for (w_shape, b_shape) in layer_shapes(sizes):
            if init == "uniform":
                parts += [rng.random(w_shape) - 0.5, rng.random(b_shape) - 0.5]
            else:
                fan_in = w_shape[1]
                parts += [rng.standard_normal(w_shape) * np.sqrt(2.0 / fan_in), np.zeros(b_shape)]
        flat = np.concatenate([p.ravel() for p in parts]).astype(dtype)
        return cls(sizes, flat)

    @property
    def dtype(self):
        return self.flat.dtype

    @property
    def params(self):
        """[(W, b), ...], views into ``flat``: writing to them changes the network."""
        return unflatten(self.flat, self.sizes)

    @property
    def lock(self):
        """The lock a backend holds while it reads or changes these parameters (re-entrant)."""
        return self.__dict__.setdefault("_lock", _new_lock())

    def __getstate__(self):  # pickle and deepcopy: a lock is not copied, the copy gets its own
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def copy(self):
        return Network(self.sizes, self.flat.copy())

    def astype(self, dtype):
        """A copy of this network with parameters cast to ``dtype``."""
        return Network(self.sizes, self.flat.astype(check_dtype(dtype)))

    def save(self, path, **metadata):
        """Write the network (and ``metadata``) to an .npz file atomically; see fastnet.model_file."""
        model_file.write_model(path, self.sizes, self.flat, **metadata)

    @classmethod
    def load(cls, path):
        """Read a network written by :meth:`save`; raises ValueError for a file of the wrong kind."""
        return load_network(path)[0]


def load_network(path):
    """(Network, metadata dict) from a file written by :meth:`Network.save`; ValueError for a file
    of another kind or whose sizes and parameters disagree."""
    sizes, flat, metadata = model_file.read_model(path)
    try:
        return Network(sizes, flat), metadata
    except ValueError as exc:
        raise ValueError(f"{path}: {model_file.first_line(exc)}") from None


def layer_offsets(sizes):
    """[(W offset, b offset), ...]: where each layer's W and b start in the flat vector."""
    out, start = [], 0
    for (n_out, n_in), _ in layer_shapes(sizes):
        out.append((start, start + n_out * n_in))
        start += n_out * n_in + n_out
    return out


def unflatten(flat, sizes):
    """Split a flat parameter-shaped vector into [(W, b), ...] views."""
    return [(flat[w:b].reshape(w_shape), flat[b:b + b_shape[0]])
            for (w, b), (w_shape, b_shape) in zip(layer_offsets(sizes), layer_shapes(sizes))]
