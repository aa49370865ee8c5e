"""Train on MNIST from the command line: ``python -m fastnet.train --backend numba``.

The defaults are the seed notebook's experiment: 784-10-10, uniform init in [-0.5, 0.5), full-batch
gradient descent at lr 0.1 for 500 iterations, the first 1,000 shuffled training images held out as
the dev set. Bad options exit with status 2; unusable data prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time

import numpy as np

from fastnet.backends import DEFAULT, available_backends, get_backend
from fastnet.cli import prog_name
from fastnet.network import DTYPES, INITS

N_PIXELS, N_CLASSES = 784, 10


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def build_parser():
    p = argparse.ArgumentParser(
        prog=prog_name("fastnet.train"),
        description="Train the seed notebook's MNIST network with a numpy or numba backend.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--backend", choices=available_backends(), default=DEFAULT)
    arch = p.add_mutually_exclusive_group()
    arch.add_argument("--hidden", type=positive_int, nargs="+", default=[10], metavar="H",
                      help="hidden layer width(s); 784 inputs and 10 classes are implied")
    arch.add_argument("--sizes", type=positive_int, nargs="+", metavar="N",
                      help=f"all layer sizes, e.g. {N_PIXELS} 128 {N_CLASSES}")
    p.add_argument("--iterations", type=positive_int, default=500,
                   help="gradient steps (full batch) or epochs (with --batch-size)")
    p.add_argument("--epochs", type=positive_int, help="same as --iterations, for mini-batch runs")
    p.add_argument("--batch-size", type=positive_int, help="mini-batch SGD with this batch size")
    p.add_argument("--lr", type=positive_float, default=0.1, help="learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed for the weights and the dev split")
    p.add_argument("--init", choices=INITS, default="uniform")
    p.add_argument("--dtype", choices=DTYPES, default="float64")
    p.add_argument("--threads", type=positive_int, help="threads for the numba backend (default: all cores)")
    p.add_argument("--data-dir", help="folder with MNIST (default: $FASTNET_DATA_DIR or ./data)")
    p.add_argument("--save", metavar="MODEL.npz", help="write the trained model here")
    p.add_argument("--plot", metavar="CURVES.png", help="draw loss and accuracy curves (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = tuple(args.sizes) if args.sizes else (N_PIXELS, *args.hidden, N_CLASSES)
    if sizes[0] != N_PIXELS or sizes[-1] != N_CLASSES:
        parser.error(f"--sizes must start with {N_PIXELS} and end with {N_CLASSES} for MNIST, got {sizes}")
    if args.epochs and args.batch_size is None:
        parser.error("--epochs goes with --batch-size (full-batch training counts --iterations)")
    iterations = args.epochs or args.iterations
    try:
        check_outputs(args)  # fail now, not after training
        return run(args, sizes, iterations)
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (loading, fetching): nothing half-written
        print("fastnet: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, ImportError, OSError) as exc:
        print(f"fastnet: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


def check_outputs(args):
    """Raise ValueError now, before any data is loaded, if --save or --plot could not be written."""
    from fastnet.files import check_writable

    try:
        if args.save:
            check_writable(args.save, "--save")
        if args.plot:
            from fastnet.plots import check_figure_path

            check_figure_path(args.plot, "--plot")
    except OSError as exc:  # a bad option, so status 2
        raise ValueError(str(exc)) from None


def _count(n, noun):
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def say(message):
    print(f"fastnet: {message}", file=sys.stderr)


def run(args, sizes, iterations):
    import fastnet
    from fastnet.data import load_mnist, split_dev
    from fastnet.training import Diverged, fit, trains_in_mini_batches

    progress = not args.no_progress
    mnist = load_mnist(args.data_dir, progress=progress, say=say)
    split = split_dev(mnist.train_images, mnist.train_labels, seed=args.seed)
    classes = np.unique(split.y_train)
    if len(classes) < N_CLASSES:
        say(f"warning: the training set holds only {len(classes)} of the {N_CLASSES} classes "
            f"({', '.join(map(str, classes))}); its accuracies say little about the network")
    backend = get_backend(args.backend)
    if args.threads:
        backend.set_threads(args.threads)
    net = fastnet.Network.init(sizes, seed=args.seed, init=args.init, dtype=args.dtype)
    mode = (f"mini-batch {args.batch_size}, {_count(iterations, 'epoch')}" if args.batch_size
            else _count(iterations, "iteration"))
    print(f"fastnet: {'-'.join(map(str, sizes))} {args.dtype} on {len(split.X_train):,} images, "
          f"{backend.name} backend, {mode}, lr {args.lr}", file=sys.stderr)

    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    diverged = None
    try:
        history = fit(net, split.X_train, split.y_train, iterations=iterations, lr=args.lr,
                      backend=backend, batch_size=args.batch_size, seed=args.seed,
                      dev=(split.X_dev, split.y_dev), eval_every=1 if args.plot else 0,
                      progress=progress, should_stop=lambda: bool(interrupted))
    except Diverged as exc:
        diverged, history = exc, None
    finally:
        signal.signal(signal.SIGINT, previous)

    # evaluated as it trained: in batches after mini-batch training (numba: no other kernel to compile)
    batch = args.batch_size if trains_in_mini_batches(args.batch_size, len(split.X_train)) else None
    dev_acc = backend.evaluate(net, split.X_dev, split.y_dev, batch_size=batch).accuracy
    test_acc = None if mnist.test_images is None else \
        backend.evaluate(net, mnist.test_images, mnist.test_labels, batch_size=batch).accuracy
    if diverged:
        print(f"fastnet: {diverged}", file=sys.stderr)
    elif interrupted:
        print(f"fastnet: interrupted after {history.steps} steps; keeping that state", file=sys.stderr)
    report = [f"dev accuracy {dev_acc:.4f} ({len(split.X_dev):,} images)"]
    report.append("no test set in the data directory" if test_acc is None
                  else f"test accuracy {test_acc:.4f} ({len(mnist.test_images):,} images)")
    print(" · ".join(report))
    if history is not None and history.steps:
        print(timing_line(history))
    if args.save:
        net.save(args.save, backend=backend.name, iterations=iterations, lr=args.lr, seed=args.seed,
                 init=args.init, batch_size=args.batch_size, dev_accuracy=dev_acc,
                 test_accuracy=test_acc, steps=0 if history is None else history.steps,
                 saved_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        print(f"saved the model to {args.save}", file=sys.stderr)
    if args.plot and history is not None:
        from fastnet.plots import plot_curves

        plot_curves(history, args.plot)
        print(f"drew the training curves in {args.plot}", file=sys.stderr)
    return 1 if diverged else (130 if interrupted else 0)


def timing_line(history):
    """How long the iterations (steps, or epochs of mini-batches) took; the first one apart, as
    it may include JIT compilation."""
    unit = history.unit
    first = f"{history.first_seconds:.2f} s, including any JIT compilation"
    if history.iterations == 1:
        return f"time: 1 {unit}, {first}"
    return (f"time: {history.ms_per_iteration:.2f} ms/{unit} over {history.iterations} {unit}s "
            f"(first {unit} {first})")


if __name__ == "__main__":
    sys.exit(main())
