"""Bad input gets one clear line and loses nothing: files, arrays, options, divergence, Ctrl-C."""

import gzip
import re
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnet
from fastnet.data import CACHE_DIR, DataError, load_mnist
from fastnet.data.formats import csv_text, idx_bytes
from fastnet.files import atomic_write
from fastnet.train import main as train_main
from tests.helpers import REFERENCE, random_problem

# ------------------------------------------------------------------ bad data files


def good_rows(n=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 784)).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def corrupt_csv(row, col, value, header=True):
    """CSV text of 3 good rows with file line ``row`` (1-based, header included), column ``col``
    (1-based; column 1 is the label) replaced by ``value`` (None: drop the cell)."""
    images, labels = good_rows()
    lines = csv_text(images, labels, header=header).splitlines()
    cells = lines[row - 1].split(",")
    if value is None:
        del cells[col - 1]
    else:
        cells[col - 1] = value
    lines[row - 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


CSV_CASES = {
    "a row with too many columns": (corrupt_csv(3, 785, "1,2"), "line 3 has 786 columns, expected 785"),
    "a row with too few columns": (corrupt_csv(3, 785, None), "line 3, column 785 (pixel 783): an empty cell"),
    "a text cell": (corrupt_csv(2, 10, "abc"), "line 2, column 10 (pixel 8): 'abc' is not a whole number"),
    "an empty cell": (corrupt_csv(4, 5, ""), "line 4, column 5 (pixel 3): an empty cell"),
    "a NaN cell": (corrupt_csv(4, 300, "nan"), "line 4, column 300 (pixel 298): 'nan' is not a whole number"),
    "a pixel above 255": (corrupt_csv(3, 7, "300"), "line 3, column 7 (pixel 5): pixel 300 is outside 0-255"),
    "a negative pixel": (corrupt_csv(2, 2, "-1"), "line 2, column 2 (pixel 0): pixel -1 is outside 0-255"),
    "a label outside 0-9": (corrupt_csv(3, 1, "10"), "line 3, column 1 (label): label 10 is outside 0-9"),
    "a fractional label": (corrupt_csv(2, 1, "2.5"), "line 2, column 1 (label): '2.5' is not a whole number"),
    "an empty file": ("", "the file is empty"),
    "a header only": (corrupt_csv(1, 1, "label").splitlines()[0] + "\n", "a header but no data rows"),
}


@pytest.mark.parametrize("header", [True, False])
def test_positions_are_file_lines_deep_into_a_large_csv(tmp_path, header):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7000, 784)).astype(np.uint8), rng.integers(0, 10, 7000)
    lines = csv_text(images, labels.astype(np.uint8), header=header).splitlines()
    lines[6001] += ",5"  # file line 6002: past the parser's first chunks
    (tmp_path / "mnist_train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 6002 has 786 columns, expected 785"):
        load_mnist(tmp_path, download=False, progress=False)


def idx_files(tmp_path, images=None, labels=None, gz=True):
    images_, labels_ = good_rows()
    images = idx_bytes(images_.reshape(-1, 28, 28)) if images is None else images
    labels = idx_bytes(labels_) if labels is None else labels
    for name, raw in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        (tmp_path / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))


def train_on(tmp_path, capsys):
    code = train_main(["--data-dir", str(tmp_path), "--no-progress", "--iterations", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_bad_csv_is_one_line_with_position_exit_2_and_no_cache(tmp_path, capsys, case):
    text, message = CSV_CASES[case]
    (tmp_path / "mnist_train.csv").write_text(text)
    code, err = train_on(tmp_path, capsys)
    assert code == 2
    assert err == [f"fastnet: error: {tmp_path / 'mnist_train.csv'}: {message}"]
    assert not (tmp_path / CACHE_DIR / "train.npz").exists()
    with pytest.raises(ValueError, match=re.escape(message)):  # the Python API says the same
        load_mnist(tmp_path, download=False, progress=False)


def test_truncated_gzip(tmp_path, capsys):
    path = idx_files(tmp_path)
    path.write_bytes(path.read_bytes()[:500])
    code, err = train_on(tmp_path, capsys)
    assert code == 2 and len(err) == 1 and "damaged or truncated gzip file" in err[0] and str(path) in err[0]


def test_wrong_magic_number(tmp_path, capsys):
    raw = bytearray(idx_bytes(good_rows()[0].reshape(-1, 28, 28)))
    raw[2] = 0x0D  # a float dtype code
    path = idx_files(tmp_path, images=bytes(raw), gz=False)
    code, err = train_on(tmp_path, capsys)
    assert code == 2 and err == [f"fastnet: error: {path}: not an MNIST IDX file (magic number "
                                 f"0x00000d03, expected 0x00000801 for labels or 0x00000803 for images)"]


def test_size_disagreeing_with_header(tmp_path, capsys):
    path = idx_files(tmp_path, images=idx_bytes(good_rows()[0].reshape(-1, 28, 28))[:-10])
    code, err = train_on(tmp_path, capsys)
    assert code == 2 and err == [f"fastnet: error: {path}: header says 3x28x28 = 2352 bytes of data, file has 2342"]


def test_images_and_labels_of_different_lengths(tmp_path, capsys):
    idx_files(tmp_path, labels=idx_bytes(np.zeros(5, np.uint8)))
    code, err = train_on(tmp_path, capsys)
    assert code == 2 and len(err) == 1 and "has 3 images but" in err[0] and "has 5 labels" in err[0]
    assert not (tmp_path / CACHE_DIR).exists()


def test_bad_file_through_a_real_process_has_no_traceback(tmp_path):
    (tmp_path / "train.csv").write_text(CSV_CASES["a text cell"][0])
    done = subprocess.run([sys.executable, "-m", "fastnet.train", "--data-dir", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("'abc' is not a whole number")


# ------------------------------------------------------------------ bad and awkward arrays

SIZES = (784, 10, 10)
X_OK, Y_OK = random_problem(20, SIZES, seed=0)

BAD_X = {
    "1-D": (X_OK[0], ValueError, "must be 2-D"),
    "wrong width": (X_OK[:, :700], ValueError, "700 columns but the network takes 784"),
    "no samples": (X_OK[:0], ValueError, "no samples"),
    "complex": (X_OK.astype(complex), TypeError, "integer or float pixels"),
    "object": (X_OK.astype(object), TypeError, "integer or float pixels"),
    "strings": (X_OK.astype(str), TypeError, "integer or float pixels"),
    "bool": (X_OK > 0, TypeError, "integer or float pixels"),
    "NaN": (np.where(X_OK == 0, np.nan, X_OK / 255.0), ValueError, "NaN or infinite"),
    "floats above 1": (X_OK.astype(float), ValueError, r"must lie in \[0, 1\]"),
    "negative floats": (-(X_OK / 255.0), ValueError, r"must lie in \[0, 1\]"),
    "ints above 255": (X_OK.astype(np.int64) + 1, ValueError, "must lie in 0-255"),
    "negative ints": (X_OK.astype(np.int64) - 1, ValueError, "must lie in 0-255"),
}
BAD_Y = {
    "wrong length": (Y_OK[:-1], ValueError, "20 samples but y has 19 labels"),
    "label 10": (np.where(Y_OK == 0, 10, Y_OK), ValueError, "must lie in 0-9"),
    "negative label": (Y_OK - 1, ValueError, "must lie in 0-9"),
    "fractional": (Y_OK + 0.5, ValueError, "whole numbers"),
    "strings": (Y_OK.astype(str), TypeError, "must be integers"),
    "2-D": (Y_OK[:, None], ValueError, "must be 1-D"),
}


@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_features_are_refused_before_any_kernel(backend, case):
    X, error, message = BAD_X[case]
    net = fastnet.Network.init(SIZES)
    before = net.flat.copy()
    for call in (lambda: backend.step(net, X, Y_OK[:len(X)] if X.ndim == 2 else Y_OK, lr=0.1),
                 lambda: backend.forward(net, X)):
        with pytest.raises(error, match=message):
            call()
    np.testing.assert_array_equal(net.flat, before)


@pytest.mark.parametrize("case", list(BAD_Y))
def test_bad_labels_are_refused(backend, case):
    y, error, message = BAD_Y[case]
    with pytest.raises(error, match=message):
        backend.step(fastnet.Network.init(SIZES), X_OK, y, lr=0.1)


@pytest.mark.parametrize("lr", [0, -1, float("nan"), float("inf")])
def test_bad_learning_rates_are_refused(backend, lr):  # and more kinds in test_api_forms
    with pytest.raises(ValueError, match="lr must be finite and > 0"):
        backend.step(fastnet.Network.init(SIZES), X_OK, Y_OK, lr=lr)


def awkward_variants(tmp_path):
    base = np.repeat(X_OK, 2, axis=0)  # 40 rows, so that [::2] is a strided view of X_OK
    readonly = X_OK.copy()
    readonly.setflags(write=False)
    mm = np.memmap(tmp_path / "x.bin", dtype=np.uint8, mode="w+", shape=X_OK.shape)
    mm[:] = X_OK
    mm.flush()
    mm = np.memmap(tmp_path / "x.bin", dtype=np.uint8, mode="r", shape=X_OK.shape)
    return {"strided rows": base[::2], "read-only": readonly, "memory-mapped": mm,
            "int64 pixels": X_OK.astype(np.int64), "Fortran order": np.asfortranarray(X_OK)}


def test_awkward_but_valid_arrays_are_accepted_and_never_written(backend, tmp_path):
    be = backend
    expected = fastnet.Network.init(SIZES)
    be.step(expected, X_OK, Y_OK, lr=0.1)
    for name, X in awkward_variants(tmp_path).items():
        snapshot = np.array(X, copy=True)
        net = fastnet.Network.init(SIZES)
        be.step(net, X, Y_OK, lr=0.1)
        np.testing.assert_array_equal(net.flat, expected.flat, err_msg=name)
        np.testing.assert_array_equal(X, snapshot, err_msg=f"{name} was written to")


# ------------------------------------------------------------------ divergence

@pytest.mark.parametrize("lr, dtype", [(1e4, "float64"), (1e38, "float32")])
def test_divergence_stops_naming_the_iteration_and_keeps_finite_parameters(backend, lr, dtype):
    from fastnet.training import Diverged, fit

    X, y = random_problem(300, SIZES, seed=1)
    net = fastnet.Network.init(SIZES, dtype=dtype)
    start = net.flat.copy()
    with pytest.raises(Diverged, match=r"diverged at iteration 2 .*after 0 good steps") as info:
        fit(net, X, y, iterations=50, lr=lr, backend=backend, progress=False)
    assert info.value.iteration == 2
    assert np.isfinite(net.flat).all()
    np.testing.assert_array_equal(net.flat, start)


def test_divergence_in_the_cli_exits_1_and_saves_the_last_good_state(mnist_dir, tmp_path):
    model = tmp_path / "m.npz"
    done = subprocess.run([sys.executable, "-m", "fastnet.train", "--data-dir", str(mnist_dir), "--lr", "10000",
                           "--iterations", "50", "--no-progress", "--save", str(model)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert "training diverged at iteration 2" in done.stderr and "Traceback" not in done.stderr
    assert np.isfinite(fastnet.Network.load(model).flat).all()


# ------------------------------------------------------------------ interruption and atomic writes

def test_ctrl_c_stops_cleanly_and_saves_the_last_completed_state(mnist_dir, tmp_path):
    model = tmp_path / "m.npz"
    proc = subprocess.Popen([sys.executable, "-m", "fastnet.train", "--backend", REFERENCE, "--data-dir",
                             str(mnist_dir), "--iterations", "100000", "--no-progress", "--save", str(model)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # printed just before the training loop starts
        assert line.startswith("fastnet: 784-10-10"), line
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err
    from fastnet.network import load_network

    net, meta = load_network(model)
    assert meta["steps"] >= 1 and np.isfinite(net.flat).all()


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half of the new cont")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_killed_save_never_leaves_a_corrupt_model(tmp_path):
    """SIGKILL a process in the middle of saving a large model: the file is absent or complete."""
    script = (
        "import fastnet, sys\n"
        "net = fastnet.Network.init((784, 2000, 10))\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        f"    net.save(r'{tmp_path / 'big.npz'}')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "big.npz").exists()
    assert fastnet.Network.load(tmp_path / "big.npz").sizes == (784, 2000, 10)
