"""Export a saved model as ONNX: ``python -m fastnet.export model.npz model.onnx``.

The ONNX model takes ``pixels``, (N, D) float32 in [0, 1] (MNIST's uint8 pixels / 255), and gives
``probabilities``, (N, K) float32: one Gemm per layer, Relu between them, Softmax at the end, for
any depth and width. Opset 13 and IR version 7 (ONNX 1.8, 2020), read by onnxruntime >= 1.6 and
most other runtimes. Parameters are stored as float32 (a float64 model is rounded). The file is
written atomically. onnx is an optional extra (``pip install "fastnet[onnx]"``, with onnxruntime
to run the result); without it the tool prints one line and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fastnet
from fastnet.cli import prog_name

OPSET = 13  # Softmax over one axis (13+ semantics) and Gemm with an optional bias: supported widely
IR_VERSION = 7  # the IR that goes with opset 13; newer onnx writes a newer IR that older runtimes refuse
INPUT_NAME, OUTPUT_NAME = "pixels", "probabilities"


def require_onnx():
    """The onnx package, or ImportError (one line) saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs onnx: pip install "fastnet[onnx]" (or pip install onnx onnxruntime)') from None
    return onnx


def onnx_model(net, name="fastnet"):
    """The network as an ``onnx.ModelProto``: pixels (N, D) float32 -> probabilities (N, K)."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, x = [], [], INPUT_NAME
    n_layers = len(net.params)
    for i, (W, b) in enumerate(net.params, start=1):
        w_name, b_name, out = f"W{i}", f"b{i}", f"z{i}"
        initializers += [numpy_helper.from_array(np.asarray(W, np.float32), w_name),
                         numpy_helper.from_array(np.asarray(b, np.float32), b_name)]
        # W is (out, in) as in the seed notebook, so Gemm multiplies by its transpose: x W^T + b
        nodes.append(helper.make_node("Gemm", [x, w_name, b_name], [out], name=f"dense{i}", transB=1))
        if i < n_layers:
            x = f"a{i}"
            nodes.append(helper.make_node("Relu", [out], [x], name=f"relu{i}"))
    nodes.append(helper.make_node("Softmax", [out], [OUTPUT_NAME], name="softmax", axis=1))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", net.sizes[0]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", net.sizes[-1]])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="fastnet", producer_version=fastnet.__version__,
                              doc_string=f"fastnet {'-'.join(map(str, net.sizes))}: {INPUT_NAME} (N, "
                                         f"{net.sizes[0]}) float32 in [0, 1] -> {OUTPUT_NAME} (N, {net.sizes[-1]})")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"sizes": "-".join(map(str, net.sizes)),
                                   "input_scaling": "uint8 pixels / 255 (MNIST: white digit on black, 28 x 28)"})
    onnx.checker.check_model(model)
    return model


def export_onnx(net, path):
    """Write ``net`` to ``path`` as ONNX (see :func:`onnx_model`), atomically; returns the bytes written."""
    from fastnet.files import atomic_write

    data = onnx_model(net).SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
    return len(data)


def build_parser():
    p = argparse.ArgumentParser(prog=prog_name("fastnet.export"), description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL", help="a model saved by `python -m fastnet.train --save`")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        require_onnx()  # a missing extra: say so before reading anything
        from fastnet.files import check_writable
        from fastnet.network import load_network

        check_writable(args.out, "OUT")
        net, _ = load_network(args.model)
        size = export_onnx(net, args.out)
    except KeyboardInterrupt:
        print("fastnet: interrupted", file=sys.stderr)
        return 130
    except ImportError as exc:
        print(f"fastnet: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"fastnet: error: {exc}", file=sys.stderr)
        return 2
    rounded = " (float64 parameters rounded to float32)" if net.dtype == np.float64 else ""
    print(f"exported {'-'.join(map(str, net.sizes))} to {args.out}: ONNX opset {OPSET}, {size:,} bytes, "
          f"input '{INPUT_NAME}' (N, {net.sizes[0]}) float32 in [0, 1], output '{OUTPUT_NAME}' "
          f"(N, {net.sizes[-1]}){rounded}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
