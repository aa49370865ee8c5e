"""Predict digits with a saved model: ``python -m fastnet.predict --model model.npz INPUT``.

INPUT is a CSV (label column optional, header optional; the seed and Kaggle layouts) or an IDX
images file. Predictions go to stdout or --out as CSV (index,prediction); when labels are known,
accuracy and a 10x10 confusion matrix go to stderr, and --show-mistakes draws the misclassified
digits. Unusable input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np

from fastnet.backends import DEFAULT, available_backends, get_backend


def build_parser():
    p = argparse.ArgumentParser(prog="python -m fastnet.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("input", metavar="INPUT", help="CSV file or IDX images file")
    p.add_argument("--model", required=True, help="a model saved by `python -m fastnet.train --save`")
    p.add_argument("--labels", help="IDX labels file for an IDX INPUT (default: the matching file beside it)")
    p.add_argument("--out", help="write predictions here instead of stdout")
    p.add_argument("--backend", choices=available_backends(), default=DEFAULT)
    p.add_argument("--show-mistakes", metavar="PNG", help="draw misclassified digits (needs labels and matplotlib)")
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
    except (ValueError, FileNotFoundError, ImportError, OSError) as exc:
        print(f"fastnet: error: {exc}", file=sys.stderr)
        return 2


def run(args):
    from fastnet.data import load_inputs
    from fastnet.network import load_network

    if args.show_mistakes:  # fail now, not after predicting
        from fastnet.plots import check_figure_path

        check_figure_path(args.show_mistakes, "--show-mistakes")
    net, meta = load_network(args.model)
    images, labels = load_inputs(args.input, args.labels)
    if images.shape[1] != net.sizes[0]:
        raise ValueError(f"{args.input}: images have {images.shape[1]} pixels but the model takes {net.sizes[0]}")
    if labels is not None and labels.size and labels.max() >= net.sizes[-1]:
        raise ValueError(f"{args.input}: label {labels.max()} is outside the model's 0-{net.sizes[-1] - 1}")
    predicted = get_backend(args.backend).predict(net, images)

    buf = io.StringIO()
    buf.write("index,prediction\n")
    np.savetxt(buf, np.column_stack([np.arange(len(predicted)), predicted]), fmt="%d", delimiter=",")
    if args.out:
        from fastnet.files import atomic_write

        with atomic_write(args.out) as f:
            f.write(buf.getvalue().encode())
        print(f"wrote {len(predicted):,} predictions to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(buf.getvalue())

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
