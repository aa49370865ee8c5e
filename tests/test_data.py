"""Loaders on small files the tests write: IDX gzip/raw, both CSV layouts, the cache, the split."""

import gzip

import numpy as np
import pytest

from fastnet.data import CACHE_DIR, DataError, load_mnist, load_split, split_dev
from fastnet.data.formats import csv_text, idx_bytes, read_idx


def small_mnist(n=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    return images, labels


def write_idx(root, prefix, images, labels, gz):
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[prefix]
    for name, array in zip(names, (images, labels)):
        raw = idx_bytes(array)
        (root / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    images, labels = small_mnist()
    write_idx(tmp_path, "train", images, labels, gz)
    X, y = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(X, images.reshape(len(images), -1))
    np.testing.assert_array_equal(y, labels)
    assert X.dtype == np.uint8 and X.shape == (12, 784)


@pytest.mark.parametrize("name, header", [
    ("mnist_train.csv", True), ("mnist_train.csv", False), ("train.csv", True), ("train.csv", False)])
def test_csv_layouts(tmp_path, name, header):
    images, labels = small_mnist(7, seed=1)
    flat = images.reshape(7, -1)
    text = csv_text(flat, labels, header=header)
    if name == "train.csv" and header:  # Kaggle's header: label,pixel0,...,pixel783
        assert text.startswith("label,pixel0,pixel1,")
    (tmp_path / name).write_text(text)
    X, y = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(X, flat)
    np.testing.assert_array_equal(y, labels)


def test_seed_csv_header_format_is_read(tmp_path):
    images, labels = small_mnist(3)
    flat = images.reshape(3, -1)
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    body = "\n".join(",".join(map(str, [l, *row])) for l, row in zip(labels, flat))
    (tmp_path / "mnist_train.csv").write_text(header + "\n" + body + "\n")
    X, y = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(X, flat)


def test_idx_preferred_over_csv_and_test_set_optional(tmp_path):
    images, labels = small_mnist(5)
    write_idx(tmp_path, "train", images, labels, gz=True)
    (tmp_path / "train.csv").write_text(csv_text(np.zeros((2, 784), np.uint8), np.zeros(2, np.uint8)))
    mnist = load_mnist(tmp_path, download=False, progress=False)
    assert len(mnist.train_images) == 5 and mnist.test_images is None
    write_idx(tmp_path, "test", images[:3], labels[:3], gz=False)
    assert len(load_mnist(tmp_path, download=False, progress=False).test_images) == 3


def test_cache_is_written_used_and_refreshed(tmp_path, monkeypatch):
    import fastnet.data as data

    images, labels = small_mnist(4)
    (tmp_path / "mnist_train.csv").write_text(csv_text(images.reshape(4, -1), labels))
    load_split(tmp_path, "train", progress=False)
    assert (tmp_path / CACHE_DIR / "train.npz").is_file()

    def no_parsing(*args):
        raise AssertionError("the source was parsed although the cache is fresh")

    with monkeypatch.context() as m:
        m.setattr(data, "_parse", no_parsing)
        X, _ = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(X, images.reshape(4, -1))

    images2, labels2 = small_mnist(6, seed=9)  # a changed source (other size) invalidates the cache
    (tmp_path / "mnist_train.csv").write_text(csv_text(images2.reshape(6, -1), labels2))
    X, y = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(y, labels2)


def test_no_data_without_download_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="no MNIST training set"):
        load_mnist(tmp_path, download=False, progress=False)


def test_split_is_seeded_and_disjoint():
    X = np.arange(1500)[:, None]
    labels = np.arange(1500) % 10
    a, b, c = (split_dev(X, labels, seed=s) for s in (0, 0, 1))
    assert len(a.X_dev) == 1000 and len(a.X_train) == 500
    np.testing.assert_array_equal(a.X_dev, b.X_dev)
    assert not np.array_equal(a.X_dev, c.X_dev)
    assert not set(a.X_dev[:, 0]) & set(a.X_train[:, 0])
    np.testing.assert_array_equal(labels[a.X_train[:, 0]], a.y_train)


def test_real_mnist_loads_with_published_shapes(mnist):
    assert mnist.train_images.shape == (60000, 784) and mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 784)
    assert set(np.unique(mnist.train_labels)) == set(range(10))


def test_read_idx_rejects_wrong_magic(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    p.write_bytes(b"\x00\x00\x0d\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(DataError, match="not an MNIST IDX file"):
        read_idx(p)
