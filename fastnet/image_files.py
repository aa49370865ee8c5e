"""Image files in: which files are images, and decoding one to a grayscale array with Pillow.

Pillow is an optional extra (``pip install "fastnet[image]"``); without it, reading an image
raises ImportError with that instruction. Every problem with one file raises :class:`ImageError`
(a ValueError) with one line naming the file, so a folder of images can report it and go on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from fastnet.data.formats import file_kind
from fastnet.images import prepare_digit

# Names a folder's images are recognised by; other files in a folder are left out (and listed).
IMAGE_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp",
    ".pbm", ".pgm", ".ppm", ".pnm", ".ico", ".tga",
})
# A huge picture is shrunk (each block of pixels averaged) until its longer side is at most this
# before preparation: the digit ends up 20 pixels tall, and a 10,000 x 10,000 scan would otherwise
# take gigabytes as floats. A digit should be at least ~1/100 of such a picture's side.
WORK_SIDE = 2000
# Modes holding more than 8 bits per pixel; Pillow reads 16-bit grayscale PNGs as one of these.
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageError(ValueError):
    """An image file that cannot be used; the message is one line naming the file."""


def require_pillow():
    """PIL.Image, or ImportError (one line) saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError('image inputs need Pillow: pip install "fastnet[image]" (or pip install pillow)') from None
    return Image


def is_image_name(path):
    """Whether ``path``'s suffix is one of IMAGE_SUFFIXES (any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def images_in(folder):
    """(image files sorted by name, other files left out) in ``folder``, not recursing; hidden
    files (``.DS_Store``, editors' back-ups) are ignored altogether."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
    return [p for p in files if is_image_name(p)], [p for p in files if not is_image_name(p)]


def read_gray(path):
    """The picture in ``path`` as a 2-D array of gray levels: uint8, or uint16 for 16-bit images.

    The first frame of an animation or multi-page file; turned upright by its EXIF orientation
    (phone photos); transparent parts shown on a background opposite to the ink; pictures whose
    longer side exceeds WORK_SIDE shrunk by averaging blocks of pixels.
    """
    Image = require_pillow()
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 M pixels and refuses above ~179 M: the refusal is reported
            # below; between the two, the picture is read (and shrunk), so the warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height == 0:
                    raise ImageError(f"{path}: empty image ({width} x {height} pixels)")
                im.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG: decode at a reduced scale, cheaply
                im = ImageOps.exif_transpose(im)
                return _gray(im)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: too large to read safely ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: {_not_an_image(path)}") from None
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{path}: damaged or unreadable image ({_first_line(exc)})") from None


def read_digit(path):
    """(the picture's gray levels as read, the prepared (28, 28) uint8 digit); ImageError naming
    the file for anything wrong with it, including a blank picture."""
    gray = read_gray(path)
    try:
        return gray, prepare_digit(gray)
    except ValueError as exc:
        raise ImageError(f"{path}: {exc}") from None


def _gray(im):
    """Gray levels of an open Pillow image, transparency flattened, huge pictures shrunk."""
    if im.mode in WIDE_MODES:
        im = im.convert("I")  # 32-bit integers holding the 16-bit values: reduce() takes this mode
        im = _shrunk(im)
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    if im.mode == "F":
        im = _shrunk(im)
        values = np.asarray(im, np.float64)
        top = values.max() if values.size and values.max() > 1 else 1.0  # float TIFFs: any scale
        return np.clip(values / top, 0.0, 1.0)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info)
    im = _shrunk(im.convert("LA" if has_alpha else "L"))  # palette, CMYK, RGB...: luma, 0-255
    values = np.asarray(im)
    if not has_alpha:
        return values
    gray, alpha = values[..., 0] / 255.0, values[..., 1] / 255.0
    if alpha.max() == 0:
        return np.zeros(gray.shape, np.uint8)  # fully transparent: blank, reported as such later
    # Drawings are often ink on a transparent canvas, whose hidden colour is arbitrary (often black,
    # like black ink): show the ink on paper of the opposite brightness.
    paper = 1.0 if np.average(gray, weights=alpha) < 0.5 else 0.0
    return np.floor((gray * alpha + paper * (1 - alpha)) * 255 + 0.5).astype(np.uint8)


def _shrunk(im):
    factor = -(-max(im.size) // WORK_SIDE)
    return im.reduce(factor) if factor > 1 else im


def _not_an_image(path):
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        head = b""
    if not head:
        return "empty file, not an image"
    kind = file_kind(head)
    if kind and "image" in kind:
        return f"{kind}, damaged (Pillow cannot read it)"
    return f"{kind}, not an image" if kind else "not an image (Pillow cannot read it)"


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
