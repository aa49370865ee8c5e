"""``python -m fastnet.predict`` on image files and folders: read, prepare, predict, report.

Each image is read and prepared on its own (:func:`fastnet.image_files.read_digit`); one that
cannot be used is reported on stderr in one line naming it, and the others are still predicted
and written. The status is then 2 (bad input) at the end, so scripts notice.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from fastnet.backends import get_backend

SHOW_LIMIT = 30  # --show draws at most this many images, the first ones in the order given
THUMBNAIL_SIDE = 160  # --show draws the input as read, shrunk to at most this many pixels a side


def image_files(inputs, say):
    """[(path, None) or (path, error)]: the images named or found in folders, in the order given;
    a folder's other files are left out and named (``say``), a folder without images is an error."""
    from fastnet.image_files import images_in

    found = []
    for given in map(Path, inputs):
        if not given.is_dir():
            found.append((given, None))
            continue
        images, others = images_in(given)
        if others:
            names = ", ".join(p.name for p in others[:3]) + (", ..." if len(others) > 3 else "")
            say(f"left out {len(others)} file{'s' * (len(others) > 1)} in {given} that "
                f"{'are not images' if len(others) > 1 else 'is not an image'} by name ({names})")
        if not images:
            found.append((given, f"{given}: no images in this folder"))
        found += [(p, None) for p in images]
    return found


def predict_images(args):
    """Predict every image of ``args.inputs``; returns the exit status (0, or 2 if any failed)."""
    from fastnet.image_files import ImageError, read_digit, require_pillow
    from fastnet.images import FIELD
    from fastnet.network import load_network

    require_pillow()  # a missing extra: one line before any work
    net, _ = load_network(args.model)
    if net.sizes[0] != FIELD * FIELD:
        raise ValueError(f"{args.model}: the model takes {net.sizes[0]} pixels; images are prepared "
                         f"as {FIELD} x {FIELD} = {FIELD * FIELD}")
    from tqdm.auto import tqdm

    def say(message):
        tqdm.write(f"fastnet: {message}", file=sys.stderr)

    files = image_files(args.inputs, say)
    names, digits, shown, failed = [], [], [], 0
    bar = tqdm(files, desc="reading images", unit=" images", leave=False, file=sys.stderr,
               disable=True if args.no_progress or len(files) < 2 else None)
    for path, error in bar:
        try:
            if error:
                raise ImageError(error)
            gray, digit = read_digit(path)
        except (ImageError, FileNotFoundError, OSError) as exc:
            failed += 1
            say(f"error: {exc}")
            continue
        names.append(str(path))
        digits.append(digit.reshape(-1))
        if args.show and len(shown) < SHOW_LIMIT:
            shown.append((str(path), thumbnail(gray), digit))
    if not digits:
        if len(files) > 1:
            say(f"error: none of the {len(files)} images could be used")
        return 2

    probabilities = get_backend(args.backend).forward(net, np.stack(digits))
    predicted = probabilities.argmax(axis=1)
    from fastnet.cli import write_output

    write_output(args.out, predictions_csv(names, predicted, probabilities), len(names))
    if args.show:
        from fastnet.plots import plot_prepared

        plot_prepared(shown, predicted, probabilities, args.show)
        more = f" (the first {len(shown)} of {len(names)})" if len(shown) < len(names) else ""
        print(f"drew {len(shown)} images and what the network saw in {args.show}{more}", file=sys.stderr)
    if failed:
        say(f"error: {failed} of {len(files)} images could not be used (above); "
            f"the other {len(names):,} predictions were written")
        return 2
    return 0


def predictions_csv(names, predicted, probabilities):
    """CSV text: a header ``file,prediction,p0,...``, then one row per image."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # quotes file names holding commas or quotes
    writer.writerow(["file", "prediction", *(f"p{k}" for k in range(probabilities.shape[1]))])
    for name, label, row in zip(names, predicted, probabilities):
        writer.writerow([name, int(label), *(f"{p:.6f}" for p in row)])
    return buf.getvalue()


def thumbnail(gray):
    """The picture as read, gray levels in [0, 1], its longer side at most THUMBNAIL_SIDE."""
    from fastnet.images import resize, to_unit

    unit = to_unit(gray)
    longer = max(unit.shape)
    if longer <= THUMBNAIL_SIDE:
        return unit
    return resize(unit, max(1, unit.shape[0] * THUMBNAIL_SIDE // longer), max(1, unit.shape[1] * THUMBNAIL_SIDE // longer))
