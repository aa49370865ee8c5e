"""What fastnet writes: never a half-written file, never a device or FIFO replaced, links kept,
leftovers of killed writers cleaned up; and a damaged data cache is ignored and replaced."""

import os
import signal
import stat
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

from fastnet.data import CACHE_DIR, load_split
from fastnet.data.formats import csv_text
from fastnet.files import atomic_write, check_writable


def write_bytes(path, data):
    with atomic_write(path) as f:
        f.write(data)


def test_a_symlink_is_written_through_and_kept(tmp_path):
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_a_character_device_is_written_to_not_replaced():
    before = os.stat("/dev/null")
    write_bytes("/dev/null", b"x" * 100)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_full_device_gives_an_error_and_stays_a_device():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with pytest.raises(OSError):
        write_bytes("/dev/full", b"x" * 100_000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_fifo_is_written_to_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_bytes(fifo, b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_bytes(tmp_path, b"x")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_writable(tmp_path, "--save")


def test_check_writable_creates_nothing_and_refuses_unwritable_places(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "model.npz")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        check_writable(tmp_path / "file" / "model.npz", "--save")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(PermissionError):
            check_writable(ro / "model.npz", "--save")


def test_a_writer_killed_mid_write_leaves_a_part_file_that_the_next_write_removes(tmp_path):
    out = tmp_path / "model.npz"
    code = ("import sys, time\nfrom fastnet.files import atomic_write\n"
            "with atomic_write(sys.argv[1]) as f:\n"
            "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE)
    assert writer.stdout.readline() == b"writing\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    parts = list(tmp_path.glob(".model.npz.*.part"))
    assert len(parts) == 1 and not out.exists()
    write_bytes(out, b"done")
    assert out.read_bytes() == b"done" and not list(tmp_path.glob("*.part"))


def test_a_live_writers_part_file_is_left_alone(tmp_path):
    live = tmp_path / f".model.npz.{os.getpid()}.abcd.part"
    live.write_bytes(b"in progress")
    write_bytes(tmp_path / "model.npz", b"done")
    assert live.exists()


# ------------------------------------------------------------------ the data cache

def damaged(kind, raw):
    if kind == "truncated":
        return raw[: len(raw) // 2]
    if kind == "bit flipped":  # inside the images array: only the zip's CRC sees it
        i = len(raw) // 2
        return raw[:i] + bytes([raw[i] ^ 0x10]) + raw[i + 1:]
    if kind == "garbage":
        return os.urandom(len(raw))
    if kind == "empty":
        return b""
    if kind == "not a zip but npy":
        return b"\x93NUMPY" + raw[6:100]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "bit flipped", "garbage", "empty", "not a zip but npy"])
def test_a_damaged_data_cache_is_ignored_and_replaced(tmp_path, kind):
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (300, 784)).astype(np.uint8), rng.integers(0, 10, 300).astype(np.uint8)
    (tmp_path / "mnist_train.csv").write_text(csv_text(X, y))
    load_split(tmp_path, "train", progress=False)
    cache = tmp_path / CACHE_DIR / "train.npz"
    sound = cache.read_bytes()
    cache.write_bytes(damaged(kind, sound))
    images, labels = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(images, X)
    np.testing.assert_array_equal(labels, y)
    assert zlib.crc32(cache.read_bytes()) == zlib.crc32(sound), "the damaged cache was not replaced"
