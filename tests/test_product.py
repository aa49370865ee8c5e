"""A finished tool: models on disk, predictions, pictures, mini-batches, the benchmark report."""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import fastnet
from fastnet.data.formats import csv_text, idx_bytes
from fastnet.predict import confusion_matrix
from fastnet.training import fit
from tests.helpers import REFERENCE, random_problem


def png_size(path):
    """(width, height) of a PNG file, checking its signature and header chunk."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and zlib.crc32(data[12:16 + length]) == struct.unpack(">I", data[16 + length:20 + length])[0]
    return struct.unpack(">II", data[16:24])


def run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600)


# ------------------------------------------------------------------ models on disk

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saved_model_reloads_to_identical_predictions(backend, tmp_path, dtype):
    sizes = (784, 16, 8, 10)
    X, y = random_problem(50, sizes, seed=0)
    net = fastnet.Network.init(sizes, seed=3, dtype=dtype)
    fit(net, X, y, iterations=3, backend=backend, progress=False)
    net.save(tmp_path / "m.npz", dev_accuracy=0.5, note="hi")
    back = fastnet.Network.load(tmp_path / "m.npz")
    assert back.sizes == sizes and back.dtype == net.dtype
    np.testing.assert_array_equal(back.flat, net.flat)
    np.testing.assert_array_equal(backend.forward(back, X), backend.forward(net, X))
    from fastnet.network import load_network

    assert load_network(tmp_path / "m.npz")[1] == {"dev_accuracy": 0.5, "note": "hi"}


@pytest.mark.parametrize("content, message", [
    (b"not a zip at all", r"not a fastnet model file \(not an .npz archive\)$"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), r"not a fastnet model file \(a PNG image\)$"),  # never "load it unsafely"
    (b"PK\x03\x04 but cut short", "not a readable fastnet model file"),
    (None, "not a fastnet model file"),
])
def test_loading_the_wrong_kind_of_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, weights=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        fastnet.Network.load(path)


@pytest.mark.parametrize("sizes, message", [
    (np.array([5, 4, 2]), "need .* parameters"),
    (np.array(5), "sizes 5 is not a list of layer sizes"),  # 0-d: was "iteration over a 0-d array"
    (np.array(["5", "3", "2"]), "is not a list of layer sizes"),
])
def test_loading_a_model_whose_sizes_are_damaged_is_a_clear_error(tmp_path, sizes, message):
    net = fastnet.Network.init((5, 3, 2))
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        parts = dict(z)
    parts["sizes"] = sizes
    np.savez(tmp_path / "m.npz", **parts)
    with pytest.raises(ValueError, match=message):
        fastnet.Network.load(tmp_path / "m.npz")


def test_an_image_given_where_data_is_expected_is_named(tmp_path):
    from fastnet.data import load_inputs

    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"digit.png: a PNG image, not an MNIST IDX or CSV file$"):
        load_inputs(tmp_path / "digit.png")


# ------------------------------------------------------------------ predictions and pictures

@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    done = run("fastnet.train", "--iterations", "60", "--data-dir", str(mnist_dir), "--no-progress",
               "--save", str(folder / "model.npz"), "--plot", str(folder / "curves.png"))
    assert done.returncode == 0, done.stderr
    return folder


def test_training_draws_curves_png(trained):
    assert png_size(trained / "curves.png") == (1000, 400)


def test_predict_on_labelled_csv_reports_accuracy_and_confusion(trained, mnist, tmp_path):
    images, labels = mnist.test_images[:300], mnist.test_labels[:300]
    (tmp_path / "mnist_test.csv").write_text(csv_text(images, labels))
    done = run("fastnet.predict", "--model", str(trained / "model.npz"), str(tmp_path / "mnist_test.csv"),
               "--show-mistakes", str(tmp_path / "mistakes.png"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "index,prediction" and len(lines) == 301
    predicted = np.array([int(l.split(",")[1]) for l in lines[1:]])
    net = fastnet.Network.load(trained / "model.npz")
    np.testing.assert_array_equal(predicted, fastnet.get_backend(REFERENCE).predict(net, images))
    accuracy = np.mean(predicted == labels)
    assert f"accuracy {accuracy:.4f} on 300 labelled images" in done.stderr
    matrix = confusion_matrix(labels, predicted, 10)
    assert matrix.sum() == 300 and np.trace(matrix) == int(round(accuracy * 300))
    assert "true \\ predicted" in done.stderr
    width, height = png_size(tmp_path / "mistakes.png")
    assert width == 960 and height > 100


def test_predict_on_unlabelled_csv_and_idx(trained, mnist, tmp_path):
    images = mnist.test_images[:40]
    (tmp_path / "test.csv").write_text(csv_text(images, None, header=True))
    done = run("fastnet.predict", "--model", str(trained / "model.npz"), str(tmp_path / "test.csv"),
               "--out", str(tmp_path / "p.csv"))
    assert done.returncode == 0, done.stderr
    assert "accuracy" not in done.stderr
    assert len((tmp_path / "p.csv").read_text().strip().splitlines()) == 41
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images.reshape(-1, 28, 28)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(mnist.test_labels[:40]))
    done = run("fastnet.predict", "--model", str(trained / "model.npz"), str(tmp_path / "t10k-images-idx3-ubyte"))
    assert done.returncode == 0 and "labelled images" in done.stderr


def test_predict_with_a_model_of_the_wrong_shape_exits_2(tmp_path):
    fastnet.Network.init((100, 5, 10)).save(tmp_path / "small.npz")
    (tmp_path / "x.csv").write_text(csv_text(np.zeros((2, 784), np.uint8), np.zeros(2, np.uint8)))
    done = run("fastnet.predict", "--model", str(tmp_path / "small.npz"), str(tmp_path / "x.csv"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"fastnet: error: {tmp_path / 'x.csv'}: images have 784 pixels but the model takes 100"


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    from fastnet.plots import require_matplotlib

    with pytest.raises(ImportError, match=r'pip install "fastnet\[plot\]"'):
        require_matplotlib()
    from fastnet.train import main

    assert main(["--plot", "curves.png", "--data-dir", "/nonexistent", "--no-progress"]) == 1  # before any data


def test_plot_without_matplotlib_fails_before_training(tmp_path):
    """A real process where matplotlib cannot be imported: one line, status 1, in well under the
    time a training run would take (the data directory is empty, so a late check would fetch)."""
    blocker = tmp_path / "matplotlib"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "fastnet.train", "--plot", str(tmp_path / "c.png"),
                           "--data-dir", str(tmp_path / "empty"), "--no-progress"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == 'fastnet: error: pictures need matplotlib: pip install "fastnet[plot]" (or pip install matplotlib)'
    assert not (tmp_path / "empty").exists()


# ------------------------------------------------------------------ mini-batches

_EPOCH_RESULTS = {}  # backend name -> (dev accuracy after one mini-batch epoch, after one full-batch step)


def _one_epoch_and_one_step(name, split):
    if name not in _EPOCH_RESULTS:
        X, y = split.X_train, split.y_train
        backend = fastnet.get_backend(name)
        mini = fastnet.Network.init((784, 64, 10), seed=0)
        fit(mini, X, y, iterations=1, lr=0.1, batch_size=64, backend=name, progress=False)
        full = fastnet.Network.init((784, 64, 10), seed=0)
        fit(full, X, y, iterations=1, lr=0.1, backend=name, progress=False)
        _EPOCH_RESULTS[name] = (backend.evaluate(mini, split.X_dev, split.y_dev).accuracy,
                                backend.evaluate(full, split.X_dev, split.y_dev).accuracy)
    return _EPOCH_RESULTS[name]


def test_minibatch_sgd_beats_full_batch_after_one_epoch(backend_name, seed_split):
    """At hidden 64, one epoch of batch-64 SGD (922 updates) against one full-batch step."""
    mini, full = _one_epoch_and_one_step(backend_name, seed_split)
    assert mini >= 0.85 and mini > full + 0.3, (mini, full)
    # the backend trained as the reference did: same shuffles, same mathematics
    reference_mini, _ = _one_epoch_and_one_step(REFERENCE, seed_split)
    assert abs(mini - reference_mini) <= 0.01, (mini, reference_mini)


def test_minibatch_reshuffles_every_epoch(monkeypatch):
    backend = fastnet.get_backend(REFERENCE)
    orders = []

    def spy(net, data, **kwargs):
        orders.append(kwargs["order"].copy())
        return type(backend).epoch(backend, net, data, **kwargs)

    monkeypatch.setattr(backend, "epoch", spy)
    X, y = random_problem(20, (4, 3, 2), seed=0)
    history = fit(fastnet.Network.init((4, 3, 2)), X, y, iterations=2, batch_size=8, backend=backend,
                  progress=False)
    assert history.steps == 6 and history.iterations == 2  # batches of 8, 8, 4 in each epoch
    first, second = orders
    assert sorted(first) == sorted(second) == list(range(20)) and first.tolist() != second.tolist()


# ------------------------------------------------------------------ the benchmark report

def test_interleaved_timing_takes_the_cases_in_turns(monkeypatch):
    from fastnet import benchmarks

    monkeypatch.setattr(benchmarks, "SETTLE_SECONDS", 0)
    monkeypatch.setattr(benchmarks, "WARM_SECONDS", 0)
    calls = []
    times = benchmarks.time_interleaved({key: lambda key=key: calls.append(key) for key in "abc"}, rounds=4)
    # each round starts one further along; each timed call follows an untimed one of the same case
    assert "".join(calls) == "aabbcc" "bbccaa" "ccaabb" "aabbcc"
    assert {key: len(t) for key, t in times.items()} == {"a": 4, "b": 4, "c": 4}


def test_each_timed_call_follows_untimed_ones_for_the_warm_up_time(monkeypatch):
    import time

    from fastnet import benchmarks

    monkeypatch.setattr(benchmarks, "SETTLE_SECONDS", 0)
    monkeypatch.setattr(benchmarks, "WARM_SECONDS", 0.03)
    starts = []

    def call():
        starts.append(time.perf_counter())
        time.sleep(0.004)

    times = benchmarks.time_interleaved({"a": call}, rounds=1)
    assert len(times["a"]) == 1 and len(starts) >= 3  # untimed calls, then the timed one
    assert starts[-1] - starts[0] >= 0.03 > starts[-2] - starts[0]  # timed once the warm-up time had passed


def test_a_larger_benchmark_dataset_holds_shifted_images_not_copies():
    from fastnet.benchmarks import samples

    rng = np.random.default_rng(0)
    X = np.zeros((50, 784), np.uint8)
    X.reshape(50, 28, 28)[:, 4:24, 4:24] = rng.integers(0, 256, (50, 20, 20))
    y = rng.integers(0, 10, 50)
    big, labels = samples(X, y, 170)
    assert big.shape == (170, 784) and len(labels) == 170
    np.testing.assert_array_equal(big[:50], X)
    np.testing.assert_array_equal(labels, np.tile(y, 4)[:170])
    np.testing.assert_array_equal(big[50:100].reshape(50, 28, 28)[:, :, 1:], X.reshape(50, 28, 28)[:, :, :-1])
    assert len(np.unique(big, axis=0)) == 170, "a sample given twice"
    np.testing.assert_array_equal(np.count_nonzero(big, axis=1), np.resize(np.count_nonzero(X, axis=1), 170))


def test_the_floor_counts_the_fma_units_datapath_not_only_the_vectors(monkeypatch):
    from fastnet import benchmarks
    from fastnet.backends.numba.vector import VECTOR_BITS

    assert benchmarks.fma_bits("skylake-avx512") == VECTOR_BITS  # units as wide as the vectors
    assert benchmarks.fma_bits("znver4") == 256  # AVX-512 in two 256-bit halves
    assert benchmarks.fma_bits("znver3") == 256  # Zen 4 as LLVM before 16 names it
    assert benchmarks.fma_bits("znver1") == 128
    X = np.zeros((4, 784), np.uint8)
    X[:, :10] = 1  # 40 non-zero pixels
    monkeypatch.setattr(benchmarks, "clock_hz", lambda: 1e9)
    monkeypatch.setattr(benchmarks.os, "cpu_count", lambda: 2)
    floors = {}
    for cpu in ("skylake-avx512", "znver4"):
        monkeypatch.setattr(benchmarks.llvm, "get_host_cpu_name", lambda cpu=cpu: cpu)
        floors[cpu] = benchmarks.floor_seconds(benchmarks.Case("numba", "float32"), X)
    lanes = VECTOR_BITS // 32
    assert floors["skylake-avx512"] == pytest.approx(2 * 40 * 10 / (2 * 2 * lanes * 1e9))
    assert floors["znver4"] == pytest.approx(2 * 40 * 10 / (2 * 2 * min(lanes, 8) * 1e9))


def test_benchmark_report_prints_a_table(mnist_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "fastnet.bench", "--data-dir", str(mnist_dir), "--quick",
                           "--rounds", "1", "--no-startup", "--markdown", "--chart", str(tmp_path / "b.png")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    from fastnet.benchmarks import EPOCH_CASES
    from fastnet.peers import available, missing_reason

    rows = [l for l in done.stdout.splitlines() if l.startswith("| 784-10-10")]
    assert len(rows) == 6 + len(available()) and all(l.count("|") == 7 for l in rows)
    from fastnet.benchmarks import clock_hz

    if clock_hz() is not None:  # the floor's share of each step: a percentage no step can pass
        shares = [float(l.split("|")[-2].strip().rstrip("%")) for l in rows]
        assert all(0 < share <= 100 for share in shares), rows
        assert "hardware floor divided by its time" in done.stdout
    epoch_rows = [l for l in done.stdout.splitlines() if l.startswith("| epoch ")]
    assert len(epoch_rows) == sum(not missing_reason(c.backend) for c in EPOCH_CASES)
    assert all(l.count("|") == 6 for l in epoch_rows)
    for peer in set(("torch", "jax")) - set(available()):
        assert f"skipping {peer}: {peer} is not installed" in done.stderr
    assert png_size(tmp_path / "b.png")[0] == 1000
