"""A picture of a digit prepared the way MNIST's digits were made, in plain numpy.

MNIST's digits are white on black, their longer side normalised to 20 pixels (keeping the aspect
ratio, anti-aliased), and placed in a 28 x 28 field so that their centre of mass is at the centre.
A network trained on them expects exactly that; :func:`prepare_digit` turns any grayscale picture
of one digit (a scan, a photo, a drawing) into it:

1. gray levels to [0, 1] (uint8 / 255, uint16 / 65535, other integers / 255 when none exceeds 255
   and / 65535 otherwise, floats as they are);
2. the background is the median of the border pixels; a light one means dark ink on paper, so the
   picture is inverted (MNIST is white on black);
3. ink is what lies above the background, stretched so the strongest ink is 1; anything weaker
   than ``INK_THRESHOLD`` of it is background (paper texture, sensor noise, JPEG ringing);
4. cropped to the ink's bounding box;
5. resampled so that the longer side is ``BOX`` pixels (a triangle filter, widened when shrinking
   so that every source pixel counts), then stretched again so the strongest ink is 255;
6. placed in the ``FIELD`` x ``FIELD`` field with its centre of mass on pixel (14, 14), rounded to
   whole pixels; when that would cut the digit off (a lopsided shape), moved in as little as needed.

Decoding files is :mod:`fastnet.image_files` (Pillow); everything here takes arrays, so it can be
tested with hand-made pictures of known size and centre.
"""

from __future__ import annotations

import numpy as np

FIELD = 28  # MNIST's image side
BOX = 20  # the side of the box MNIST's digits were scaled into
INK_THRESHOLD = 0.2  # ink weaker than this fraction of the strongest ink counts as background
MIN_CONTRAST = 0.08  # ink must stand this far (of the full gray scale) above the background


class BlankImage(ValueError):
    """A picture with no ink on it: one gray level, or differences too faint to be a digit."""


def to_unit(gray):
    """The gray levels of a 2-D array as float64 in [0, 1], scaled as step 1 of the module docstring says."""
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale picture, got an array of shape {gray.shape}")
    if gray.size == 0:
        raise ValueError(f"empty picture ({gray.shape[1]} x {gray.shape[0]} pixels)")
    if gray.dtype == np.bool_:
        return gray.astype(np.float64)
    if gray.dtype.kind in "ui":
        if gray.dtype in (np.uint8, np.uint16):
            top = np.iinfo(gray.dtype).max
        else:  # int64 from np.array(img, int), int32 from Pillow's "I" mode: judge by the values
            top = 255 if gray.max() <= 255 else 65535
        return np.clip(gray.astype(np.float64) / top, 0.0, 1.0)
    if gray.dtype.kind == "f":
        if not np.all(np.isfinite(gray)):
            raise ValueError("the picture holds NaN or infinite gray levels")
        return np.clip(gray.astype(np.float64), 0.0, 1.0)
    raise TypeError(f"gray levels must be numbers, got {gray.dtype}")


def background_level(unit):
    """The median gray level of the border pixels: what the paper (or screen) looks like."""
    border = np.concatenate([unit[0], unit[-1], unit[:, 0], unit[:, -1]])
    return float(np.median(border))


def ink(gray):
    """(ink in [0, 1], white on black, strongest 1; whether the picture was inverted)."""
    unit = to_unit(gray)
    inverted = background_level(unit) > 0.5
    if inverted:
        unit = 1.0 - unit
    above = np.clip(unit - background_level(unit), 0.0, None)
    strongest = above.max()
    if strongest < MIN_CONTRAST:
        raise BlankImage("no digit found: the picture is blank (no ink stands out from the background)")
    above /= strongest
    above[above < INK_THRESHOLD] = 0.0
    return above, inverted


def ink_box(ink_array):
    """(top, bottom, left, right) of the ink's bounding box, bottom and right exclusive."""
    rows = np.flatnonzero(ink_array.any(axis=1))
    cols = np.flatnonzero(ink_array.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def resample_matrix(n_in, n_out):
    """(n_out, n_in) weights that resample a line of n_in pixels to n_out (rows sum to 1).

    Output pixel i covers input positions [i, i + 1) * n_in / n_out. Its value is a triangle-
    weighted mean around its centre; when shrinking, the triangle is widened by the scale, so each
    output pixel averages all the input pixels it covers (as an anti-aliased downscale should).
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    positions = np.arange(n_in) + 0.5
    weights = np.clip(1.0 - np.abs(positions[None, :] - centres[:, None]) / support, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def resize(picture, height, width):
    """``picture`` (2-D) resampled to height x width with :func:`resample_matrix` along each axis."""
    rows = resample_matrix(picture.shape[0], height)
    cols = resample_matrix(picture.shape[1], width)
    return rows @ picture @ cols.T


def scaled_size(height, width, box=BOX):
    """(height, width) with the longer side ``box`` and the aspect ratio kept (each at least 1)."""
    longer = max(height, width)
    return max(1, int(np.floor(height * box / longer + 0.5))), max(1, int(np.floor(width * box / longer + 0.5)))


def centre_of_mass(picture):
    """(row, column) of the centre of mass, in pixel indices (pixel (i, j) is at (i, j))."""
    total = picture.sum()
    rows = (picture.sum(axis=1) * np.arange(picture.shape[0])).sum() / total
    cols = (picture.sum(axis=0) * np.arange(picture.shape[1])).sum() / total
    return rows, cols


def place(digit, field=FIELD):
    """A field x field picture with ``digit`` placed so its centre of mass is on pixel
    (field / 2, field / 2): (14, 14) in MNIST, where its digits' centres of mass lie (measured on
    the test set: 14.50 +- 0.29 in both directions, pixel i spanning [i, i + 1))."""
    out = np.zeros((field, field), digit.dtype)
    h, w = digit.shape
    com_row, com_col = centre_of_mass(digit)
    # Rounded to whole pixels like MNIST's own centring; clamped so the digit is never cut off.
    top = min(max(int(np.floor(field // 2 - com_row + 0.5)), 0), field - h)
    left = min(max(int(np.floor(field // 2 - com_col + 0.5)), 0), field - w)
    out[top:top + h, left:left + w] = digit
    return out


def prepare_digit(gray):
    """A 2-D grayscale picture of one digit as MNIST would have it: (28, 28) uint8, white on black.

    ``gray`` holds gray levels (integers, bool, or floats in [0, 1]; see :func:`to_unit`), dark ink
    on light paper or light ink on dark. Raises :class:`BlankImage` (a ValueError)
    when there is no ink, ValueError for an empty or non-2-D array. See the module docstring.
    """
    strokes, _ = ink(gray)
    top, bottom, left, right = ink_box(strokes)
    cropped = strokes[top:bottom, left:right]
    digit = np.clip(resize(cropped, *scaled_size(*cropped.shape)), 0.0, None)
    digit /= digit.max()  # a thin pen shrunk 10x is faint; MNIST's strokes reach full white
    return np.floor(place(digit) * 255 + 0.5).astype(np.uint8)
