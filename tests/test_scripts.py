"""The installed console scripts, found beside the Python running the tests: each is its
``python -m`` form under another name (``pip install -e .`` makes them)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnet.data.formats import csv_text
from tests.commands import piped

BIN = Path(sys.executable).parent
TOOLS = ["train", "predict", "export", "bench"]
VERSION_1_MODEL = Path(__file__).parent / "data" / "model-v1.npz"


def script(tool, *args):
    path = BIN / f"fastnet-{tool}"
    assert path.is_file(), f"{path} is not installed: pip install -e . (pyproject's [project.scripts])"
    done = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    return done


@pytest.mark.parametrize("tool", TOOLS)
def test_each_script_has_the_help_of_its_module_under_its_own_name(tool):
    done = script(tool, "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith(f"usage: fastnet-{tool} ")
    module = piped(f"fastnet.{tool}", "--help")
    assert module.returncode == 0 and module.stdout.startswith(f"usage: python -m fastnet.{tool} ")

    def words(text):  # the same help, whatever the line wrapping a longer name causes
        return text.replace(f"python -m fastnet.{tool}", "PROG").replace(f"fastnet-{tool}", "PROG").split()

    assert words(done.stdout) == words(module.stdout)


def test_fastnet_predict_script_predicts_a_csv(tmp_path):
    X = np.random.default_rng(0).integers(0, 256, (4, 784)).astype(np.uint8)
    (tmp_path / "digits.csv").write_text(csv_text(X, None))
    done = script("predict", "--model", VERSION_1_MODEL, tmp_path / "digits.csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == piped("fastnet.predict", "--model", VERSION_1_MODEL, tmp_path / "digits.csv").stdout
    assert done.stdout.splitlines()[0] == "index,prediction" and len(done.stdout.splitlines()) == 5


def test_fastnet_predict_script_predicts_an_image(tmp_path):
    Image = pytest.importorskip("PIL.Image", reason='needs Pillow: pip install -e ".[image]"')
    page = np.full((100, 80), 255, np.uint8)
    page[20:80, 35:45] = 0  # a 1
    Image.fromarray(page).save(tmp_path / "one.png")
    done = script("predict", "--model", VERSION_1_MODEL, tmp_path / "one.png")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith(f"{tmp_path / 'one.png'},")


def test_fastnet_export_script_writes_an_onnx_file(tmp_path):
    onnx = pytest.importorskip("onnx", reason='needs onnx: pip install -e ".[onnx]"')
    done = script("export", VERSION_1_MODEL, tmp_path / "model.onnx")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"exported 784-10-10 to {tmp_path / 'model.onnx'}: ONNX opset 13")
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")))


def test_a_script_reports_errors_like_its_module(tmp_path):
    done = script("export", tmp_path / "missing.npz", tmp_path / "m.onnx")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"fastnet: error: {tmp_path / 'missing.npz'}: no such model file"]
