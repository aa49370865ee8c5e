"""Pictures: training curves, misclassified digits, prepared images, benchmark bars. matplotlib is an
optional extra (`pip install "fastnet[plot]"`); without it these raise ImportError with that instruction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastnet.files import atomic_write


def require_matplotlib():
    """matplotlib.pyplot with a file-only backend, or ImportError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError('pictures need matplotlib: pip install "fastnet[plot]" (or pip install matplotlib)') from None
    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    return plt


def check_figure_path(path, what="picture"):
    """Raise now (ImportError without matplotlib, ValueError for an unknown format, OSError when not
    writable) rather than after the work the picture shows."""
    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    from fastnet.files import check_writable

    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if fmt not in formats:
        raise ValueError(f"{what} {path}: cannot draw .{fmt} files; use one of: .{', .'.join(sorted(formats))}")
    check_writable(path, what)


def save_figure(fig, path, dpi=100):
    """Write the figure atomically (never a half-drawn file) in the format its suffix names, then close it."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        with atomic_write(path) as f:
            fig.savefig(f, format=fmt, dpi=dpi)
    finally:
        require_matplotlib().close(fig)


def plot_curves(history, path):
    """Loss and train accuracy per step, dev accuracy where it was evaluated."""
    plt = require_matplotlib()
    steps = np.arange(1, history.steps + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(steps, history.loss, color="tab:red")
    ax_loss.set(xlabel="step", ylabel="cross-entropy loss", title="training loss")
    ax_acc.plot(steps, history.accuracy, label="train (batch, before each update)")
    if history.dev_accuracy:
        its, accs = zip(*history.dev_accuracy)
        ax_acc.plot(its, accs, "o-" if len(its) < 50 else "-", label="dev")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_mistakes(images, true, predicted, path, limit=36, side=28):
    """A grid of misclassified digits titled 'true → predicted'; returns how many were drawn."""
    plt = require_matplotlib()
    wrong = np.flatnonzero(np.asarray(true) != np.asarray(predicted))[:limit]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong):
        ax.imshow(np.asarray(images[i]).reshape(side, side), cmap="gray_r")
        ax.set_title(f"{true[i]} \u2192 {predicted[i]}", fontsize=10, color="tab:red")
    fig.suptitle(f"{len(wrong)} misclassified digits (true \u2192 predicted)" if len(wrong)
                 else "no misclassified digits")
    fig.tight_layout()
    save_figure(fig, path)
    return len(wrong)


def plot_prepared(shown, predicted, probabilities, path, pairs_per_row=3):
    """Each image as read beside what the network saw (after preparation), titled with the
    prediction and its probability: ``shown`` is [(name, picture in [0, 1], digit (28, 28)), ...],
    in the order of the rows of ``predicted`` and ``probabilities``."""
    plt = require_matplotlib()
    rows = max(1, -(-len(shown) // pairs_per_row))
    fig, axes = plt.subplots(rows, 2 * pairs_per_row, figsize=(2 * pairs_per_row * 1.7, rows * 2.2),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (name, picture, digit) in enumerate(shown):
        as_read, seen = axes[i // pairs_per_row, 2 * (i % pairs_per_row):2 * (i % pairs_per_row) + 2]
        for ax in (as_read, seen):  # a frame, so a white page shows where it ends
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
        as_read.imshow(picture, cmap="gray", vmin=0, vmax=1)
        as_read.set_title(_short(Path(name).name), fontsize=8)
        seen.imshow(digit, cmap="gray", vmin=0, vmax=255)  # white on black, as MNIST and the network
        seen.set_title(f"\u2192 {predicted[i]} ({probabilities[i, predicted[i]]:.0%})", fontsize=10)
    fig.suptitle("each image as read, and what the network saw \u2192 its prediction")
    fig.tight_layout()
    save_figure(fig, path)


def _short(name, width=18):
    return name if len(name) <= width else name[:width - 1] + "\u2026"
