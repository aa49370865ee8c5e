"""ONNX out: the exported graph, run in onnxruntime, gives fastnet's probabilities; a missing onnx
names the extra; bad models and outputs are one line."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnet
from fastnet.tolerances import TOLERANCES
from fastnet.export import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, export_onnx, main
from tests.helpers import random_problem

onnx = pytest.importorskip("onnx", reason='needs onnx: pip install -e ".[onnx]"')
ort = pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install -e ".[onnx]"')


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: X})[0]


@pytest.mark.parametrize("sizes", [(784, 10, 10), (784, 128, 10), (784, 64, 32, 10), (784, 10), (20, 1, 7, 3)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnxruntime_gives_fastnets_probabilities(tmp_path, sizes, dtype):
    X, y = random_problem(257, sizes, seed=1)  # uint8 pixels, mostly zero, like MNIST
    net = fastnet.Network.init(sizes, seed=2, dtype=dtype)
    fastnet.fit(net, X, y, iterations=3, lr=0.1, backend="numpy", progress=False)  # not just the init
    export_onnx(net, tmp_path / "model.onnx")
    pixels = (X / 255.0).astype(np.float32)  # what the ONNX model takes: floats in [0, 1]
    got = run_onnx(tmp_path / "model.onnx", pixels)
    assert got.dtype == np.float32 and got.shape == (len(X), sizes[-1])
    # the same network in float32 (a float64 one is stored rounded), on the same uint8 pixels
    expected = fastnet.get_backend("numpy").forward(net.astype("float32"), X)
    np.testing.assert_allclose(got, expected, **TOLERANCES["onnx"], err_msg="probabilities")
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_the_exported_file_declares_what_it_takes_and_gives(tmp_path):
    export_onnx(fastnet.Network.init((784, 16, 10)), tmp_path / "model.onnx")
    model = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(model)
    assert model.ir_version == IR_VERSION and [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]

    def shape(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, shape(inp), inp.type.tensor_type.elem_type) == (INPUT_NAME, ["N", 784], onnx.TensorProto.FLOAT)
    assert (out.name, shape(out)) == (OUTPUT_NAME, ["N", 10])
    assert {p.key: p.value for p in model.metadata_props}["sizes"] == "784-16-10"
    X = np.zeros((1, 784), np.float32)
    assert run_onnx(tmp_path / "model.onnx", X).shape == (1, 10)  # a batch of one, and of many:
    assert run_onnx(tmp_path / "model.onnx", np.zeros((3000, 784), np.float32)).shape == (3000, 10)


def test_export_cli_writes_atomically_and_refuses_bad_input(tmp_path, capsys):
    fastnet.Network.init(seed=0, dtype="float32").save(tmp_path / "model.npz")
    assert main([str(tmp_path / "model.npz"), str(tmp_path / "out" / "model.onnx")]) == 0
    assert "(float64 parameters" not in capsys.readouterr().err  # float32: nothing rounded
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx"]  # no temporary left

    (tmp_path / "a-file").write_text("")
    for args, message in [
        ([tmp_path / "missing.npz", tmp_path / "m.onnx"], f"{tmp_path / 'missing.npz'}: no such model file"),
        ([tmp_path / "a-file", tmp_path / "m.onnx"], f"{tmp_path / 'a-file'}: not a fastnet model file (not an .npz archive)"),
        ([tmp_path / "model.npz", tmp_path / "a-file" / "m.onnx"],
         f"OUT {tmp_path / 'a-file' / 'm.onnx'}: {tmp_path / 'a-file'} is not a folder"),
        ([tmp_path / "model.npz", tmp_path], f"OUT {tmp_path}: is a folder, not a file"),
    ]:
        assert main([str(a) for a in args]) == 2
        assert capsys.readouterr().err.splitlines() == [f"fastnet: error: {message}"]
    assert not (tmp_path / "m.onnx").exists()


def test_missing_onnx_gives_install_hint(monkeypatch, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    fastnet.Network.init().save(tmp_path / "model.npz")
    assert main([str(tmp_path / "model.npz"), str(tmp_path / "model.onnx")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        'fastnet: error: ONNX export needs onnx: pip install "fastnet[onnx]" (or pip install onnx onnxruntime)']
    assert not (tmp_path / "model.onnx").exists()


def test_export_without_onnx_installed_fails_in_one_line_before_reading_the_model(tmp_path):
    """A real process where onnx cannot be imported (a blocking package first on the path)."""
    blocker = tmp_path / "blocked" / "onnx"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named onnx')\n")
    done = subprocess.run([sys.executable, "-m", "fastnet.export", str(tmp_path / "not-even-there.npz"),
                           str(tmp_path / "m.onnx")], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path / "blocked")))
    assert done.returncode == 1
    assert done.stderr.strip() == ('fastnet: error: ONNX export needs onnx: pip install "fastnet[onnx]" '
                                   '(or pip install onnx onnxruntime)')
