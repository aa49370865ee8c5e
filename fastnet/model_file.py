"""Models on disk: one .npz holding the parameters and everything needed to use them again.

Stored: a format tag and version, layer sizes, dtype, how inputs are scaled, and a JSON object of
free-form metadata (training settings, final accuracies). Saving is atomic. This module knows the
file, not the Network: ``Network.save`` and ``fastnet.network.load_network`` use it.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np

from fastnet.data.formats import file_kind
from fastnet.files import atomic_write

FORMAT = "fastnet-model"
VERSION = 1
INPUT_SCALING = "uint8 pixels / 255, or floats in [0, 1]"


def write_model(path, sizes, flat, **metadata):
    """Write a network's layer sizes, flat parameters and ``metadata`` (JSON-serialisable values)
    to ``path`` atomically."""
    with atomic_write(path) as f:
        np.savez(
            f, format=np.array(FORMAT), version=np.array(VERSION), sizes=np.array(sizes),
            flat=flat, input_scaling=np.array(INPUT_SCALING),
            metadata=np.array(json.dumps(metadata, default=_jsonable)),
        )


def read_model(path):
    """(layer sizes, flat parameters, metadata dict) from a file written by :func:`write_model`;
    ValueError otherwise. Whether the sizes and parameters make a network is the Network's check."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head != b"PK\x03\x04":  # numpy would talk of unpickling it; a model file is a zip (.npz)
            kind = file_kind(head) or "not an .npz archive"
            raise ValueError(f"{path}: not a fastnet model file ({kind})")
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a model file") from None
    except ValueError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable fastnet model file ({first_line(exc)})") from None
    with archive as z:
        if not hasattr(z, "files") or "format" not in z.files or str(z["format"]) != FORMAT:
            raise ValueError(f"{path}: not a fastnet model file (no '{FORMAT}' tag)")
        try:
            version = int(z["version"])
            if version > VERSION:
                raise ValueError(f"model format version {version} is newer than this fastnet reads (up to "
                                 f"{VERSION}): written by a later fastnet; upgrade fastnet to use it")
            sizes = z["sizes"]
            if sizes.ndim != 1 or sizes.dtype.kind not in "iu":
                raise ValueError(f"damaged model: sizes {sizes.tolist()!r} is not a list of layer sizes")
            sizes, flat = tuple(int(s) for s in sizes), z["flat"].copy()
            metadata = json.loads(str(z["metadata"]))
        except (KeyError, ValueError, OSError, json.JSONDecodeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: {first_line(exc)}") from None
    return sizes, flat, metadata


def first_line(exc):
    """The first line of an exception's message (its type's name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
