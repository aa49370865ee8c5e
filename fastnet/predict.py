"""Predict digits with a saved model: ``python -m fastnet.predict --model model.npz INPUT...``.

INPUT is one CSV file (label column optional, header optional; the seed and Kaggle layouts) or one
IDX images file, or any number of image files (PNG, JPEG, anything Pillow reads) and folders of
them. For a CSV or IDX file, predictions go to stdout or --out as CSV (index,prediction); when labels
are known, accuracy and a 10x10 confusion matrix go to stderr, and --show-mistakes draws the
misclassified digits. Images are prepared the way MNIST was made (see fastnet.images); their CSV
has one row per image: file, prediction and the probability of each class, and --show draws each
image beside what the network saw. Unusable input prints one line and exits with status 2; a bad
image among several is reported on its own line, the others are still predicted and written, and
the status is 2 at the end. A missing optional extra (Pillow, matplotlib) is status 1.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from fastnet.backends import DEFAULT, available_backends, get_backend
from fastnet.cli import prog_name, write_output


def build_parser():
    p = argparse.ArgumentParser(prog=prog_name("fastnet.predict"), description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", metavar="INPUT", nargs="+",
                   help="image files or folders of images, or one CSV file or IDX images file")
    p.add_argument("--model", required=True, help="a model saved by `python -m fastnet.train --save`")
    p.add_argument("--labels", help="IDX labels file for an IDX INPUT (default: the matching file beside it)")
    p.add_argument("--out", help="write predictions here instead of stdout")
    p.add_argument("--backend", choices=available_backends(), default=DEFAULT)
    p.add_argument("--show-mistakes", metavar="PNG",
                   help="draw misclassified digits of a labelled CSV or IDX file (needs matplotlib)")
    p.add_argument("--show", metavar="PNG",
                   help="draw each image input beside what the network saw and its prediction (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while reading images")
    return p


def confusion_matrix(labels, predicted, n_classes):
    """counts[true, predicted]."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts


def format_confusion(counts):
    k = len(counts)
    width = max(5, len(str(counts.max())) + 1)
    lines = ["true \\ predicted".ljust(17) + "".join(str(j).rjust(width) for j in range(k))]
    for i in range(k):
        lines.append(str(i).rjust(16) + " " + "".join(str(c).rjust(width) for c in counts[i]))
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("fastnet: interrupted", file=sys.stderr)
        return 130
    except ImportError as exc:  # an optional extra is missing: the run cannot be done here
        print(f"fastnet: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"fastnet: error: {exc}", file=sys.stderr)
        return 2


def is_data_file(path):
    """Whether ``path`` is read as MNIST data (a CSV, or an IDX file: gzip or IDX magic) rather than
    as an image. Folders and everything else are images."""
    from fastnet.data import is_csv

    path = Path(path)
    if is_csv(path):
        return True
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head[:2] == b"\x1f\x8b" or (len(head) == 4 and head[:3] == b"\x00\x00\x08")


def run(args):
    data_files = [p for p in args.inputs if is_data_file(p)]
    if data_files and len(args.inputs) > 1:
        raise ValueError(f"{data_files[0]} is a CSV or IDX file: give one such file alone, or any number "
                         f"of images and folders of images")
    for option, picture in (("--show-mistakes", args.show_mistakes), ("--show", args.show)):
        if picture:  # fail now, not after predicting
            from fastnet.plots import check_figure_path

            check_figure_path(picture, option)
    if data_files:
        if args.show:
            raise ValueError("--show draws image inputs; for a CSV or IDX file use --show-mistakes")
        return predict_data_file(args, data_files[0])
    if args.show_mistakes:
        raise ValueError("--show-mistakes needs labels, and images have none: use --show")
    if args.labels:
        raise ValueError("--labels goes with an IDX images file, not with images")
    from fastnet.predict_images import predict_images

    return predict_images(args)


def predict_data_file(args, path):
    """Predictions for one CSV or IDX file (index,prediction), with accuracy when it has labels."""
    from fastnet.data import load_inputs
    from fastnet.network import load_network

    net, meta = load_network(args.model)
    images, labels = load_inputs(path, args.labels)
    if images.shape[1] != net.sizes[0]:
        raise ValueError(f"{path}: images have {images.shape[1]} pixels but the model takes {net.sizes[0]}")
    if labels is not None and labels.size and labels.max() >= net.sizes[-1]:
        raise ValueError(f"{path}: label {labels.max()} is outside the model's 0-{net.sizes[-1] - 1}")
    predicted = get_backend(args.backend).predict(net, images)

    buf = io.StringIO()
    buf.write("index,prediction\n")
    np.savetxt(buf, np.column_stack([np.arange(len(predicted)), predicted]), fmt="%d", delimiter=",")
    write_output(args.out, buf.getvalue(), len(predicted))

    if labels is not None:
        accuracy = float(np.mean(predicted == labels))
        print(f"accuracy {accuracy:.4f} on {len(labels):,} labelled images", file=sys.stderr)
        print(format_confusion(confusion_matrix(labels, predicted, net.sizes[-1])), file=sys.stderr)
    if args.show_mistakes:
        if labels is None:
            raise ValueError("--show-mistakes needs labels: INPUT has none")
        from fastnet.plots import plot_mistakes

        drawn = plot_mistakes(images, labels, predicted, args.show_mistakes)
        print(f"drew {drawn} misclassified digits in {args.show_mistakes}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
