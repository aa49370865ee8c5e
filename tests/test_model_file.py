"""Model files stay readable: a version-1 file kept from fastnet 0.1.0 still loads, and a file from
a newer fastnet is refused with a clear message, never misread."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

import fastnet
from fastnet.model_file import FORMAT, VERSION
from fastnet.network import load_network
from tests.commands import RUNNERS

VERSION_1_FILE = Path(__file__).parent / "data" / "model-v1.npz"


def test_a_version_1_model_file_still_loads_to_the_same_network():
    assert hashlib.sha256(VERSION_1_FILE.read_bytes()).hexdigest() == \
        "eca275f7c83eebdf4d4d22d36397c6ef351ac1aa9c4c1e64e5d0b52baf29a2a5", "tests/data/model-v1.npz was changed"
    with np.load(VERSION_1_FILE) as z:
        assert str(z["format"]) == FORMAT and int(z["version"]) == 1
    net, metadata = load_network(VERSION_1_FILE)
    expected = fastnet.Network.init((784, 10, 10), seed=0, dtype="float32")
    assert net.sizes == (784, 10, 10) and net.dtype == np.float32
    np.testing.assert_array_equal(net.flat, expected.flat)
    assert metadata["made_by"] == "fastnet 0.1.0, model format version 1"
    X = np.random.default_rng(0).integers(0, 256, (5, 784)).astype(np.uint8)
    np.testing.assert_array_equal(fastnet.get_backend("numpy").forward(net, X),
                                  fastnet.get_backend("numpy").forward(expected, X))


def test_this_fastnet_writes_the_version_it_reads(tmp_path):
    fastnet.Network.init((5, 3, 2)).save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        assert int(z["version"]) == VERSION
    assert load_network(tmp_path / "m.npz")[0].sizes == (5, 3, 2)


def future_model(path, version):
    """A model file as a later fastnet might write it: a newer version number, and a new entry."""
    fastnet.Network.init((784, 10, 10)).save(path)
    with np.load(path) as z:
        parts = dict(z)
    parts["version"] = np.array(version)
    parts["quantisation"] = np.array("int8 per channel")  # something this fastnet does not know
    np.savez(path, **parts)
    return path


def test_a_newer_model_format_is_a_clear_error(tmp_path):
    path = future_model(tmp_path / "future.npz", VERSION + 1)
    with pytest.raises(ValueError) as caught:
        load_network(path)
    assert str(caught.value) == (f"{path}: model format version {VERSION + 1} is newer than this fastnet reads "
                                 f"(up to {VERSION}): written by a later fastnet; upgrade fastnet to use it")


def test_predicting_with_a_newer_model_is_one_line_and_exit_2(tmp_path):
    from fastnet.data.formats import csv_text

    path = future_model(tmp_path / "future.npz", VERSION + 1)
    (tmp_path / "x.csv").write_text(csv_text(np.zeros((2, 784), np.uint8), None))
    done = RUNNERS["piped"]("fastnet.predict", "--model", path, tmp_path / "x.csv")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"fastnet: error: {path}: model format version {VERSION + 1} is newer "
                                        f"than this fastnet reads (up to {VERSION}): written by a later fastnet; "
                                        f"upgrade fastnet to use it"]
