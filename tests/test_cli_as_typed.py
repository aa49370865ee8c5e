"""The command-line tools exactly as a user types them: default flags (progress bars on), a real
process, output piped and on a terminal, on the seed notebook's and Kaggle's own CSV files."""

import shutil

import numpy as np
import pytest

import fastnet
from fastnet.data import load_mnist
from fastnet.data.formats import csv_text
from tests.commands import RUNNERS
from tests.helpers import REFERENCE

MODES = list(RUNNERS)
SEED_HEADER = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))


def seed_csv(path, images, labels):
    """A CSV laid out like the seed notebook's mnist_train.csv: its header, label first."""
    rows = np.column_stack([labels, images])
    np.savetxt(path, rows, fmt="%d", delimiter=",", header=SEED_HEADER, comments="")


@pytest.fixture(scope="module")
def csv_source(mnist, tmp_path_factory):
    """The seed's two CSV files, 3,000 training and 400 test images of the real MNIST."""
    root = tmp_path_factory.mktemp("seed-csv")
    seed_csv(root / "mnist_train.csv", mnist.train_images[:3000], mnist.train_labels[:3000])
    seed_csv(root / "mnist_test.csv", mnist.test_images[:400], mnist.test_labels[:400])
    return root


@pytest.fixture
def seed_dir(csv_source, tmp_path):
    """A fresh copy (no parse cache yet: every run parses the CSV, with its progress bar)."""
    for f in csv_source.glob("*.csv"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def no_traceback(done):
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("mode", MODES)
def test_seed_csv_workflow_trains_and_predicts_with_default_flags(seed_dir, tmp_path, mode, backend_name):
    backend = backend_name
    run = RUNNERS[mode]
    model, out = tmp_path / "model.npz", tmp_path / "predictions.csv"
    done = run("fastnet.train", "--backend", backend, "--data-dir", seed_dir, "--iterations", 10,
               "--save", model)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert "dev accuracy" in done.stdout and "test accuracy 0." in done.stdout
    if mode == "terminal":  # the bars drew: parsing the CSV, then training
        assert "parsing mnist_train.csv" in done.stdout and f"training ({backend})" in done.stdout
    assert fastnet.Network.load(model).sizes == (784, 10, 10)

    done = run("fastnet.predict", "--model", model, seed_dir / "mnist_test.csv", "--out", out)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().strip().splitlines()) == 400 + 1  # a header, then one row per image
    assert "accuracy" in done.stderr


@pytest.mark.parametrize("mode", MODES)
def test_seed_csv_trains_in_mini_batches_with_default_flags(seed_dir, tmp_path, mode, backend_name):
    """--batch-size 64 --epochs 2 (3,000 images): one bar step per epoch; the dev and test sets are
    evaluated in batches (the numba backend: with the epoch kernel); the printed test accuracy is
    the saved model's on the test CSV."""
    model = tmp_path / "model.npz"
    done = RUNNERS[mode]("fastnet.train", "--backend", backend_name, "--data-dir", seed_dir, "--batch-size", 64,
                         "--epochs", 2, "--save", model)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert "mini-batch 64, 2 epochs" in done.stderr + done.stdout
    if mode == "terminal":
        assert f"training ({backend_name})" in done.stdout and "2/2" in done.stdout
    printed = float(done.stdout.split("test accuracy ")[1].split()[0])
    test = load_mnist(seed_dir, download=False, progress=False)
    net = fastnet.Network.load(model)
    assert printed == pytest.approx(fastnet.get_backend(backend_name).evaluate(
        net, test.test_images, test.test_labels).accuracy, abs=5e-5)  # printed to 4 decimals


@pytest.mark.parametrize("mode", MODES)
def test_kaggle_train_csv_trains_without_a_test_set(mnist, tmp_path, mode):
    images, labels = mnist.train_images[:2000], mnist.train_labels[:2000]
    (tmp_path / "train.csv").write_text(csv_text(images, labels))  # label,pixel0,...,pixel783
    done = RUNNERS[mode]("fastnet.train", "--data-dir", tmp_path, "--iterations", 5)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert "no test set in the data directory" in done.stdout


@pytest.mark.parametrize("mode", MODES)
def test_a_bad_csv_with_progress_bars_on_is_one_line_and_exit_2(tmp_path, mode):
    images, labels = np.zeros((50, 784), np.uint8), np.zeros(50, np.uint8)
    lines = csv_text(images, labels).splitlines()
    lines[30] = lines[30].replace("0,0,", "0,abc,", 1)
    (tmp_path / "mnist_train.csv").write_text("\n".join(lines) + "\n")
    done = RUNNERS[mode]("fastnet.train", "--data-dir", tmp_path)
    no_traceback(done)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"fastnet: error: {tmp_path / 'mnist_train.csv'}: line 31, column 2 (pixel 0): "
        f"'abc' is not a whole number")


@pytest.mark.parametrize("option", ["--save", "--plot"])
def test_an_output_that_cannot_be_written_is_refused_before_loading_anything(tmp_path, option):
    (tmp_path / "a-file").write_text("")
    done = RUNNERS["piped"]("fastnet.train", "--data-dir", tmp_path / "nothing-here", option,
                            tmp_path / "a-file" / "out.png")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"fastnet: error: {option} {tmp_path / 'a-file' / 'out.png'}: {tmp_path / 'a-file'} is not a folder"]


def test_one_iteration_reports_its_time_and_one_class_is_warned_about(mnist, tmp_path):
    keep = mnist.train_labels == 3  # 6,131 images, all of one class
    (tmp_path / "train.csv").write_text(csv_text(mnist.train_images[keep], mnist.train_labels[keep]))
    done = RUNNERS["piped"]("fastnet.train", "--data-dir", tmp_path, "--iterations", 1, "--backend", REFERENCE)
    assert done.returncode == 0, done.stderr
    assert "time: 1 step, " in done.stdout and "0.00 ms/step" not in done.stdout
    assert "warning: the training set holds only 1 of the 10 classes (3)" in done.stderr


def test_outputs_onto_a_device_or_through_a_link_are_written_never_replaced(seed_dir, tmp_path):
    import os

    before = os.stat("/dev/null")
    done = RUNNERS["piped"]("fastnet.train", "--data-dir", seed_dir, "--iterations", 2, "--save", "/dev/null")
    assert done.returncode == 0, done.stderr
    real_model = tmp_path / "models" / "real.npz"
    real_model.parent.mkdir()
    link = tmp_path / "model.npz"
    link.symlink_to(real_model)
    done = RUNNERS["piped"]("fastnet.train", "--data-dir", seed_dir, "--iterations", 2, "--save", link)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and fastnet.Network.load(real_model).sizes == (784, 10, 10)
    done = RUNNERS["piped"]("fastnet.predict", "--model", link, seed_dir / "mnist_test.csv", "--out", "/dev/null")
    assert done.returncode == 0, done.stderr
    after = os.stat("/dev/null")
    assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev, before.st_ino)


@pytest.mark.parametrize("command", [("fastnet.train", "--plot"), ("fastnet.bench", "--chart")])
def test_a_picture_that_cannot_be_drawn_is_refused_before_any_work(tmp_path, command):
    module, option = command
    (tmp_path / "a-file").write_text("")
    for path, message in ((tmp_path / "curves.xyz", "cannot draw .xyz files; use one of: "),
                          (tmp_path / "a-file" / "c.png", f"{tmp_path / 'a-file'} is not a folder")):
        done = RUNNERS["piped"](module, "--data-dir", tmp_path / "nothing-here", option, path)
        no_traceback(done)
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr


# ------------------------------------------------------------------ your own images in, ONNX out

@pytest.fixture
def digit_folder(mnist, tmp_path):
    """Six MNIST test digits drawn large, black on white, as PNG files, and a note beside them."""
    Image = pytest.importorskip("PIL.Image", reason='needs Pillow: pip install -e ".[image]"')
    folder = tmp_path / "my digits"  # a space, as folders people make often have
    folder.mkdir()
    for i in range(6):
        digit = Image.fromarray(255 - mnist.test_images[i].reshape(28, 28)).resize((140, 140), Image.BILINEAR)
        page = Image.new("L", (300, 200), 255)
        page.paste(digit, (20 * i, 10 * i))
        page.save(folder / f"digit-{i}.png")
    (folder / "notes.txt").write_text("written on a Tuesday\n")
    return folder


@pytest.mark.parametrize("mode", MODES)
def test_a_folder_of_images_is_predicted_with_default_flags(trained_model, digit_folder, tmp_path, mode):
    from tests.test_product import png_size

    done = RUNNERS[mode]("fastnet.predict", "--model", trained_model, digit_folder, "--show", tmp_path / "show.png")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(str(digit_folder))]
    assert [r.split(",")[0] for r in rows] == [str(digit_folder / f"digit-{i}.png") for i in range(6)]
    probabilities = np.array([[float(p) for p in r.split(",")[2:]] for r in rows])
    assert probabilities.shape == (6, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert [int(r.split(",")[1]) for r in rows] == probabilities.argmax(axis=1).tolist()
    assert f"left out 1 file in {digit_folder} that is not an image by name (notes.txt)" in done.stderr
    assert f"drew 6 images and what the network saw in {tmp_path / 'show.png'}" in done.stderr
    assert png_size(tmp_path / "show.png") == (1020, 440)  # 3 pairs of panels a row, 2 rows
    if mode == "piped":
        assert done.stdout.splitlines()[0] == "file,prediction," + ",".join(f"p{k}" for k in range(10))
        assert len(done.stdout.splitlines()) == 7
    else:  # the bar drew while the images were read
        assert "reading images" in done.stdout


@pytest.mark.parametrize("mode", MODES)
def test_bad_images_in_a_folder_are_reported_and_the_others_written(trained_model, digit_folder, tmp_path, mode):
    from PIL import Image

    (digit_folder / "broken.png").write_bytes(b"not really a png")
    Image.new("RGB", (80, 60), "white").save(digit_folder / "blank.jpg")
    out = tmp_path / "predictions.csv"
    done = RUNNERS[mode]("fastnet.predict", "--model", trained_model, digit_folder, "--out", out)
    no_traceback(done)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("fastnet: error:")]
    assert errors == [
        f"fastnet: error: {digit_folder / 'blank.jpg'}: no digit found: the picture is blank (no ink stands out "
        f"from the background)",
        f"fastnet: error: {digit_folder / 'broken.png'}: not an image (Pillow cannot read it)",
        "fastnet: error: 2 of 8 images could not be used (above); the other 6 predictions were written",
    ]
    assert len(out.read_text().splitlines()) == 1 + 6


def test_a_single_bad_image_is_one_line_and_exit_2(trained_model, tmp_path):
    (tmp_path / "scan.png").write_bytes(b"")
    done = RUNNERS["piped"]("fastnet.predict", "--model", trained_model, tmp_path / "scan.png")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"fastnet: error: {tmp_path / 'scan.png'}: empty file, not an image"]


def test_export_to_onnx_as_typed(trained_model, tmp_path):
    pytest.importorskip("onnx", reason='needs onnx: pip install -e ".[onnx]"')
    done = RUNNERS["piped"]("fastnet.export", trained_model, tmp_path / "model.onnx")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    size = (tmp_path / "model.onnx").stat().st_size
    assert done.stderr.splitlines() == [
        f"exported 784-64-10 to {tmp_path / 'model.onnx'}: ONNX opset 13, {size:,} bytes, input 'pixels' "
        f"(N, 784) float32 in [0, 1], output 'probabilities' (N, 10) (float64 parameters rounded to float32)"]
