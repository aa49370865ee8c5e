"""CSV files as people make them: byte-order marks, blank lines, other separators, the label in
another column, gzip. Each either loads every row exactly or says in one line what is wrong."""

import gzip

import numpy as np
import pytest

from fastnet.data import DataError, load_inputs, load_mnist, load_split
from fastnet.data.formats import csv_text, read_csv


def table(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 784)).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write(path, text, bom=False, gz=False):
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("header", [True, False])
def test_a_byte_order_mark_loses_no_row(tmp_path, header):
    X, y = table()
    path = write(tmp_path / "mnist_train.csv", csv_text(X, y, header=header), bom=True)
    images, labels = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(images, X)
    np.testing.assert_array_equal(labels, y)
    assert read_csv(path, "f")[0].shape == (6, 784)


@pytest.mark.parametrize("header", [True, False])
def test_blank_lines_before_the_data_are_skipped(tmp_path, header):
    X, y = table()
    write(tmp_path / "mnist_train.csv", "\n\n" + csv_text(X, y, header=header))
    images, labels = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(images, X)
    np.testing.assert_array_equal(labels, y)


def test_line_numbers_count_the_blank_lines(tmp_path):
    X, y = table()
    lines = csv_text(X, y).splitlines()
    lines[3] = lines[3].replace(",", ",999,", 1).rsplit(",", 1)[0]  # pixel 0 of data row 3 is 999
    write(tmp_path / "mnist_train.csv", "\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 5, column 2 \(pixel 0\): pixel 999"):
        load_split(tmp_path, "train", progress=False)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolons_and_tabs_are_read(tmp_path, sep):
    X, y = table()
    write(tmp_path / "mnist_train.csv", csv_text(X, y).replace(",", sep))
    images, labels = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(images, X)
    np.testing.assert_array_equal(labels, y)


def test_other_separators_are_named_in_the_error(tmp_path):
    X, y = table()
    write(tmp_path / "mnist_train.csv", csv_text(X, y).replace(",", "|"))
    with pytest.raises(DataError, match="separated by commas, semicolons or tabs"):
        load_split(tmp_path, "train", progress=False)


@pytest.mark.parametrize("position", [0, 300, 784])
@pytest.mark.parametrize("name", ["label", "Label", "class"])
def test_the_header_names_the_label_column_wherever_it_stands(tmp_path, position, name):
    X, y = table()
    cols = [f"pixel{i}" for i in range(784)]
    cols.insert(position, name)
    rows = np.insert(X.astype(int), position, y, axis=1)
    text = ",".join(cols) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    write(tmp_path / "mnist_train.csv", text)
    images, labels = load_split(tmp_path, "train", progress=False)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(images, X)


def test_a_label_column_out_of_range_is_named_by_its_position(tmp_path):
    X, y = table()
    cols = [f"pixel{i}" for i in range(784)] + ["label"]
    rows = np.column_stack([X, y]).astype(int)
    rows[2, -1] = 12
    text = ",".join(cols) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    write(tmp_path / "mnist_train.csv", text)
    with pytest.raises(DataError, match=r"line 4, column 785 \(label\): label 12 is outside 0-9"):
        load_split(tmp_path, "train", progress=False)


def test_a_header_of_pixel_names_only_cannot_say_which_column_is_the_label(tmp_path):
    X, y = table()
    cols = [f"pixel{i}" for i in range(785)]
    text = ",".join(cols) + "\n" + "\n".join(",".join(map(str, r)) for r in np.column_stack([X, y])) + "\n"
    write(tmp_path / "mnist_train.csv", text)
    with pytest.raises(DataError, match="none is named 'label'"):
        load_split(tmp_path, "train", progress=False)


def test_gzipped_csv_in_the_data_dir_is_used_not_fetched(tmp_path):
    X, y = table()
    write(tmp_path / "mnist_train.csv.gz", csv_text(X, y), gz=True)
    mnist = load_mnist(tmp_path, download=False, progress=False)
    np.testing.assert_array_equal(mnist.train_images, X)


def test_gzipped_csv_is_an_input_too(tmp_path):
    X, y = table()
    images, labels = load_inputs(write(tmp_path / "digits.csv.gz", csv_text(X, y), gz=True))
    np.testing.assert_array_equal(images, X)
    np.testing.assert_array_equal(labels, y)


def test_which_source_is_used_is_said_when_there_are_two(tmp_path):
    from tests.test_data import write_idx

    X, y = table()
    write_idx(tmp_path, "train", X.reshape(-1, 28, 28), y, gz=True)
    write(tmp_path / "mnist_train.csv", csv_text(X[:2], y[:2]))
    said = []
    mnist = load_mnist(tmp_path, download=False, progress=False, say=said.append)
    assert len(mnist.train_images) == 6
    assert said == [f"training set from train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz "
                    f"(mnist_train.csv also in {tmp_path}/, not used)"]


def test_an_idx_file_with_no_images_is_named(tmp_path):
    from tests.test_data import write_idx

    write_idx(tmp_path, "train", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), gz=False)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: holds no images"):
        load_split(tmp_path, "train", progress=False)
